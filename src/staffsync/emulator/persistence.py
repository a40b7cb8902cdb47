"""The optional JSON state file: load at start, save after changes and at stop.

Saves are debounced and written in a worker thread, one user at a time, so that a large
tenant never blocks the event loop for long. The pause between saves is at least
``min_interval_s`` and at least three times the last save's duration. Under a steady
stream of writes, saving therefore takes at most about a quarter of the wall time.

Each save goes to a temporary file in the same folder that then replaces the old one, so
a reader or a crash sees either the old or the new state, never half of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from pathlib import Path

    from staffsync.emulator.tenant import Tenant

__all__ = ["StateFileWriter", "load_state_file", "write_state_file"]

logger = structlog.get_logger(__name__)


def load_state_file(path: Path, tenant: Tenant) -> bool:
    """Load ``path`` into ``tenant`` if the file exists; return whether it did.

    Raises:
        ValueError: The file is not a valid emulator state file.
    """
    if not path.exists():
        return False

    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        tenant.load(state)
    except ValueError as exc:
        msg = f"The emulator state file {str(path)!r} is invalid ({exc}); fix or remove it."
        raise ValueError(msg) from exc
    return True


def write_state_file(path: Path, snapshot: dict[str, Any]) -> None:
    """Write ``snapshot`` (from :meth:`Tenant.snapshot`) to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            _write_snapshot(stream, snapshot)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def _write_snapshot(stream: Any, snapshot: dict[str, Any]) -> None:
    # One json.dumps per record keeps each C call short, so the event loop thread gets
    # the GIL back between records.
    stream.write(f'{{"version": {json.dumps(snapshot["version"])},\n "users": [')
    for position, name in enumerate(("users", "groups")):
        if position:
            stream.write('\n],\n "groups": [')
        for index, record in enumerate(snapshot[name]):
            stream.write(",\n  " if index else "\n  ")
            stream.write(json.dumps(record, ensure_ascii=False))
    stream.write("\n]}\n")


class StateFileWriter:
    """Saves the tenant to its state file after changes, debounced.

    Args:
        path: The state file.
        tenant: The tenant to save; the writer registers itself as its ``on_change``.
        min_interval_s: Shortest time between two saves, in seconds.
    """

    def __init__(self, path: Path, tenant: Tenant, min_interval_s: float = 0.25) -> None:
        self.path = path
        self.tenant = tenant
        self.min_interval_s = min_interval_s
        self.saved_version = tenant.version
        self._scheduled = False
        self._last_duration_s = 0.0
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        tenant.on_change = self.notify_changed

    def notify_changed(self) -> None:
        """Schedule a save on the running event loop, unless one is already scheduled.

        Outside an event loop nothing is scheduled; :meth:`save_now` at stop catches up.
        """
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._scheduled = True
        delay_s = max(self.min_interval_s, 3 * self._last_duration_s)
        loop.call_later(delay_s, self._start_save, loop)

    def _start_save(self, loop: asyncio.AbstractEventLoop) -> None:
        # Holding the task keeps it from being garbage-collected while it runs.
        self._task = loop.create_task(self._save_in_thread())

    async def _save_in_thread(self) -> None:
        # Changes during the save only mark the tenant as changed: the save scheduled at
        # the end picks them up, so two saves never queue behind each other.
        try:
            version = self.tenant.version
            if version != self.saved_version:
                await asyncio.to_thread(self._save, self.tenant.snapshot(), version)
        except OSError as exc:
            logger.exception("emulator_state_save_failed", path=str(self.path), error=str(exc))
            # Retry after a few seconds rather than at the normal pace.
            self._last_duration_s = max(self._last_duration_s, 1.0)
        finally:
            self._scheduled = False

        if self.tenant.version != self.saved_version:
            self.notify_changed()

    def save_now(self) -> None:
        """Save now if anything changed since the last save; call it after the loop stopped."""
        version = self.tenant.version
        if version != self.saved_version:
            self._save(self.tenant.snapshot(), version)

    def _save(self, snapshot: dict[str, Any], version: int) -> None:
        # The lock keeps a final save at stop from interleaving with a worker-thread save.
        with self._lock:
            started = time.monotonic()
            write_state_file(self.path, snapshot)
            self._last_duration_s = time.monotonic() - started
            self.saved_version = max(self.saved_version, version)
