"""Validation of user request bodies (the legacy JSON form of the User API).

Where Staffbase documents no rule, the emulator takes the stricter reading, so that a
client that passes here also passes there. Unknown and read-only fields are rejected
rather than ignored. Field values must be strings or null. An e-mail list needs exactly
one primary entry, and ``externalID`` and ``userName`` cannot be empty strings.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from staffsync.emulator.errors import INVALID_REQUEST, ApiError

__all__ = [
    "STATUSES",
    "STRING_FIELDS",
    "PayloadMode",
    "is_user_id",
    "parse_user_payload",
    "primary_email",
]

STATUSES = ("activated", "pending", "deactivated")

STRING_FIELDS = (
    "externalID",
    "userName",
    "firstName",
    "lastName",
    "position",
    "department",
    "location",
    "phoneNumber",
    "publicEmailAddress",
    "gender",
)
"""Top-level user fields whose value is a string, or null for "no value"."""

READ_ONLY_FIELDS = frozenset({"id", "created", "updated", "activated", "status"})

PayloadMode = Literal["create", "update", "seed"]
"""``create``: POST /api/users; ``update``: PUT /api/users/{id}; ``seed``: a Studio-made user."""

_EXTRA_FIELDS: dict[PayloadMode, frozenset[str]] = {
    "create": frozenset({"emails", "profile", "config", "sendMail"}),
    "update": frozenset({"emails", "profile", "config", "status"}),
    "seed": frozenset({"emails", "profile", "config", "status", "id"}),
}

_NON_EMPTY_FIELDS = frozenset({"externalID", "userName"})
_USER_ID = re.compile(r"[0-9a-f]{24}")
# One "@" with something on both sides and no whitespace; deliberately loose beyond that.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
# Staffbase writes locales as language_COUNTRY (en_US, de_DE). A BCP 47 tag such as
# "en-US" is rejected, because the legacy API documents no other format.
_LOCALE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")


def is_user_id(value: str) -> bool:
    """Tell whether ``value`` has the form of a Staffbase id (24 lowercase hex digits)."""
    return _USER_ID.fullmatch(value) is not None


def primary_email(emails: list[dict[str, Any]]) -> str | None:
    """Return the value of the primary entry of a validated e-mail list."""
    for email in emails:
        if email["primary"]:
            return str(email["value"])
    return None


def parse_user_payload(body: object, mode: PayloadMode) -> dict[str, Any]:
    """Check a user request body and return its fields in normalized form.

    Raises:
        ApiError: ``ERROR_INVALID_REQUEST`` naming the first invalid field.
    """
    if not isinstance(body, dict):
        msg = f"The request body must be a JSON object, got {type(body).__name__}."
        raise _invalid(msg)

    allowed = _EXTRA_FIELDS[mode]
    changes: dict[str, Any] = {}
    for name, value in body.items():
        if name in STRING_FIELDS:
            changes[name] = _parse_string_field(name, value)
        elif name in allowed:
            changes[name] = _parse_extra_field(name, value, mode)
        elif name in READ_ONLY_FIELDS:
            msg = f"The field {name!r} is read-only and cannot be set here."
            raise _invalid(msg)
        else:
            msg = f"Unknown or unsupported user field {name!r}."
            raise _invalid(msg)

    if mode != "update" and "emails" not in changes:
        msg = "The field 'emails' is required and needs exactly one primary e-mail."
        raise _invalid(msg)
    if mode == "update" and not changes:
        msg = "The request body names no field to change."
        raise _invalid(msg)
    return changes


def _parse_string_field(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        msg = f"The field {name!r} must be a string or null, got {value!r}."
        raise _invalid(msg)
    if name in _NON_EMPTY_FIELDS and not value:
        msg = f"The field {name!r} must not be empty; send null to clear it."
        raise _invalid(msg)
    return value


def _parse_extra_field(name: str, value: object, mode: PayloadMode) -> object:
    if name == "emails":
        return _parse_emails(value)
    if name == "profile":
        return _parse_profile(value, keep_nulls=mode == "update")
    if name == "config":
        return _parse_config(value)
    if name == "status":
        if value not in STATUSES:
            msg = f"The field 'status' must be one of {', '.join(STATUSES)}, got {value!r}."
            raise _invalid(msg)
        return value
    if name == "sendMail":
        if not isinstance(value, bool):
            msg = f"The field 'sendMail' must be true or false, got {value!r}."
            raise _invalid(msg)
        return value

    # Only "id" is left: the Staffbase id of a seeded user.
    if not isinstance(value, str) or not is_user_id(value):
        msg = f"The field 'id' must be 24 lowercase hex digits, got {value!r}."
        raise _invalid(msg)
    return value


def _parse_emails(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        msg = f"The field 'emails' must be a non-empty list, got {value!r}."
        raise _invalid(msg)

    emails: list[dict[str, Any]] = []
    seen: set[str] = set()
    for entry in value:
        email = _parse_email_entry(entry)
        folded = email["value"].casefold()
        if folded in seen:
            msg = f"The e-mail {email['value']!r} appears twice in 'emails'."
            raise _invalid(msg)
        seen.add(folded)
        emails.append(email)

    primaries = sum(1 for email in emails if email["primary"])
    if primaries != 1:
        msg = f"The field 'emails' needs exactly one primary e-mail, got {primaries}."
        raise _invalid(msg)
    return emails


def _parse_email_entry(entry: object) -> dict[str, Any]:
    if not isinstance(entry, dict):
        msg = f"Each entry of 'emails' must be an object, got {entry!r}."
        raise _invalid(msg)
    unknown = set(entry) - {"value", "primary"}
    if unknown:
        msg = f"Unknown keys {sorted(unknown)!r} in an 'emails' entry."
        raise _invalid(msg)

    address = entry.get("value")
    if not isinstance(address, str) or _EMAIL.fullmatch(address) is None:
        msg = f"Invalid e-mail address {address!r} in 'emails'."
        raise _invalid(msg)
    primary = entry.get("primary", False)
    if not isinstance(primary, bool):
        msg = f"The 'primary' flag of {address!r} must be true or false, got {primary!r}."
        raise _invalid(msg)
    return {"value": address, "primary": primary}


def _parse_profile(value: object, *, keep_nulls: bool) -> dict[str, str | None]:
    if not isinstance(value, dict):
        msg = f"The field 'profile' must be an object, got {value!r}."
        raise _invalid(msg)

    profile: dict[str, str | None] = {}
    for key, field_value in value.items():
        if not key:
            msg = "Profile field ids must not be empty."
            raise _invalid(msg)
        if field_value is not None and not isinstance(field_value, str):
            msg = f"The profile field {key!r} must be a string or null, got {field_value!r}."
            raise _invalid(msg)
        if field_value is not None or keep_nulls:
            profile[key] = field_value
    return profile


def _parse_config(value: object) -> dict[str, str | None]:
    if not isinstance(value, dict):
        msg = f"The field 'config' must be an object, got {value!r}."
        raise _invalid(msg)
    unknown = set(value) - {"locale"}
    if unknown:
        msg = f"Unknown keys {sorted(unknown)!r} in 'config'; only 'locale' is supported."
        raise _invalid(msg)

    locale = value.get("locale")
    if locale is not None and (not isinstance(locale, str) or _LOCALE.fullmatch(locale) is None):
        msg = f"The locale must look like 'en_US' or 'de', got {locale!r}."
        raise _invalid(msg)
    return {"locale": locale} if "locale" in value else {}


def _invalid(message: str) -> ApiError:
    return ApiError(INVALID_REQUEST, message)
