"""Hand-made bad input over real HTTP: what a fuzzer rarely builds on its own.

Malformed and non-UTF-8 bodies, wrong JSON types, huge strings, deep nesting, unknown fields,
bad ``Idempotency-Key`` values, tampered cursors, every limit of docs/design.md §2/§5 at and
one past the bound. Each answer is a 4xx with the one error body, never a 5xx; the server stays up.
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.parse
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import pytest

from taskmanager.domain.model import MAX_PAYLOAD_BYTES
from taskmanager.entrypoints.http.body import MAX_BODY_BYTES
from tests.integration.servers import FuzzTarget

if TYPE_CHECKING:
    from collections.abc import Iterator

JSON: Final = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    with FuzzTarget.start(tmp_path_factory.mktemp("bad-input")) as running:
        yield running


def send(
    target: FuzzTarget,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One raw request (bytes exactly as given); returns status, headers, parsed JSON body."""
    url = urllib.parse.urlsplit(target.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={**JSON, **(headers or {})})
        response = connection.getresponse()
        raw = response.read()
        answer = dict(response.getheaders())
    finally:
        connection.close()
    text = raw.decode()
    assert "Traceback" not in text
    return response.status, answer, json.loads(text)


def error_code(body: Any) -> str:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return str(body["error"]["code"])


def submit(target: FuzzTarget, document: Any, **headers: str) -> tuple[int, Any]:
    raw = json.dumps(document, ensure_ascii=False).encode()
    status, _, body = send(target, "POST", "/tasks", raw, headers)
    return status, body


# --- bodies ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(b"{bad", 400, id="malformed"),
        pytest.param(b'{"type": "r"', 400, id="truncated"),
        pytest.param(b'{"type": "r"} trailing', 400, id="trailing-garbage"),
        pytest.param(b'{"type": "r", "input": Infinity}', 400, id="infinity"),
        pytest.param(b'{"type": "\xff\xfe"}', 400, id="non-utf8"),
        pytest.param(b'{"type": "\xed\xa0\x80"}', 400, id="utf8-encoded-surrogate"),
        pytest.param(b"\xef\xbb\xbf" + b'{"type": "r"}', 400, id="utf8-bom"),
        pytest.param(b"[" * 60_000 + b"]" * 60_000, 400, id="deep-array-nesting"),
        pytest.param(b'{"a":' * 20_000 + b"1" + b"}" * 20_000, 400, id="deep-object-nesting"),
        pytest.param(b"", 422, id="empty"),
        pytest.param(b"null", 422, id="null"),
        pytest.param(b"[]", 422, id="array"),
        pytest.param(b'{"type": 7}', 422, id="type-number"),
        pytest.param(b'{"type": ["r"]}', 422, id="type-list"),
        pytest.param(b'{"type": "r", "timeout_seconds": true}', 422, id="timeout-bool"),
        pytest.param(b'{"type": "r", "timeout_seconds": "60"}', 422, id="timeout-string"),
        pytest.param(b'{"type": "r", "timeout_seconds": 60.5}', 422, id="timeout-fraction"),
        pytest.param(b'{"type": "r", "heartbeat_seconds": false}', 422, id="heartbeat-bool"),
        pytest.param(b'{"type": "r", "timeout_seconds": 1e400}', 422, id="timeout-overflow"),
        pytest.param(b'{"type": "r", "timeout_seconds": -1}', 422, id="timeout-negative"),
        pytest.param(
            b'{"type": "r", "timeout_seconds": 99999999999999999999999}', 422, id="timeout-bigint"
        ),
        pytest.param(b'{"type": "r", "owner": "bob"}', 422, id="unknown-field-owner"),
        pytest.param(b'{"type": "r", "status": "SUCCESSFUL"}', 422, id="unknown-field-status"),
        pytest.param(b'{"type": "r\\u0000"}', 422, id="nul-in-type"),
        pytest.param(b'{"type": "r\\n"}', 422, id="newline-in-type"),
        pytest.param(b'{"type": "\\ud800"}', 422, id="lone-surrogate-escape"),
        pytest.param(b'{"type": "r", "input": "\\ud800"}', 400, id="lone-surrogate-input"),
    ],
)
def test_bad_bodies_are_client_errors_with_the_error_body(
    target: FuzzTarget, body: bytes, status: int
) -> None:
    got, _, answer = send(target, "POST", "/tasks", body)
    assert (got, error_code(answer)) == (status, "INVALID_REQUEST"), answer


def test_a_huge_string_is_refused_before_parsing(target: FuzzTarget) -> None:
    huge = b'{"type": "' + b"t" * (4 * MAX_BODY_BYTES) + b'"}'
    status, _, body = send(target, "POST", "/tasks", huge)
    assert (status, error_code(body)) == (413, "PAYLOAD_TOO_LARGE")


