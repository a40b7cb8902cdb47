"""Run a real ``staffsync sync`` over an unchanged export whose state is in step.

Usage:
    python bench/no_change.py [--people 1000000] [--dialect sqlite|postgresql]

1. The state database that bench/plan.py brought in step with the base export is
   copied (the SQLite file, or a PostgreSQL database made from it as a template).
2. An emulator state file is written from that state: every user with the id, status,
   fields and manager the state records, so that Staffbase and the state agree.
3. ``staffsync emulator --port 0 --state-file …`` serves that tenant in its own process.
4. ``staffsync --config … sync`` runs in a fresh process on the base export, which
   has not changed since the state was made. Its wall time and peak RSS are measured.
5. The emulator's statistics tell how many API requests and token requests it got.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import httpx
import sqlalchemy as sa

import benchlib
from plan import seed
from staffsync.cli import main as staffsync_main
from staffsync.emulator.tenant import STATE_VERSION
from staffsync.staffbase.model import build_user_body
from staffsync.state import schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--dialect", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--child", nargs=1, metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child_sync(Path(args.child[0]))
        return

    source_url = benchlib.state_url(args.dialect, args.people)
    seed(args.people, source_url, force=False)
    url = copy_database(source_url, args.people)
    tenant = benchlib.DATA / f"tenant_{args.people}.json"
    if not tenant.exists():
        write_tenant(url, tenant)
    export = benchlib.export_path(args.people, "base")

    emulator = subprocess.Popen(
        [sys.executable, "-m", "staffsync", "emulator", "--port", "0", "--state-file", str(tenant)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert emulator.stdout is not None
        base = emulator.stdout.readline().rsplit(" ", 1)[-1].strip()
        users = len(httpx.get(f"{base}/__emulator/users", timeout=600).json())
        config = write_config(export, url, base)
        started = time.perf_counter()
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(config)],
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        stats = httpx.get(f"{base}/__emulator/stats", timeout=60).json()
    finally:
        # The tenant did not change, so nothing needs saving: stop without the final save.
        emulator.kill()
        emulator.wait()

    peak = json.loads(child.stdout.strip().splitlines()[-1])
    print(json.dumps(benchlib.machine()))
    print(
        json.dumps(
            {
                "people": args.people,
                "dialect": args.dialect,
                "tenant_users": users,
                "exit_status": child.returncode,
                "sync_s": round(seconds, 1),
                "peak_rss_mb": peak["peak_rss_mb"],
                "api_requests": sum(stats["requests"].values()),
                "requests": stats["requests"],
                "token_requests": stats["token_requests"],
            }
        )
    )
    if child.returncode != 0:
        sys.stderr.write(child.stderr)


def run_child_sync(config: Path) -> None:
    """Run ``staffsync --config CONFIG sync`` in this process, then print its peak RSS."""
    try:
        staffsync_main(["--config", str(config), "--log-level", "warning", "sync"])
    finally:
        print(json.dumps({"peak_rss_mb": round(benchlib.peak_rss_mb(), 1)}), flush=True)


def copy_database(source_url: str, people: int) -> str:
    """Return the URL of a fresh copy of the state at ``source_url``."""
    parsed = sa.make_url(source_url)
    if parsed.get_backend_name() == "sqlite":
        target = benchlib.DATA / f"nochange_{people}.db"
        for suffix in ("-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        with sa.create_engine(source_url).connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copyfile(str(parsed.database), target)
        return f"sqlite:///{target}"

    name = f"staffsync_nochange_{people}"
    admin = sa.create_engine(benchlib.POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{parsed.database}"'))
    admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


def write_tenant(url: str, path: Path) -> None:
    """Write an emulator state file holding the users that the state at ``url`` records."""
    users = schema.users
    engine = sa.create_engine(url)
    now = datetime.now(UTC).isoformat()
    partial = path.with_suffix(".partial")
    with engine.connect() as connection, partial.open("w", encoding="utf-8") as stream:
        ids = dict(connection.execute(sa.select(users.c.key, users.c.staffbase_id)).all())
        stream.write(f'{{"version": {STATE_VERSION}, "groups": [], "users": [')
        rows = connection.execute(
            sa.select(users.c.key, users.c.staffbase_id, users.c.status)
            .add_columns(users.c.fields, users.c.manager_key)
            .order_by(users.c.key)
        )
        for number, (key, staffbase_id, status, fields, manager_key) in enumerate(rows):
            flat = dict(fields)
            if manager_key is not None:
                flat["manager"] = ids[manager_key]
            user = build_user_body(flat, external_id=key)
            user.update(id=staffbase_id, status=status, created=now, updated=now)
            stream.write(("," if number else "") + json.dumps(user, ensure_ascii=False))
        stream.write("]}")
    engine.dispose()
    partial.replace(path)


def write_config(export: Path, url: str, base: str) -> Path:
    config = benchlib.DATA / "nochange.toml"
    config.write_text(
        f"""
[source]
path = "{export}"

[staffbase]
base_url = "{base}/api"
token_url = "{base}/oauth2/token"
client_id = "staffsync-demo"
client_secret = "demo-secret"
max_requests_per_second = 400

[state]
url = "{url}"
""",
        encoding="utf-8",
    )
    return config


if __name__ == "__main__":
    main()
