"""Tests for the logging setup: one format for every logger, and no secret in any line."""

from __future__ import annotations

import io
import json
import logging
from typing import TYPE_CHECKING, Any

import pytest
import structlog
from pydantic import SecretStr

from staffsync import logs
from staffsync.logs import (
    REDACTED,
    bind_run_context,
    configure_logging,
    redact_text,
    register_secret,
    register_settings_secrets,
)
from staffsync.settings import StaffbaseSettings, StateSettings, load_settings

if TYPE_CHECKING:
    from collections.abc import Iterator

CLIENT_SECRET = "cs-9f8e7d6c5b4a"
BEARER_TOKEN = "eyJhbGciOiJIUzI1NiJ9.payload.signature"
API_TOKEN = "YXBpOnRva2VuLXZhbHVlLTEyMzQ="
DB_PASSWORD = "pg-Pa55word"
DB_URL = f"postgresql+psycopg://staffsync:{DB_PASSWORD}@db.internal:5432/staffsync"
LOCAL_ONLY_SECRET = "local-variable-secret-77"

ALL_SECRETS = (CLIENT_SECRET, BEARER_TOKEN, API_TOKEN, DB_PASSWORD, LOCAL_ONLY_SECRET)


@pytest.fixture(autouse=True)
def _reset_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Give each test fresh registered secrets and remove the handler it installed."""
    monkeypatch.setattr(logs, "_registered_secrets", set())
    monkeypatch.setattr(logs, "_registered_pattern", None)
    structlog.contextvars.clear_contextvars()
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if h.get_name() == logs.HANDLER_NAME]:
        root.removeHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def _configure(fmt: str) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(fmt, "debug", stream=stream)  # type: ignore[arg-type]
    return stream


def _json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


def _log_every_kind_of_secret() -> None:
    log = structlog.get_logger("tests.secrets")
    log.info(
        "token_fetched",
        client_secret=CLIENT_SECRET,
        api_token=SecretStr(API_TOKEN),
        headers={"Authorization": f"Bearer {BEARER_TOKEN}", "Accept": "application/json"},
        request={"form": {"grant_type": "client_credentials", "client_secret": CLIENT_SECRET}},
        database=DB_URL,
        note=f"sent Authorization: Bearer {BEARER_TOKEN} and Basic {API_TOKEN}",
    )
    logging.getLogger("sqlalchemy.engine").warning("cannot connect to %s", DB_URL)


def _raise_with_secrets() -> None:
    client_secret = LOCAL_ONLY_SECRET
    msg = f"token request failed: client_secret={CLIENT_SECRET} via {DB_URL} ({len(client_secret)})"
    raise RuntimeError(msg)


def _log_exceptions() -> None:
    try:
        _raise_with_secrets()
    except RuntimeError:
        structlog.get_logger("tests.secrets").exception("run_crashed")
        logging.getLogger("apscheduler.executors.default").exception("Job raised")


class TestRedactText:
    """redact_text masks secrets embedded in free text."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("Authorization: Bearer abc.def-ghi", f"Authorization: Bearer {REDACTED}"),
            ("header Basic dXNlcjpwYXNz== sent", f"header Basic {REDACTED} sent"),
            ("authorization=opaque-value", f"authorization={REDACTED}"),
            (
                "postgresql+psycopg://user:s3cret@host/db",
                f"postgresql+psycopg://user:{REDACTED}@host/db",
            ),
            ("https://u:12345@example.com/x", f"https://u:{REDACTED}@example.com/x"),
            (
                "grant_type=x&client_secret=abc&scope=y",
                f"grant_type=x&client_secret={REDACTED}&scope=y",
            ),
            (
                '{"access_token": "tok.en", "expires_in": 60}',
                f'{{"access_token": "{REDACTED}", "expires_in": 60}}',
            ),
            ("password: hunter2", f"password: {REDACTED}"),
        ],
    )
    def test_masks(self, text: str, expected: str) -> None:
        """Each kind of embedded secret is replaced and the text around it kept."""
        assert redact_text(text) == expected

    @pytest.mark.parametrize(
        "text",
        [
            "GET http://127.0.0.1:8900/api/users/a@example.com",
            "token_url=https://id.example.com/oauth2/token",
            "a basic check passed",
            "password authentication failed for user staffsync",
        ],
    )
    def test_leaves_ordinary_text(self, text: str) -> None:
        """Ports, token URLs and prose that only look like secrets stay as they are."""
        assert redact_text(text) == text

    def test_registered_secret(self) -> None:
        """A registered value is masked even without any marker around it."""
        register_secret(SecretStr("bare-secret-value"))

        masked = redact_text("rejected value bare-secret-value!")

        assert masked == f"rejected value {REDACTED}!"

    def test_short_registered_value_ignored(self) -> None:
        """Values under four characters are not registered, so text stays readable."""
        register_secret("abc")

        assert redact_text("abc abc") == "abc abc"

    def test_settings_secrets_registered(self) -> None:
        """Every SecretStr in the settings and the password inside the state URL register."""
        settings = load_settings(
            None,
            staffbase=StaffbaseSettings(client_secret=SecretStr(CLIENT_SECRET)),
            state=StateSettings(url=DB_URL),
        )

        register_settings_secrets(settings)

        assert redact_text(f"{CLIENT_SECRET} {DB_PASSWORD}") == f"{REDACTED} {REDACTED}"


