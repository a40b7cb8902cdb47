"""Time planning a 1 %-changed export of 10k, 100k and 1M people against a state in step.

Usage:
    python bench/plan.py [--sizes 10000,100000,1000000] [--dialects sqlite,postgresql]
    python bench/plan.py --profile 1000000 --dialects sqlite   # cProfile of one plan

For each size and state database:
1. bench/data/ gets the base export and a variant with 1 % of the people changed.
2. The state is brought in step with the base export, once, and kept for later runs
   (``--reseed`` forces it). 10k people are synced for real into an in-process
   emulator. On SQLite, 100k and 1M are synced through the same engine code with a
   client that answers every request at once (:class:`benchlib.InstantClient`); on
   PostgreSQL, the rows of that SQLite state are copied (:func:`benchlib.copy_state`).
3. A fresh process reads the variant once with a bare ``csv.reader`` loop, then plans it
   as ``staffsync plan`` does (``execute_run`` with ``dry_run=True``), and reports both
   times and its peak RSS.
PostgreSQL databases are named staffsync_bench_<size> on the server at 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import json
import pstats
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).parent))

import sqlalchemy as sa

import benchlib
from staffsync.emulator import EmulatorServer
from staffsync.logs import configure_logging
from staffsync.runner import RunRequest, execute_run

if TYPE_CHECKING:
    from staffsync.report import RunReport

REAL_SYNC_LIMIT = 10_000
"""Largest roster that is brought in step by a real sync against the emulator."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--dialects", default="sqlite,postgresql")
    parser.add_argument("--reseed", action="store_true", help="seed the state databases again")
    parser.add_argument("--repeat", type=int, default=1, help="measurements per size and dialect")
    parser.add_argument("--profile", type=int, metavar="SIZE", help="profile one plan of SIZE")
    parser.add_argument("--measure", nargs=2, metavar=("URL", "EXPORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    configure_logging("console", "warning")

    if args.measure:
        print(json.dumps(measure(args.measure[0], Path(args.measure[1]))))
        return

    sizes = [int(size) for size in args.sizes.split(",")]
    dialects = args.dialects.split(",")
    if args.profile:
        profile(args.profile, dialects[0])
        return

    print(json.dumps(benchlib.machine()))
    for count in sizes:
        for dialect in dialects:
            url = benchlib.state_url(dialect, count)
            seed(count, url, force=args.reseed)
            export = benchlib.export_path(count, "changed1")
            for _ in range(args.repeat):
                result = json.loads(benchlib.run_child([__file__, "--measure", url, str(export)]))
                result.update(people=count, dialect=dialect)
                print(json.dumps(result), flush=True)


def seed(count: int, url: str, *, force: bool) -> None:
    """Bring the state at ``url`` in step with the base export, unless it already is."""
    marker = benchlib.DATA / f"seeded_{sa.make_url(url).get_backend_name()}_{count}"
    if marker.exists() and not force:
        return
    marker.unlink(missing_ok=True)
    benchlib.drop_state(url)
    export = benchlib.export_path(count, "base")

    started = time.perf_counter()
    if count <= REAL_SYNC_LIMIT:
        how = "real sync against the emulator"
        report = _sync_with_emulator(export, url)
    elif url.startswith("sqlite"):
        how = "sync through the engine with InstantClient"
        settings = benchlib.make_settings(export, url)
        report = execute_run(
            settings,
            RunRequest(trigger="bench"),
            client=benchlib.InstantClient(settings.staffbase),  # type: ignore[arg-type]
        )
    else:
        how = "rows copied from the SQLite state of the same size"
        seed(count, benchlib.sqlite_url(count), force=False)
        benchlib.copy_state(benchlib.sqlite_url(count), url)
        report = None
    seconds = time.perf_counter() - started
    if report is not None and report.status != "succeeded":
        msg = f"seeding {url} ended {report.status}: {report.error}"
        raise RuntimeError(msg)
    counts = dict(report.counts) if report is not None else {}
    print(
        json.dumps(
            {"seeded": count, "url": url, "how": how, "seconds": round(seconds, 1)} | counts
        ),
        flush=True,
    )
    marker.write_text(how)


def _sync_with_emulator(export: Path, url: str) -> RunReport:
    with EmulatorServer() as server:
        settings = benchlib.make_settings(
            export,
            url,
            base_url=server.base_url,
            token_url=server.token_url,
            client_id=server.config.client_id,
            client_secret=server.config.client_secret,
        )
        return execute_run(settings, RunRequest(trigger="bench"))


def measure(url: str, export: Path) -> dict[str, object]:
    """Time a bare csv.reader pass and one dry-run plan of ``export``, in this process."""
    csv_seconds = _csv_pass(export)

    settings = benchlib.make_settings(export, url)
    started = time.perf_counter()
    report = execute_run(
        settings,
        RunRequest(dry_run=True, trigger="bench"),
        client=benchlib.NoNetworkClient(),  # type: ignore[arg-type]
    )
    plan_seconds = time.perf_counter() - started
    if report.status != "succeeded":
        msg = f"planning ended {report.status}: {report.error}"
        raise RuntimeError(msg)
    return {
        "csv_reader_s": round(csv_seconds, 3),
        "plan_s": round(plan_seconds, 3),
        "ratio": round(plan_seconds / csv_seconds, 2),
        "peak_rss_mb": round(benchlib.peak_rss_mb(), 1),
        "records": report.source.get("records"),
        "updated": report.counts["updated"],
        "unchanged": report.counts["unchanged"],
        "rejected": report.counts["rejected"],
    }


def _csv_pass(path: Path) -> float:
    """Return the time of the baseline loop; a first untimed pass warms the page cache."""
    for _row in csv.reader(path.open(newline="", encoding="utf-8")):
        pass
    started = time.perf_counter()
    for _row in csv.reader(path.open(newline="", encoding="utf-8")):
        pass
    return time.perf_counter() - started


def profile(count: int, dialect: str) -> None:
    url = benchlib.state_url(dialect, count)
    seed(count, url, force=False)
    export = benchlib.export_path(count, "changed1")
    settings = benchlib.make_settings(export, url)
    profiler = cProfile.Profile()
    profiler.enable()
    execute_run(
        settings,
        RunRequest(dry_run=True, trigger="bench"),
        client=benchlib.NoNetworkClient(),  # type: ignore[arg-type]
    )
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
