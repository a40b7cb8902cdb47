"""Helpers shared by the benchmarks: exports, settings, state databases and the machine.

Nothing here is imported by staffsync or its tests. Generated files go to bench/data/,
which git ignores.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import SecretStr

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
from staffsync.state import schema
from staffsync.state.database import create_state_engine
from staffsync.state.migrate import ensure_schema

DATA = Path(__file__).parent / "data"
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
UNUSED_API = "http://127.0.0.1:9/api"
"""Base URL for runs that must not reach Staffbase; nothing listens on the discard port."""


def export_path(count: int, variant: str) -> Path:
    """Return bench/data/export_<count>_<variant>.csv, writing it first if it is missing.

    ``variant`` is ``base`` (the export the state is brought in step with) or
    ``changed1`` (the same people, 1 % of them with another title or department).
    """
    path = DATA / f"export_{count}_{variant}.csv"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    shares = {"base": {}, "changed1": {"changed": 0.01}}[variant]
    partial = path.with_suffix(".partial")
    write_export(partial, count, **shares)
    partial.replace(path)
    return path


def make_settings(
    export: Path,
    state_url: str,
    *,
    base_url: str = UNUSED_API,
    token_url: str | None = None,
    client_id: str = "",
    client_secret: str = "unused",
    max_concurrency: int = 8,
    max_requests_per_second: float = 1000.0,
) -> Settings:
    """Return settings for the sample export's columns, aimed at ``base_url``."""
    return Settings(
        source=SourceSettings(path=export),
        mapping=MappingSettings(),
        staffbase=StaffbaseSettings(
            base_url=base_url,
            token_url=token_url or base_url.removesuffix("/api") + "/oauth2/token",
            client_id=client_id,
            client_secret=SecretStr(client_secret),
            max_concurrency=max_concurrency,
            max_requests_per_second=max_requests_per_second,
            max_retry_wait_seconds=5,
        ),
        state=StateSettings(url=state_url),
        safety=SafetySettings(max_deactivation_percent=100, max_deactivations=10_000_000),
        policy=PolicySettings(),
        schedule=ScheduleSettings(),
        ops=OpsSettings(log_format="console", log_level="warning"),
    )


class InstantClient:
    """Answers the engine's Staffbase calls at once, the way the emulator would.

    Used to bring a large state database in step through the engine's own code paths
    (plan, journal, apply, record outcomes) without waiting on HTTP. Creates return a
    pending user with an id derived from the externalID; nothing is remembered.
    """

    def __init__(self, settings: StaffbaseSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self.calls = 0

    def _count(self) -> None:
        with self._lock:
            self.calls += 1

    def create_user(self, body: dict[str, Any]) -> dict[str, Any]:
        self._count()
        external_id = body["externalID"]
        user_id = hashlib.blake2b(external_id.encode(), digest_size=12).hexdigest()
        return {"id": user_id, "status": "pending", **body}

    def update_user(self, user_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self._count()
        return {"id": user_id, **body}

    def delete_user(self, user_id: str) -> None:
        self._count()

    def get_user(self, id_or_external_id: str) -> dict[str, Any] | None:
        self._count()
        return None

    def find_user_by_external_id(self, external_id: str) -> dict[str, Any] | None:
        self._count()
        return None

    def close(self) -> None:
        pass


class NoNetworkClient:
    """A client for dry runs: any call at all is a bug in the benchmark or the planner."""

    def __getattr__(self, name: str) -> Any:
        if name == "close":
            return lambda: None
        msg = f"a dry run called the Staffbase client ({name}); it must not"
        raise AssertionError(msg)


def sqlite_url(count: int) -> str:
    return f"sqlite:///{DATA / f'state_{count}.db'}"


def postgres_url(count: int) -> str:
    url = sa.make_url(POSTGRES_ADMIN_URL).set(database=f"staffsync_bench_{count}")
    return url.render_as_string(hide_password=False)


def state_url(dialect: str, count: int) -> str:
    return sqlite_url(count) if dialect == "sqlite" else postgres_url(count)


def create_postgres_database(url: str) -> None:
    """Drop and create the database that ``url`` names, through the admin database."""
    name = sa.make_url(url).database
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def drop_state(url: str) -> None:
    """Remove a state database, SQLite file or PostgreSQL database."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm", ".lock"):
            Path(f"{parsed.database}{suffix}").unlink(missing_ok=True)
    else:
        create_postgres_database(url)


def copy_state(source_url: str, target_url: str) -> None:
    """Copy every table of a state database into an empty one, row for row.

    Used to give PostgreSQL the exact rows that the engine wrote into a SQLite state,
    which is much faster than syncing a large roster a second time.
    """
    source = create_state_engine(StateSettings(url=source_url))
    target = create_state_engine(StateSettings(url=target_url))
    ensure_schema(target, allow_upgrade=True)
    with source.connect() as reader, target.begin() as writer:
        for table in schema.metadata.sorted_tables:
            batch: list[dict[str, Any]] = []
            for row in reader.execute(sa.select(table)).mappings():
                batch.append(dict(row))
                if len(batch) >= 10_000:
                    writer.execute(sa.insert(table), batch)
                    batch = []
            if batch:
                writer.execute(sa.insert(table), batch)
        if target.dialect.name == "postgresql":
            # The rows came with their ids, so the id sequence must continue after them.
            writer.execute(
                sa.text(
                    "SELECT setval(pg_get_serial_sequence('changes', 'id'),"
                    " (SELECT coalesce(max(id), 0) + 1 FROM changes), false)"
                )
            )
    if target.dialect.name == "postgresql":
        # What autovacuum would do to a table this size before long: statistics, and the
        # visibility map that lets the planner's hash query read the index alone.
        with target.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text("VACUUM ANALYZE"))
    source.dispose()
    target.dispose()


def peak_rss_mb() -> float:
    """Return this process's peak resident set size (VmHWM) in MiB.

    ``getrusage().ru_maxrss`` would do, but Linux carries it across ``execve``: a child
    started by a parent that had grown large reports the parent's peak.
    """
    with Path("/proc/self/status").open() as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    msg = "/proc/self/status has no VmHWM line; this benchmark needs Linux"
    raise RuntimeError(msg)


def machine() -> dict[str, str]:
    """Describe the machine and the software versions the numbers were measured with."""
    cpu = "unknown"
    with Path("/proc/cpuinfo").open() as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with Path("/proc/meminfo").open() as handle:
        total_kib = int(handle.readline().split()[1])
    engine = sa.create_engine(POSTGRES_ADMIN_URL)
    try:
        with engine.connect() as connection:
            postgres = str(connection.execute(sa.text("SHOW server_version")).scalar_one())
    except sa.exc.OperationalError:
        postgres = "not reachable"
    finally:
        engine.dispose()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": f"{total_kib / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres,
        "sqlalchemy": sa.__version__,
        "kernel": platform.release(),
    }


def run_child(args: list[str]) -> str:
    """Run ``python <args>`` in a fresh process and return its stdout; fail on an error."""
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, check=False, env=os.environ
    )
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        msg = f"{' '.join(args)} exited with status {result.returncode}"
        raise RuntimeError(msg)
    return result.stdout