@pytest.mark.parametrize("fmt", ["json", "console"])
class TestSecretsNeverLogged:
    """No secret reaches the output, whatever form it arrives in."""

    def test_event_values(self, fmt: str) -> None:
        """Keys, nested dicts, SecretStr values and strings are all masked."""
        stream = _configure(fmt)

        _log_every_kind_of_secret()

        output = stream.getvalue()
        for secret in ALL_SECRETS:
            assert secret not in output
        assert REDACTED in output

    def test_exceptions(self, fmt: str) -> None:
        """Exception messages are masked and frames carry no local variables."""
        stream = _configure(fmt)

        _log_exceptions()

        output = stream.getvalue()
        for secret in ALL_SECRETS:
            assert secret not in output
        assert "RuntimeError" in output
        assert "client_secret=" in output


class TestJsonFormat:
    """The json format writes one object per line for structlog and stdlib loggers."""

    def test_stdlib_record_with_run_context(self) -> None:
        """A library's stdlib record carries the bound run context and the JSON fields."""
        stream = _configure("json")

        with bind_run_context("run-42", trigger="schedule"):
            logging.getLogger("apscheduler.scheduler").info("Scheduler %s", "started")

        [line] = _json_lines(stream)
        assert line["event"] == "Scheduler started"
        assert line["run_id"] == "run-42"
        assert line["trigger"] == "schedule"
        assert line["level"] == "info"
        assert line["logger"] == "apscheduler.scheduler"
        assert line["timestamp"].endswith("Z")

    def test_context_removed_after_block(self) -> None:
        """Lines after the block no longer carry the run id."""
        stream = _configure("json")

        with bind_run_context("run-1"):
            pass
        structlog.get_logger("tests").info("after_run")

        [line] = _json_lines(stream)
        assert "run_id" not in line

    def test_traceback_frames_have_no_locals(self) -> None:
        """Dict tracebacks list frames without their local variables."""
        stream = _configure("json")

        _log_exceptions()

        first = _json_lines(stream)[0]
        frames = first["exception"][0]["frames"]
        assert [frame for frame in frames if "locals" in frame] == []
        assert frames[-1]["name"] == "_raise_with_secrets"

    def test_httpx_info_suppressed(self) -> None:
        """httpx request lines at INFO are dropped, its warnings kept."""
        stream = _configure("json")

        logging.getLogger("httpx").info("HTTP Request: GET https://example.com/")
        logging.getLogger("httpx").warning("connection pool full")

        events = [line["event"] for line in _json_lines(stream)]
        assert events == ["connection pool full"]

    def test_level_filters_structlog_and_stdlib(self) -> None:
        """Below the configured level, neither our events nor library records appear."""
        stream = io.StringIO()
        configure_logging("json", "warning", stream=stream)

        structlog.get_logger("tests").info("quiet")
        logging.getLogger("alembic").info("quiet too")
        structlog.get_logger("tests").warning("loud")

        assert [line["event"] for line in _json_lines(stream)] == ["loud"]

    def test_configured_twice_no_duplicates(self) -> None:
        """Configuring again replaces the handler, so each event is written once."""
        _configure("json")
        stream = _configure("json")

        structlog.get_logger("tests").info("once")

        assert len(_json_lines(stream)) == 1
        named = [h for h in logging.getLogger().handlers if h.get_name() == logs.HANDLER_NAME]
        assert len(named) == 1


class TestConsoleFormat:
    """The console format writes readable lines with plain tracebacks."""

    def test_line_shape(self) -> None:
        """A line shows the level, the event and its key/value pairs."""
        stream = _configure("console")

        structlog.get_logger("tests").warning("run_skipped", mode="incremental")

        output = stream.getvalue()
        assert "[warning" in output
        assert "run_skipped" in output
        assert "mode=incremental" in output

    def test_plain_traceback(self) -> None:
        """Tracebacks are the standard text form, without a locals table."""
        stream = _configure("console")

        _log_exceptions()

        output = stream.getvalue()
        assert "Traceback (most recent call last):" in output
        assert "in _raise_with_secrets" in output
        assert "client_secret = " not in output


class TestConfigureErrors:
    """configure_logging rejects unknown names with the accepted ones."""

    def test_bad_level(self) -> None:
        """An unknown level names the levels that work."""
        with pytest.raises(ValueError, match=r"log level must be one of debug, info.*'loud'"):
            configure_logging("json", "loud", stream=io.StringIO())

    def test_bad_format(self) -> None:
        """An unknown format names json and console."""
        with pytest.raises(ValueError, match=r"'json' or 'console', got 'xml'"):
            configure_logging("xml", stream=io.StringIO())  # type: ignore[arg-type]
