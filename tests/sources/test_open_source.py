"""Tests for choosing and locating the source from [source] settings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from staffsync.settings import SourceSettings
from staffsync.sources import (
    DelimitedSource,
    JsonSource,
    RawRecord,
    SailPointSource,
    open_source,
)

HR_DATA = Path(__file__).parents[1] / "data" / "hr"


class TestOpenSource:
    def test_relative_to_base_dir(self) -> None:
        """A relative path resolves from the configuration file's folder."""
        settings = SourceSettings(path=Path("basic.csv"))

        source = open_source(settings, HR_DATA)

        assert isinstance(source, DelimitedSource)
        assert source.location == str(HR_DATA / "basic.csv")
        assert next(iter(source.read(["employee_id"]))) == RawRecord(2, ("0042",))

    def test_absolute_path_kept(self, tmp_path: Path) -> None:
        """An absolute path ignores the base folder."""
        settings = SourceSettings(path=HR_DATA / "basic.csv")

        assert open_source(settings, tmp_path).location == str(HR_DATA / "basic.csv")

    def test_csv_options(self) -> None:
        """Encoding, delimiter and header rows reach the delimited source."""
        settings = SourceSettings(
            path=Path("cp1252.csv"), encoding="cp1252", delimiter="auto", header_rows=2
        )

        source = open_source(settings, HR_DATA)

        assert isinstance(source, DelimitedSource)
        assert (source.encoding, source.delimiter, source.header_rows) == ("cp1252", "auto", 2)

    def test_json_kinds(self) -> None:
        """The json and sailpoint kinds open their sources with records_path."""
        json_settings = SourceSettings(
            kind="json", path=Path("workday_raas.json"), records_path="Report_Entry"
        )
        sailpoint_settings = SourceSettings(
            kind="sailpoint", path=Path("sailpoint_identities.json")
        )

        json_source = open_source(json_settings, HR_DATA)
        sailpoint_source = open_source(sailpoint_settings, HR_DATA)

        assert type(json_source) is JsonSource
        assert json_source.records_path == "Report_Entry"
        assert type(sailpoint_source) is SailPointSource


class TestDataFiles:
    def test_binary_files_match_script(self) -> None:
        """The committed byte-exact test files are what their generator script writes."""
        spec = importlib.util.spec_from_file_location(
            "make_binary_files", HR_DATA / "make_binary_files.py"
        )
        assert spec is not None
        assert spec.loader is not None
        script = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(script)

        for name, content in script.BINARY_FILES.items():
            assert (HR_DATA / name).read_bytes() == content, name
