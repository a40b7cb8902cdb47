"""Run staffsync with ``python -m staffsync``."""

from __future__ import annotations

from staffsync.cli import main

main()
