"""The ``staffsync`` command line.

Exit status: 0 every change applied; 4 some records were rejected or failed; 3 the safety
guards held the plan; 1 the run failed; 2 usage or configuration error.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
import sqlalchemy as sa
import structlog
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from staffsync import __version__
from staffsync.logs import configure_logging, redact_text, register_settings_secrets
from staffsync.progress import ProgressDisplay
from staffsync.render import print_plan, print_status, print_summary
from staffsync.runner import RunRequest, execute_run
from staffsync.settings import (
    ConfigError,
    Settings,
    has_setting_variables,
    load_settings,
    resolve_config_path,
)
from staffsync.staffbase.auth import check_credentials
from staffsync.state.database import (
    StateDatabaseError,
    create_state_engine,
    is_sqlite,
    sqlite_path,
    state_url,
    unreachable_message,
)
from staffsync.state.lock import RunLockHeld
from staffsync.state.migrate import SchemaOutdated, current_revision, head_revision, upgrade

if TYPE_CHECKING:
    import threading
    from collections.abc import Iterator
    from types import FrameType

    from staffsync.report import RunReport

__all__ = ["cli", "main"]

log = structlog.get_logger(__name__)

EXIT_USAGE = 2
EXIT_FAILED = 1


@dataclass
class CliOptions:
    """Options given before the command name."""

    config_path: Path | None
    log_format: str | None
    log_level: str | None

    def settings(self) -> Settings:
        """Load the configuration, or exit with status 2 and the reason.

        Some configuration must exist: a file, or ``STAFFSYNC_<SECTION>__<KEY>``
        variables. Running on built-in defaults alone would create a state database in
        the current folder and read an export that is probably not there.
        """
        path = resolve_config_path(self.config_path)
        if path is None and not has_setting_variables():
            _fail(
                "no configuration: pass --config PATH, set STAFFSYNC_CONFIG, create"
                " ./staffsync.toml, or set STAFFSYNC_<SECTION>__<KEY> variables"
                " (examples/staffsync.toml shows every section)",
                EXIT_USAGE,
            )
        try:
            return load_settings(path)
        except ConfigError as exc:
            _fail(str(exc), EXIT_USAGE)

    def configure_logging(self, settings: Settings | None, *, default_format: str) -> None:
        """Set up logging on stderr, in either format, for every command except ``run``.

        Standard output is left to the command's own output, such as the JSON of
        ``plan --format json`` or ``status --format json``.
        """
        level = self.log_level or (settings.ops.log_level if settings else "info")
        fmt = self.log_format or default_format
        configure_logging(fmt, level, stream=sys.stderr)  # type: ignore[arg-type]
        if settings is not None:
            register_settings_secrets(settings)


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    click.echo(f"staffsync: {message}", err=True)
    sys.exit(code)


def _console() -> Console:
    return Console(soft_wrap=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Configuration file (default: $STAFFSYNC_CONFIG, then ./staffsync.toml).",
)
@click.option("--log-format", type=click.Choice(["console", "json"]), help="Log line format.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Lowest level logged.",
)
@click.version_option(__version__, prog_name="staffsync")
@click.pass_context
def cli(
    ctx: click.Context, config_path: Path | None, log_format: str | None, log_level: str | None
) -> None:
    """Keep Staffbase users in step with the HR system of record."""
    ctx.obj = CliOptions(config_path, log_format, log_level)


def _run_and_report(
    options: CliOptions,
    request: RunRequest,
    *,
    output: str = "summary",
) -> NoReturn:
    settings = options.settings()
    options.configure_logging(settings, default_format="console")
    if request.report_path is not None:
        _check_report_path(request.report_path)
    # A full resync reads every Staffbase user, even as a dry run.
    if not request.dry_run or request.mode == "full":
        try:
            check_credentials(settings.staffbase)
        except ConfigError as exc:
            _fail(str(exc), EXIT_USAGE)
    try:
        with ProgressDisplay() as display, _stop_on_signal(request.stop):
            request.progress = display.update
            report = execute_run(settings, request)
    except RunLockHeld as exc:
        _fail(f"{exc}; try again once it has finished")
    except (SchemaOutdated, StateDatabaseError) as exc:
        _fail(str(exc), EXIT_USAGE if isinstance(exc, StateDatabaseError) else EXIT_FAILED)
    except sa.exc.DBAPIError as exc:
        _fail(unreachable_message(exc))
    _print_report(report, output)
    sys.exit(report.exit_code)


@contextlib.contextmanager
def _stop_on_signal(stop: threading.Event) -> Iterator[None]:
    """Let Ctrl+C or SIGTERM stop a run as the daemon stops one.

    The first signal stops sending: requests in flight finish and are recorded, and the
    next run applies the rest. A second signal interrupts at once.
    """

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log.warning("run_stopping", signal=signal.Signals(signum).name)
        click.echo(
            "staffsync: stopping after the requests in flight; press Ctrl+C again to"
            " interrupt at once",
            err=True,
        )

    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, on_signal) for signum in handled}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _require_existing_sqlite(settings: Settings) -> None:
    """Refuse to show the status of a SQLite file that does not exist (a mistyped path)."""
    url = state_url(settings.state)
    if is_sqlite(url) and not sqlite_path(url).exists():
        msg = (
            f"the state database {str(sqlite_path(url))!r} does not exist: check [state] url;"
            " the first sync creates it"
        )
        raise StateDatabaseError(msg)


def _check_report_path(path: Path) -> None:
    """Refuse a --report-json path that cannot be written, before anything is sent."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if path.is_dir():
        _fail(f"--report-json {str(path)!r} is a directory; name a file", EXIT_USAGE)
    if not folder.is_dir():
        _fail(f"--report-json {str(path)!r} is inside {str(folder)!r}, a file", EXIT_USAGE)
    if not os.access(folder, os.W_OK | os.X_OK):
        _fail(f"--report-json {str(path)!r}: {str(folder)!r} is not writable", EXIT_USAGE)


