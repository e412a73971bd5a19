"""Properties of the contracts: every event survives JSON unchanged; invalid input is refused."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from taskmanager.adapters.memory import InMemoryTaskRepository, ManualClock, UuidIdFactory
from taskmanager.domain.errors import InvalidRequestError, PayloadTooLargeError
from taskmanager.domain.events import (
    TaskResource,
    TaskUpdated,
    envelope,
    parse_event,
    task_resource,
)
from taskmanager.domain.model import (
    ERROR_CODE_PATTERN,
    MAX_ERROR_MESSAGE_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_PROGRESS_MESSAGE_BYTES,
    MAX_SEQUENCE,
    MAX_TIMEOUT_SECONDS,
    TYPE_MAX_LENGTH,
    TYPE_PATTERN,
    Progress,
    SubmitTask,
    TaskError,
    TaskStatus,
    json_size,
    validate_idempotency_key,
)
from taskmanager.domain.services import record_update, submit_task

# --- strategies ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=5,
)
scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)


@st.composite
def texts_of_about(draw: st.DrawFn, low: int, high: int) -> str:
    """Unicode text of roughly ``low``..``high`` characters, cheap to draw: a random chunk of
    1 to 4-byte characters repeated, plus a random tail."""
    chunk = draw(st.text(min_size=1, max_size=8))
    tail = draw(st.text(max_size=8))
    count = draw(st.integers(low // len(chunk), high // len(chunk)))
    return chunk * count + tail


_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ALNUM = _UPPER + _UPPER.lower() + "0123456789"
# Built from parts rather than st.from_regex, which draws far more slowly.
task_types = st.builds(
    str.__add__, st.sampled_from(_ALNUM), st.text(_ALNUM + "._:-", max_size=TYPE_MAX_LENGTH - 1)
)
error_codes = st.builds(
    str.__add__, st.sampled_from(_UPPER), st.text(_UPPER + "0123456789_", max_size=63)
)
task_ids = st.uuids().map(str) | st.text(min_size=1, max_size=64)
progresses = st.builds(
    Progress,
    percent=st.floats(min_value=0, max_value=100),
    message=st.none() | st.text(max_size=40),
)
task_errors = st.builds(TaskError, code=error_codes, message=st.text(max_size=40))
sequences = st.none() | st.integers(min_value=1, max_value=MAX_SEQUENCE)
# Any microsecond between 2000 and 2200, drawn as an integer (cheaper than st.datetimes).
instants = st.integers(946_684_800_000_000, 7_258_118_400_000_000).map(
    lambda us: datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)
)
small_json = (
    scalars
    | st.lists(scalars, max_size=3)
    | st.dictionaries(st.text(max_size=4), scalars, max_size=3)
)


@st.composite
def task_updates(
    draw: st.DrawFn, task_id: str | None = None, values: st.SearchStrategy[Any] = json_values
) -> TaskUpdated:
    status = draw(st.sampled_from(["RUNNING", "SUCCESSFUL", "FAILED"]))
    body: dict[str, Any] = {
        "task_id": task_id or draw(task_ids),
        "status": status,
        "sequence": draw(sequences),
    }
    if status == "RUNNING":
        body["progress"] = draw(st.none() | progresses)
    elif status == "SUCCESSFUL":
        body["result"] = draw(values)
    else:
        body["error"] = draw(task_errors)
    return TaskUpdated.model_validate(body)


@st.composite
def lifecycles(draw: st.DrawFn) -> InMemoryTaskRepository:
    """A repository after one task's submit and a few updates, at arbitrary times."""
    repo, clock = InMemoryTaskRepository(), ManualClock(draw(instants))
    command = SubmitTask(
        type=draw(task_types),
        input=draw(small_json),
        timeout_seconds=draw(st.none() | st.integers(1, MAX_TIMEOUT_SECONDS)),
    )
    task = submit_task(command, owner="o", repo=repo, clock=clock, ids=UuidIdFactory()).task
    for update in draw(st.lists(task_updates(task.id, small_json), max_size=3)):
        clock.advance(draw(st.floats(min_value=0, max_value=1e6)))
        record_update(update, repo=repo, clock=clock)
    return repo


# --- round trips --------------------------------------------------------------------------------


@given(repo=lifecycles(), source=st.sampled_from(["taskmanager", "acme.tasks"]))
def test_every_outbound_event_and_task_resource_round_trips_through_json_unchanged(
    repo: InMemoryTaskRepository, source: str
) -> None:
    for entry in repo.undelivered:
        wrapped = envelope(entry.event, source)
        text = wrapped.model_dump_json(by_alias=True)
        parsed = parse_event(text)
        assert parsed == wrapped
        assert parsed.detail == entry.event
        assert json.loads(text)["detail-type"] == entry.event.DETAIL_TYPE
        assert parse_event(json.loads(text)) == wrapped
    task = repo.get(repo.undelivered[0].event.id)
    assert task is not None
    resource = task_resource(task)
    assert TaskResource.model_validate_json(resource.model_dump_json()) == resource


