"""Tests that the bundled example configuration and export work together."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from staffsync.mapping import DesiredUser, RecordMapper
from staffsync.settings import load_settings
from staffsync.sources import open_source

if TYPE_CHECKING:
    import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"


class TestExamples:
    def test_config_maps_export(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The example config reads the example export without a single rejected row."""
        monkeypatch.delenv("STAFFSYNC_CONFIG", raising=False)
        settings = load_settings(EXAMPLES / "staffsync.toml")
        mapper = RecordMapper(settings.mapping)
        source = open_source(settings.source, EXAMPLES)

        users = [mapper.map(record) for record in source.read(mapper.source_fields)]

        assert len(users) == 500
        assert all(isinstance(user, DesiredUser) for user in users)
        assert 0 < sum(not user.active for user in users if isinstance(user, DesiredUser)) < 25
        assert settings.staffbase.base_url == "http://127.0.0.1:8900/api"

    def test_export_is_reproducible(self, tmp_path: Path) -> None:
        """The committed export is exactly what the generator script writes."""
        output = tmp_path / "identities.csv"

        subprocess.run(
            [sys.executable, str(EXAMPLES / "generate_export.py"), str(output), "--count", "500"],
            check=True,
            capture_output=True,
        )

        assert output.read_bytes() == (EXAMPLES / "sailpoint_identities.csv").read_bytes()