def test_deeply_nested_input_within_the_size_limit_is_accepted_or_refused_cleanly(
    target: FuzzTarget,
) -> None:
    for depth in (100, 1_000, 10_000):
        nested = b'{"type": "r", "input": ' + b"[" * depth + b"]" * depth + b"}"
        status, _, body = send(target, "POST", "/tasks", nested)
        assert status in {202, 400}, body
        if status == 400:
            assert error_code(body) == "INVALID_REQUEST"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "multipart/form-data; boundary=x", ""]
)
def test_a_body_that_is_not_json_is_415(target: FuzzTarget, content_type: str) -> None:
    status, _, body = send(
        target, "POST", "/tasks", b'{"type": "r"}', {"Content-Type": content_type}
    )
    assert (status, error_code(body)) == (415, "UNSUPPORTED_MEDIA_TYPE")


# --- limits of docs/design.md §2 and §5, at the bound and one past it ----------------------


def test_type_of_64_characters_is_accepted_and_65_refused(target: FuzzTarget) -> None:
    assert submit(target, {"type": "t" * 64})[0] == 202
    status, body = submit(target, {"type": "t" * 65})
    assert (status, error_code(body)) == (422, "INVALID_REQUEST")


def test_input_of_128_kib_is_accepted_and_one_byte_more_is_413(target: FuzzTarget) -> None:
    status, task = submit(target, {"type": "r", "input": "a" * (MAX_PAYLOAD_BYTES - 2)})
    assert status == 202
    assert len(task["input"]) == MAX_PAYLOAD_BYTES - 2
    status, body = submit(target, {"type": "r", "input": "a" * (MAX_PAYLOAD_BYTES - 1)})
    assert (status, error_code(body)) == (413, "PAYLOAD_TOO_LARGE")


def test_input_size_counts_utf8_bytes_not_characters(target: FuzzTarget) -> None:
    # "é" is two bytes in UTF-8: half as many characters fill the limit.
    chars = (MAX_PAYLOAD_BYTES - 2) // 2
    assert submit(target, {"type": "r", "input": "é" * chars})[0] == 202
    status, body = submit(target, {"type": "r", "input": "é" * (chars + 1)})
    assert (status, error_code(body)) == (413, "PAYLOAD_TOO_LARGE")


def test_request_body_at_the_byte_limit_is_parsed_and_one_past_is_413(target: FuzzTarget) -> None:
    padded = b'{"type": "r"}'.ljust(MAX_BODY_BYTES)
    assert send(target, "POST", "/tasks", padded)[0] == 202
    status, _, body = send(target, "POST", "/tasks", padded + b" ")
    assert (status, error_code(body)) == (413, "PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"timeout_seconds": 1}, 202),
        ({"timeout_seconds": 0}, 422),
        ({"timeout_seconds": 604_800}, 202),
        ({"timeout_seconds": 604_801}, 422),
        ({"timeout_seconds": 60, "heartbeat_seconds": 60}, 202),
        ({"timeout_seconds": 60, "heartbeat_seconds": 61}, 422),
        ({"heartbeat_seconds": 1}, 202),
        ({"heartbeat_seconds": 0}, 422),
        ({"heartbeat_seconds": 3_600}, 202),  # the default timeout bounds it
        ({"heartbeat_seconds": 3_601}, 422),
        ({"timeout_seconds": 60, "start_timeout_seconds": 60}, 202),
        ({"timeout_seconds": 60, "start_timeout_seconds": 61}, 422),
        ({"start_timeout_seconds": 1}, 202),
        ({"start_timeout_seconds": 0}, 422),
        ({"start_timeout_seconds": 3_600}, 202),  # the default timeout bounds it
        ({"start_timeout_seconds": 3_601}, 422),
    ],
)
def test_timeout_and_heartbeat_bounds(
    target: FuzzTarget, fields: dict[str, int], status: int
) -> None:
    got, body = submit(target, {"type": "r", **fields})
    assert got == status, body
    if status != 202:
        assert error_code(body) == "INVALID_REQUEST"
        return
    assert body["heartbeat_seconds"] == fields.get("heartbeat_seconds")
    assert body["start_timeout_seconds"] == fields.get("start_timeout_seconds")
    created = datetime.fromisoformat(body["created_at"])
    deadline = datetime.fromisoformat(body["deadline_at"])
    assert (deadline - created).total_seconds() == fields.get("timeout_seconds", 3_600)


