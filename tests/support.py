"""Helpers shared by the handler tests: Lambda event fixtures from tests/events/*.json."""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

EVENTS = Path(__file__).parent / "events"
ALICE = "arn:aws:iam::123456789012:user/alice"


@functools.cache
def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return data


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of tests/events/<name>."""
    return copy.deepcopy(_load(name))


def http_event(
    method: str,
    path: str,
    body: str | bytes | None = None,
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    owner: str | None = ALICE,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload v2) event as Lambda receives it, IAM-authorised."""
    event = load_event("api_submit.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["headers"] = {
        k: v for k, v in event["headers"].items() if k not in {"content-type", "content-length"}
    }
    if body is None:
        event.pop("body")
    else:
        event["headers"]["content-type"] = "application/json"
        if isinstance(body, bytes):
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
        else:
            event["body"] = body
    event["headers"].update({k.lower(): v for k, v in (headers or {}).items()})
    if query:
        event["queryStringParameters"] = query
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    if owner is None:
        event["requestContext"].pop("authorizer")
    else:
        event["requestContext"]["authorizer"]["iam"]["userArn"] = owner
    return event


class _Handler(BaseHTTPRequestHandler):
    """Turns each HTTP request into an API Gateway v2 event for ``server.app``."""

    server: _AppServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.seen_headers.append(headers)
        event = http_event(self.command, url.path, owner=self.server.owner, query=query or None)
        event["headers"] = headers
        if body is not None:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
        response = self.server.app.resolve(event, None)
        payload = response.get("body", "").encode()
        self.send_response(response["statusCode"])
        for name, value in (response.get("headers") or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = do_PUT = _serve  # noqa: N815 (http.server names)

    def log_message(self, format: str, *args: Any) -> None:
        return


class _AppServer(ThreadingHTTPServer):
    def __init__(self, app: Any, owner: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.app, self.owner = app, owner
        self.seen_headers: list[dict[str, str]] = []


@contextlib.contextmanager
def serve(app: Any, owner: str = ALICE) -> Iterator[_AppServer]:
    """Serve a resolver over real HTTP on loopback (the way API Gateway calls the Lambda)."""
    server = _AppServer(app, owner)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def base_url(server: _AppServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"


@contextlib.contextmanager
def running_moto_server() -> Iterator[str]:
    """A moto server on a free loopback port; yields its endpoint URL (the ``moto_server``
    fixture's, and the cost benchmark's, which runs outside pytest)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    wsgi = server._server  # moto exposes no getter for the bound port
    assert wsgi is not None
    host, port = str(wsgi.server_address[0]), int(wsgi.server_address[1])
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


class FakeLambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name = "taskmanager-test"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:taskmanager-test"
    memory_limit_in_mb = 256
    aws_request_id = "52fdfc07-2182-454f-963f-5f0f9a621d72"
    log_group_name = "/aws/lambda/taskmanager-test"
    log_stream_name = "2026/03/10/[$LATEST]abc"

    def __init__(self, remaining_ms: int = 300_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def websocket_event(
    route: str, connection_id: str, body: str | None = None, *, owner: str | None = ALICE
) -> dict[str, Any]:
    """An API Gateway WebSocket API event: ``$connect`` (IAM-authorised as ``owner``),
    ``$disconnect``, or a message (``body``) on ``route``."""
    if route in {"$connect", "$disconnect"}:
        event = load_event("websocket_connect.json")
        kind = "CONNECT" if route == "$connect" else "DISCONNECT"
        event["requestContext"].update(routeKey=route, eventType=kind)
        if owner is None:
            event["requestContext"]["identity"].pop("userArn")
        else:
            event["requestContext"]["identity"]["userArn"] = owner
    else:
        event = load_event("websocket_message.json")
        event["requestContext"]["routeKey"] = route
        event["body"] = body
    event["requestContext"]["connectionId"] = connection_id
    return event


def posted(connection_id: str, region: str = "us-east-1") -> list[dict[str, Any]]:
    """Every message moto's PostToConnection kept for the connection, in order (moto runs
    them together in one byte string)."""
    from moto.backends import get_backend

    backend = get_backend("apigatewaymanagementapi")["123456789012"][region]
    connection = backend.connections.get(connection_id)
    data = connection.data.decode() if connection is not None else ""
    decoder, messages, at = json.JSONDecoder(), [], 0
    while at < len(data):
        message, at = decoder.raw_decode(data, at)
        messages.append(message)
    return messages
