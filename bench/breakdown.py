"""Split one dry-run plan into its steps: wall and CPU seconds of each, in one process.

Usage: python bench/breakdown.py [--people 1000000] [--dialect sqlite|postgresql]

Wraps the planner's steps and times them; the state must have been brought in step by
bench/plan.py first. CPU seconds are this process only: PostgreSQL's work shows in the
wall time. The reference lines time the bare csv.reader loop, the source alone (which
also tracks line numbers and picks the mapped columns), and the source with the
comparer's work (keys, encoding, hashes) but without an index or the insert.
``_load_hashes`` (reading the state's hashes, three queries) is part of ``ingest``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import benchlib
from staffsync.logs import configure_logging
from staffsync.mapping import RecordMapper
from staffsync.planning import planner
from staffsync.planning.reading import RecordComparer
from staffsync.runner import RunRequest, execute_run
from staffsync.sources import DelimitedSource

STEPS = (
    "_load_hashes",
    "ingest",
    "reject_duplicate_keys",
    "map_changed_records",
    "reject_duplicate_emails",
    "resolve_managers",
    "number_creation_waves",
    "plan_present_people",
    "plan_leavers",
    "plan_expired_deletions",
    "result",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--dialect", default="sqlite", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    configure_logging("console", "warning")
    export = benchlib.export_path(args.people, "changed1")
    settings = benchlib.make_settings(export, benchlib.state_url(args.dialect, args.people))

    references(export, settings.mapping)
    timings: dict[str, tuple[float, float]] = {}
    for name in STEPS:
        setattr(planner._Planner, name, timed(getattr(planner._Planner, name), name, timings))
    started, cpu = time.perf_counter(), time.process_time()
    execute_run(
        settings,
        RunRequest(dry_run=True, trigger="bench"),
        client=benchlib.NoNetworkClient(),  # type: ignore[arg-type]
    )
    total = (time.perf_counter() - started, time.process_time() - cpu)
    for name, (wall, cpu_seconds) in timings.items():
        print(f"{name:26s} wall {wall:6.2f} s   cpu {cpu_seconds:6.2f} s")
    # Loading the hashes is part of ingest, so it is not counted twice.
    steps = sum(wall for name, (wall, _) in timings.items() if name != "_load_hashes")
    print(f"{'other (open, lock, report)':26s} wall {total[0] - steps:6.2f} s")
    print(f"{'whole dry run':26s} wall {total[0]:6.2f} s   cpu {total[1]:6.2f} s")


def timed(method: Any, name: str, timings: dict[str, tuple[float, float]]) -> Any:
    """Wrap ``method`` so that the time of every call is added to ``timings[name]``."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started, cpu = time.perf_counter(), time.process_time()
        try:
            return method(*args, **kwargs)
        finally:
            wall, used = timings.get(name, (0.0, 0.0))
            wall += time.perf_counter() - started
            used += time.process_time() - cpu
            timings[name] = (wall, used)

    return wrapper


def references(export: Path, mapping: Any) -> None:
    mapper = RecordMapper(mapping)
    fields = mapper.source_fields

    def bare() -> None:
        for _row in csv.reader(export.open(newline="", encoding="utf-8")):
            pass

    def source() -> None:
        for _batch in DelimitedSource(export).read_batches(fields):
            pass

    def staging_loop() -> None:
        comparer = RecordComparer(mapper, bytes(32), None)
        for batch in DelimitedSource(export).read_batches(fields):
            comparer.compare(batch)

    for name, loop in (("csv.reader", bare), ("source", source), ("loop", staging_loop)):
        started, cpu = time.perf_counter(), time.process_time()
        loop()
        wall, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        print(f"{'reference: ' + name:26s} wall {wall:6.2f} s   cpu {cpu_seconds:6.2f} s")


if __name__ == "__main__":
    main()
