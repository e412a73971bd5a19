"""The ASGI application of `taskmanager serve`: API Gateway's part on one machine.

Every API request becomes an API Gateway HTTP API (payload 2.0) event and goes to the
**same** Powertools resolver that serves AWS (``taskmanager.entrypoints.api.create_app``);
its response dict becomes the HTTP response. Only what API Gateway cannot do is served
here: the live streams (server-sent events) and the web page's static files.

- ``GET /tasks/{id}/events``: the task as it is now, then every change, then the stream
  ends after the terminal one (a client that reconnects gets the current task first, so it
  loses nothing);
- ``GET /events``: every change of every task (the web page's one stream; browsers allow
  only six connections per host);
- ``GET /`` and ``GET /static/...``: the web page.

The resolver keeps the current event in class attributes, so it is called on the event loop
thread only, one request at a time.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import itertools
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import parse_qsl

from taskmanager.domain.errors import TaskManagerError
from taskmanager.domain.events import TaskCreated, TaskResource, TaskSuccessful, task_resource
from taskmanager.domain.services import get_task
from taskmanager.entrypoints.local.hub import CLOSED

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from taskmanager.domain.events import OutboundEvent
    from taskmanager.entrypoints.local.runtime import LocalRuntime

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger("taskmanager.local")

#: API Gateway HTTP APIs refuse bodies over 10 MB; so does this server, before reading more.
MAX_BODY_BYTES: Final = 10 * 1024 * 1024
#: A comment line this often keeps idle streams open through proxies.
KEEPALIVE_SECONDS: Final = 15.0

_TASK_EVENTS: Final = re.compile(r"^/tasks/([^/]+)/events$")
_STATIC_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}
_TEXT_TYPES: Final = ("application/json", "text/", "application/x-www-form-urlencoded")


class Resolver(Protocol):
    def resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class LocalLambdaContext:
    """What a Lambda context offers that the resolver and Powertools read."""

    aws_request_id: str
    function_name: str = "taskmanager-local"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:taskmanager-local"
    memory_limit_in_mb: int = 0
    log_group_name: str = "local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


#: One context for every request (the request id is in the event's ``requestContext``).
_CONTEXT: Final = LocalLambdaContext("taskmanager-local")


def load_static() -> dict[str, bytes]:
    """The web page's files, read once from the package."""
    files: dict[str, bytes] = {}
    root = resources.files("taskmanager.entrypoints.local") / "static"
    for entry in root.iterdir():
        if entry.is_file() and not entry.name.startswith((".", "_")):
            files[entry.name] = entry.read_bytes()
    return files


def error_body(code: str, message: str, details: Any = None) -> bytes:
    body = {"error": {"code": code, "message": message, "details": details}}
    return json.dumps(body, separators=(",", ":")).encode()


class _RequestIds:
    """Unique request ids without a system call each: a random prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = uuid.uuid4().hex[:20]
        self._counter = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):012x}"


_request_ids = _RequestIds()


@functools.lru_cache(maxsize=4)
def _request_time(epoch_seconds: int) -> str:
    """API Gateway's ``requestContext.time`` (CLF format), formatted once per second."""
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch_seconds))


