"""The client SDK against the real API routes served over loopback HTTP."""

from __future__ import annotations

import json
import urllib.parse
from typing import TYPE_CHECKING, Any

import pytest

from taskmanager.adapters.memory import InMemoryTaskRepository, SystemClock, UuidIdFactory
from taskmanager.client import (
    ApiError,
    BearerAuth,
    IdempotencyKeyReusedError,
    InvalidRequestError,
    PayloadTooLargeError,
    SigV4Auth,
    TaskAlreadyFinishedError,
    TaskClient,
    TaskNotFoundError,
    WaitTimeoutError,
)
from taskmanager.domain.events import TaskUpdated
from taskmanager.domain.model import TaskStatus
from taskmanager.entrypoints.api import create_app
from taskmanager.entrypoints.bootstrap import Dependencies
from taskmanager.processor import DirectTransport
from tests.support import base_url, serve

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support import _AppServer


class World:
    def __init__(self, server: _AppServer, repo: InMemoryTaskRepository) -> None:
        self.server, self.repo = server, repo
        self.transport = DirectTransport(repo, SystemClock())
        self.client = TaskClient(base_url(server))

    def report(self, task_id: str, status: str, sequence: int, **fields: Any) -> None:
        update = {"task_id": task_id, "status": status, "sequence": sequence, **fields}
        self.transport.send(TaskUpdated.model_validate(update))


@pytest.fixture
def world() -> Iterator[World]:
    repo = InMemoryTaskRepository()
    deps = Dependencies(repo=repo, clock=SystemClock(), ids=UuidIdFactory())
    with serve(create_app(lambda: deps)) as server:
        yield World(server, repo)


def test_submit_get_list_and_cancel(world: World) -> None:
    client = world.client
    task = client.submit("report", {"rows": 1}, timeout_seconds=60, heartbeat_seconds=30)
    assert (task.type, task.status, task.input, task.heartbeat_seconds) == (
        "report",
        TaskStatus.CREATED,
        {"rows": 1},
        30,
    )
    assert client.get(task.id) == task
    page = client.list(status="CREATED", limit=10)
    assert [t.id for t in page.items] == [task.id]
    cancelled = client.cancel(task.id)
    assert cancelled.error is not None
    assert cancelled.error.code == "CANCELLED"
    with pytest.raises(TaskAlreadyFinishedError) as info:
        client.cancel(task.id)
    assert (info.value.status, info.value.details["status"]) == (409, "FAILED")


def test_errors_are_typed_by_code(world: World) -> None:
    client = world.client
    with pytest.raises(TaskNotFoundError) as missing:
        client.get("no-such-task")
    assert (missing.value.status, missing.value.code) == (404, "TASK_NOT_FOUND")
    with pytest.raises(InvalidRequestError) as invalid:
        client.submit("not a type")
    assert invalid.value.status == 422
    with pytest.raises(PayloadTooLargeError):
        client.submit("report", "x" * 200_000)
    client.submit("report", 1, idempotency_key="k")
    with pytest.raises(IdempotencyKeyReusedError):
        client.submit("report", 2, idempotency_key="k")
    with pytest.raises(ApiError) as route:
        client.request("GET", "/nowhere")
    assert route.value.code == "ROUTE_NOT_FOUND"


def test_idempotent_submit_returns_the_same_task(world: World) -> None:
    first = world.client.submit("report", [1], idempotency_key="order-1")
    again = world.client.submit("report", [1], idempotency_key="order-1")
    assert again == first


def test_wait_follows_progress_to_the_result_honouring_retry_after(world: World) -> None:
    slept: list[float] = []
    task = world.client.submit("report")
    steps = iter(
        [
            ("RUNNING", 1, {}),
            ("RUNNING", 2, {"progress": {"percent": 50}}),
            ("SUCCESSFUL", 3, {"result": {"pages": 2}}),
        ]
    )

    def sleep(seconds: float) -> None:  # each pause lets the processor take one step
        slept.append(seconds)
        status, sequence, fields = next(steps)
        world.report(task.id, status, sequence, **fields)

    client = TaskClient(base_url(world.server), sleep=sleep)
    seen: list[tuple[str, int]] = []
    done = client.wait(
        task.id, timeout=60, on_progress=lambda t: seen.append((t.status, t.version))
    )
    assert (done.status, done.result) == ("SUCCESSFUL", {"pages": 2})
    assert seen == [("CREATED", 1), ("RUNNING", 2), ("RUNNING", 3)]
    assert slept[0] >= 1.0  # the API's Retry-After is a floor for the backoff
    assert slept == sorted(slept)


def test_wait_gives_up_after_the_timeout(world: World) -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    task = world.client.submit("report")
    client = TaskClient(base_url(world.server), sleep=sleep, clock=lambda: now[0])
    with pytest.raises(WaitTimeoutError) as info:
        client.wait(task.id, timeout=5)
    assert info.value.task.id == task.id
    assert now[0] == pytest.approx(5.0)


