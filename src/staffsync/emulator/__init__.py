"""A stand-in for the parts of the Staffbase API that staffsync uses.

``EmulatorServer`` serves it on 127.0.0.1 for tests and the demo. ``create_app`` builds
the Starlette app alone. The ``emulator`` command (``staffsync.emulator.command``)
serves it from the command line.
"""

from __future__ import annotations

from staffsync.emulator.app import create_app
from staffsync.emulator.config import EmulatorConfig
from staffsync.emulator.server import EmulatorServer

__all__ = ["EmulatorConfig", "EmulatorServer", "create_app"]