@given(update=task_updates(), source=st.text(min_size=1, max_size=20))
def test_every_task_updated_round_trips_through_json_unchanged(
    update: TaskUpdated, source: str
) -> None:
    wrapped = envelope(update, source)
    parsed = parse_event(wrapped.model_dump_json(by_alias=True))
    assert parsed == wrapped
    assert parsed.detail == update


@given(
    update=task_updates(),
    extra=st.dictionaries(st.text(min_size=1, max_size=8), scalars, max_size=3),
)
def test_task_updated_ignores_fields_it_does_not_know(
    update: TaskUpdated, extra: dict[str, Any]
) -> None:
    known = set(TaskUpdated.model_fields)
    body = {**{k: v for k, v in extra.items() if k not in known}, **update.model_dump()}
    assert TaskUpdated.model_validate(body) == update


# --- refusals -----------------------------------------------------------------------------------


@given(type=st.text(min_size=TYPE_MAX_LENGTH + 1, max_size=TYPE_MAX_LENGTH + 40))
def test_an_over_long_type_is_refused(type: str) -> None:
    with pytest.raises(ValidationError):
        SubmitTask(type=type)


@given(type=st.text(max_size=TYPE_MAX_LENGTH))
def test_a_type_is_accepted_exactly_when_it_matches_the_pattern(type: str) -> None:
    matches = re.fullmatch(TYPE_PATTERN.rstrip("$"), type) is not None
    try:
        SubmitTask(type=type)
    except ValidationError:
        assert not matches
    else:
        assert matches


@given(code=st.text(max_size=70))
def test_an_error_code_is_accepted_exactly_when_it_matches_the_pattern(code: str) -> None:
    matches = re.fullmatch(ERROR_CODE_PATTERN.rstrip("$"), code) is not None
    try:
        TaskError(code=code, message="m")
    except ValidationError:
        assert not matches
    else:
        assert matches