@pytest.mark.parametrize(("limit", "status"), [("1", 200), ("100", 200), ("0", 400), ("101", 400)])
def test_list_limit_bounds(target: FuzzTarget, limit: str, status: int) -> None:
    submit(target, {"type": "r"})
    got, _, body = send(target, "GET", f"/tasks?limit={limit}")
    assert got == status, body
    if status == 200:
        assert 1 <= len(body["items"]) <= int(limit)
    else:
        assert error_code(body) == "INVALID_REQUEST"


@pytest.mark.parametrize(
    "query", ["limit=1.5", "limit=%00", "limit=1e3", "status=done", "status=", "type=" + "t" * 65]
)
def test_bad_list_parameters_are_400(target: FuzzTarget, query: str) -> None:
    status, _, body = send(target, "GET", f"/tasks?{query}")
    assert (status, error_code(body)) == (400, "INVALID_REQUEST"), body


@pytest.mark.parametrize("key", ["k", "k" * 255])
def test_idempotency_key_of_1_and_255_characters_is_accepted(target: FuzzTarget, key: str) -> None:
    first = submit(target, {"type": "idem"}, **{"Idempotency-Key": key})
    again = submit(target, {"type": "idem"}, **{"Idempotency-Key": key})
    assert first[0] == again[0] == 202
    assert first[1]["id"] == again[1]["id"]


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("k" * 256, id="256-characters"),
        pytest.param("has space", id="space"),
        pytest.param("tab\there", id="tab"),
        pytest.param("caf\u00e9", id="latin-1"),
        pytest.param("k" * 8_000, id="8000-characters"),
    ],
)
def test_bad_idempotency_keys_are_400(target: FuzzTarget, key: str) -> None:
    status, _, body = send(target, "POST", "/tasks", b'{"type": "r"}', {"Idempotency-Key": key})
    assert (status, error_code(body)) == (400, "INVALID_REQUEST"), body


def test_reusing_an_idempotency_key_for_another_request_is_422(target: FuzzTarget) -> None:
    key = {"Idempotency-Key": "reuse-check-1"}
    assert submit(target, {"type": "a"}, **key)[0] == 202
    status, body = submit(target, {"type": "a", "input": 1}, **key)
    assert (status, error_code(body)) == (422, "IDEMPOTENCY_KEY_REUSED")


# --- cursors ---------------------------------------------------------------------------------


def _real_cursor(target: FuzzTarget) -> str:
    for _ in range(3):
        submit(target, {"type": "cursor.check"})
    status, _, page = send(target, "GET", "/tasks?type=cursor.check&limit=1")
    assert status == 200
    cursor = page["next_cursor"]
    assert isinstance(cursor, str)
    return cursor


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def tampered(cursor: str) -> list[str]:
    payload, _, signature = cursor.partition(".")
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    return [
        flipped + "." + signature,
        payload + "." + signature[::-1],
        payload,
        cursor + ".extra",
        cursor[:-3],
        _b64(b'["2000-01-01T00:00:00.000000Z", "x"]') + "." + signature,
        _b64(b'["\\ud800", "x"]') + "." + signature,
        _b64(b"[1, 2]") + "." + signature,
        _b64(b"{}") + "." + signature,
        _b64(b"\xff\xfe") + "." + signature,
        "." * 10,
        "%00",
        "' OR 1=1 --",
        "\u00e9",
    ]


def test_tampered_cursors_are_400_and_leak_nothing(target: FuzzTarget) -> None:
    for cursor in tampered(_real_cursor(target)):
        query = urllib.parse.urlencode({"cursor": cursor})
        status, _, body = send(target, "GET", f"/tasks?{query}")
        assert (status, error_code(body)) == (400, "INVALID_REQUEST"), (cursor, body)


def test_the_untampered_cursor_still_works(target: FuzzTarget) -> None:
    cursor = _real_cursor(target)
    query = urllib.parse.urlencode({"type": "cursor.check", "limit": 1, "cursor": cursor})
    status, _, page = send(target, "GET", f"/tasks?{query}")
    assert status == 200
    assert len(page["items"]) == 1


# --- paths and methods -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/tasks/" + "x" * 65,
        "/tasks/%00",
        "/tasks/..%2F..%2Fetc%2Fpasswd",
        "/tasks/' OR '1'='1",
        "/tasks/%ED%A0%80",
        "/tasks/%FF",
    ],
)
def test_odd_task_ids_are_404(target: FuzzTarget, path: str) -> None:
    for method, suffix in (("GET", ""), ("POST", "/cancel")):
        status, _, body = send(target, method, urllib.parse.quote(path + suffix, safe="/%"))
        assert status == 404, (path, body)
        assert error_code(body) in {"TASK_NOT_FOUND", "ROUTE_NOT_FOUND"}


def test_the_server_still_serves_after_the_bad_input(target: FuzzTarget) -> None:
    target.assert_healthy()
