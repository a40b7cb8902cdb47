"""The byte-exact input files are what their generator script writes."""

from __future__ import annotations

import importlib.util

from tests.input.bench import DATA


class TestDataFiles:
    def test_files_match_script(self) -> None:
        """Every file the script describes is committed with exactly those bytes."""
        spec = importlib.util.spec_from_file_location("make_files", DATA / "make_files.py")
        assert spec is not None
        assert spec.loader is not None
        script = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(script)

        for name, content in script.BINARY_FILES.items():
            assert (DATA / name).read_bytes() == content, name