def _print_report(report: RunReport, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2, default=str))
    elif output == "plan":
        print_plan(_console(), report)
    else:
        print_summary(_console(), report)


report_json_option = click.option(
    "--report-json",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the run report as JSON to this file.",
)
lock_wait_option = click.option(
    "--lock-wait",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Wait at most this long for another run to finish (default: as long as it takes).",
)


@cli.command()
@click.option("--dry-run", is_flag=True, help="Plan and report, but write nothing anywhere.")
@click.option("--full", is_flag=True, help="Full reconcile; the same as 'staffsync resync'.")
@click.option("--only", "only", is_flag=True, help="Limit the run to the employee KEYS given.")
@click.option("--approve", metavar="PLAN_ID", help="Apply a plan that the safety guards held.")
@report_json_option
@lock_wait_option
@click.argument("keys", nargs=-1, metavar="[KEYS]...")
@click.pass_obj
def sync(
    options: CliOptions,
    dry_run: bool,
    full: bool,
    only: bool,
    approve: str | None,
    report_json: Path | None,
    lock_wait: float | None,
    keys: tuple[str, ...],
) -> None:
    """Make one run now: read the export, plan, and apply the changes to Staffbase."""
    problem = None
    if keys and not only:
        problem = "employee keys are only accepted after --only"
    elif only and not keys:
        problem = "--only needs at least one employee key"
    elif approve and (dry_run or only or full):
        problem = "--approve applies a stored plan as it is; it takes no other option"
    if problem:
        raise click.UsageError(problem)

    request = RunRequest(
        mode="full" if full else "incremental",
        dry_run=dry_run,
        only_keys=keys,
        approve=approve,
        report_path=report_json,
        lock_wait_seconds=lock_wait,
    )
    _run_and_report(options, request)


@cli.command()
@click.option(
    "--format",
    "output",
    type=click.Choice(["table", "json"]),
    default="table",
    help="A table per action, or the run report as JSON.",
)
@click.option("--full", is_flag=True, help="Plan a full reconcile (reads every Staffbase user).")
@report_json_option
@click.pass_obj
def plan(options: CliOptions, output: str, full: bool, report_json: Path | None) -> None:
    """Show what a sync would change, field by field, without writing anything."""
    request = RunRequest(
        mode="full" if full else "incremental", dry_run=True, report_path=report_json
    )
    _run_and_report(options, request, output="json" if output == "json" else "plan")


@cli.command()
@click.option("--dry-run", is_flag=True, help="Plan and report, but write nothing anywhere.")
@report_json_option
@lock_wait_option
@click.pass_obj
def resync(
    options: CliOptions, dry_run: bool, report_json: Path | None, lock_wait: float | None
) -> None:
    """Full reconcile: read every Staffbase user, adopt, repair drift, rebuild the state."""
    request = RunRequest(
        mode="full", dry_run=dry_run, report_path=report_json, lock_wait_seconds=lock_wait
    )
    _run_and_report(options, request)


