"""Operations endpoints: ``/healthz`` (liveness), ``/readyz`` (readiness), ``/metrics``.

A small WSGI app on the standard library's ``wsgiref`` server, in daemon threads, so no
web framework runs in production. Liveness never looks at the state database or
Staffbase, so an outage of either cannot make an orchestrator restart the daemon in a loop.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import socketserver
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import structlog
from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from staffsync.logs import redact_text
from staffsync.metrics import REGISTRY

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["OpsServer", "make_readiness", "parse_listen"]

log = structlog.get_logger(__name__)

MAX_REASON_LENGTH = 300
STOP_TIMEOUT_SECONDS = 5.0
# How often the serving thread checks for shutdown(); stop() waits up to this long.
SHUTDOWN_POLL_SECONDS = 0.1

_LISTEN = re.compile(r"^(?:\[(?P<ipv6>[^\]]+)\]|(?P<host>[^:\[\]]+)):(?P<port>\d{1,5})$")


def parse_listen(listen: str) -> tuple[str, int]:
    """Split ``host:port`` (or ``[ipv6]:port``) into a host and a port number.

    Raises:
        ValueError: the value is not of that form or the port is above 65535; the message
            shows the value and examples of the accepted forms.
    """
    match = _LISTEN.match(listen.strip())
    port = int(match.group("port")) if match else -1
    if match is None or port > 65535:
        msg = (
            f"[ops] listen must be HOST:PORT, such as 127.0.0.1:9464, 0.0.0.0:9464 or"
            f" [::]:9464 (port 0 picks a free port); got {listen!r}"
        )
        raise ValueError(msg)

    host = match.group("ipv6") or match.group("host")
    if match.group("ipv6"):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            msg = f"[ops] listen has an invalid IPv6 address in brackets: {listen!r}"
            raise ValueError(msg) from None
    return host, port


class OpsServer:
    """Serves ``/healthz``, ``/readyz`` and ``/metrics`` in a background thread.

    Args:
        listen: ``host:port`` to bind; port 0 picks a free port (see :attr:`port`).
        readiness: returns ``(ready, reason)``. ``/readyz`` responds 200 or 503 with the reason.
        liveness: returns whether the scheduler still runs. Without it, ``/healthz``
            responds 200 while the process serves requests.
    """

    def __init__(
        self,
        listen: str,
        readiness: Callable[[], tuple[bool, str]],
        liveness: Callable[[], bool] | None = None,
    ) -> None:
        self._host, self._requested_port = parse_listen(listen)
        self._readiness = readiness
        self._liveness = liveness
        self._metrics_app = make_wsgi_app(REGISTRY)
        self._server: _OpsHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port; differs from the configured one when that was 0."""
        if self._server is None:
            msg = "the ops server is not running; call start() first"
            raise RuntimeError(msg)
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind the socket and serve in a daemon thread.

        Raises:
            OSError: the address cannot be bound (in use, not local …); the message names it.
        """
        server_class = _server_class_for(self._host, self._requested_port)
        try:
            server = make_server(
                self._host,
                self._requested_port,
                self._route,
                server_class=server_class,
                handler_class=_LoggingRequestHandler,
            )
        except OSError as exc:
            msg = (
                f"cannot listen on {self._host}:{self._requested_port} for the ops endpoints:"
                f" {exc.strerror or exc}; change [ops] listen or STAFFSYNC_OPS__LISTEN"
            )
            raise OSError(exc.errno, msg) from exc

        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name="staffsync-ops",
            daemon=True,
        )
        self._thread.start()
        log.info("ops_server_started", host=self._host, port=self.port)

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call more than once."""
        server, thread = self._server, self._thread
        if server is None:
            return

        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(STOP_TIMEOUT_SECONDS)
        self._server = None
        self._thread = None

    def _route(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/metrics":
            response: Iterable[bytes] = self._metrics_app(environ, start_response)
            return response

        handlers = {"/healthz": self._healthz, "/readyz": self._readyz}
        handler = handlers.get(path)
        if handler is None:
            return _respond(start_response, "404 Not Found", "not found\n", method)
        if method not in ("GET", "HEAD"):
            return _respond(
                start_response,
                "405 Method Not Allowed",
                "use GET or HEAD\n",
                method,
                [("Allow", "GET, HEAD")],
            )

        try:
            status, body = handler()
        except Exception as exc:
            log.exception("ops_check_failed", path=path)
            status, body = "503 Service Unavailable", f"check raised {type(exc).__name__}\n"
        return _respond(start_response, status, body, method)

    def _healthz(self) -> tuple[str, str]:
        if self._liveness is None or self._liveness():
            return "200 OK", "ok\n"
        return "503 Service Unavailable", "scheduler is not running\n"

    def _readyz(self) -> tuple[str, str]:
        ready, reason = self._readiness()
        reason = _short(redact_text(reason))
        if ready:
            return "200 OK", f"ready: {reason}\n"
        return "503 Service Unavailable", f"not ready: {reason}\n"


def _respond(
    start_response: StartResponse,
    status: str,
    body: str,
    method: str,
    extra_headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    payload = body.encode("utf-8")
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(payload))),
        ("Cache-Control", "no-store"),
        *(extra_headers or []),
    ]
    start_response(status, headers)
    return [] if method == "HEAD" else [payload]


