"""Tests for reading the configuration from TOML, the environment and secret files."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from staffsync.settings import ConfigError, load_settings

if TYPE_CHECKING:
    from pathlib import Path


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


class TestLoadSettings:
    def test_toml_values_are_read(self, tmp_path: Path) -> None:
        """Values from the TOML file replace the defaults."""
        config = write(tmp_path / "c.toml", '[staffbase]\nclient_id = "abc"\nmax_concurrency = 8\n')

        settings = load_settings(config)

        assert settings.staffbase.client_id == "abc"
        assert settings.staffbase.max_concurrency == 8
        assert settings.safety.max_deactivations == 50

    def test_environment_overrides_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """STAFFSYNC_<SECTION>__<KEY> wins over the file."""
        config = write(tmp_path / "c.toml", "[staffbase]\nmax_concurrency = 8\n")
        monkeypatch.setenv("STAFFSYNC_STAFFBASE__MAX_CONCURRENCY", "3")

        assert load_settings(config).staffbase.max_concurrency == 3

    def test_secret_file_is_read(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A file named <section>__<key> in STAFFSYNC_SECRETS_DIR supplies a secret."""
        secrets = tmp_path / "secrets"
        secrets.mkdir()
        write(secrets / "staffbase__client_secret", "s3cr3t-value\n")
        monkeypatch.setenv("STAFFSYNC_SECRETS_DIR", str(secrets))

        settings = load_settings(None)

        assert settings.staffbase.client_secret is not None
        assert settings.staffbase.client_secret.get_secret_value() == "s3cr3t-value"

    def test_unknown_key_is_rejected(self, tmp_path: Path) -> None:
        """A misspelt key is an error naming its section, not a silently used default."""
        config = write(tmp_path / "c.toml", "[safety]\nmax_deactivation = 3\n")

        with pytest.raises(ConfigError, match=r"\[safety\] max_deactivation: unknown key"):
            load_settings(config)

    def test_unknown_section_is_rejected(self, tmp_path: Path) -> None:
        """A misspelt section would leave its settings, such as the guards, at defaults."""
        config = write(tmp_path / "c.toml", "[saftey]\nmax_deactivations = 1\n")

        with pytest.raises(ConfigError, match=r"unknown sections or top-level keys: \[saftey\]"):
            load_settings(config)

    def test_unknown_environment_section_is_rejected(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        config = write(tmp_path / "c.toml", "[safety]\nmax_deactivations = 1\n")
        monkeypatch.setenv("STAFFSYNC_SAFTEY__MAX_DEACTIVATIONS", "1")

        with pytest.raises(ConfigError, match="STAFFSYNC_SAFTEY__MAX_DEACTIVATIONS names no"):
            load_settings(config)

    def test_single_underscore_setting_is_rejected(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        config = write(tmp_path / "c.toml", "[safety]\nmax_deactivations = 1\n")
        monkeypatch.setenv("STAFFSYNC_SAFETY_MAX_DEACTIVATIONS", "5")

        with pytest.raises(ConfigError, match="has one underscore after the section"):
            load_settings(config)

    def test_invalid_value_names_key_and_value(self, tmp_path: Path) -> None:
        """An invalid value is reported with its key and the value given."""
        config = write(tmp_path / "c.toml", "[staffbase]\nmax_concurrency = -1\n")

        with pytest.raises(ConfigError, match=r"\[staffbase\] max_concurrency: .*got -1"):
            load_settings(config)

    def test_unknown_staffbase_field_is_rejected(self, tmp_path: Path) -> None:
        """A [mapping.fields] target that is no Staffbase user field fails at load."""
        config = write(
            tmp_path / "c.toml",
            '[mapping.fields]\nemail = "work_email"\ntitle = "job_title"\n',
        )

        with pytest.raises(
            ConfigError, match=r"\[mapping\] fields: .*unknown Staffbase user field 'title'"
        ):
            load_settings(config)

    def test_invalid_secret_value_is_not_echoed(self, tmp_path: Path) -> None:
        """A rejected secret is named by its key but its value is never shown."""
        config = write(tmp_path / "c.toml", "[staffbase]\nclient_secret = 12345\n")

        with pytest.raises(ConfigError) as caught:
            load_settings(config)

        assert "client_secret" in str(caught.value)
        assert "12345" not in str(caught.value)

    def test_missing_file_is_a_config_error(self, tmp_path: Path) -> None:
        """A named file that does not exist says how to name another."""
        with pytest.raises(ConfigError, match="does not exist; pass --config"):
            load_settings(tmp_path / "absent.toml")

    def test_bad_toml_is_a_config_error(self, tmp_path: Path) -> None:
        """A file that is not TOML is reported with the parser's position."""
        config = write(tmp_path / "c.toml", "[staffbase\n")

        with pytest.raises(ConfigError, match="is not valid TOML"):
            load_settings(config)
