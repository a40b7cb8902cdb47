"""Delimited exports as Excel and HR systems write them, synced end to end.

Each case syncs one file from ``tests/data/input`` and checks the exact values stored
by the emulator and sent in the create requests, the exact rejects and warnings, and
that a second sync of the same file changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.input.bench import FileCase, check_file_case

if TYPE_CHECKING:
    from tests.input.bench import InputBench


def user(**values: Any) -> dict[str, Any]:
    return {**values, "status": "pending"}


RENEE = user(
    firstName="Renée",
    lastName="Roux",
    email="renee@example.com",
    position="Chef",
    department="Kitchen",
    location="Lyon",
)
ANN = user(
    firstName="Ann",
    lastName="Ng",
    email="ann@example.com",
    position="Head of Sales, EMEA",
    department="Sales",
    location="Berlin",
)
BOB = user(
    firstName="Bob; Jr",
    lastName="Ortiz",
    email="bob@example.com",
    position="Engineer",
    department="R&D",
    location="Hamburg; Port",
    manager="E1",
)
QUOTED = FileCase(
    "quoted.csv",
    {
        "E1": {**ANN, "location": 'Building 1\nFloor 2, "East"'},
        "E3": user(
            firstName="Cem",
            lastName="Kaya",
            email="cem@example.com",
            position="Designer",
            department="R&D, UX",
            location="Berlin",
            manager="E1",
        ),
    },
    rejected=[(4, "E2", "status", "Retired")],
)
NAME_AND_EMAIL = {"fields": {"firstName": "first_name", "email": "work_email"}}

CASES = [
    pytest.param(FileCase("bom.csv", {"E1": RENEE}), id="utf8-bom"),
    pytest.param(
        FileCase(
            "cp1252.csv",
            {
                "E1": {**RENEE, "department": "Cuisine française"},
                "E2": user(
                    firstName="Zoë",
                    lastName="Brandt",
                    email="zoe@example.com",
                    position="Analyst",
                    department="€ Finance",
                    location="Köln",
                    manager="E1",
                ),
            },
            source={"encoding": "cp1252"},
        ),
        id="cp1252",
    ),
    pytest.param(
        FileCase("semicolon.csv", {"E1": ANN, "E2": BOB}, source={"delimiter": ";"}),
        id="semicolon",
    ),
    pytest.param(
        FileCase("semicolon.csv", {"E1": ANN, "E2": BOB}, source={"delimiter": "auto"}),
        id="semicolon-auto",
    ),
    pytest.param(QUOTED, id="quoted-multiline"),
    pytest.param(
        FileCase(
            "messy_header.csv",
            {
                "E1": {**ANN, "position": "Lead"},
                "E2": {**BOB, "firstName": "Bob", "location": "Hamburg"},
            },
        ),
        id="header-case-whitespace-trailing-columns",
    ),
    pytest.param(
        FileCase(
            "successfactors.csv",
            {
                "1001": user(
                    firstName="John",
                    lastName="Doe",
                    email="john.doe@example.com",
                    department="Board",
                    profile={"hiredate": "2019-01-15"},
                ),
                "1002": user(
                    firstName="Anna",
                    lastName="Smith",
                    email="anna.smith@example.com",
                    department="Sales",
                    manager="1001",
                    profile={"hiredate": "2020-03-02"},
                ),
            },
            source={"header_rows": 2, "full_snapshot": False},
            mapping={
                "key": "USERID",
                "fields": {
                    "firstName": "FIRSTNAME",
                    "lastName": "LASTNAME",
                    "email": "EMAIL",
                    "department": "DEPARTMENT",
                    "manager": "MANAGER",
                    "profile.hiredate": "HIREDATE",
                },
                "date_format": "%m/%d/%Y",
                "date_fields": ["HIREDATE"],
                "empty_values": ["NO_MANAGER"],
                "status": {"field": "STATUS"},
            },
            rejected=[(6, "1004", "HIREDATE", "02/30/2021")],
        ),
        id="successfactors-two-header-rows",
    ),
    pytest.param(
        FileCase(
            "unicode.csv",
            {
                "E1": {
                    **RENEE,
                    "firstName": "Ren\u00e9e",
                    "lastName": "M\u00fcller",
                    "department": "Cuisine",
                }
            },
        ),
        id="nfd-and-unicode-spaces",
    ),
    pytest.param(
        FileCase(
            "leading_zeros.csv",
            {
                "0042": user(
                    firstName="Ada",
                    lastName="Lovelace",
                    email="ada@example.com",
                    position="Engineer",
                    department="R&D",
                    location="London",
                ),
                "42": user(
                    firstName="Alan",
                    lastName="Turing",
                    email="alan@example.com",
                    position="Scientist",
                    department="Research",
                    location="Manchester",
                    manager="0042",
                ),
            },
        ),
        id="leading-zeros",
    ),
    pytest.param(
        FileCase(
            "dates.csv",
            {
                "E1": user(
                    firstName="Ann", email="ann@example.com", profile={"startdate": "2020-02-03"}
                ),
                "E2": user(
                    firstName="Bob",
                    email="bob@example.com",
                    manager="E1",
                    profile={"startdate": "2020-01-13"},
                ),
                "E5": user(
                    firstName="Eve",
                    email="eve@example.com",
                    manager="E1",
                    profile={"startdate": "2021-06-01"},
                ),
            },
            mapping={
                "fields": {
                    "firstName": "first_name",
                    "email": "work_email",
                    "manager": "manager_id",
                    "profile.startdate": "start_date",
                },
                "date_format": "%d.%m.%Y",
                "date_fields": ["start_date", "end_date"],
                "empty_values": ["0000-00-00", "NO_MANAGER"],
            },
            rejected=[
                (4, "E3", "start_date", "2020-02-03"),
                (5, "E4", "start_date", "30.02.2021"),
                (7, "E6", "end_date", "12/31/2099"),
                # Valid only with day and month swapped, which is never tried.
                (8, "E7", "start_date", "02.13.2020"),
            ],
        ),
        id="dates",
    ),
    pytest.param(
        FileCase(
            "status.csv",
            {
                "E1": user(firstName="Ann", email="ann@example.com"),
                "E2": user(firstName="Bob", email="bob@example.com"),
            },
            mapping=NAME_AND_EMAIL,
            rejected=[(5, "E4", "status", "On Leave"), (6, "E5", "status", "")],
        ),
        id="status-any-case",
    ),
    pytest.param(
        FileCase(
            "flags.csv",
            {
                "E1": user(firstName="Ann", email="ann@example.com"),
                "E2": user(firstName="Bob", email="bob@example.com"),
            },
            mapping={
                **NAME_AND_EMAIL,
                "status": {
                    "field": "is_active",
                    "active": ["1", "true"],
                    "inactive": ["0", "false"],
                },
            },
            rejected=[(5, "E4", "is_active", "yes")],
        ),
        id="boolean-status",
    ),
]


class TestDelimitedFiles:
    @pytest.mark.parametrize("case", CASES)
    def test_file_syncs_exactly(self, bench: InputBench, case: FileCase) -> None:
        """The file's values reach Staffbase exactly, and a second sync changes nothing."""
        check_file_case(bench, case)


