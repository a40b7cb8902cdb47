"""Translation between staffsync's flat user fields and Staffbase's legacy user JSON.

The mapping config and the state database name user fields with flat names
(``firstName``, ``email``, ``profile.costcenter`` …). Staffbase's legacy User API nests
some of them:

==========================  =================================================
flat name                   Staffbase JSON
==========================  =================================================
``firstName`` and the rest  the top-level key of the same name
``email``                   ``emails: [{"value": …, "primary": true}]``
``locale``                  ``config.locale``
``manager``                 ``profile.system_manager`` (the manager's user id)
``profile.<fieldId>``       ``profile[<fieldId>]``
==========================  =================================================
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "KNOWN_FIELDS",
    "TOP_LEVEL_FIELDS",
    "USER_STATUSES",
    "build_user_body",
    "read_user_fields",
    "validate_field_name",
]

USER_STATUSES: Final = ("activated", "pending", "deactivated")
"""Statuses of the users staffsync manages: signed in, invited and not yet signed in, disabled."""

TOP_LEVEL_FIELDS: Final = (
    "firstName",
    "lastName",
    "userName",
    "position",
    "department",
    "location",
    "phoneNumber",
    "publicEmailAddress",
    "gender",
)
"""Flat names that are top-level keys of the same name in the user JSON."""

KNOWN_FIELDS: Final = (*TOP_LEVEL_FIELDS, "email", "locale", "manager")
"""Every flat name other than the ``profile.<fieldId>`` ones."""

PROFILE_PREFIX: Final = "profile."
MANAGER_PROFILE_KEY: Final = "system_manager"

# Staffbase derives profile-field ids from display names ("Job Family" -> "jobfamily_1"):
# letters, digits, underscores and hyphens.
_PROFILE_FIELD_ID = re.compile(r"[A-Za-z0-9_-]+")

_NOT_MAPPABLE = {
    "externalID": "it is set from [mapping] key",
    "externalId": "it is set from [mapping] key",
    "status": "it is set from [mapping.status]",
    "emails": "map 'email' instead, the primary address",
    "id": "Staffbase assigns it",
}


def validate_field_name(name: str) -> None:
    """Check that ``name`` is a flat user field that staffsync can write.

    Raises:
        ValueError: ``name`` is not one of :data:`KNOWN_FIELDS` nor ``profile.<fieldId>``;
            the message explains why and what to use instead.
    """
    if name in KNOWN_FIELDS:
        return

    if name.startswith(PROFILE_PREFIX):
        field_id = name.removeprefix(PROFILE_PREFIX)
        if field_id == MANAGER_PROFILE_KEY:
            msg = f"user field {name!r} is the manager reference: map it as 'manager' instead"
            raise ValueError(msg)
        if not _PROFILE_FIELD_ID.fullmatch(field_id):
            msg = (
                f"user field {name!r} has an invalid profile field id {field_id!r}: use"
                " 'profile.<fieldId>' with the id Staffbase shows for the field"
                " (letters, digits, '_' and '-')"
            )
            raise ValueError(msg)
        return

    if name in _NOT_MAPPABLE:
        msg = f"user field {name!r} cannot be mapped: {_NOT_MAPPABLE[name]}"
        raise ValueError(msg)
    msg = (
        f"unknown Staffbase user field {name!r}: use one of {', '.join(KNOWN_FIELDS)}"
        " or 'profile.<fieldId>' for a custom profile field"
    )
    raise ValueError(msg)


def build_user_body(
    fields: Mapping[str, str | None],
    *,
    external_id: str | None = None,
    status: str | None = None,
    send_mail: bool | None = None,
) -> dict[str, Any]:
    """Build the JSON body of a create (POST) or partial update (PUT) from flat fields.

    Only the given fields appear in the body, so an update changes nothing else. A
    ``None`` value clears the field and is sent as JSON ``null``.

    NOTE: Whether the legacy PUT clears a field on ``null`` (rather than ignoring it or
    rejecting the request) is not documented by Staffbase.

    Args:
        fields: Flat field names and values; names are checked by
            :func:`validate_field_name`.
        external_id: The user's ``externalID``, when it is to be set.
        status: ``"activated"`` or ``"deactivated"``, when the status is to change.
        send_mail: Sets ``sendMail`` (on create: whether Staffbase e-mails an invitation).

    Raises:
        ValueError: a field name is unknown, the e-mail is ``None`` (a user keeps a
            primary address), or the status is not a user status.
    """
    body: dict[str, Any] = {}
    for name, value in fields.items():
        validate_field_name(name)
        _put_field(body, name, value)

    if external_id is not None:
        body["externalID"] = external_id
    if status is not None:
        if status not in USER_STATUSES:
            msg = f"unknown user status {status!r}: use one of {', '.join(USER_STATUSES)}"
            raise ValueError(msg)
        body["status"] = status
    if send_mail is not None:
        body["sendMail"] = send_mail
    return body


def _put_field(body: dict[str, Any], name: str, value: str | None) -> None:
    if name == "email":
        if value is None:
            msg = "the e-mail address cannot be cleared: a Staffbase user needs a primary address"
            raise ValueError(msg)
        # NOTE: this replaces the whole list, so secondary addresses of the user are dropped.
        body["emails"] = [{"value": value, "primary": True}]
    elif name == "locale":
        body.setdefault("config", {})["locale"] = value
    elif name == "manager":
        body.setdefault("profile", {})[MANAGER_PROFILE_KEY] = value
    elif name.startswith(PROFILE_PREFIX):
        body.setdefault("profile", {})[name.removeprefix(PROFILE_PREFIX)] = value
    else:
        body[name] = value


def read_user_fields(user: Mapping[str, Any]) -> dict[str, str | None]:
    """Return the flat fields of a Staffbase user, the inverse of :func:`build_user_body`.

    Only fields the user JSON contains are returned. ``email`` is the primary address
    (or the first one if none is marked primary), ``manager`` is the Staffbase id in
    ``profile.system_manager``, and every other ``profile`` entry with a text or number
    value becomes ``profile.<fieldId>``. ``externalID`` and ``status`` are not fields;
    read them from the user directly.
    """
    fields: dict[str, str | None] = {}
    for name in TOP_LEVEL_FIELDS:
        if name in user:
            fields[name] = _as_text(user[name])

    email = _primary_email(user.get("emails"))
    if email is not None:
        fields["email"] = email

    config = user.get("config")
    if isinstance(config, dict) and "locale" in config:
        fields["locale"] = _as_text(config["locale"])

    profile = user.get("profile")
    if isinstance(profile, dict):
        fields.update(_profile_fields(profile))
    return fields


def _profile_fields(profile: Mapping[str, Any]) -> dict[str, str | None]:
    fields: dict[str, str | None] = {}
    for key, value in profile.items():
        if key == MANAGER_PROFILE_KEY:
            fields["manager"] = _manager_id(value)
        elif value is None or isinstance(value, str | int | float):
            fields[PROFILE_PREFIX + key] = _as_text(value)
        # Objects such as the avatar are not fields staffsync maps.
    return fields


def _primary_email(emails: object) -> str | None:
    if not isinstance(emails, list):
        return None
    entries = [entry for entry in emails if isinstance(entry, dict) and entry.get("value")]
    for entry in entries:
        if entry.get("primary"):
            return str(entry["value"])
    return str(entries[0]["value"]) if entries else None


def _manager_id(value: object) -> str | None:
    # Newer API versions may return a reference object instead of a bare id.
    if isinstance(value, dict):
        value = value.get("id")
    return _as_text(value)


def _as_text(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
