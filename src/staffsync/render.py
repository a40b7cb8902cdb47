"""Human-readable output of reports, plans and status for the terminal."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console

    from staffsync.report import RunReport

__all__ = ["print_plan", "print_status", "print_summary"]

LISTED = 20
STATUS_STYLE = {"succeeded": "green", "partial": "yellow", "blocked": "red", "failed": "red"}
ACTION_TITLES = {
    "create": "Create",
    "update": "Update",
    "reactivate": "Reactivate",
    "deactivate": "Deactivate",
    "delete": "Delete",
}
COUNT_ORDER = (
    "created",
    "updated",
    "reactivated",
    "deactivated",
    "deleted",
    "unchanged",
    "rejected",
    "failed",
)


def _shown(value: Any) -> Text:
    """Return a value as plain text: ``[safety]`` in a message is not rich markup."""
    if value is None:
        return Text("—")
    if isinstance(value, list):
        return Text(", ".join(str(v) for v in value) or "—")
    return Text(str(value))


def print_summary(console: Console, report: RunReport, *, title: str | None = None) -> None:
    """Print a run's outcome: status, counts and the first rejects, failures and warnings."""
    style = STATUS_STYLE.get(report.status, "white")
    retried = "would retry them" if report.dry_run else "retries them"
    heading = Text.assemble(
        (title or ("Dry run" if report.dry_run else "Run"), "bold"),
        f" {report.run_id} ",
        (report.status, f"bold {style}"),
        f" · {report.source.get('records', 0)} records read",
    )
    console.print(heading)

    counts = Table(show_header=False, box=None, padding=(0, 2))
    for name in COUNT_ORDER:
        counts.add_row(name, str(report.counts.get(name, 0)))
    console.print(counts)

    if report.held:
        plan_id = report.held.get("plan_id")
        console.print(Text.assemble(("Held:", "red"), f" {report.held['reason']}."))
        if plan_id:
            console.print(
                f"Nothing was written. Review it with 'staffsync status'; apply it with"
                f" 'staffsync sync --approve {plan_id}'."
            )
    if report.error:
        console.print(Text.assemble(("Error:", "red"), f" {report.error}"))
    _print_issues(
        console,
        "Rejected records (left as they are)",
        report.rejected,
        report.totals.get("rejected"),
    )
    _print_issues(
        console,
        f"Failed records (the next run {retried})",
        report.failed,
        report.totals.get("failed"),
    )
    _print_issues(console, "Warnings", report.warnings, report.totals.get("warnings"))


def _print_issues(
    console: Console, title: str, items: list[dict[str, Any]], total: int | None
) -> None:
    if not items:
        return
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in ("line", "key", "field", "value", "message"):
        if any(column in item for item in items):
            table.add_column(column, overflow="fold")
    columns = [c.header for c in table.columns]
    for item in items[:LISTED]:
        table.add_row(*(_shown(item.get(str(column))) for column in columns))
    console.print(table)
    more = max(total or 0, len(items)) - min(len(items), LISTED)
    if more > 0:
        console.print(f"… and {more} more (see --report-json)")


def print_plan(console: Console, report: RunReport) -> None:
    """Print every planned change grouped by action, each with its fields before and after."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for change in report.changes:
        groups[change["action"]].append(change)

    for action, title in ACTION_TITLES.items():
        entries = groups.get(action, [])
        if not entries:
            continue
        table = Table(title=f"{title} ({len(entries)})", title_justify="left", show_lines=True)
        table.add_column("key", no_wrap=True)
        table.add_column("field")
        table.add_column("before", overflow="fold")
        table.add_column("after", overflow="fold")
        for entry in entries:
            fields = entry.get("fields") or {}
            names = sorted(fields) or ["—"]
            first = True
            for name in names:
                change = fields.get(name, {})
                table.add_row(
                    _shown(entry["key"]) if first else "",
                    _shown(name),
                    _shown(change.get("before")) if change else "",
                    _shown(change.get("after")) if change else "",
                )
                first = False
        console.print(table)

    totals = Table(title="Totals", title_justify="left", show_header=False, box=None)
    for action, title in ACTION_TITLES.items():
        totals.add_row(title, str(len(groups.get(action, []))))
    totals.add_row("Unchanged", str(report.counts.get("unchanged", 0)))
    totals.add_row("Rejected", str(report.counts.get("rejected", 0)))
    console.print(totals)
    if report.totals.get("changes"):
        console.print(
            f"(the plan has {report.totals['changes']} changes; the first"
            f" {len(report.changes)} are shown — use --format json for all)"
        )
    print_summary(console, report, title="Plan")


def print_status(console: Console, status: dict[str, Any]) -> None:
    """Print the last runs, the held plans and the failing records."""
    runs = Table(title="Last runs", title_justify="left")
    for column in ("run", "mode", "trigger", "status", "started", "finished", "changes", "error"):
        runs.add_column(column, overflow="fold")
    for run in status["runs"]:
        counts = run.get("counts") or {}
        changed = sum(counts.get(n, 0) for n in COUNT_ORDER[:5])
        runs.add_row(
            run["id"],
            run["mode"],
            run["trigger"],
            Text(run["status"], style=STATUS_STYLE.get(run["status"], "white")),
            run["started_at"],
            run["finished_at"] or "—",
            str(changed),
            _shown(run.get("error") or ""),
        )
    console.print(runs)

    if status["held_plans"]:
        held = Table(
            title="Held plans (apply with 'staffsync sync --approve ID')", title_justify="left"
        )
        for column in ("plan", "created", "reason", "changes"):
            held.add_column(column, overflow="fold")
        for plan in status["held_plans"]:
            counts = plan.get("counts") or {}
            held.add_row(
                plan["id"],
                plan["created_at"],
                _shown(plan.get("reason") or ""),
                ", ".join(f"{n} {c}" for n, c in counts.items() if c),
            )
        console.print(held)
    else:
        console.print("No held plans.")

    if status["failing"]:
        failing = Table(title="Failing records", title_justify="left")
        for column in ("key", "action", "attempts", "since", "next attempt", "stuck", "last error"):
            failing.add_column(column, overflow="fold")
        for record in status["failing"]:
            failing.add_row(
                _shown(record["key"]),
                record["action"],
                str(record["attempts"]),
                record["first_failed_at"],
                record["next_attempt_at"],
                "yes" if record["stuck"] else "",
                _shown(record["last_error"]),
            )
        console.print(failing)
    else:
        console.print("No failing records.")
