"""Serving the emulator with uvicorn in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from typing import TYPE_CHECKING, Any, Self, TypeVar

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from staffsync.emulator.app import create_app
from staffsync.emulator.config import EmulatorConfig
from staffsync.emulator.gateway import ABORT_EXTENSION

if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from types import TracebackType

    from starlette.applications import Starlette
    from uvicorn.server import ServerState

    from staffsync.emulator.app import Emulator

__all__ = ["EmulatorServer"]

_T = TypeVar("_T")

# Time allowed for uvicorn to bind its socket, and for requests in flight at stop.
_START_TIMEOUT_S = 10.0
_GRACEFUL_SHUTDOWN_S = 2


class AbortableH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a way for the app to reset the connection unanswered.

    Each request's scope gets the :data:`ABORT_EXTENSION` coroutine function. It closes
    the socket with SO_LINGER set to zero, so the peer receives a TCP reset. It returns
    only once uvicorn has seen the lost connection, because uvicorn would otherwise log
    a missing response and send a 500 in its place.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._lost = asyncio.Event()
        app = self.app

        async def app_with_abort(scope: Any, receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})[ABORT_EXTENSION] = self.abort_connection
            await app(scope, receive, send)

        self.app = app_with_abort

    def connection_lost(self, exc: Exception | None) -> None:
        """Record the loss for :meth:`abort_connection`, then let uvicorn clean up."""
        super().connection_lost(exc)
        self._lost.set()

    async def abort_connection(self) -> None:
        """Reset the connection without a response and wait until uvicorn has seen it."""
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()
        await self._lost.wait()


class _ThreadedUvicornServer(uvicorn.Server):
    """A uvicorn server that installs no signal handlers and stops without polling delay."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Leave signal handling to the host program."""
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start serving, then tell the starting thread that requests are accepted."""
        self.loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        await super().startup(sockets)
        self.ready.set()

    async def main_loop(self) -> None:
        """Tick like uvicorn (for the Date header), but wake at once when asked to stop."""
        assert self._wake is not None
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await self._wake.wait()

    def request_stop(self) -> None:
        """Ask the server to stop; callable from any thread."""
        self.should_exit = True
        if self.loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                self.loop.call_soon_threadsafe(self._wake.set)


def _bind_listener(host: str, port: int) -> socket.socket:
    """Bind the listening socket here, so that a taken port fails in the caller's thread."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP. With proto 0,
    # every small response would wait for the client's delayed ACK (about 40 ms).
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        msg = f"The emulator server could not listen on {host}:{port}: {exc.strerror or exc}."
        raise RuntimeError(msg) from exc
    return listener


class EmulatorServer:
    """The emulator served by uvicorn on a background thread.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. With ``port=0``
    the operating system picks a free port, and :attr:`port` holds the bound one.

    Args:
        config: The tenant's settings; defaults to :class:`EmulatorConfig`'s.
        host: Address to listen on.
        port: Port to listen on; 0 for any free port.
    """

    def __init__(
        self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or EmulatorConfig()
        self.host = host
        self.app: Starlette = create_app(self.config)
        self._requested_port = port
        self._port: int | None = None
        self._server: _ThreadedUvicornServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def emulator(self) -> Emulator:
        """The tenant, tokens, faults and statistics behind the app."""
        emulator: Emulator = self.app.state.emulator
        return emulator

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._port is None:
            msg = "The emulator server is not running; call start() first."
            raise RuntimeError(msg)
        return self._port

    @property
    def url(self) -> str:
        """The server's root URL, e.g. ``http://127.0.0.1:8900``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API base URL a client is configured with (the root URL plus ``/api``)."""
        return f"{self.url}/api"

    @property
    def token_url(self) -> str:
        """The OAuth token endpoint."""
        return f"{self.url}/oauth2/token"

    def start(self) -> Self:
        """Start serving and return once the port is bound.

        Raises:
            RuntimeError: The server is already running or could not start (for example
                because the port is taken).
        """
        if self._thread is not None:
            msg = "The emulator server is already running."
            raise RuntimeError(msg)

        listener = _bind_listener(self.host, self._requested_port)
        config = uvicorn.Config(
            self.app,
            http=AbortableH11Protocol,
            ws="none",
            lifespan="off",
            loop="asyncio",
            log_config=None,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
        )
        server = _ThreadedUvicornServer(config)
        thread = threading.Thread(
            target=server.run, args=([listener],), name="staffsync-emulator", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.ready.wait(0.01):
            if not thread.is_alive() or time.monotonic() > deadline:
                server.request_stop()
                listener.close()
                msg = "The emulator server failed to start; see the uvicorn error logged before."
                raise RuntimeError(msg)

        self._server = server
        self._thread = thread
        self._port = server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        """Stop serving, wait for the thread to end and save the state file if one is set."""
        if self._server is None or self._thread is None:
            return

        self._server.request_stop()
        self._thread.join(_START_TIMEOUT_S + _GRACEFUL_SHUTDOWN_S)
        self._server = None
        self._thread = None
        self._port = None

        writer = self.emulator.state_writer
        if writer is not None:
            writer.save_now()

    def call(self, function: Callable[[], _T]) -> _T:
        """Run ``function`` on the server's event loop and return its result.

        The tenant is not thread-safe; use this to read or change it from another thread.
        """
        if self._server is None or self._server.loop is None:
            msg = "The emulator server is not running; call start() first."
            raise RuntimeError(msg)

        async def run() -> _T:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self._server.loop).result()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