def api_event(scope: Scope, body: bytes) -> dict[str, Any]:
    """The API Gateway HTTP API (payload 2.0) event for one request."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
        elif name in headers:
            headers[name] = f"{headers[name]},{value}"
        else:
            headers[name] = value
    raw_query = scope.get("query_string", b"").decode("latin-1")
    query: dict[str, str] = {}
    if raw_query:
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
    content_type = headers.get("content-type", "")
    is_text = not body or content_type.startswith(_TEXT_TYPES)
    if is_text:
        try:
            text_body: str | None = body.decode("utf-8") if body else None
            encoded = False
        except UnicodeDecodeError:
            is_text = False
    if not is_text:
        text_body, encoded = base64.b64encode(body).decode("ascii"), True
    client = scope.get("client") or ("127.0.0.1", 0)
    now = time.time()
    method = scope["method"]
    path = scope["path"]
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": headers.get("host", "localhost"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": f"HTTP/{scope.get('http_version', '1.1')}",
                "sourceIp": client[0],
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": _request_ids.next(),
            "routeKey": "$default",
            "stage": "$default",
            "time": _request_time(int(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": encoded,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if text_body is not None:
        event["body"] = text_body
    return event


def _sse(event_name: str, data: str, event_id: int | None = None) -> bytes:
    lines = [f"event: {event_name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in data.splitlines() or [""])
    return ("\n".join(lines) + "\n\n").encode()


def task_resource_from_event(event: OutboundEvent, input_value: Any) -> TaskResource:
    """The task resource at the version an event announces (events omit ``input``)."""
    return TaskResource.model_construct(
        id=event.id,
        type=event.type,
        status=event.status,
        input=event.input if isinstance(event, TaskCreated) else input_value,
        progress=event.progress,
        result=event.result if isinstance(event, TaskSuccessful) else None,
        error=event.error,
        version=event.version,
        created_at=event.created_at,
        updated_at=event.updated_at,
        started_at=event.started_at,
        finished_at=event.finished_at,
        deadline_at=event.deadline_at,
        heartbeat_seconds=event.heartbeat_seconds,
        expires_at=event.expires_at,
    )


class LocalApp:
    """ASGI 3 application: API requests to the resolver, streams and static files here."""

    def __init__(
        self,
        runtime: LocalRuntime,
        resolver: Resolver,
        *,
        static: dict[str, bytes] | None = None,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
    ) -> None:
        self.runtime = runtime
        self.resolver = resolver
        self.static = load_static() if static is None else static
        self.keepalive_seconds = keepalive_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

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

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        if method in {"GET", "HEAD"}:
            if path == "/events":
                await self._stream(None, receive, send)
                return
            match = _TASK_EVENTS.match(path)
            if match is not None:
                await self._stream(match.group(1), receive, send)
                return
            if path == "/" or path.startswith("/static/"):
                await self._static(path, method, send)
                return
        body = await self._read_body(receive)
        if body is None:
            await self._respond(
                send,
                413,
                error_body(
                    "PAYLOAD_TOO_LARGE",
                    f"request body is over {MAX_BODY_BYTES} bytes",
                    {"limit": MAX_BODY_BYTES},
                ),
            )
            return
        event = api_event(scope, body)
        try:
            response = self.resolver.resolve(event, _CONTEXT)
        except Exception:  # the resolver maps every known error; anything else is ours
            logger.exception("request %s failed", event["requestContext"]["requestId"])
            body = error_body("INTERNAL_ERROR", "the server failed; see its log", None)
            await self._respond(send, 500, body)
            return
        await self._send_api_response(send, response, head=method == "HEAD")

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _send_api_response(self, send: Send, response: dict[str, Any], *, head: bool) -> None:
        headers: list[tuple[bytes, bytes]] = []
        for name, value in (response.get("headers") or {}).items():
            headers.append((name.lower().encode("latin-1"), str(value).encode("latin-1")))
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers.extend(
                (name.lower().encode("latin-1"), str(v).encode("latin-1")) for v in values
            )
        headers.extend((b"set-cookie", c.encode("latin-1")) for c in response.get("cookies") or [])
        raw = response.get("body") or ""
        if response.get("isBase64Encoded"):
            body = base64.b64decode(raw)
        else:
            body = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
        await send(
            {
                "type": "http.response.start",
                "status": int(response.get("statusCode", 200)),
                "headers": headers,
            }
        )
        await send({"type": "http.response.body", "body": b"" if head else body})

    async def _respond(
        self,
        send: Send,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        headers = [(b"content-type", content_type.encode()), *(extra or [])]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _static(self, path: str, method: str, send: Send) -> None:
        name = "index.html" if path == "/" else path.removeprefix("/static/")
        content = self.static.get(name)
        if content is None:
            await self._respond(
                send, 404, error_body("NOT_FOUND", f"no file {path}", {"path": path})
            )
            return
        suffix = name[name.rfind(".") :] if "." in name else ""
        content_type = _STATIC_TYPES.get(suffix, "application/octet-stream")
        await self._respond(
            send,
            200,
            b"" if method == "HEAD" else content,
            content_type,
            [(b"cache-control", b"no-cache")],
        )

    async def _stream(self, task_id: str | None, receive: Receive, send: Send) -> None:
        runtime = self.runtime
        watcher = runtime.hub.watch(task_id)
        try:
            input_value: Any = None
            last_version = 0
            first: bytes | None = None
            if task_id is not None:
                try:
                    task = get_task(
                        task_id, owner=runtime.config.owner, repo=runtime.repo, clock=runtime.clock
                    )
                except TaskManagerError as exc:
                    status = 404 if exc.code == "TASK_NOT_FOUND" else 400
                    await self._respond(
                        send, status, error_body(exc.code, exc.message, exc.details)
                    )
                    return
                input_value, last_version = task.input, task.version
                first = _sse("task", task_resource(task).model_dump_json(), task.version)
                if task.is_terminal:
                    await self._start_stream(send)
                    await send({"type": "http.response.body", "body": first})
                    return
            await self._start_stream(send)
            await send(
                {
                    "type": "http.response.body",
                    "body": first or b": connected\n\n",
                    "more_body": True,
                }
            )
            await self._follow(watcher.queue, receive, send, task_id, (input_value, last_version))
        finally:
            runtime.hub.unwatch(watcher)

    async def _start_stream(self, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )

    async def _follow(
        self,
        changes: asyncio.Queue[OutboundEvent | None],
        receive: Receive,
        send: Send,
        task_id: str | None,
        snapshot: tuple[Any, int],
    ) -> None:
        """Send each change after the snapshot's version; end after a terminal one."""
        input_value, last_version = snapshot
        disconnected = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            while True:
                next_change = asyncio.ensure_future(changes.get())
                done, _ = await asyncio.wait(
                    {next_change, disconnected},
                    timeout=self.keepalive_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if disconnected in done:
                    next_change.cancel()
                    return
                if next_change not in done:
                    next_change.cancel()
                    await send(
                        {
                            "type": "http.response.body",
                            "body": b": keepalive\n\n",
                            "more_body": True,
                        }
                    )
                    continue
                event = next_change.result()
                if event is CLOSED:
                    break
                if task_id is not None:
                    if event.version <= last_version:  # a redelivery, or older than the snapshot
                        continue
                    last_version = event.version
                elif not await self._owned(event.id):
                    continue
                resource = task_resource_from_event(event, input_value)
                chunk = _sse(event.DETAIL_TYPE, resource.model_dump_json(), event.version)
                terminal = task_id is not None and event.status.is_terminal
                await send({"type": "http.response.body", "body": chunk, "more_body": not terminal})
                if terminal:
                    return
            await send({"type": "http.response.body", "body": b""})
        finally:
            disconnected.cancel()

    async def _owned(self, task_id: str) -> bool:
        """The all-tasks stream carries only the local owner's tasks: the file may hold
        another owner's (a shared or embedded store), and their changes are not ours to see."""
        runtime = self.runtime
        task = await asyncio.to_thread(runtime.repo.get, task_id)
        return task is not None and task.owner == runtime.config.owner


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
