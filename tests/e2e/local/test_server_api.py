"""`taskmanager serve` over real HTTP: every route and error of docs/design.md §5, idempotency,
the demo processors, cancel and timeouts."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.e2e.local.harness import LocalServer

TERMINAL = {"SUCCESSFUL", "FAILED"}


def _error(body: object) -> dict[str, object]:
    assert isinstance(body, dict)
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    return error  # type: ignore[no-any-return]


def test_submit_returns_202_with_location_and_retry_after(server: LocalServer) -> None:
    response = server.request("POST", "/tasks", {"type": "no.processor", "input": {"n": 1}})
    assert response.status == 202
    task = response.body
    assert task["status"] == "CREATED"
    assert task["version"] == 1
    assert task["input"] == {"n": 1}
    assert response.headers["location"] == f"/tasks/{task['id']}"
    assert int(response.headers["retry-after"]) >= 1
    uuid.UUID(task["id"])


def test_get_returns_the_task_with_retry_after_while_open(server: LocalServer) -> None:
    task = server.submit("no.processor", [1, 2])
    response = server.request("GET", f"/tasks/{task['id']}")
    assert response.status == 200
    assert response.body["id"] == task["id"]
    assert response.body["input"] == [1, 2]
    assert "retry-after" in response.headers


def test_get_of_a_finished_task_has_no_retry_after(server: LocalServer) -> None:
    task = server.submit("demo.echo", {"x": 1})
    server.wait_for(task["id"], TERMINAL)
    response = server.request("GET", f"/tasks/{task['id']}")
    assert response.status == 200
    assert "retry-after" not in response.headers


def test_unknown_task_is_404_with_the_error_body(server: LocalServer) -> None:
    response = server.request("GET", f"/tasks/{uuid.uuid4()}")
    assert response.status == 404
    assert _error(response.body)["code"] == "TASK_NOT_FOUND"


def test_body_that_is_not_json_is_400(server: LocalServer) -> None:
    response = server.request(
        "POST", "/tasks", raw=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert _error(response.body)["code"] == "INVALID_REQUEST"


def test_body_that_breaks_the_contract_is_422(server: LocalServer) -> None:
    for body in ({"type": "bad type!"}, {"input": 1}, {"type": "a", "timeout_seconds": 0}):
        response = server.request("POST", "/tasks", body)
        assert response.status == 422, body
        assert _error(response.body)["code"] == "INVALID_REQUEST"


def test_heartbeat_over_timeout_is_422(server: LocalServer) -> None:
    body = {"type": "a", "timeout_seconds": 5, "heartbeat_seconds": 6}
    response = server.request("POST", "/tasks", body)
    assert response.status == 422


def test_timeout_limits_are_enforced_at_and_past_the_limit(server: LocalServer) -> None:
    at_limit = server.request("POST", "/tasks", {"type": "a", "timeout_seconds": 604800})
    assert at_limit.status == 202
    past = server.request("POST", "/tasks", {"type": "a", "timeout_seconds": 604801})
    assert past.status == 422


def test_input_over_128_kib_is_413(server: LocalServer) -> None:
    at_limit = "x" * (128 * 1024 - 2)  # the JSON string adds two quotes
    assert server.request("POST", "/tasks", {"type": "a", "input": at_limit}).status == 202
    response = server.request("POST", "/tasks", {"type": "a", "input": at_limit + "x"})
    assert response.status == 413
    assert _error(response.body)["code"] == "PAYLOAD_TOO_LARGE"


def test_huge_body_is_413_not_500(server: LocalServer) -> None:
    raw = json.dumps({"type": "a", "input": "y" * (2 * 1024 * 1024)}).encode()
    response = server.request(
        "POST", "/tasks", raw=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status == 413


def test_wrong_content_type_is_415(server: LocalServer) -> None:
    response = server.request(
        "POST", "/tasks", raw=b'{"type": "a"}', headers={"Content-Type": "text/plain"}
    )
    assert response.status == 415
    assert _error(response.body)["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_unknown_route_is_a_json_404(server: LocalServer) -> None:
    response = server.request("GET", "/nothing/here")
    assert response.status == 404
    _error(response.body)


def test_list_is_newest_first_and_filters_by_status_and_type(server: LocalServer) -> None:
    task_type = f"list.{uuid.uuid4().hex[:8]}"
    ids = [server.submit(task_type, i)["id"] for i in range(3)]
    response = server.request("GET", f"/tasks?type={task_type}")
    assert response.status == 200
    assert [t["id"] for t in response.body["items"]] == ids[::-1]
    assert response.body["next_cursor"] is None
    server.request("POST", f"/tasks/{ids[1]}/cancel")
    failed = server.request("GET", f"/tasks?type={task_type}&status=FAILED").body["items"]
    assert [t["id"] for t in failed] == [ids[1]]


def test_list_pages_with_limit_and_cursor(server: LocalServer) -> None:
    task_type = f"page.{uuid.uuid4().hex[:8]}"
    ids = [server.submit(task_type, i)["id"] for i in range(5)]
    seen: list[str] = []
    path = f"/tasks?type={task_type}&limit=2"
    while True:
        page = server.request("GET", path).body
        assert len(page["items"]) <= 2
        seen.extend(t["id"] for t in page["items"])
        if page["next_cursor"] is None:
            break
        path = f"/tasks?type={task_type}&limit=2&cursor={page['next_cursor']}"
    assert seen == ids[::-1]


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "limit=abc", "status=DONE", "cursor=not-a-cursor"]
)
def test_bad_list_parameters_are_400(server: LocalServer, query: str) -> None:
    response = server.request("GET", f"/tasks?{query}")
    assert response.status == 400, response.body
    _error(response.body)


def test_list_limit_at_the_limit_is_accepted(server: LocalServer) -> None:
    assert server.request("GET", "/tasks?limit=100").status == 200
    assert server.request("GET", "/tasks?limit=1").status == 200


def test_same_idempotency_key_and_request_replays_the_task(server: LocalServer) -> None:
    key = {"Idempotency-Key": f"key-{uuid.uuid4()}"}
    body = {"type": "no.processor", "input": {"a": 1}}
    first = server.request("POST", "/tasks", body, headers=key)
    again = server.request("POST", "/tasks", body, headers=key)
    assert first.status == again.status == 202
    assert again.body["id"] == first.body["id"]
    assert again.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    listed = server.request("GET", "/tasks?type=no.processor&limit=100").body["items"]
    assert sum(t["id"] == first.body["id"] for t in listed) == 1


def test_same_idempotency_key_with_another_request_is_422(server: LocalServer) -> None:
    key = {"Idempotency-Key": f"key-{uuid.uuid4()}"}
    server.request("POST", "/tasks", {"type": "no.processor", "input": 1}, headers=key)
    response = server.request("POST", "/tasks", {"type": "no.processor", "input": 2}, headers=key)
    assert response.status == 422
    assert _error(response.body)["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_idempotency_key_over_255_characters_is_400(server: LocalServer) -> None:
    ok = server.request("POST", "/tasks", {"type": "a"}, headers={"Idempotency-Key": "k" * 255})
    assert ok.status == 202
    bad = server.request("POST", "/tasks", {"type": "a"}, headers={"Idempotency-Key": "k" * 256})
    assert bad.status == 400


def test_cancel_fails_an_open_task_and_409_once_terminal(server: LocalServer) -> None:
    task = server.submit("no.processor")
    response = server.request("POST", f"/tasks/{task['id']}/cancel")
    assert response.status == 202
    assert response.body["status"] == "FAILED"
    assert response.body["error"]["code"] == "CANCELLED"
    again = server.request("POST", f"/tasks/{task['id']}/cancel")
    assert again.status == 409
    assert _error(again.body)["code"] == "TASK_ALREADY_FINISHED"


def test_cancel_of_an_unknown_task_is_404(server: LocalServer) -> None:
    response = server.request("POST", f"/tasks/{uuid.uuid4()}/cancel")
    assert response.status == 404


def test_cancel_stops_a_running_demo_sleep(server: LocalServer) -> None:
    task = server.submit("demo.sleep", {"seconds": 30, "steps": 30})
    server.wait_for(task["id"], {"RUNNING"})
    cancelled = server.request("POST", f"/tasks/{task['id']}/cancel").body
    assert cancelled["error"]["code"] == "CANCELLED"
    time.sleep(1.5)  # the processor notices within a step and reports nothing more
    after = server.get(task["id"])
    assert after["status"] == "FAILED"
    assert after["error"]["code"] == "CANCELLED"
    assert after["version"] == cancelled["version"]


def test_openapi_document_lists_the_routes(server: LocalServer) -> None:
    response = server.request("GET", "/openapi.json")
    assert response.status == 200
    assert {"/tasks", "/tasks/{task_id}", "/tasks/{task_id}/cancel"} <= set(response.body["paths"])


def test_demo_echo_returns_its_input(server: LocalServer) -> None:
    task = server.submit("demo.echo", {"hello": ["world", 1]})
    done = server.wait_for(task["id"], TERMINAL)
    assert done["status"] == "SUCCESSFUL"
    assert done["result"] == {"hello": ["world", 1]}
    assert done["started_at"] is not None
    assert done["finished_at"] is not None


def test_demo_fail_fails_with_the_given_code(server: LocalServer) -> None:
    task = server.submit("demo.fail", {"code": "OUT_OF_PAPER", "message": "tray 2 is empty"})
    done = server.wait_for(task["id"], TERMINAL)
    assert done["status"] == "FAILED"
    assert done["error"] == {"code": "OUT_OF_PAPER", "message": "tray 2 is empty"}


def test_demo_sleep_reports_progress_then_succeeds(server: LocalServer) -> None:
    task = server.submit("demo.sleep", {"seconds": 0.6, "steps": 3})
    done = server.wait_for(task["id"], TERMINAL)
    assert done["status"] == "SUCCESSFUL"
    assert done["result"]["steps"] == 3
    # created, RUNNING, three progress reports, SUCCESSFUL
    assert done["version"] == 6


def test_demo_sleep_with_bad_input_fails_with_invalid_input(server: LocalServer) -> None:
    task = server.submit("demo.sleep", {"seconds": -1})
    done = server.wait_for(task["id"], TERMINAL)
    assert done["error"]["code"] == "INVALID_INPUT"


def test_task_past_its_timeout_fails_with_timeout(server: LocalServer) -> None:
    task = server.submit("no.processor", None, timeout_seconds=1)
    done = server.wait_for(task["id"], TERMINAL, timeout=10)
    assert done["error"]["code"] == "TIMEOUT"


def test_a_task_nobody_picks_up_fails_with_start_timeout(server: LocalServer) -> None:
    task = server.submit("no.processor", None, start_timeout_seconds=1)
    assert task["start_timeout_seconds"] == 1
    done = server.wait_for(task["id"], TERMINAL, timeout=10)
    assert done["error"] == {
        "code": "START_TIMEOUT",
        "message": "no processor picked the task up within start_timeout_seconds (1)",
    }
    # A task its processor picks up at once is not touched by its start timeout.
    echoed = server.submit("demo.echo", {"x": 1}, start_timeout_seconds=1)
    assert server.wait_for(echoed["id"], TERMINAL)["status"] == "SUCCESSFUL"


def test_quiet_running_task_fails_with_heartbeat_timeout(server: LocalServer) -> None:
    task = server.submit("demo.sleep", {"seconds": 20, "steps": 1}, heartbeat_seconds=1)
    done = server.wait_for(task["id"], TERMINAL, timeout=10)
    assert done["error"]["code"] == "HEARTBEAT_TIMEOUT"


def test_web_page_and_its_files_are_served(server: LocalServer) -> None:
    page = server.request("GET", "/")
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    assert b"/static/app.js" in page.body
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        response = server.request("GET", f"/static/{name}")
        assert response.status == 200
        assert response.headers["content-type"].startswith(kind)
    assert server.request("GET", "/static/missing.js").status == 404
    assert b'<link rel="icon" href="/static/favicon.svg"' in page.body
    icon = server.request("GET", "/static/favicon.svg")
    assert icon.status == 200
    assert icon.headers["content-type"] == "image/svg+xml"
    assert icon.body.startswith(b"<svg")
    assert server.request("GET", "/static/../cli.py").status == 404


def _raw(server: LocalServer, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, response.read()
    finally:
        connection.close()


def test_answers_say_their_length_rather_than_being_chunked(server: LocalServer) -> None:
    task = server.submit("no.processor", {"n": 1})
    for method, path, status in (
        ("GET", f"/tasks/{task['id']}", 200),
        ("GET", "/tasks/3f0a0c1e-0000-4000-8000-000000000000", 404),
        ("GET", "/", 200),
        ("GET", "/static/missing.js", 404),
    ):
        got, headers, body = _raw(server, method, path)
        assert got == status
        assert "transfer-encoding" not in headers
        assert int(headers["content-length"]) == len(body) > 0


def test_head_of_the_page_says_the_length_of_its_get(server: LocalServer) -> None:
    _, _, body = _raw(server, "GET", "/")
    status, head_headers, head_body = _raw(server, "HEAD", "/")
    assert (status, head_body) == (200, b"")
    assert int(head_headers["content-length"]) == len(body) > 0
