"""Write a made-up SailPoint-style identity export, or a variant of one, as CSV.

Examples:
    python examples/generate_export.py examples/sailpoint_identities.csv --count 500
    python examples/generate_export.py /tmp/next.csv --count 500 --changed 0.05 --leavers 0.01
"""

from __future__ import annotations

import argparse
from pathlib import Path

from staffsync.sample import write_export


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="CSV file to write (overwritten)")
    parser.add_argument("--count", type=int, default=500, help="people in the base export")
    parser.add_argument("--seed", type=int, default=7, help="seed that picks the people")
    parser.add_argument(
        "--changed",
        type=float,
        default=0.0,
        help="share of people with another title or department",
    )
    parser.add_argument("--leavers", type=float, default=0.0, help="share of people left out")
    parser.add_argument("--joiners", type=float, default=0.0, help="share of new people appended")
    parser.add_argument(
        "--variant-seed", type=int, default=1, help="seed that picks who changes, leaves or joins"
    )
    args = parser.parse_args()

    summary = write_export(
        args.output,
        args.count,
        seed=args.seed,
        changed=args.changed,
        leavers=args.leavers,
        joiners=args.joiners,
        variant_seed=args.variant_seed,
    )
    print(
        f"wrote {summary.rows} people to {args.output}: {summary.terminated} terminated,"
        f" {summary.changed} changed, {summary.leavers} left out, {summary.joiners} joined"
    )


if __name__ == "__main__":
    main()
