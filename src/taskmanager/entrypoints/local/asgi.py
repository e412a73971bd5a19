"""The ASGI application of `taskmanager serve`: API Gateway's part on one machine.

Every API request goes to the **same** route table that serves AWS
(``taskmanager.entrypoints.api.create_app``): :meth:`TaskApi.handle` runs the same checks,
parameter binding and route functions as the Lambda handler's Powertools resolver, without
building an API Gateway event (one machine needs no gateway payload, and skipping it keeps a
request cheap). Only what API Gateway cannot do is served here:

- ``GET /tasks/{id}/events`` and ``GET /events``: the live streams (server-sent events,
  :mod:`.streams`);
- ``GET /`` and ``GET /static/...``: the web page;
- ``/ws``: the push protocol over a WebSocket (:mod:`.sockets`, docs/push.md).

Before any of it, a request must be addressed to this server (:class:`RequestGuard`): its
``Host`` must be one the server serves, or any web page the user visits could rebind its own
name to this machine and read tasks (DNS rebinding; 421 ``HOST_NOT_ALLOWED``); and a write
sent by a page of another site (an ``Origin`` other than the server's own) is refused (403
``CROSS_SITE_REQUEST``): a form posted across sites needs no preflight.

Requests are handled on the event loop thread, one at a time. **Group commit**: the writes
of the requests handled in one turn of the event loop share one SQLite transaction, committed
at the start of the next turn; every request of that turn is answered after the commit (a
202 still means the task and its outbox row are committed), and the batch's events are
delivered on this thread right after the commit (see ``LocalRuntime.commit_batch``). Under
load one COMMIT then serves many requests; alone, a request waits for its own commit as
before. The batch commits whole or not at all: should a write fail after writing rows (a
disk error between its two statements), every request of the batch is answered 503 and
none of them left anything.
"""

from __future__ import annotations

import asyncio
import re
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

from taskmanager.domain.errors import StorageError
from taskmanager.entrypoints.http_errors import (
    BodyTooLargeError,
    CrossSiteRequestError,
    HostNotAllowedError,
    RouteNotFoundError,
    error_response,
    internal_error,
)
from taskmanager.entrypoints.local.sockets import PushSockets
from taskmanager.entrypoints.local.streams import KEEPALIVE_SECONDS, LiveStreams

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from aws_lambda_powertools.event_handler import Response

    from taskmanager.domain.errors import TaskManagerError
    from taskmanager.entrypoints.http.route_table import TaskApi
    from taskmanager.entrypoints.local.runtime import LocalRuntime

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]

#: API Gateway HTTP APIs refuse bodies over 10 MB; so does this server, before reading more.
MAX_BODY_BYTES: Final = 10 * 1024 * 1024
_TASK_EVENTS: Final = re.compile(r"^/tasks/([^/]+)/events$")
_STATIC_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}

