"""The progress bars of interactive runs and the daemon's progress log lines."""

from __future__ import annotations

import io
import logging
import sys

import structlog
from rich.console import Console

from staffsync import daemon
from staffsync.logs import HANDLER_NAME, configure_logging
from staffsync.progress import ProgressDisplay


def terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=120)


def text_of(console: Console) -> str:
    stream = console.file
    assert isinstance(stream, io.StringIO)
    return stream.getvalue()


class TestProgressDisplay:
    def test_draws_on_terminal(self) -> None:
        """On a terminal, each stage gets a bar labelled with what it counts."""
        console = terminal()

        with ProgressDisplay(console) as display:
            display.update("read", 5000, 0)
            display.update("apply", 3, 10)

        output = text_of(console)
        assert "Reading the export" in output
        assert "Applying changes" in output

    def test_silent_off_terminal(self) -> None:
        """Off a terminal, nothing at all is written."""
        console = Console(file=io.StringIO(), force_terminal=False)

        with ProgressDisplay(console) as display:
            display.update("read", 5000, 0)
            display.update("apply", 10, 10)

        assert text_of(console) == ""

    def test_unknown_stage_shown_by_name(self) -> None:
        """A stage without a label is shown under its own name."""
        console = terminal()

        with ProgressDisplay(console) as display:
            display.update("groups", 1, 2)

        assert "groups" in text_of(console)

    def test_log_handler_restored(self) -> None:
        """The log handler writes to rich's stand-in while shown, and to stderr after."""
        configure_logging("console", "warning", stream=sys.stderr)
        handler = next(h for h in logging.getLogger().handlers if h.get_name() == HANDLER_NAME)
        assert isinstance(handler, logging.StreamHandler)
        before = handler.stream

        with ProgressDisplay(terminal()):
            during = handler.stream

        assert during is not before
        assert handler.stream is before


class TestDaemonProgressLog:
    def test_unknown_total_logged_once_per_interval(self) -> None:
        """Calls of a stage with an unknown total are logged at most once per interval."""
        report = daemon._progress_logger()

        with structlog.testing.capture_logs() as logs:
            report("read", 5000, 0)
            report("read", 10000, 0)
            report("read", 15000, 0)

        assert [entry["done"] for entry in logs] == [5000]

    def test_finished_stage_logged(self) -> None:
        """The call that completes a stage is logged even within the interval."""
        report = daemon._progress_logger()

        with structlog.testing.capture_logs() as logs:
            report("apply", 1, 10)
            report("apply", 5, 10)
            report("apply", 10, 10)

        assert [entry["done"] for entry in logs] == [1, 10]
