"""``staffsync demo``: a whole sync against the built-in emulator, with no setup at all."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from pydantic import SecretStr

from staffsync.emulator import EmulatorConfig, EmulatorServer
from staffsync.render import print_summary
from staffsync.runner import RunRequest, execute_run
from staffsync.sample import write_export
from staffsync.settings import (
    MappingSettings,
    OpsSettings,
    PolicySettings,
    SafetySettings,
    ScheduleSettings,
    Settings,
    SourceSettings,
    StaffbaseSettings,
    StateSettings,
)

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["demo_settings", "run_demo"]

SAMPLE_SEED = 7


def demo_settings(folder: Path, emulator: EmulatorServer) -> Settings:
    """Return settings for the demo, with every section given explicitly.

    Sections passed as objects are taken whole, so nothing from the environment, a secret
    directory or a ``staffsync.toml`` can point the demo anywhere but the emulator.
    """
    config = emulator.config
    return Settings(
        source=SourceSettings(path=folder / "sailpoint_identities.csv"),
        mapping=MappingSettings(),
        staffbase=StaffbaseSettings(
            base_url=emulator.base_url,
            token_url=emulator.token_url,
            client_id=config.client_id,
            client_secret=SecretStr(config.client_secret),
            max_concurrency=8,
            max_requests_per_second=400,
        ),
        state=StateSettings(url=f"sqlite:///{folder / 'staffsync.db'}"),
        safety=SafetySettings(),
        policy=PolicySettings(),
        schedule=ScheduleSettings(),
        ops=OpsSettings(),
    )


def run_demo(console: Console, *, count: int, folder: Path | None) -> int:
    """Run the demo and return the exit status: 0 when both runs succeeded."""
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="staffsync-demo-"))
            )
        folder.mkdir(parents=True, exist_ok=True)
        write_export(folder / "sailpoint_identities.csv", count, seed=SAMPLE_SEED)
        emulator = stack.enter_context(EmulatorServer(EmulatorConfig()))
        settings = demo_settings(folder, emulator)

        console.print(
            f"[bold]staffsync demo[/bold]: a Staffbase emulator at {emulator.url},"
            f" a sample export of {count} people and a SQLite state in {folder}."
        )
        console.print(
            "\n[bold]1.[/bold] The first sync creates everyone the export lists as active."
        )
        first = execute_run(settings, RunRequest(trigger="demo", report_path=folder / "run-1.json"))
        print_summary(console, first)

        console.print("\n[bold]2.[/bold] Syncing the same export again finds nothing to change.")
        second = execute_run(
            settings, RunRequest(trigger="demo", report_path=folder / "run-2.json")
        )
        print_summary(console, second)

        stats = httpx.get(f"{emulator.url}/__emulator/stats", timeout=10).json()
        users = httpx.get(f"{emulator.url}/__emulator/users", timeout=10).json()
        console.print(
            f"\nThe emulator now holds {len(users)} users; it answered"
            f" {sum(stats['requests'].values())} API requests and issued"
            f" {stats['token_requests']} access token(s)."
        )
        return max(first.exit_code, second.exit_code)
    raise AssertionError  # unreachable: the ExitStack block returns
