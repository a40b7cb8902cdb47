"""Time reading and mapping a large made-up export.

Usage: python bench/bench_sources.py [COUNT]   (default 1,000,000 people)

Writes the export to bench/data/ (ignored by git) on the first run, then times three
passes: the CSV source alone, the source with every record mapped, and the same people
as JSON Lines. The numbers depend on the machine; record them with its description.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from staffsync.mapping import DesiredUser, RecordMapper
from staffsync.sample import COLUMNS, generate_rows, write_export
from staffsync.settings import MappingSettings
from staffsync.sources import DelimitedSource, JsonSource, RawRecord

DATA = Path(__file__).parent / "data"


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    DATA.mkdir(exist_ok=True)
    csv_path = DATA / f"identities_{count}.csv"
    jsonl_path = DATA / f"identities_{count}.jsonl"
    if not csv_path.exists():
        write_export(csv_path, count)
    if not jsonl_path.exists():
        with jsonl_path.open("w", encoding="utf-8") as handle:
            for row in generate_rows(count):
                handle.write(json.dumps(dict(zip(COLUMNS, row, strict=True))) + "\n")

    mapper = RecordMapper(MappingSettings(date_fields=["start_date"]))
    fields = mapper.source_fields

    started = time.perf_counter()
    records = sum(
        1 for item in DelimitedSource(csv_path).read(fields) if isinstance(item, RawRecord)
    )
    report("csv read", records, started)

    started = time.perf_counter()
    users = 0
    for item in DelimitedSource(csv_path).read(fields):
        if isinstance(item, RawRecord) and isinstance(mapper.map(item), DesiredUser):
            users += 1
    report("csv read + map", users, started)

    started = time.perf_counter()
    records = sum(1 for item in JsonSource(jsonl_path).read(fields) if isinstance(item, RawRecord))
    report("jsonl read", records, started)


def report(label: str, records: int, started: float) -> None:
    elapsed = time.perf_counter() - started
    print(f"{label:16} {records:>9} records {elapsed:7.2f} s {records / elapsed:>10,.0f} records/s")


if __name__ == "__main__":
    main()
