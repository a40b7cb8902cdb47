"""A Staffbase client that stops the process-like run at a chosen write, as a kill would."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from staffsync.staffbase.client import StaffbaseClient

if TYPE_CHECKING:
    from collections.abc import Mapping

    from staffsync.settings import StaffbaseSettings


class SimulatedCrash(BaseException):
    """Ends a run at that point, like SIGKILL.

    It derives from BaseException so that no ``except Exception`` in the engine records
    anything for it: the journal keeps the change ``sent`` with no outcome, exactly what
    a killed process leaves behind.
    """


class CrashingClient(StaffbaseClient):
    """Raises :class:`SimulatedCrash` at the ``nth`` write of ``method``.

    Args:
        settings: The ``[staffbase]`` settings.
        method: ``POST`` (create) or ``PUT`` (update, deactivation, reactivation).
        nth: Which write of that method crashes, counting from 1.
        after_sending: Crash once Staffbase has applied the request (its response is
            lost) rather than before the request leaves.
    """

    def __init__(
        self, settings: StaffbaseSettings, *, method: str, nth: int = 1, after_sending: bool
    ) -> None:
        super().__init__(settings)
        self.method = method
        self.nth = nth
        self.after_sending = after_sending
        self._count = 0
        self._lock = threading.Lock()

    def create_user(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._write("POST", lambda: super(CrashingClient, self).create_user(body))

    def update_user(self, user_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._write("PUT", lambda: super(CrashingClient, self).update_user(user_id, body))

    def _write(self, method: str, send: Any) -> dict[str, Any]:
        if method != self.method:
            result: dict[str, Any] = send()
            return result
        with self._lock:
            self._count += 1
            crash = self._count == self.nth
        if crash and not self.after_sending:
            raise SimulatedCrash
        result = send()
        if crash:
            raise SimulatedCrash
        return result
