"""The HTTP API on in-memory adapters, driven with API Gateway HTTP API (v2) events."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from taskmanager.adapters.memory import InMemoryTaskRepository, ManualClock, UuidIdFactory
from taskmanager.domain.errors import StorageError
from taskmanager.domain.model import MAX_PAYLOAD_BYTES
from taskmanager.entrypoints.api import create_app
from taskmanager.entrypoints.bootstrap import Dependencies, Settings
from taskmanager.entrypoints.http.body import MAX_BODY_BYTES
from taskmanager.entrypoints.http.owners import fixed_owner, jwt_sub_owner
from tests.support import http_event, load_event

if TYPE_CHECKING:
    from taskmanager.domain.model import Task
    from taskmanager.entrypoints.http.route_table import TaskApi

BOB = "arn:aws:iam::123456789012:user/bob"


class Api:
    def __init__(self, app: TaskApi, repo: InMemoryTaskRepository, clock: ManualClock) -> None:
        self.app, self.repo, self.clock = app, repo, clock

    def call(self, event: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        response = self.app.resolve(event, None)  # type: ignore[arg-type]
        assert "Traceback" not in response["body"]
        headers = response["headers"]
        assert headers["Content-Type"] == "application/json"
        return response["statusCode"], headers, json.loads(response["body"])

    def request(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        text = body if body is None or isinstance(body, str | bytes) else json.dumps(body)
        return self.call(http_event(method, path, text, **kw))

    def submit(self, body: Any = None, **kw: Any) -> dict[str, Any]:
        status, _, task = self.request("POST", "/tasks", body or {"type": "report"}, **kw)
        assert status == 202, task
        return dict(task)


@pytest.fixture
def api() -> Api:
    repo, clock = InMemoryTaskRepository(), ManualClock()
    deps = Dependencies(repo=repo, clock=clock, ids=UuidIdFactory())
    return Api(create_app(lambda: deps), repo, clock)


def error_code(body: Any) -> str:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return str(body["error"]["code"])


def test_submit_returns_202_with_location_retry_after_and_one_created_event(api: Api) -> None:
    status, headers, task = api.call(load_event("api_submit.json"))
    assert status == 202
    assert headers["Location"] == f"/tasks/{task['id']}"
    assert headers["Retry-After"] == "1"
    assert "Idempotent-Replayed" not in headers
    assert (task["type"], task["status"], task["input"]) == (
        "report.render",
        "CREATED",
        {"rows": 10},
    )
    stored = api.repo.get(task["id"])
    assert stored is not None
    # The event's caller is the role session .../assumed-role/supplier/alice: owned by the role.
    assert stored.owner == "arn:aws:sts::123456789012:assumed-role/supplier"
    assert [e.event.DETAIL_TYPE for e in api.repo.undelivered] == ["TaskCreated"]


def test_idempotent_resubmit_replays_the_same_task_without_a_second_event(api: Api) -> None:
    key = {"Idempotency-Key": "order-42"}
    first = api.submit({"type": "report", "input": [1]}, headers=key)
    status, headers, again = api.request(
        "POST", "/tasks", {"type": "report", "input": [1]}, headers=key
    )
    assert status == 202
    assert headers["Idempotent-Replayed"] == "true"
    assert again == first
    assert len(api.repo.undelivered) == 1


def test_same_idempotency_key_with_another_request_is_422(api: Api) -> None:
    key = {"Idempotency-Key": "order-42"}
    api.submit({"type": "report"}, headers=key)
    status, _, body = api.request("POST", "/tasks", {"type": "other"}, headers=key)
    assert (status, error_code(body)) == (422, "IDEMPOTENCY_KEY_REUSED")


def test_a_new_task_counts_one_submitted_metric_and_a_replay_or_a_refusal_none(
    api: Api,
) -> None:
    counted: list[str] = []
    deps = Dependencies(repo=api.repo, clock=api.clock, ids=UuidIdFactory())
    counting = Api(create_app(lambda: deps, count=counted.append), api.repo, api.clock)
    key = {"Idempotency-Key": "order-42"}
    task = counting.submit({"type": "report"}, headers=key)
    assert counted == ["TasksSubmitted"]
    counting.submit({"type": "report"}, headers=key)  # the same task, replayed
    status, _, _ = counting.request(
        "POST", "/tasks", {"type": "r", "timeout_seconds": 5, "heartbeat_seconds": 6}
    )
    assert status == 422
    status, _, _ = counting.request("POST", f"/tasks/{task['id']}/cancel")
    assert status == 202  # a 202 of another route is no submission either
    assert counted == ["TasksSubmitted"]


def test_idempotency_keys_are_scoped_to_the_caller(api: Api) -> None:
    key = {"Idempotency-Key": "order-42"}
    mine = api.submit({"type": "report"}, headers=key)
    theirs = api.submit({"type": "other"}, headers=key, owner=BOB)
    assert mine["id"] != theirs["id"]


@pytest.mark.parametrize("key", ["has space", "x" * 256, "é"])
def test_malformed_idempotency_key_is_400(api: Api, key: str) -> None:
    status, _, body = api.request("POST", "/tasks", {"type": "r"}, headers={"Idempotency-Key": key})
    assert (status, error_code(body)) == (400, "INVALID_REQUEST")


def test_idempotency_key_of_255_characters_is_accepted(api: Api) -> None:
    api.submit({"type": "r"}, headers={"Idempotency-Key": "k" * 255})


def test_get_returns_the_task_with_retry_after_while_open(api: Api) -> None:
    task = api.submit()
    status, headers, got = api.request("GET", f"/tasks/{task['id']}")
    assert (status, got, headers["Retry-After"]) == (200, task, "1")


def test_get_of_a_terminal_task_has_no_retry_after(api: Api) -> None:
    task = api.submit()
    api.request("POST", f"/tasks/{task['id']}/cancel")
    status, headers, got = api.request("GET", f"/tasks/{task['id']}")
    assert (status, got["status"]) == (200, "FAILED")
    assert "Retry-After" not in headers


@pytest.mark.parametrize("task_id", ["no-such-task", "x" * 65])
def test_get_of_an_unknown_task_is_404(api: Api, task_id: str) -> None:
    status, _, body = api.request("GET", f"/tasks/{task_id}")
    assert (status, error_code(body)) == (404, "TASK_NOT_FOUND")


def test_another_owners_task_is_404_for_get_and_cancel(api: Api) -> None:
    task = api.submit()
    for method, path in (("GET", f"/tasks/{task['id']}"), ("POST", f"/tasks/{task['id']}/cancel")):
        status, _, body = api.request(method, path, owner=BOB)
        assert (status, error_code(body)) == (404, "TASK_NOT_FOUND")
    stored = api.repo.get(task["id"])
    assert stored is not None
    assert stored.status == "CREATED"


def test_cancel_fails_the_task_then_409(api: Api) -> None:
    task = api.submit()
    status, _, cancelled = api.request("POST", f"/tasks/{task['id']}/cancel")
    assert status == 202
    assert (cancelled["status"], cancelled["error"]["code"]) == ("FAILED", "CANCELLED")
    status, _, body = api.request("POST", f"/tasks/{task['id']}/cancel")
    assert (status, error_code(body)) == (409, "TASK_ALREADY_FINISHED")


def test_list_is_newest_first_filtered_and_paged(api: Api) -> None:
    ids = []
    for n in range(5):
        ids.append(api.submit({"type": "a" if n % 2 == 0 else "b"})["id"])
        api.clock.advance(1)
    api.submit({"type": "a"}, owner=BOB)
    status, _, page = api.request("GET", "/tasks", query={"type": "a", "limit": "2"})
    assert status == 200
    assert [t["id"] for t in page["items"]] == [ids[4], ids[2]]
    _, _, rest = api.request(
        "GET", "/tasks", query={"type": "a", "limit": "2", "cursor": page["next_cursor"]}
    )
    assert ([t["id"] for t in rest["items"]], rest["next_cursor"]) == ([ids[0]], None)
    _, _, created = api.request("GET", "/tasks", query={"status": "CREATED"})
    assert len(created["items"]) == 5


@pytest.mark.parametrize("limit", ["1", "100"])
def test_list_limit_at_the_bounds_is_accepted(api: Api, limit: str) -> None:
    api.submit()
    status, _, page = api.request("GET", "/tasks", query={"limit": limit})
    assert (status, len(page["items"])) == (200, 1)


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "ten"},
        {"status": "DONE"},
        {"cursor": "not-a-cursor"},
        {"type": "t" * 65},
    ],
)
def test_list_with_bad_parameters_is_400(api: Api, query: dict[str, str]) -> None:
    status, _, body = api.request("GET", "/tasks", query=query)
    assert (status, error_code(body)) == (400, "INVALID_REQUEST")


def test_jwt_sub_names_the_owner(api: Api) -> None:
    deps = Dependencies(repo=api.repo, clock=api.clock, ids=UuidIdFactory())
    app = create_app(lambda: deps, owner=jwt_sub_owner)
    event = load_event("api_list_jwt.json")
    submit = load_event("api_submit.json")
    submit["requestContext"]["authorizer"] = event["requestContext"]["authorizer"]
    task = json.loads(app.resolve(submit, None)["body"])  # type: ignore[arg-type]
    stored = api.repo.get(task["id"])
    assert stored is not None
    assert stored.owner == "user-7f3a"
    response = app.resolve(event, None)  # type: ignore[arg-type]
    assert response["statusCode"] == 200


def test_a_fixed_owner_serves_unauthenticated_requests(api: Api) -> None:
    deps = Dependencies(repo=api.repo, clock=api.clock, ids=UuidIdFactory())
    app = create_app(lambda: deps, owner=fixed_owner("local"))
    response = app.resolve(http_event("POST", "/tasks", '{"type": "r"}', owner=None), None)  # type: ignore[arg-type]
    assert response["statusCode"] == 202
    stored = api.repo.get(json.loads(response["body"])["id"])
    assert stored is not None
    assert stored.owner == "local"


def test_a_request_without_identity_is_401(api: Api) -> None:
    status, _, body = api.request("POST", "/tasks", {"type": "r"}, owner=None)
    assert (status, error_code(body)) == (401, "UNAUTHENTICATED")


# --- bad input: 4xx with the error body, never a 5xx ---------------------------------------


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("{bad", 400),
        ('{"type": "r", "input": NaN}', 400),
        ("[" * 50_000 + "]" * 50_000, 400),
        ('{"type": "has space"}', 422),
        ('{"type": ""}', 422),
        ('{"type": "' + "t" * 65 + '"}', 422),
        ('{"input": 1}', 422),
        ('{"type": "r", "colour": "red"}', 422),
        ('{"type": "r", "timeout_seconds": 0}', 422),
        ('{"type": "r", "timeout_seconds": 604801}', 422),
        ('{"type": "r", "timeout_seconds": 5, "heartbeat_seconds": 6}', 422),
        ('{"type": "r", "heartbeat_seconds": 0}', 422),
        ('{"type": "r", "start_timeout_seconds": 0}', 422),
        ('{"type": "r", "start_timeout_seconds": 604801}', 422),
        ('{"type": "r", "start_timeout_seconds": "60"}', 422),
        ('{"type": "r", "timeout_seconds": 5, "start_timeout_seconds": 6}', 422),
        ("[]", 422),
        ('"text"', 422),
    ],
)
def test_bad_bodies_are_client_errors(api: Api, body: str, status: int) -> None:
    got, _, payload = api.request("POST", "/tasks", body)
    assert (got, error_code(payload)) == (status, "INVALID_REQUEST")
    assert api.repo.undelivered == []


def test_limits_are_accepted_at_the_bound(api: Api) -> None:
    task = api.submit({"type": "t" * 64, "timeout_seconds": 604800, "heartbeat_seconds": 604800})
    assert task["heartbeat_seconds"] == 604800
    short = api.submit({"type": "r", "timeout_seconds": 1, "heartbeat_seconds": 1})
    assert short["heartbeat_seconds"] == 1
    waits = api.submit({"type": "r", "timeout_seconds": 604800, "start_timeout_seconds": 604800})
    assert waits["start_timeout_seconds"] == 604800
    assert api.submit({"type": "r"})["start_timeout_seconds"] is None  # off by default


# --- the deployment's settings: known task types, the default start timeout -----------------


def _configured_api(**environ: str) -> Api:
    """The API over the policy that ``TASKMANAGER_*`` environment variables set, as the
    Lambda function reads them."""
    settings = Settings.from_environ({"TASKMANAGER_TABLE_NAME": "tasks", **environ})
    repo, clock = InMemoryTaskRepository(), ManualClock()
    deps = Dependencies(repo=repo, clock=clock, ids=UuidIdFactory(), policy=settings.policy)
    return Api(create_app(lambda: deps), repo, clock)


def test_a_type_the_deployment_does_not_list_is_422_unknown_task_type_naming_the_known_ones() -> (
    None
):
    api = _configured_api(TASKMANAGER_TASK_TYPES='["text.wordcount", "report.render"]')
    status, _, body = api.request("POST", "/tasks", {"type": "report.rendr", "input": 1})
    assert (status, error_code(body)) == (422, "UNKNOWN_TASK_TYPE")
    assert body["error"]["details"] == {
        "field": "type",
        "known_types": ["report.render", "text.wordcount"],
    }
    assert body["error"]["message"] == (
        "no processor here takes tasks of this type; "
        "the known types are: report.render, text.wordcount"
    )
    assert api.repo.undelivered == []
    assert api.submit({"type": "report.render"})["status"] == "CREATED"


@pytest.mark.parametrize("environ", [{}, {"TASKMANAGER_TASK_TYPES": "[]"}])
def test_without_listed_types_any_type_is_accepted(environ: dict[str, str]) -> None:
    api = _configured_api(**environ)
    assert api.submit({"type": "anything.goes"})["status"] == "CREATED"


def test_the_default_start_timeout_applies_where_the_task_names_none() -> None:
    api = _configured_api(TASKMANAGER_DEFAULT_START_TIMEOUT_SECONDS="60")
    assert api.submit({"type": "r"})["start_timeout_seconds"] == 60
    assert api.submit({"type": "r", "start_timeout_seconds": 5})["start_timeout_seconds"] == 5
    # A task whose whole timeout is shorter fails by its deadline first: no start timeout.
    assert api.submit({"type": "r", "timeout_seconds": 30})["start_timeout_seconds"] is None


def _input_of(size: int) -> str:
    """A body whose ``input`` is a JSON string of exactly ``size`` bytes serialised."""
    return json.dumps({"type": "r", "input": "a" * (size - 2)})


def test_input_of_exactly_128_kib_is_accepted(api: Api) -> None:
    status, _, task = api.request("POST", "/tasks", _input_of(MAX_PAYLOAD_BYTES))
    assert status == 202
    assert len(task["input"]) == MAX_PAYLOAD_BYTES - 2


def test_input_one_byte_over_128_kib_is_413(api: Api) -> None:
    status, _, body = api.request("POST", "/tasks", _input_of(MAX_PAYLOAD_BYTES + 1))
    assert (status, error_code(body)) == (413, "PAYLOAD_TOO_LARGE")
    assert body["error"]["details"]["field"] == "input"


def test_body_at_the_limit_is_parsed_and_one_byte_over_is_refused_unparsed(api: Api) -> None:
    padded = '{"type": "r"}'.ljust(MAX_BODY_BYTES)  # trailing spaces are legal JSON
    assert api.request("POST", "/tasks", padded)[0] == 202
    status, _, body = api.request("POST", "/tasks", padded + " ")
    assert (status, error_code(body)) == (413, "PAYLOAD_TOO_LARGE")
    assert body["error"]["details"] == {
        "field": "body",
        "size": MAX_BODY_BYTES + 1,
        "limit": MAX_BODY_BYTES,
    }


def test_base64_bodies_are_decoded_and_limited(api: Api) -> None:
    assert api.request("POST", "/tasks", b'{"type": "r"}')[0] == 202
    status, _, body = api.request("POST", "/tasks", b" " * (MAX_BODY_BYTES + 1))
    assert (status, error_code(body)) == (413, "PAYLOAD_TOO_LARGE")
    status, _, body = api.request("POST", "/tasks", b'{"type": "\xff"}')
    assert (status, error_code(body)) == (400, "INVALID_REQUEST")


def test_invalid_base64_is_400(api: Api) -> None:
    event = http_event("POST", "/tasks", "!!!not base64!!!")
    event["isBase64Encoded"] = True
    status, _, body = api.call(event)
    assert (status, error_code(body)) == (400, "INVALID_REQUEST")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_is_415(api: Api, content_type: str | None) -> None:
    event = http_event("POST", "/tasks", '{"type": "r"}')
    if content_type is None:
        del event["headers"]["content-type"]
    else:
        event["headers"]["content-type"] = content_type
    status, _, body = api.call(event)
    assert (status, error_code(body)) == (415, "UNSUPPORTED_MEDIA_TYPE")


def test_json_with_charset_is_accepted(api: Api) -> None:
    status, _, _ = api.request(
        "POST",
        "/tasks",
        '{"type": "r"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert status == 202


def test_unknown_route_is_404_and_wrong_method_is_405(api: Api) -> None:
    status, _, body = api.request("GET", "/nowhere")
    assert (status, error_code(body)) == (404, "ROUTE_NOT_FOUND")
    status, headers, body = api.request("DELETE", "/tasks")
    assert (status, error_code(body)) == (405, "METHOD_NOT_ALLOWED")
    assert headers["Allow"] == "GET, POST"


class BrokenRepository(InMemoryTaskRepository):
    def get(self, task_id: str) -> Task | None:
        raise StorageError("the table is unavailable")

    def create(self, task: Task, now: Any) -> Any:
        raise RuntimeError("a bug")


def test_storage_failure_is_503_and_a_bug_is_500_without_a_trace(api: Api) -> None:
    deps = Dependencies(repo=BrokenRepository(), clock=api.clock, ids=UuidIdFactory())
    broken = Api(create_app(lambda: deps), api.repo, api.clock)
    status, _, body = broken.request("GET", "/tasks/x")
    assert (status, error_code(body)) == (503, "STORAGE_UNAVAILABLE")
    status, _, body = broken.request("POST", "/tasks", {"type": "r"})
    assert (status, error_code(body)) == (500, "INTERNAL_ERROR")
    assert "a bug" not in json.dumps(body)


def test_openapi_document_describes_the_routes(api: Api) -> None:
    status, _, doc = api.request("GET", "/openapi.json")
    assert status == 200
    assert set(doc["paths"]) == {"/tasks", "/tasks/{task_id}", "/tasks/{task_id}/cancel"}
    assert set(doc["paths"]["/tasks"]) == {"get", "post"}
    assert "202" in doc["paths"]["/tasks"]["post"]["responses"]
    assert {"TaskResource", "SubmitTask", "ErrorResponse"} <= set(doc["components"]["schemas"])