@st.composite
def payloads_over_the_limit(draw: st.DrawFn) -> Any:
    size = draw(st.integers(MAX_PAYLOAD_BYTES + 1, MAX_PAYLOAD_BYTES + 5000))
    shape = draw(st.sampled_from(["string", "list", "object"]))
    if shape == "string":
        value: Any = "x" * (size - 2)
    elif shape == "list":
        value = ["y" * 1000] * (size // 1003) + ["z" * (size % 1003)]
    else:
        value = {"data": "é" * (size // 2)}
    assert json_size(value) > MAX_PAYLOAD_BYTES
    return value


@given(value=payloads_over_the_limit())
def test_an_input_over_128_kib_is_refused(value: Any) -> None:
    repo, clock = InMemoryTaskRepository(), ManualClock()
    with pytest.raises(PayloadTooLargeError):
        submit_task(
            SubmitTask(type="t", input=value),
            owner="o",
            repo=repo,
            clock=clock,
            ids=UuidIdFactory(),
        )
    assert repo.undelivered == []


@given(value=payloads_over_the_limit())
def test_a_result_over_128_kib_is_refused(value: Any) -> None:
    with pytest.raises(ValidationError):
        TaskUpdated.model_validate({"task_id": "t", "status": "SUCCESSFUL", "result": value})


@given(message=texts_of_about(200, MAX_PROGRESS_MESSAGE_BYTES + 50))
def test_a_progress_message_is_accepted_exactly_up_to_1_kib_of_utf8(message: str) -> None:
    fits = len(message.encode()) <= MAX_PROGRESS_MESSAGE_BYTES
    try:
        Progress(percent=1, message=message)
    except ValidationError:
        assert not fits
    else:
        assert fits


@given(message=texts_of_about(1000, MAX_ERROR_MESSAGE_BYTES + 50))
def test_an_error_message_is_accepted_exactly_up_to_4_kib_of_utf8(message: str) -> None:
    fits = len(message.encode()) <= MAX_ERROR_MESSAGE_BYTES
    try:
        TaskError(code="E", message=message)
    except ValidationError:
        assert not fits
    else:
        assert fits


@given(
    status=st.sampled_from(["FAILED", "RUNNING"]),
    result=scalars.filter(lambda v: v is not None) | st.lists(scalars, min_size=0, max_size=3),
)
def test_a_result_with_any_status_but_successful_is_refused(status: str, result: Any) -> None:
    body: dict[str, Any] = {"task_id": "t", "status": status, "result": result}
    if status == "FAILED":
        body["error"] = {"code": "E", "message": "m"}
    with pytest.raises(ValidationError):
        TaskUpdated.model_validate(body)


@given(status=st.sampled_from(["SUCCESSFUL", "FAILED"]), progress=progresses)
def test_progress_with_a_terminal_status_is_refused(status: str, progress: Progress) -> None:
    body: dict[str, Any] = {"task_id": "t", "status": status, "progress": progress.model_dump()}
    if status == "FAILED":
        body["error"] = {"code": "E", "message": "m"}
    with pytest.raises(ValidationError):
        TaskUpdated.model_validate(body)


@given(error=task_errors, status=st.sampled_from(["SUCCESSFUL", "RUNNING"]))
def test_an_error_is_required_with_failed_and_refused_otherwise(
    error: TaskError, status: str
) -> None:
    with pytest.raises(ValidationError):
        TaskUpdated.model_validate({"task_id": "t", "status": "FAILED"})
    with pytest.raises(ValidationError):
        TaskUpdated.model_validate({"task_id": "t", "status": status, "error": error.model_dump()})


@given(
    percent=st.floats(max_value=-1e-9)
    | st.floats(min_value=100.000001)
    | st.sampled_from([float("nan"), float("inf"), float("-inf")])
)
def test_a_percent_outside_0_to_100_is_refused(percent: float) -> None:
    with pytest.raises(ValidationError):
        Progress(percent=percent)
    with pytest.raises(ValidationError):
        TaskUpdated.model_validate(
            {"task_id": "t", "status": "RUNNING", "progress": {"percent": percent}}
        )


@given(status=st.text().filter(lambda s: s not in {"RUNNING", "SUCCESSFUL", "FAILED"}))
def test_an_update_with_another_status_is_refused(status: str) -> None:
    with pytest.raises(ValidationError):
        TaskUpdated.model_validate({"task_id": "t", "status": status})


@given(sequence=st.integers(max_value=0) | st.integers(min_value=MAX_SEQUENCE + 1))
def test_a_sequence_outside_1_to_2_pow_53_is_refused(sequence: int) -> None:
    with pytest.raises(ValidationError):
        TaskUpdated.model_validate({"task_id": "t", "status": "RUNNING", "sequence": sequence})


@given(seconds=st.integers())
def test_a_timeout_is_accepted_exactly_within_1_to_604800(seconds: int) -> None:
    fits = 1 <= seconds <= MAX_TIMEOUT_SECONDS
    try:
        SubmitTask(type="t", timeout_seconds=seconds)
    except ValidationError:
        assert not fits
    else:
        assert fits


@given(timeout=st.integers(1, MAX_TIMEOUT_SECONDS), heartbeat=st.integers(1, MAX_TIMEOUT_SECONDS))
def test_a_heartbeat_is_accepted_exactly_up_to_the_timeout(timeout: int, heartbeat: int) -> None:
    command = SubmitTask(type="t", timeout_seconds=timeout, heartbeat_seconds=heartbeat)
    repo, clock = InMemoryTaskRepository(), ManualClock()
    try:
        submit_task(command, owner="o", repo=repo, clock=clock, ids=UuidIdFactory())
    except InvalidRequestError:
        assert heartbeat > timeout
    else:
        assert heartbeat <= timeout


@given(key=st.text(max_size=260) | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7F)))
def test_an_idempotency_key_is_accepted_exactly_when_printable_ascii_up_to_255(key: str) -> None:
    fits = 1 <= len(key) <= 255 and all(0x21 <= ord(c) <= 0x7E for c in key)
    try:
        validate_idempotency_key(key)
    except InvalidRequestError:
        assert not fits
    else:
        assert fits


_ABSENT = object()


@given(
    status=st.sampled_from(["RUNNING", "SUCCESSFUL", "FAILED", "CREATED", "running", ""]),
    progress=st.sampled_from([_ABSENT, None, {"percent": 5}]),
    result=st.sampled_from([_ABSENT, None, 0, "", {"a": 1}, [None]]),
    error=st.sampled_from([_ABSENT, None, {"code": "E", "message": "m"}]),
    as_json=st.booleans(),
)
def test_status_and_fields_are_accepted_exactly_by_the_rules_of_design_4(
    status: str, progress: Any, result: Any, error: Any, as_json: bool
) -> None:
    """RUNNING may carry progress, SUCCESSFUL a result, FAILED must carry an error; any of
    the three may otherwise only be absent or null."""
    body: dict[str, Any] = {"task_id": "t", "status": status}
    for name, value in (("progress", progress), ("result", result), ("error", error)):
        if value is not _ABSENT:
            body[name] = value
    present = {name for name in ("progress", "result", "error") if body.get(name) is not None}
    allowed = {"RUNNING": {"progress"}, "SUCCESSFUL": {"result"}, "FAILED": {"error"}}
    legal = (
        status in allowed
        and present <= allowed[status]
        and (status != "FAILED" or "error" in present)
    )
    try:
        if as_json:
            update = TaskUpdated.model_validate_json(json.dumps(body))
        else:
            update = TaskUpdated.model_validate(body)
    except ValidationError:
        assert not legal
    else:
        assert legal
        assert update.status == status
        assert update.status is TaskStatus(status)
