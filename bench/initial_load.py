"""Time the first sync of a large export into an emulator that enforces a rate limit.

Usage:
    python bench/initial_load.py [--people 100000] [--limit 400] [--concurrency 16]
                                 [--dialect sqlite|postgresql]

The emulator runs as its own process (``staffsync emulator --port 0``) with
``rate_limit_per_second`` set to ``--limit``, and staffsync paces itself to the same
``max_requests_per_second``. Every person of the export is new, so each active one costs
one POST /users. The result is the rate of applied changes and how busy the rate limit
was kept: changes per second divided by the limit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import httpx

import benchlib
from staffsync.logs import configure_logging
from staffsync.runner import RunRequest, execute_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--limit", type=float, default=400.0, help="requests per second")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--dialect", default="sqlite", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    configure_logging("console", "warning")

    export = benchlib.export_path(args.people, "base")
    url = state_url(args.dialect, args.people)
    benchlib.drop_state(url)
    print(json.dumps(benchlib.machine()), flush=True)

    with Emulator() as emulator:
        emulator.post("/__emulator/faults", {"rate_limit_per_second": args.limit})
        settings = benchlib.make_settings(
            export,
            url,
            base_url=f"{emulator.url}/api",
            token_url=f"{emulator.url}/oauth2/token",
            client_id="staffsync-demo",
            client_secret="demo-secret",  # the emulator's published demo credential
            max_concurrency=args.concurrency,
            max_requests_per_second=args.limit,
        )
        stages = StageClock()
        started = time.perf_counter()
        report = execute_run(settings, RunRequest(trigger="bench", progress=stages))
        run_seconds = time.perf_counter() - started
        stats = emulator.get("/__emulator/stats")

    created = report.counts["created"]
    rate = stages.rate("apply")
    plan_seconds = stages.first["apply"][0] - started
    print(
        json.dumps(
            {
                "people": args.people,
                "dialect": args.dialect,
                "limit_per_s": args.limit,
                "concurrency": args.concurrency,
                "status": report.status,
                "created": created,
                "failed": report.counts["failed"],
                "run_s": round(run_seconds, 1),
                "until_first_outcomes_s": round(plan_seconds, 1),
                "changes_per_s": round(rate, 1),
                "busy": round(rate / args.limit, 3),
                "requests": stats["requests"],
                "rate_limited_429": stats["rate_limited"],
                "token_requests": stats["token_requests"],
            }
        ),
        flush=True,
    )


def state_url(dialect: str, people: int) -> str:
    if dialect == "sqlite":
        return f"sqlite:///{benchlib.DATA / f'initial_{people}.db'}"
    return benchlib.postgres_url(people).replace("staffsync_bench_", "staffsync_initial_")


class StageClock:
    """A progress callback that keeps the first and the last report of each stage."""

    def __init__(self) -> None:
        self.first: dict[str, tuple[float, int]] = {}
        self.last: dict[str, tuple[float, int]] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        sample = (time.perf_counter(), done)
        self.first.setdefault(stage, sample)
        self.last[stage] = sample

    def rate(self, stage: str) -> float:
        """Items per second between the first and the last report of ``stage``.

        The first report comes with the first batch of recorded outcomes, so the rate
        leaves out the start of the stage and measures the steady state.
        """
        (start, done_at_start), (end, done_at_end) = self.first[stage], self.last[stage]
        return (done_at_end - done_at_start) / (end - start)


class Emulator:
    """``staffsync emulator --port 0`` in a child process."""

    def __enter__(self) -> Emulator:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "staffsync", "emulator", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        self.url = line.rsplit(" ", 1)[-1].strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.process.kill()
            msg = f"the emulator printed {line!r} instead of its address"
            raise RuntimeError(msg)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)

    def get(self, path: str) -> dict[str, object]:
        response = httpx.get(f"{self.url}{path}", timeout=60)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def post(self, path: str, body: object) -> None:
        httpx.post(f"{self.url}{path}", json=body, timeout=60).raise_for_status()


if __name__ == "__main__":
    main()