class FlakyApp:
    """503 with Retry-After twice, then the real app."""

    def __init__(self, app: Any) -> None:
        self.app, self.failures = app, 2

    def resolve(self, event: Any, context: Any) -> Any:
        if self.failures:
            self.failures -= 1
            body = {"error": {"code": "STORAGE_UNAVAILABLE", "message": "busy", "details": None}}
            return {"statusCode": 503, "headers": {"Retry-After": "3"}, "body": json.dumps(body)}
        return self.app.resolve(event, context)


def test_reads_are_retried_on_503_after_retry_after() -> None:
    repo = InMemoryTaskRepository()
    deps = Dependencies(repo=repo, clock=SystemClock(), ids=UuidIdFactory())
    flaky = FlakyApp(create_app(lambda: deps))
    slept: list[float] = []
    with serve(flaky) as server:
        client = TaskClient(base_url(server), sleep=slept.append)
        assert client.list().items == []
        assert slept == [3.0, 3.0]
        flaky.failures = 1
        with pytest.raises(ApiError) as info:
            client.submit("report")  # no idempotency key: not safe to repeat
        assert info.value.status == 503


def test_a_gateway_error_without_our_body_still_raises_api_error() -> None:
    class Forbidden:
        def resolve(self, event: Any, context: Any) -> Any:
            return {"statusCode": 403, "headers": {}, "body": '{"message":"Forbidden"}'}

    with serve(Forbidden()) as server, pytest.raises(ApiError) as info:
        TaskClient(base_url(server)).get("t")
    assert (info.value.status, info.value.code) == (403, "HTTP_403")


def test_sigv4_and_bearer_auth_sign_every_request(world: World) -> None:
    signed = TaskClient(base_url(world.server), auth=SigV4Auth(region="eu-west-1"))
    signed.submit("report")
    headers = world.server.seen_headers[-1]
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert "/eu-west-1/execute-api/aws4_request" in headers["authorization"]
    assert "x-amz-date" in headers
    assert headers["x-amz-security-token"] == "testing"
    TaskClient(base_url(world.server), auth=BearerAuth(lambda: "tok")).list()
    assert world.server.seen_headers[-1]["authorization"] == "Bearer tok"


def test_an_error_summary_names_the_field_and_the_rule(world: World) -> None:
    with pytest.raises(InvalidRequestError) as info:
        world.client.list(limit=500)
    assert info.value.summary == (
        "request parameters are not valid: limit: Input should be less than or equal to 100"
    )
    assert str(info.value) == "400 INVALID_REQUEST: request parameters are not valid"
    with pytest.raises(TaskNotFoundError) as missing:
        world.client.get("nope")
    assert missing.value.details == {"task_id": "nope"}
    assert missing.value.summary == "task nope was not found"  # the message says it already
    error = ApiError(409, "CONFLICT", "no", details={"current": 3, "requested": None})
    assert error.summary == "no: current=3"


def test_sigv4_presigns_a_websocket_connect_in_its_query_string() -> None:
    url = "wss://abc123.execute-api.eu-west-1.amazonaws.com/live"
    signed = SigV4Auth(region="eu-west-1").presign(url)
    scheme, _, rest = signed.partition("://")
    assert scheme == "wss"
    address, _, query = rest.partition("?")
    assert address == "abc123.execute-api.eu-west-1.amazonaws.com/live"
    params = dict(urllib.parse.parse_qsl(query))
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert params["X-Amz-Credential"].endswith("/eu-west-1/execute-api/aws4_request")
    assert params["X-Amz-Expires"] == "300"
    assert params["X-Amz-SignedHeaders"] == "host"
    assert len(params["X-Amz-Signature"]) == 64


def test_bearer_auth_passes_its_token_in_the_websocket_query_string() -> None:
    auth = BearerAuth(lambda: "a.b+c")
    assert auth.presign("wss://x.example/live") == "wss://x.example/live?token=a.b%2Bc"
    assert auth.presign("wss://x.example/live?v=1") == "wss://x.example/live?v=1&token=a.b%2Bc"


def test_watch_without_a_socket_polls_each_new_version_until_terminal(world: World) -> None:
    task = world.client.submit("report.render")
    seen = []
    for current in world.client.watch(task.id):
        seen.append((current.version, current.status))
        if current.version == 1:
            world.transport.send(TaskUpdated(task_id=task.id, status=TaskStatus.RUNNING))
        elif current.status == "RUNNING":
            world.transport.send(
                TaskUpdated(task_id=task.id, status=TaskStatus.SUCCESSFUL, result=1)
            )
    assert seen == [(1, "CREATED"), (2, "RUNNING"), (3, "SUCCESSFUL")]
