"""`taskmanager serve`: the API, the web page and the processors on one machine.

The HTTP routes are the AWS ones (``taskmanager.entrypoints.api.create_app``) over the
SQLite store, behind uvicorn; see :mod:`taskmanager.entrypoints.local.asgi`.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import uvicorn

from taskmanager.adapters.memory import InMemoryTaskRepository
from taskmanager.adapters.sqlite import SQLiteTaskRepository
from taskmanager.entrypoints.api import create_app
from taskmanager.entrypoints.http.owners import fixed_owner
from taskmanager.entrypoints.local.asgi import LocalApp, RequestGuard
from taskmanager.entrypoints.local.limits import MAX_HEAD_BYTES, http_protocol
from taskmanager.entrypoints.local.processors import job_for, load_processors
from taskmanager.entrypoints.local.runtime import LocalRuntime, RuntimeConfig

if TYPE_CHECKING:
    from collections.abc import Generator
    from types import FrameType

    from taskmanager.entrypoints.local.store import Store

logger = logging.getLogger("taskmanager.local")

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8000
DEFAULT_DB: Final = "taskmanager.db"


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
    config = RuntimeConfig(
        workers=options.workers,
        grace_seconds=options.grace_seconds,
        sweep_interval=options.sweep_interval,
    )
    runtime = LocalRuntime(open_store(options.db), config)
    for processor in processors:
        runtime.add_job(processor.task_type, job_for(processor, runtime))
    api = create_app(runtime.deps, owner=fixed_owner(config.owner))
    guard = RequestGuard(options.host, options.allowed_hosts)
    return runtime, LocalApp(runtime, api, guard=guard)


def serve(options: ServeOptions) -> int:
    """Run until SIGINT or SIGTERM; returns the exit code."""
    if not is_loopback(options.host):
        logger.warning(
            "binding %s: anyone who can reach this address can submit and cancel tasks; "
            "there is no authentication locally",
            options.host,
        )
    runtime, app = build(options)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Live streams end first, so uvicorn's wait for open connections is short.
            runtime.begin_shutdown()
            super().handle_exit(sig, frame)

        @contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            # uvicorn re-raises the signal after shutdown; a graceful stop exits 0 instead.
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            signals = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

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
    )
    server = Server(config)
    server.run()
    return 0 if server.started else 1
