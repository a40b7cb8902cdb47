"""Tests for reading SailPoint identity documents."""

from __future__ import annotations

from pathlib import Path

from staffsync.sources import MISSING, RawRecord, RecordIssue, SailPointSource

HR_DATA = Path(__file__).parents[1] / "data" / "hr"


def read(fields: list[str]) -> list[RawRecord | RecordIssue]:
    return list(SailPointSource(HR_DATA / "sailpoint_identities.json").read(fields))


class TestSailPointSource:
    def test_attributes_by_bare_name(self) -> None:
        """Identity attributes are read by their bare name and by their path."""
        records = read(["employeeNumber", "department", "attributes.uid", "cloudLifecycleState"])

        assert records == [
            RawRecord(1, ("0042", "Engineering", "ada.lovelace", "active")),
            RawRecord(2, ("E7", MISSING, "grace.hopper", "terminated")),
        ]

    def test_top_level_fields(self) -> None:
        """Top-level fields come first; booleans read as their JSON text."""
        records = read(["employeeNumber", "email", "inactive", "name"])

        assert records[0] == RawRecord(
            1, ("0042", "ada.lovelace@example.com", "false", "ada.lovelace")
        )

    def test_manager_object(self) -> None:
        """The manager object is read by member; a null manager reads as None."""
        records = read(["employeeNumber", "manager.id", "manager.name", "manager.displayName"])

        assert records == [
            RawRecord(
                1, ("0042", "2c9180857182305e0171993735622000", "grace.hopper", "Grace Hopper")
            ),
            RawRecord(2, ("E7", None, None, None)),
        ]

    def test_manager_as_value(self) -> None:
        """Mapping the manager object itself is an issue that names its members."""
        issue = read(["employeeNumber", "manager"])[0]

        assert isinstance(issue, RecordIssue)
        assert issue.key == "0042"
        assert "'manager.id', 'manager.name', 'manager.displayName'" in issue.message