class TestDelimitedFilesOnPostgres:
    def test_quoted_file(self, any_bench: InputBench) -> None:
        """Quoted multi-line values sync the same with either state database."""
        check_file_case(any_bench, QUOTED)


class TestUnreadableFiles:
    def test_cp1252_declared_utf8(self, bench: InputBench) -> None:
        """A cp1252 file read as UTF-8 fails the run naming line, byte and cp1252."""
        cp1252 = bench.use("cp1252.csv")
        good = cp1252.read_bytes().decode("cp1252").encode("utf-8")
        export = bench.write("export.csv", good)
        settings = bench.settings_for(export)
        bench.sync(settings)
        bench.sign_in()
        before = bench.stored()
        writes = bench.writes()

        export.write_bytes(cp1252.read_bytes())
        report = bench.sync(settings)

        assert report.status == "failed"
        assert report.exit_code == 1
        assert report.error == (
            f"{export}: line 2 is not valid utf-8: byte 0xE9 at byte offset 95 cannot be"
            ' decoded; the file decodes as cp1252: set [source] encoding = "cp1252"'
        )
        assert report.rejected == []
        assert bench.writes() == writes
        assert bench.stored() == before

    @pytest.mark.parametrize(
        ("file", "source", "error"),
        [
            pytest.param(
                "semicolon.csv",
                {},
                "the header lacks the columns ['employee_id', 'first_name', 'last_name',"
                " 'work_email', 'title', 'department', 'location', 'manager_id', 'status'] that"
                " [mapping] reads; unused header columns: ['employee_id;first_name;last_name;"
                "work_email;title;department;location;manager_id;status']; the header is a"
                " single column, so the delimiter is probably ';' rather than ',': set"
                ' [source] delimiter = ";" or "auto"',
                id="wrong-delimiter",
            ),
            pytest.param(
                "renamed_columns.csv",
                {},
                "the header lacks the columns ['employee_id', 'work_email'] that [mapping]"
                " reads; unused header columns: ['Employee ID', 'email']",
                id="renamed-columns",
            ),
        ],
    )
    def test_missing_columns(
        self, bench: InputBench, file: str, source: dict[str, Any], error: str
    ) -> None:
        """Missing columns fail the run, name the columns and deactivate no one."""
        good = bench.use("semicolon.csv")
        bench.sync(bench.settings_for(good, {"delimiter": ";"}))
        bench.sign_in()
        before = bench.stored()
        writes = bench.writes()

        path = bench.use(file)
        report = bench.sync(bench.settings_for(path, source))

        assert report.status == "failed"
        assert report.error == f"{path}: {error}"
        assert report.counts["deactivated"] == 0
        assert bench.writes() == writes
        assert bench.stored() == before
