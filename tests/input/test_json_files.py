"""JSON exports synced end to end: plain lists, Workday reports, JSON Lines and SailPoint
identity documents, and how null, empty and missing values change a stored user."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.input.bench import FileCase, check_file_case

if TYPE_CHECKING:
    from tests.input.bench import InputBench


def user(**values: Any) -> dict[str, Any]:
    return {**values, "status": "pending"}


ADA_ID = "2c9180857182305e0171993735622948"
GRACE_ID = "2c9180857182305e0171993735622000"
TOM_ID = "2c9180857182305e0171993735622111"
LIN_ID = "2c9180857182305e0171993735622222"
NO_USER = (
    " has no Staffbase user: HR lists them as inactive, their row was rejected, or creating"
    " their user failed; the person is synced without a manager until the manager has one"
)


def identities(manager: str) -> dict[str, dict[str, Any]]:
    """The users that sailpoint.json creates, with their managers' externalIDs."""
    ada, grace, lin = (ADA_ID, GRACE_ID, LIN_ID) if manager == "id" else ("0042", "E7", "E10")
    return {
        ada: user(
            firstName="Ada",
            lastName="Lovelace",
            email="ada.lovelace@example.com",
            department="Engineering",
            position="Engineer",
            manager=grace,
        ),
        grace: user(
            firstName="Grace",
            lastName="Hopper",
            email="grace.hopper@example.com",
            department="Navy",
            position="Admiral",
        ),
        lin: user(
            firstName="Lin",
            lastName="Chen",
            email="lin.chen@example.com",
            department="Research",
            position="Researcher",
        ),
    }


IDENTITY_FIELDS = {
    "firstName": "firstName",
    "lastName": "lastName",
    "email": "email",
    "department": "department",
    "position": "title",
}

SAILPOINT_BY_NAME = FileCase(
    "sailpoint.json",
    identities("name"),
    source={"kind": "sailpoint"},
    mapping={
        "key": "employeeNumber",
        "manager_match": "uid",
        "fields": {**IDENTITY_FIELDS, "manager": "manager.name"},
        "status": {"field": "cloudLifecycleState", "inactive": ["terminated"]},
    },
    warnings=[(4, "E10", "manager.name", "tom.kilburn")],
)

CASES = [
    pytest.param(
        FileCase(
            "list.json",
            {
                "42": user(
                    firstName="Ada", email="ada@example.com", position="Engineer", location="London"
                ),
                "0042": user(firstName="Alan", email="alan@example.com", manager="42"),
            },
            source={"kind": "json"},
            mapping={
                "fields": {
                    "firstName": "first_name",
                    "email": "email",
                    "position": "title",
                    "location": "office.name",
                    "manager": "manager",
                },
                "status": {"field": "active", "active": ["true"], "inactive": ["false"]},
            },
        ),
        id="list",
    ),
    pytest.param(
        FileCase(
            "workday.json",
            {
                "21001": user(
                    firstName="Maria",
                    lastName="Garcia",
                    email="maria.garcia@example.com",
                    profile={"hiredate": "2018-04-01"},
                ),
                "21002": user(
                    firstName="Tom",
                    lastName="Becker",
                    email="tom.becker@example.com",
                    manager="21001",
                    profile={"hiredate": "2019-09-15", "costcenter": "CC-7"},
                ),
            },
            source={"kind": "json", "records_path": "Report_Entry"},
            mapping={
                "key": "Employee_ID",
                "fields": {
                    "firstName": "First_Name",
                    "lastName": "Last_Name",
                    "email": "Work_Email",
                    "manager": "Manager_ID",
                    "profile.hiredate": "Hire_Date",
                    "profile.costcenter": "Cost_Center_ID",
                },
                "date_fields": ["Hire_Date"],
                "status": {"field": "Worker_Status", "inactive": ["Terminated"]},
            },
        ),
        id="workday-report-entry",
    ),
    pytest.param(
        FileCase(
            "people.jsonl",
            {
                "E1": user(firstName="Ann", email="ann@example.com"),
                "E2": user(firstName="Bob", email="bob@example.com", manager="E1"),
            },
            source={"kind": "json"},
            mapping={
                "fields": {
                    "firstName": "first_name",
                    "email": "work_email",
                    "manager": "manager_id",
                }
            },
            rejected=[(3, "E3", "work_email", "cem(at)example.com")],
        ),
        id="json-lines",
    ),
    pytest.param(
        FileCase(
            "sailpoint.json",
            identities("id"),
            source={"kind": "sailpoint"},
            mapping={
                "key": "id",
                "fields": {**IDENTITY_FIELDS, "manager": "manager.id"},
                "status": {"field": "inactive", "active": ["false"], "inactive": ["true"]},
            },
            warnings=[(4, LIN_ID, "manager.id", TOM_ID)],
        ),
        id="sailpoint-key-id",
    ),
    pytest.param(SAILPOINT_BY_NAME, id="sailpoint-manager-match"),
]


class TestJsonFiles:
    @pytest.mark.parametrize("case", CASES)
    def test_file_syncs_exactly(self, bench: InputBench, case: FileCase) -> None:
        """The file's values reach Staffbase exactly, and a second sync changes nothing."""
        check_file_case(bench, case)

    def test_inactive_manager_warning(self, bench: InputBench) -> None:
        """The warning names the manager's key and line; it repeats on every run."""
        path = bench.use("sailpoint.json")
        settings = bench.settings_for(path, SAILPOINT_BY_NAME.source, SAILPOINT_BY_NAME.mapping)

        first = bench.sync(settings)
        second = bench.assert_quiet_rerun(settings)

        message = f"manager 'tom.kilburn' (key 'E9', line 3){NO_USER}"
        assert [w["message"] for w in first.warnings] == [message]
        assert [w["message"] for w in second.warnings] == [message]


CLEARING_MAPPING = {
    "fields": {
        "firstName": "first_name",
        "email": "email",
        "position": "title",
        "department": "department",
        "location": "location",
        "profile.nickname": "nickname",
    },
    "status": {"field": ""},
}


class TestJsonEmptyValues:
    def test_null_and_empty_clear_missing_keeps(self, any_bench: InputBench) -> None:
        """null and "" clear a field; a key the record leaves out keeps its value."""
        path = any_bench.use("clearing_before.json")
        settings = any_bench.settings_for(path, {"kind": "json"}, CLEARING_MAPPING)
        any_bench.sync(settings)
        path.write_bytes(any_bench.use("clearing_after.json").read_bytes())

        report = any_bench.sync(settings)

        assert any_bench.stored() == {
            "E1": user(
                firstName="Ann",
                email="ann@example.com",
                location="Berlin",
                profile={"nickname": "Annie"},
            )
        }
        assert any_bench.requests()[-1]["body"] == {"position": None, "department": None}
        assert report.counts["updated"] == 1
        any_bench.assert_quiet_rerun(settings)
