"""Time a sync after a [mapping] edit that changes every record hash but no field.

Usage:
    python bench/remap.py [--people 100000] [--dialect sqlite|postgresql]

A copy of the state that bench/plan.py brought in step is synced with the unchanged
base export and one more ``[mapping] empty_values`` entry, which no value uses. Every
record is mapped again, found equal to what Staffbase holds, and its new hash stored:
a plan of state-only changes. The run uses a client that fails on any request, so it
also proves that nothing is sent. It runs in a fresh process for its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import benchlib
from no_change import copy_database
from plan import seed
from staffsync import runner
from staffsync.logs import configure_logging
from staffsync.runner import RunRequest, execute_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--dialect", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    configure_logging("console", "warning")

    if args.child:
        print(json.dumps(remap(args.child, args.people)))
        return
    source_url = benchlib.state_url(args.dialect, args.people)
    seed(args.people, source_url, force=False)
    url = copy_database(source_url, args.people)
    output = benchlib.run_child([__file__, "--people", str(args.people), "--child", url])
    result = json.loads(output)
    result.update(people=args.people, dialect=args.dialect)
    print(json.dumps(result))


def remap(url: str, people: int) -> dict[str, object]:
    settings = benchlib.make_settings(benchlib.export_path(people, "base"), url)
    settings.mapping.empty_values = ["n/a"]
    applying: list[float] = []
    apply_plan = runner.apply_plan

    def timed_apply(*args: Any, **kwargs: Any) -> Any:
        applying.append(time.perf_counter())
        return apply_plan(*args, **kwargs)

    runner.apply_plan = timed_apply  # type: ignore[assignment]
    started = time.perf_counter()
    report = execute_run(
        settings,
        RunRequest(trigger="bench"),
        client=benchlib.NoNetworkClient(),  # type: ignore[arg-type]
    )
    seconds = time.perf_counter() - started
    return {
        "status": report.status,
        "error": report.error,
        "records": report.source.get("records"),
        "unchanged": report.counts["unchanged"],
        "run_s": round(seconds, 1),
        "plan_s": round(applying[0] - started, 1) if applying else None,
        "peak_rss_mb": round(benchlib.peak_rss_mb(), 1),
    }


if __name__ == "__main__":
    main()