@cli.command()
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table")
@click.option("--runs", default=10, show_default=True, help="How many recent runs to list.")
@click.pass_obj
def status(options: CliOptions, output: str, runs: int) -> None:
    """Show the last runs, the plans waiting for approval, and failing records."""
    from staffsync.state.migrate import ensure_schema
    from staffsync.state.status import read_status

    settings = options.settings()
    options.configure_logging(settings, default_format="console")
    try:
        _require_existing_sqlite(settings)
        engine = create_state_engine(settings.state)
        ensure_schema(engine, allow_upgrade=False)
        with engine.connect() as connection:
            data = read_status(connection, runs=runs)
    except SchemaOutdated as exc:
        _fail(str(exc))
    except StateDatabaseError as exc:
        _fail(str(exc), EXIT_USAGE)
    except sa.exc.DBAPIError as exc:
        _fail(unreachable_message(exc))
    if output == "json":
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        print_status(_console(), data)


@cli.group()
def db() -> None:
    """Migrations of the state database."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(options: CliOptions) -> None:
    """Upgrade the state database to this version's schema."""
    settings = options.settings()
    options.configure_logging(settings, default_format="console")
    try:
        before, after = upgrade(create_state_engine(settings.state))
    except StateDatabaseError as exc:
        _fail(str(exc), EXIT_USAGE)
    except sa.exc.DBAPIError as exc:
        _fail(unreachable_message(exc))
    click.echo(f"state database at revision {after} (was {before or 'empty'})")


@db.command("current")
@click.pass_obj
def db_current(options: CliOptions) -> None:
    """Print the state database's schema revision and the newest one."""
    settings = options.settings()
    options.configure_logging(settings, default_format="console")
    try:
        revision = current_revision(create_state_engine(settings.state))
    except StateDatabaseError as exc:
        _fail(str(exc), EXIT_USAGE)
    except sa.exc.DBAPIError as exc:
        _fail(unreachable_message(exc))
    click.echo(f"current: {revision or 'empty (run staffsync db upgrade)'}")
    click.echo(f"newest:  {head_revision()}")


@cli.command()
@click.pass_obj
def check(options: CliOptions) -> None:
    """Check the configuration, the export, the token and one read-only Staffbase call."""
    from staffsync.checks import run_checks

    settings = options.settings()
    options.configure_logging(settings, default_format="console")
    ok = run_checks(settings, _console())
    sys.exit(0 if ok else EXIT_FAILED)


@cli.command()
@click.option(
    "--count",
    default=500,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    help="People in the sample export.",
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the export, state DB and reports in this folder instead of a temp one.",
)
@click.pass_obj
def demo(options: CliOptions, count: int, keep: Path | None) -> None:
    """Sync a sample export into a local emulator twice; needs no config and no network."""
    from staffsync.demo import run_demo

    # The demo prints its own summaries; routine log lines would only interleave them.
    options.log_level = options.log_level or "warning"
    options.configure_logging(None, default_format="console")
    sys.exit(run_demo(_console(), count=count, folder=keep))


@cli.command()
@click.pass_obj
def run(options: CliOptions) -> None:
    """Run as a daemon: scheduled syncs and resyncs, ops endpoints, clean stop on SIGTERM."""
    from staffsync.daemon import run_daemon

    settings = options.settings()
    if options.log_format:
        settings.ops.log_format = options.log_format  # type: ignore[assignment]
    if options.log_level:
        settings.ops.log_level = options.log_level  # type: ignore[assignment]
    try:
        code = run_daemon(settings)
    except (ConfigError, StateDatabaseError) as exc:
        _fail(str(exc), EXIT_USAGE)
    except (OSError, SQLAlchemyError) as exc:
        # The ops address cannot be bound, or the state database cannot be migrated.
        # A supervisor (systemd, Docker, Kubernetes) starts the daemon again later.
        _fail(f"the daemon could not start: {redact_text(str(exc))}")
    sys.exit(code)


def _add_emulator_command() -> None:
    from staffsync.emulator.command import emulator_command

    cli.add_command(emulator_command)


_add_emulator_command()


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``staffsync`` console script."""
    return cli.main(args=argv, prog_name="staffsync")