def _short(text: str) -> str:
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    if len(first_line) > MAX_REASON_LENGTH:
        return first_line[: MAX_REASON_LENGTH - 1] + "…"
    return first_line


class _OpsHTTPServer(ThreadingWSGIServer):
    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN. That DNS lookup can stall
        # start-up for seconds in a container without a resolver, and the name is unused.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = port
        self.setup_environ()


def _server_class_for(host: str, port: int) -> type[_OpsHTTPServer]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        msg = f"[ops] listen host {host!r} does not resolve: {exc.strerror}"
        raise OSError(exc.errno, msg) from exc
    family = infos[0][0]
    return type("OpsHTTPServer", (_OpsHTTPServer,), {"address_family": family})


class _LoggingRequestHandler(WSGIRequestHandler):
    """Request handler that logs through structlog at DEBUG instead of printing to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("ops_request", client=self.client_address[0], line=format % args)


def make_readiness(
    check_db: Callable[[], None],
    last_runs: Callable[[], tuple[datetime | None, str | None]],
    max_failed_age_s: float,
    *,
    now: Callable[[], datetime] | None = None,
    up_since: datetime | None = None,
) -> Callable[[], tuple[bool, str]]:
    """Build the ``/readyz`` check of the daemon.

    The daemon is ready while the state database responds and runs are not failing for
    long. It turns not ready when the latest run failed and the last successful run is
    older than ``max_failed_age_s``, or when no run has succeeded and the daemon has been
    up longer than that.

    Args:
        check_db: raises when the state database cannot be queried.
        last_runs: returns when the last successful run finished (None if never) and the
            status of the latest run (``succeeded``, ``partial``, ``blocked``, ``failed``,
            or None when there was no run yet). Naive datetimes are taken as UTC.
        max_failed_age_s: how long runs may fail before the daemon reports not ready.
        now: clock returning an aware UTC datetime; for tests.
        up_since: when the daemon started; defaults to the time of this call.
    """
    clock = now or _utc_now
    started = up_since or clock()
    limit = timedelta(seconds=max_failed_age_s)

    def readiness() -> tuple[bool, str]:
        try:
            check_db()
        except Exception as exc:
            return False, f"state database check failed: {type(exc).__name__}: {exc}"
        try:
            last_success, latest_status = last_runs()
        except Exception as exc:
            return False, f"reading the run history failed: {type(exc).__name__}: {exc}"

        return _judge_history(last_success, latest_status, clock(), started, limit)

    return readiness


def _judge_history(
    last_success: datetime | None,
    latest_status: str | None,
    now: datetime,
    started: datetime,
    limit: timedelta,
) -> tuple[bool, str]:
    if latest_status != "failed":
        return True, f"latest run {latest_status}" if latest_status else "no run yet"

    limit_text = f"limit {limit.total_seconds():g} s"
    if last_success is None:
        up_for = now - started
        if up_for > limit:
            reason = (
                f"latest run failed and no run succeeded in {_seconds(up_for)} since start"
                f" ({limit_text})"
            )
            return False, reason
        return True, "latest run failed; no run has succeeded yet"

    age = now - _as_utc(last_success)
    if age > limit:
        reason = (
            f"latest run failed and the last successful run finished {_seconds(age)} ago"
            f" ({limit_text})"
        )
        return False, reason
    return True, f"latest run failed; last success {_seconds(age)} ago"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():.0f} s"
