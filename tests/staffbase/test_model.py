"""Tests for the translation between flat user fields and Staffbase's user JSON."""

from __future__ import annotations

from typing import Any

import pytest

from staffsync.staffbase.model import (
    KNOWN_FIELDS,
    build_user_body,
    read_user_fields,
    validate_field_name,
)

USER: dict[str, Any] = {
    "id": "5f0c0ffee0000000000000bb",
    "externalID": "E1001",
    "status": "activated",
    "firstName": "Ada",
    "lastName": "Lovelace",
    "position": "",
    "emails": [
        {"value": "old@example.com", "primary": False},
        {"value": "ada@example.com", "primary": True},
    ],
    "config": {"locale": "en_US"},
    "profile": {
        "system_manager": "5f0c0ffee0000000000000aa",
        "costcenter": "CC-7",
        "level": 3,
        "avatar": {"original": {"url": "https://example.com/a.png"}},
    },
}


class TestValidateFieldName:
    @pytest.mark.parametrize("name", [*KNOWN_FIELDS, "profile.costcenter", "profile.jobfamily_1"])
    def test_accepted(self, name: str) -> None:
        """Known names and profile.<fieldId> pass."""
        validate_field_name(name)

    def test_unknown(self) -> None:
        """An unknown name is rejected with the name and the allowed ones."""
        with pytest.raises(
            ValueError, match=r"unknown Staffbase user field 'jobTitle': use one of firstName"
        ):
            validate_field_name("jobTitle")

    def test_external_id(self) -> None:
        """externalID is set from the key, not mapped."""
        with pytest.raises(
            ValueError, match=r"'externalID' cannot be mapped: it is set from \[mapping\] key"
        ):
            validate_field_name("externalID")

    def test_manager_profile_key(self) -> None:
        """The manager's profile key points to the 'manager' field."""
        with pytest.raises(ValueError, match="map it as 'manager' instead"):
            validate_field_name("profile.system_manager")

    @pytest.mark.parametrize("name", ["profile.", "profile.cost center", "profile.a.b"])
    def test_bad_profile_id(self, name: str) -> None:
        """A profile field id must be one word of letters, digits, '_' or '-'."""
        with pytest.raises(ValueError, match="invalid profile field id"):
            validate_field_name(name)


class TestBuildUserBody:
    def test_top_level_fields(self) -> None:
        """Plain fields keep their names at the top level."""
        body = build_user_body({"firstName": "Ada", "position": "Engineer", "gender": "female"})

        assert body == {"firstName": "Ada", "position": "Engineer", "gender": "female"}

    def test_email(self) -> None:
        """The e-mail becomes the primary entry of emails."""
        body = build_user_body({"email": "ada@example.com"})

        assert body == {"emails": [{"value": "ada@example.com", "primary": True}]}

    def test_nested_fields(self) -> None:
        """locale, manager and profile fields go into config and profile."""
        body = build_user_body(
            {
                "locale": "de_DE",
                "manager": "5f0c0ffee0000000000000aa",
                "profile.costcenter": "CC-7",
                "profile.shift": "early",
            }
        )

        assert body == {
            "config": {"locale": "de_DE"},
            "profile": {
                "system_manager": "5f0c0ffee0000000000000aa",
                "costcenter": "CC-7",
                "shift": "early",
            },
        }

    def test_none_clears(self) -> None:
        """A None value is sent as null."""
        body = build_user_body({"position": None, "manager": None})

        assert body == {"position": None, "profile": {"system_manager": None}}

    def test_create_options(self) -> None:
        """externalID, status and sendMail are added when given."""
        body = build_user_body(
            {"lastName": "Lovelace"}, external_id="E1001", status="deactivated", send_mail=False
        )

        assert body == {
            "lastName": "Lovelace",
            "externalID": "E1001",
            "status": "deactivated",
            "sendMail": False,
        }

    def test_only_given_fields(self) -> None:
        """An empty update has an empty body."""
        assert build_user_body({}) == {}

    def test_email_cannot_be_cleared(self) -> None:
        """A None e-mail is rejected: a user keeps a primary address."""
        with pytest.raises(ValueError, match="e-mail address cannot be cleared"):
            build_user_body({"email": None})

    def test_unknown_field(self) -> None:
        """An unknown field name is rejected."""
        with pytest.raises(ValueError, match="unknown Staffbase user field 'title'"):
            build_user_body({"title": "x"})

    def test_unknown_status(self) -> None:
        """A status outside the user statuses is rejected."""
        with pytest.raises(ValueError, match="unknown user status 'deleted'"):
            build_user_body({}, status="deleted")


class TestReadUserFields:
    def test_fields(self) -> None:
        """Every mapped field is read back flat; objects such as the avatar are left out."""
        assert read_user_fields(USER) == {
            "firstName": "Ada",
            "lastName": "Lovelace",
            "position": None,
            "email": "ada@example.com",
            "locale": "en_US",
            "manager": "5f0c0ffee0000000000000aa",
            "profile.costcenter": "CC-7",
            "profile.level": "3",
        }

    def test_first_email_without_primary(self) -> None:
        """Without a primary entry, the first address counts."""
        user = {"emails": [{"value": "a@example.com"}, {"value": "b@example.com"}]}

        assert read_user_fields(user) == {"email": "a@example.com"}

    def test_manager_object(self) -> None:
        """A manager given as a reference object is read by its id."""
        user = {"profile": {"system_manager": {"id": "5f0c0ffee0000000000000aa"}}}

        assert read_user_fields(user) == {"manager": "5f0c0ffee0000000000000aa"}

    def test_empty_user(self) -> None:
        """A user without fields gives no fields."""
        assert read_user_fields({"id": "x"}) == {}

    @pytest.mark.parametrize(
        "fields",
        [
            {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com"},
            {"locale": "de_DE", "manager": "5f0c0ffee0000000000000aa", "profile.shift": "late"},
            {
                "phoneNumber": "+49 30 1234",
                "publicEmailAddress": "a@example.com",
                "userName": "ada",
            },
            {"department": None, "profile.costcenter": None},
        ],
    )
    def test_round_trip(self, fields: dict[str, str | None]) -> None:
        """Reading a built body gives back the same flat fields."""
        assert read_user_fields(build_user_body(fields)) == fields
