"""Every limit of docs/design.md §2 and §5, at the limit (accepted) and one past it (refused)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from pydantic import ValidationError

from taskmanager.domain.errors import InvalidRequestError, PayloadTooLargeError
from taskmanager.domain.events import TaskUpdated
from taskmanager.domain.model import (
    MAX_ERROR_MESSAGE_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_PROGRESS_MESSAGE_BYTES,
    MAX_SEQUENCE,
    Progress,
    SubmitTask,
    TaskError,
    json_size,
    validate_idempotency_key,
)
from taskmanager.domain.services import Policy, list_tasks

if TYPE_CHECKING:
    from tests.unit.conftest import World


def _string_of_json_size(size: int) -> str:
    """An ASCII string whose JSON form (with its two quotes) is ``size`` bytes."""
    value = "a" * (size - 2)
    assert json_size(value) == size
    return value


def _error_types(exc: ValidationError) -> set[str]:
    return {str(e["type"]) for e in exc.errors()}


# --- type --------------------------------------------------------------------------------------


def test_type_of_64_characters_is_accepted_and_65_refused() -> None:
    assert SubmitTask(type="t" * 64).type == "t" * 64
    with pytest.raises(ValidationError) as raised:
        SubmitTask(type="t" * 65)
    assert _error_types(raised.value) == {"string_too_long"}


@pytest.mark.parametrize("good", ["a", "A", "0", "report.render", "a:b-c_d.e", "Z9" * 32])
def test_type_matching_the_pattern_is_accepted(good: str) -> None:
    assert SubmitTask(type=good).type == good


@pytest.mark.parametrize("bad", ["", "-a", ".a", "_a", ":a", "a b", "a/b", "é", "a\n", "a*"])
def test_type_not_matching_the_pattern_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        SubmitTask(type=bad)


# --- input and result: 128 KiB serialised ------------------------------------------------------


def test_input_of_exactly_128_kib_is_accepted(world: World) -> None:
    task = world.task(input=_string_of_json_size(MAX_PAYLOAD_BYTES))
    assert json_size(task.input) == MAX_PAYLOAD_BYTES


def test_input_one_byte_over_128_kib_is_refused(world: World) -> None:
    with pytest.raises(PayloadTooLargeError) as raised:
        world.submit(input=_string_of_json_size(MAX_PAYLOAD_BYTES + 1))
    assert raised.value.code == "PAYLOAD_TOO_LARGE"
    assert raised.value.details == {
        "field": "input",
        "size": MAX_PAYLOAD_BYTES + 1,
        "limit": MAX_PAYLOAD_BYTES,
    }
    assert world.repo.undelivered == []


def test_input_size_counts_nested_json_compactly(world: World) -> None:
    # {"k":"..."} is 8 bytes of structure around the string.
    at_limit = {"k": "a" * (MAX_PAYLOAD_BYTES - 8)}
    assert json_size(at_limit) == MAX_PAYLOAD_BYTES
    world.submit(input=at_limit)
    with pytest.raises(PayloadTooLargeError):
        world.submit(input={"k": "a" * (MAX_PAYLOAD_BYTES - 7)})


def test_result_of_exactly_128_kib_is_accepted() -> None:
    value = _string_of_json_size(MAX_PAYLOAD_BYTES)
    update = TaskUpdated.model_validate({"task_id": "t", "status": "SUCCESSFUL", "result": value})
    assert update.result == value


def test_result_one_byte_over_128_kib_is_refused() -> None:
    with pytest.raises(ValidationError) as raised:
        TaskUpdated.model_validate(
            {"task_id": "t", "status": "SUCCESSFUL", "result": "a" * (MAX_PAYLOAD_BYTES - 1)}
        )
    assert _error_types(raised.value) == {"payload_too_large"}


# --- progress and error messages: bytes, not characters -----------------------------------------


def test_progress_message_of_1_kib_is_accepted_and_one_byte_more_refused() -> None:
    assert Progress(percent=1, message="a" * MAX_PROGRESS_MESSAGE_BYTES).message is not None
    with pytest.raises(ValidationError) as raised:
        Progress(percent=1, message="a" * (MAX_PROGRESS_MESSAGE_BYTES + 1))
    assert _error_types(raised.value) == {"string_too_long_bytes"}


def test_progress_message_limit_counts_utf8_bytes() -> None:
    two_byte = "é" * (MAX_PROGRESS_MESSAGE_BYTES // 2)  # 512 characters, 1024 bytes
    assert Progress(percent=1, message=two_byte).message == two_byte
    with pytest.raises(ValidationError):
        Progress(percent=1, message=two_byte + "a")  # 513 characters, 1025 bytes


def test_progress_message_limit_applies_inside_an_update() -> None:
    body = {"task_id": "t", "status": "RUNNING", "progress": {"percent": 1}}
    body["progress"] = {"percent": 1, "message": "€" * 341 + "a"}  # 1024 bytes
    TaskUpdated.model_validate(body)
    body["progress"] = {"percent": 1, "message": "€" * 341 + "ab"}  # 1025 bytes
    with pytest.raises(ValidationError):
        TaskUpdated.model_validate(body)


def test_error_message_of_4_kib_is_accepted_and_one_byte_more_refused() -> None:
    assert TaskError(code="E", message="a" * MAX_ERROR_MESSAGE_BYTES).message
    with pytest.raises(ValidationError) as raised:
        TaskError(code="E", message="a" * (MAX_ERROR_MESSAGE_BYTES + 1))
    assert _error_types(raised.value) == {"string_too_long_bytes"}


def test_error_message_limit_counts_utf8_bytes() -> None:
    four_byte = "😀" * (MAX_ERROR_MESSAGE_BYTES // 4)
    assert TaskError(code="E", message=four_byte).message == four_byte
    with pytest.raises(ValidationError):
        TaskError(code="E", message=four_byte + "a")


# --- error code ---------------------------------------------------------------------------------


@pytest.mark.parametrize("good", ["A", "E1", "TIMEOUT", "OUT_OF_MEMORY", "A" + "B" * 63])
def test_error_code_matching_the_pattern_is_accepted(good: str) -> None:
    assert TaskError(code=good, message="m").code == good


@pytest.mark.parametrize("bad", ["", "a", "1A", "_A", "A-B", "A B", "Ab", "A" + "B" * 64, "É"])
def test_error_code_not_matching_the_pattern_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        TaskError(code=bad, message="m")


# --- timeout and heartbeat ----------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [1, 604_800])
def test_timeout_at_its_bounds_is_accepted(world: World, seconds: int) -> None:
    assert world.task(timeout_seconds=seconds).deadline_at > world.clock.now()


@pytest.mark.parametrize("seconds", [0, -1, 604_801])
def test_timeout_past_its_bounds_is_refused(seconds: int) -> None:
    with pytest.raises(ValidationError):
        SubmitTask(type="t", timeout_seconds=seconds)


@pytest.mark.parametrize("seconds", [0, -1])
def test_heartbeat_below_one_second_is_refused(seconds: int) -> None:
    with pytest.raises(ValidationError):
        SubmitTask(type="t", heartbeat_seconds=seconds)


def test_heartbeat_equal_to_the_timeout_is_accepted_and_one_more_refused(world: World) -> None:
    assert world.task(timeout_seconds=60, heartbeat_seconds=60).heartbeat_seconds == 60
    with pytest.raises(InvalidRequestError) as raised:
        world.submit(timeout_seconds=60, heartbeat_seconds=61)
    assert raised.value.code == "INVALID_REQUEST"
    assert raised.value.details == {"field": "heartbeat_seconds"}


def test_heartbeat_is_bounded_by_the_default_timeout_when_none_is_given(world: World) -> None:
    assert world.task(heartbeat_seconds=3600).heartbeat_seconds == 3600
    with pytest.raises(InvalidRequestError):
        world.submit(heartbeat_seconds=3601)


@pytest.mark.parametrize("seconds", [0, 604_801])
def test_policy_refuses_a_default_timeout_out_of_bounds(seconds: int) -> None:
    with pytest.raises(ValueError, match="default_timeout_seconds"):
        Policy(default_timeout_seconds=seconds)


def test_policy_refuses_a_retention_below_one_second() -> None:
    with pytest.raises(ValueError, match="retention_seconds"):
        Policy(retention_seconds=0)


# --- list limit ---------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 100])
def test_list_limit_at_its_bounds_is_accepted(world: World, limit: int) -> None:
    for _ in range(3):
        world.task()
    page = list_tasks(owner="alice", repo=world.repo, clock=world.clock, limit=limit)
    assert len(page.items) == min(limit, 3)


@pytest.mark.parametrize("limit", [0, -1, 101])
def test_list_limit_past_its_bounds_is_refused(world: World, limit: int) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        list_tasks(owner="alice", repo=world.repo, clock=world.clock, limit=limit)
    assert raised.value.details == {"field": "limit"}


# --- idempotency key ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["k", "!", "~", "a" * 255, "order-42:retry/1?x=y"])
def test_idempotency_key_of_printable_ascii_up_to_255_is_accepted(world: World, key: str) -> None:
    assert validate_idempotency_key(key) == key
    assert world.submit(key=key).task.idempotency_key == key


@pytest.mark.parametrize("key", ["", "a" * 256, "a b", "é", "tab\there", "\x7f", "line\n"])
def test_idempotency_key_of_another_form_is_refused(world: World, key: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        world.submit(key=key)
    assert raised.value.details == {"header": "Idempotency-Key"}
    assert world.repo.undelivered == []


# --- inbound update fields ----------------------------------------------------------------------


@pytest.mark.parametrize("sequence", [1, MAX_SEQUENCE])
def test_sequence_at_its_bounds_is_accepted(sequence: int) -> None:
    update = TaskUpdated.model_validate({"task_id": "t", "status": "RUNNING", "sequence": sequence})
    assert update.sequence == sequence


@pytest.mark.parametrize("sequence", [0, -1, MAX_SEQUENCE + 1])
def test_sequence_past_its_bounds_is_refused(sequence: int) -> None:
    with pytest.raises(ValidationError):
        TaskUpdated.model_validate({"task_id": "t", "status": "RUNNING", "sequence": sequence})


@pytest.mark.parametrize("percent", [0, 0.0, 55.5, 100])
def test_percent_within_0_to_100_is_accepted(percent: float) -> None:
    assert Progress(percent=percent).percent == percent


@pytest.mark.parametrize("percent", [-0.001, 100.001, float("nan"), float("inf"), "lots"])
def test_percent_outside_0_to_100_is_refused(percent: Any) -> None:
    with pytest.raises(ValidationError):
        Progress(percent=percent)


@pytest.mark.parametrize(("length", "ok"), [(0, False), (1, True), (64, True), (65, False)])
def test_update_task_id_length_is_bounded(length: int, ok: bool) -> None:
    body = {"task_id": "t" * length, "status": "RUNNING"}
    if ok:
        assert TaskUpdated.model_validate(body).task_id == "t" * length
    else:
        with pytest.raises(ValidationError):
            TaskUpdated.model_validate(body)
