"""The ``emulator`` command: serve the Staffbase emulator until SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click

from staffsync.emulator.config import EmulatorConfig
from staffsync.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from types import FrameType

__all__ = ["emulator_command"]

_DEFAULTS = EmulatorConfig()


class _ConfigurationError(click.ClickException):
    """An invalid setting, such as an unreadable state file; exits with status 2."""

    exit_code = 2


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8900,
    show_default=True,
    help="Port to listen on; 0 picks a free port.",
)
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON file to load the users and groups from at start and save them to after changes.",
)
@click.option(
    "--client-id", default=_DEFAULTS.client_id, show_default=True, help="OAuth client id."
)
@click.option(
    "--client-secret",
    default=_DEFAULTS.client_secret,
    show_default=True,
    help="OAuth client secret.",
)
@click.option(
    "--api-token",
    default=_DEFAULTS.api_token,
    show_default=True,
    help="API token accepted as 'Authorization: Basic <token>'.",
)
@click.option(
    "--token-lifetime",
    type=click.FloatRange(min=0, min_open=True),
    default=_DEFAULTS.token_lifetime_s,
    show_default=True,
    help="Lifetime of issued access tokens, in seconds.",
)
def emulator_command(
    *,
    host: str,
    port: int,
    state_file: Path | None,
    client_id: str,
    client_secret: str,
    api_token: str,
    token_lifetime: float,
) -> None:
    """Serve the Staffbase emulator until stopped with SIGINT or SIGTERM.

    The first line printed is 'staffsync emulator listening on http://HOST:PORT'.
    """
    config = EmulatorConfig(
        client_id=client_id,
        client_secret=client_secret,
        api_token=api_token,
        token_lifetime_s=token_lifetime,
        state_file=state_file,
    )
    try:
        server = EmulatorServer(config, host=host, port=port)
    except ValueError as exc:
        raise _ConfigurationError(str(exc)) from exc

    stop_requested = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop_requested.set()

    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, request_stop) for signum in handled}
    try:
        _serve(server, stop_requested)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _serve(server: EmulatorServer, stop_requested: threading.Event) -> None:
    try:
        server.start()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc

    try:
        _print_banner(server)
        while not stop_requested.wait(0.5):
            pass
    finally:
        server.stop()


def _print_banner(server: EmulatorServer) -> None:
    config = server.config
    # Scripts parse this first line, so its wording is part of the command's contract.
    click.echo(f"staffsync emulator listening on {server.url}")
    click.echo(f"  base_url:      {server.base_url}")
    click.echo(f"  token_url:     {server.token_url}")
    click.echo(f"  client_id:     {config.client_id}")
    click.echo(f"  client_secret: {config.client_secret}")
    click.echo(f"  api_token:     {config.api_token}")
    if config.state_file is None:
        click.echo("  state_file:    none (users are kept in memory only)")
    else:
        users = len(server.emulator.tenant)
        click.echo(f"  state_file:    {config.state_file} ({users} users loaded)")
    click.echo("Stop with Ctrl+C or SIGTERM.")
