"""`taskmanager serve`: the API, the web page and the processors on one machine.

The HTTP routes are the AWS ones (``taskmanager.entrypoints.api.create_app``) over the
SQLite store, behind uvicorn; see :mod:`taskmanager.entrypoints.local.asgi`.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import signal
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import uvicorn

from taskmanager.adapters.memory import InMemoryTaskRepository
from taskmanager.adapters.sqlite import SQLiteTaskRepository
from taskmanager.domain.push import MAX_CLIENT_MESSAGE_BYTES
from taskmanager.domain.services import Policy
from taskmanager.entrypoints.api import create_app
from taskmanager.entrypoints.http.owners import fixed_owner
from taskmanager.entrypoints.local.asgi import LocalApp, RequestGuard
from taskmanager.entrypoints.local.limits import MAX_HEAD_BYTES, http_protocol
from taskmanager.entrypoints.local.processors import (
    ProcessorLoadError,
    job_for,
    load_processors,
)
from taskmanager.entrypoints.local.runtime import LocalRuntime, RuntimeConfig

if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from types import FrameType

    from taskmanager.entrypoints.local.store import Store

logger = logging.getLogger("taskmanager.local")

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8000
DEFAULT_DB: Final = "taskmanager.db"


class StartupError(Exception):
    """``serve`` cannot start: its port is taken, a ``--processor`` names nothing. The
    message is one line that says what to change."""


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    db: str = DEFAULT_DB
    processors: tuple[str, ...] = ()
    workers: int = 4
    grace_seconds: float = 10.0
    sweep_interval: float = 1.0
    log_level: str = "info"
    #: Host names served besides the loopback names and ``host`` (``--allowed-host``).
    allowed_hosts: tuple[str, ...] = ()
    #: Accept a submit of any task type, not only those of the processors loaded here
    #: (``--accept-any-type``: for processors that run elsewhere).
    accept_any_type: bool = False
    #: The start timeout of a task submitted without one (``--default-start-timeout-seconds``);
    #: None: none.
    default_start_timeout_seconds: int | None = None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_store(db: str) -> Store:
    """The SQLite store at ``db`` (a path; ``:memory:`` keeps tasks in memory only)."""
    if db == ":memory:":
        return InMemoryTaskRepository()
    Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # The runtime's checkpointer thread copies the log into the file: no request waits for it.
    store: Store = SQLiteTaskRepository(str(Path(db).expanduser()), autocheckpoint=False)
    return store


def build(options: ServeOptions) -> tuple[LocalRuntime, LocalApp]:
    """The runtime and the ASGI application, not yet started."""
    processors = load_processors(options.processors)
    # A submit names a type some processor here takes, unless told to accept any.
    task_types = None if options.accept_any_type else frozenset(p.task_type for p in processors)
    policy = Policy(
        default_start_timeout_seconds=options.default_start_timeout_seconds,
        task_types=task_types,
    )
    config = RuntimeConfig(
        workers=options.workers,
        grace_seconds=options.grace_seconds,
        sweep_interval=options.sweep_interval,
        policy=policy,
    )
    runtime = LocalRuntime(open_store(options.db), config)
    for processor in processors:
        runtime.add_job(processor.task_type, job_for(processor, runtime))
    api = create_app(runtime.deps, owner=fixed_owner(config.owner))
    guard = RequestGuard(options.host, options.allowed_hosts)
    return runtime, LocalApp(runtime, api, guard=guard)


def listen(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to every address of ``host`` (as uvicorn would bind them), before
    anything starts: a taken port is a :class:`StartupError`, not a server that reports
    its startup complete and then exits."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    sockets: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, found in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            address = found
            if port == 0 and len(sockets) > 1:  # one port for all of host's addresses
                address = (found[0], sockets[0].getsockname()[1], *found[2:])
            sock.bind(address)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        reason = (exc.strerror or str(exc)).lower()
        if exc.errno == errno.EADDRINUSE:
            reason += "; stop the server using it or choose another --port"
        raise StartupError(f"cannot listen on {where}: {reason}") from None
    return sockets


@contextmanager
def _signals_to(handler: Callable[[int, FrameType | None], None]) -> Generator[None, None, None]:
    """SIGINT and SIGTERM call ``handler`` (in the main thread; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def serve(options: ServeOptions) -> int:
    """Run until SIGINT or SIGTERM; returns the exit code. Raises :class:`StartupError`
    before anything starts when the port is taken or a ``--processor`` names nothing."""
    if not is_loopback(options.host):
        logger.warning(
            "binding %s: anyone who can reach this address can submit and cancel tasks; "
            "there is no authentication locally",
            options.host,
        )
    sockets = listen(options.host, options.port)
    try:
        runtime, app = build(options)
    except ProcessorLoadError as exc:
        for sock in sockets:
            sock.close()
        raise StartupError(str(exc)) from None

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Live streams end first, so uvicorn's wait for open connections is short.
            runtime.begin_shutdown()
            super().handle_exit(sig, frame)

        @contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            # serve() holds SIGINT and SIGTERM for the whole run, the runtime's shutdown
            # included; and uvicorn would re-raise the signal after shutdown, where a
            # graceful stop exits 0.
            yield

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await super().shutdown(sockets)
            if self.force_exit and not runtime.is_shut_down:
                # A second Ctrl-C before the app's shutdown began: uvicorn stops waiting for
                # open connections and skips it; it still runs (grace period included), so
                # the outbox is flushed and the store closed. The connections uvicorn no
                # longer waits for are dropped: their requests end as client disconnects.
                for connection in list(self.server_state.connections):
                    transport = getattr(connection, "transport", None)
                    if transport is not None:
                        transport.close()
                await self.lifespan.shutdown()

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # uvicorn says where it listens only for sockets it bound
                for sock in sockets or ():
                    host, port = sock.getsockname()[:2]
                    shown = f"[{host}]" if ":" in host else host
                    logger.info("listening on http://%s:%d (Ctrl-C to stop)", shown, port)

    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        lifespan="on",
        log_level=options.log_level,
        access_log=False,
        timeout_graceful_shutdown=max(1, int(options.grace_seconds)),
        server_header=False,
        # Nothing here reads the client's address or scheme (locations are relative paths),
        # so uvicorn's X-Forwarded-* middleware would only cost every request its pass.
        proxy_headers=False,
        # A request's line and headers are refused past MAX_HEAD_BYTES (431), before they
        # are read whole: by the protocol below with httptools, by h11's own limit without.
        http=http_protocol(),
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        # /ws (docs/push.md): the websockets library's sans-I/O protocol. A message over the
        # protocol's limit is answered with an error; one over twice that closes the socket
        # (1009, message too big) before it is read whole.
        ws="websockets-sansio",
        ws_max_size=2 * MAX_CLIENT_MESSAGE_BYTES,
        # Messages are small JSON on loopback: compression's per-connection zlib state
        # doubled the server's memory per socket for no gain (docs/performance.md).
        ws_per_message_deflate=False,
    )
    server = Server(config)
    with _signals_to(server.handle_exit):
        try:
            server.run(sockets=sockets)
        finally:
            for sock in sockets:
                sock.close()
            if server.started:
                # Should uvicorn have ended without the app's shutdown, it runs here; after
                # a normal stop this returns at once.
                runtime.shutdown()
    return 0 if server.started else 1
