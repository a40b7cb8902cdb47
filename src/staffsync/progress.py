"""Progress bars for interactive runs: records read, changes applied, rate, time left.

The command line shows them on stderr only when stderr is a terminal, so scripts, cron
jobs and log collectors never receive bar redraws. The daemon logs progress instead.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from staffsync.logs import HANDLER_NAME

if TYPE_CHECKING:
    from types import TracebackType
    from typing import TextIO

    from rich.progress import Task

__all__ = ["STAGE_LABELS", "ProgressDisplay"]

STAGE_LABELS = {
    "read": "Reading the export",
    "map": "Mapping changed records",
    "remote": "Reading Staffbase users",
    "apply": "Applying changes",
}
"""The label shown for each stage that ``RunRequest.progress`` reports."""


class _RateColumn(ProgressColumn):
    """Items per second, as rich estimates it from the last 30 seconds."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("", style="progress.data.speed")
        return Text(f"{speed:,.0f}/s", style="progress.data.speed")


class ProgressDisplay:
    """A ``RunRequest.progress`` callback that draws one bar per stage on a terminal.

    Use it as a context manager around the run. While the bars are shown, the log
    handler writes through rich, so log lines appear above the bars instead of tearing
    them. On a console that is not a terminal, nothing is drawn at all.
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = self.console.is_terminal
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            disable=not self.enabled,
        )
        self._tasks: dict[str, TaskID] = {}
        self._handler: logging.StreamHandler[TextIO] | None = None
        self._handler_stream: TextIO | None = None

    def __enter__(self) -> ProgressDisplay:
        if self.enabled:
            stderr = sys.stderr
            self._progress.start()
            self._route_log_handler(stderr)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.enabled:
            self._progress.stop()
            if self._handler is not None and self._handler_stream is not None:
                self._handler.setStream(self._handler_stream)
                self._handler = None

    def update(self, stage: str, done: int, total: int) -> None:
        """Show that ``done`` of ``total`` items of ``stage`` are finished (0: unknown)."""
        if not self.enabled:
            return
        task = self._tasks.get(stage)
        if task is None:
            task = self._progress.add_task(STAGE_LABELS.get(stage, stage), total=total or None)
            self._tasks[stage] = task
        self._progress.update(task, completed=done, total=total or None)

    def _route_log_handler(self, stderr: TextIO) -> None:
        """Point a log handler on ``stderr`` at rich's stand-in, which prints above the bars.

        The handler keeps the stream it was created with, so it would bypass the
        stand-in that rich installs as ``sys.stderr`` while the bars are shown.
        """
        for handler in logging.getLogger().handlers:
            if (
                handler.get_name() == HANDLER_NAME
                and isinstance(handler, logging.StreamHandler)
                and handler.stream is stderr
            ):
                self._handler, self._handler_stream = handler, handler.stream
                handler.setStream(sys.stderr)
                return