#: The names every local server answers to, whatever address it is bound to.
LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "[::1]"})
#: Methods that change something: refused when a page of another site sends them.
_WRITES: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Sent with the web page: its own script, style and requests only; no framing (so no
#: other site can overlay it), no content-type guessing.
PAGE_SECURITY_HEADERS: Final = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        b"frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


def host_name(host: str) -> str:
    """The name part of a ``Host`` value (``[::1]:8000`` -> ``[::1]``), lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] or host
    return host.rpartition(":")[0] if ":" in host else host


def _as_host(name: str) -> str:
    """``name`` as a ``Host`` header names it: an IPv6 address in brackets, lower case."""
    name = name.strip().lower()
    return f"[{name}]" if name.count(":") >= 2 and not name.startswith("[") else host_name(name)


class RequestGuard:
    """Whether a request is addressed to this server and, for a write, sent by its own page.

    ``hosts`` are the host names served (the port is not compared: the connection already
    came to this server's port); ``None`` serves any name. A request without ``Host`` (HTTP
    1.0) is served: no browser sends one. A write (POST, PUT, PATCH, DELETE) with an
    ``Origin`` header must come from the origin the request is addressed to (``http://`` or
    ``https://`` and its ``Host``); one without ``Origin`` (curl, the CLI) is not sent by a
    page of another site."""

    def __init__(self, bound: str = "127.0.0.1", allowed: tuple[str, ...] = ()) -> None:
        self.hosts: frozenset[str] | None = None
        if "*" not in allowed:
            self.hosts = LOOPBACK_HOSTS | {_as_host(bound)} | {_as_host(n) for n in allowed}
        #: ``Host`` values already accepted, as sent: the same one comes with every request.
        self._accepted: set[bytes] = set()

    def refusal(self, scope: Scope) -> TaskManagerError | None:
        """Why the request is refused, or ``None`` to serve it. A WebSocket handshake counts
        as a write: a page of another site may not open one (browsers send its ``Origin``
        and no preflight)."""
        host = origin = None
        for name, value in scope["headers"]:
            if name == b"host":
                if host is not None:  # which one would the page's own be? neither
                    return HostNotAllowedError(
                        f"{host.decode('latin-1')}, {value.decode('latin-1')}"
                    )
                host = value
            elif name == b"origin":
                origin = value
        if host is not None and host not in self._accepted:
            text = host.decode("latin-1")
            if self.hosts is not None and host_name(text) not in self.hosts:
                return HostNotAllowedError(text)
            if len(self._accepted) < _NAME_CACHE_MAX:  # a client chooses its Host values
                self._accepted.add(host)
        if (
            origin is not None
            and (scope.get("type") == "websocket" or scope.get("method") in _WRITES)
            and (host is None or origin not in {b"http://" + host, b"https://" + host})
        ):
            return CrossSiteRequestError(origin.decode("latin-1"))
        return None


def load_static() -> dict[str, bytes]:
    """The web page's files, read once from the package."""
    files: dict[str, bytes] = {}
    root = resources.files("taskmanager.entrypoints.local") / "static"
    for entry in root.iterdir():
        if entry.is_file() and not entry.name.startswith((".", "_")):
            files[entry.name] = entry.read_bytes()
    return files


#: Header names as this server reads them (request) and writes them (response), each
#: converted once: the same few names come with every request. Bounded, since a client
#: chooses its header names.
_NAME_CACHE_MAX: Final = 256


@lru_cache(maxsize=_NAME_CACHE_MAX)
def _request_name(raw: bytes) -> str:
    return raw.decode("latin-1").lower()


@lru_cache(maxsize=_NAME_CACHE_MAX)
def _response_name(name: str) -> bytes:
    return name.lower().encode("latin-1")


def _headers_and_query(scope: Scope) -> tuple[dict[str, str], dict[str, str | list[str]]]:
    """The request's headers (lower-case names, repeats joined with ``,`` as API Gateway
    does) and query (a repeated name has the list of its values)."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = _request_name(raw_name)
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    query: dict[str, str | list[str]] = {}
    raw_query = scope.get("query_string", b"")
    if raw_query:
        for key, value in parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True):
            known = query.get(key)
            if known is None:
                query[key] = value
            elif isinstance(known, list):
                known.append(value)
            else:
                query[key] = [known, value]
    return headers, query


class LocalApp:
    """ASGI 3 application: API requests to the route table, live streams to
    :class:`LiveStreams`, the web page's files from here."""

    def __init__(
        self,
        runtime: LocalRuntime,
        api: TaskApi,
        *,
        static: dict[str, bytes] | None = None,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
        guard: RequestGuard | None = None,
    ) -> None:
        self.runtime = runtime
        self.guard = RequestGuard() if guard is None else guard
        self.api = api
        self.static = load_static() if static is None else static
        self.streams = LiveStreams(runtime, keepalive_seconds=keepalive_seconds)
        self.sockets = PushSockets(runtime, lambda write: self._join_batch(write=write))
        self._batch: asyncio.Future[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # An API request is served in this coroutine itself, without another below it: each
        # coroutine layer costs every request (docs/performance.md).
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(receive, send)
            elif scope["type"] == "websocket":
                await self._websocket(scope, receive, send)
            return
        refusal = self.guard.refusal(scope)
        if refusal is not None:
            await self._answer(send, error_response(refusal))
            return
        method, path = scope["method"], scope["path"]
        if method in {"GET", "HEAD"}:
            served_here = self._not_api(method, path, receive, send)
            if served_here is not None:
                await served_here
                return
        message = await receive()
        body: bytes | None
        if message["type"] == "http.request" and not message.get("more_body", False):
            whole: bytes = message.get("body", b"")  # the usual case: one message
            body = whole if len(whole) <= MAX_BODY_BYTES else None
        else:
            body = await self._read_rest(message, receive)
        if body is None:
            await self._answer(send, error_response(BodyTooLargeError(MAX_BODY_BYTES)))
            return
        batch = self._join_batch(write=method == "POST")
        try:
            response = self.api.handle(method, path, *_headers_and_query(scope), body)
        except Exception as exc:  # the API maps every known error; anything else is ours
            response = error_response(internal_error(exc, "the server failed; see its log"))
        if batch is not None:  # what this request wrote or read is answered once committed
            try:
                await batch
            except StorageError as exc:
                response = error_response(exc)
        status, headers, body = _api_answer(response)
        await _send_whole(send, status, headers, body, head=method == "HEAD")

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``/ws``; a handshake refused (another site's page, a host not served, another
        path) is closed before it is accepted: the client sees HTTP 403."""
        if scope["path"] != "/ws" or self.guard.refusal(scope) is not None:
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})
            return
        await self.sockets.serve(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.runtime.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.get_running_loop().run_in_executor(None, self.runtime.shutdown)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _not_api(
        self, method: str, path: str, receive: Receive, send: Send
    ) -> Awaitable[None] | None:
        """What serves a GET or HEAD of a stream or of the page (``None`` for the API)."""
        if path == "/events":
            return self._stream(None, receive, send)
        # Only a path ending so is tried: the pattern backtracks along any other task path
        # before it fails (docs/performance.md).
        match = _TASK_EVENTS.match(path) if path.endswith("/events") else None
        if match is not None:
            return self._stream(match.group(1), receive, send)
        if path == "/" or path.startswith("/static/"):
            return self._static(path, method, send)
        return None

    def _join_batch(self, *, write: bool) -> asyncio.Future[None] | None:
        """The open group-commit batch (opened for a write when none is): a future done
        when it is committed. ``None`` when no batch is open and none is needed."""
        if self._batch is None and write and self.runtime.repo.batches:
            try:
                self.runtime.begin_batch()
            except StorageError:
                return None  # the write itself will fail and say so
            loop = asyncio.get_running_loop()
            self._batch = loop.create_future()
            loop.call_soon(self._commit_batch)
        return self._batch

    def _commit_batch(self) -> None:
        batch, self._batch = self._batch, None
        try:
            self.runtime.commit_batch()
        except StorageError as exc:
            if batch is not None and not batch.done():
                batch.set_exception(exc)
            return
        if batch is not None and not batch.done():
            batch.set_result(None)

    async def _read_rest(self, message: Message, receive: Receive) -> bytes | None:
        """The body of a request that came in several messages, ``message`` the first;
        ``None`` once it is over ``MAX_BODY_BYTES`` (nothing more is read)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
            message = await receive()
        return b"".join(chunks)

    async def _respond(
        self,
        send: Send,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        extra: list[tuple[bytes, bytes]] | None = None,
        *,
        head: bool = False,
    ) -> None:
        headers = [(b"content-type", content_type.encode()), *(extra or [])]
        await _send_whole(send, status, headers, body, head=head)

    async def _answer(self, send: Send, response: Response[str]) -> None:
        """Send an answer of the route table's kind (an error, here)."""
        status, headers, body = _api_answer(response)
        await _send_whole(send, status, headers, body, head=False)

    async def _static(self, path: str, method: str, send: Send) -> None:
        name = "index.html" if path == "/" else path.removeprefix("/static/")
        content = self.static.get(name)
        if content is None:
            await self._answer(send, error_response(RouteNotFoundError(method, path)))
            return
        suffix = name[name.rfind(".") :] if "." in name else ""
        content_type = _STATIC_TYPES.get(suffix, "application/octet-stream")
        await self._respond(
            send,
            200,
            content,
            content_type,
            [(b"cache-control", b"no-cache"), *PAGE_SECURITY_HEADERS],
            head=method == "HEAD",
        )

    async def _stream(self, task_id: str | None, receive: Receive, send: Send) -> None:
        if self._batch is not None:  # the snapshot must not read an uncommitted write
            await asyncio.wait({self._batch})
        refusal = await self.streams.serve(task_id, receive, send)
        if refusal is not None:
            await self._answer(send, refusal)


def _api_answer(response: Response[Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The status, ASGI headers and body of the route table's answer."""
    headers: list[tuple[bytes, bytes]] = []
    for name, values in response.headers.items():
        raw_name = _response_name(name)
        if isinstance(values, list):
            headers.extend((raw_name, str(value).encode("latin-1")) for value in values)
        else:
            headers.append((raw_name, str(values).encode("latin-1")))
    if response.cookies:
        cookies = response.cookies
        headers.extend((b"set-cookie", str(cookie).encode("latin-1")) for cookie in cookies)
    raw = response.body
    body = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw or b"")
    return response.status_code, headers, body


async def _send_whole(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, head: bool
) -> None:
    """Answer a body known whole: its length said (for HEAD, only said, as for its GET)
    rather than left to chunked transfer encoding."""
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})
