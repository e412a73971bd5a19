"""Lambda invocation records (destinations of functions without the SDK, and the on-failure
destination of SDK processors) through the updates handler.

moto stores a function's destinations but never sends a record, so the records here are
built in AWS's documented shape (tests/events/lambda_destination_*.json) and delivered as
the SQS messages a queue destination holds: the message body is the record's JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from taskmanager.adapters.memory import InMemoryTaskRepository, ManualClock, UuidIdFactory
from taskmanager.domain.events import TaskUpdated
from taskmanager.domain.invocations import (
    InvocationRecord,
    record_sequence,
    sanitised_code,
    update_from_invocation,
)
from taskmanager.domain.model import MAX_PAYLOAD_BYTES, SubmitTask, TaskStatus
from taskmanager.domain.services import new_task, record_update
from taskmanager.entrypoints import observability as obs
from taskmanager.entrypoints.bootstrap import Dependencies
from taskmanager.entrypoints.updates import create_handler
from tests.support import FakeLambdaContext, load_event

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

TASK = "0b6c7f43-5a1e-4d0f-9a55-3c1f4c2a9e01"
NOW = datetime(2026, 3, 10, 13, 40, 52, tzinfo=UTC)
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:report-render"


@pytest.fixture
def repo() -> InMemoryTaskRepository:
    repo = InMemoryTaskRepository()
    task = new_task(
        SubmitTask(type="report.render", input={"rows": 10}), task_id=TASK, owner="alice", now=NOW
    )
    repo.create(task, NOW)
    repo.mark_delivered([e.position for e in repo.pending(10)])
    return repo


def success(payload: Any = None, **changes: Any) -> dict[str, Any]:
    record = load_event("lambda_destination_success.json")
    if payload is not None:
        record["responsePayload"] = payload
    record.update(changes)
    return record


def failure(
    error_type: str | None, message: str | None, function_error: str = "Unhandled"
) -> dict[str, Any]:
    record = load_event("lambda_destination_failure.json")
    record["responseContext"]["functionError"] = function_error
    payload: dict[str, Any] = {}
    if error_type is not None:
        payload["errorType"] = error_type
    if message is not None:
        payload["errorMessage"] = message
    record["responsePayload"] = payload
    return record


def sqs_batch(*bodies: Mapping[str, Any] | str) -> dict[str, Any]:
    """An SQS batch as the updates function receives it, one message per body."""
    template = load_event("sqs_updates.json")["Records"][0]
    records = []
    for number, body in enumerate(bodies):
        text = body if isinstance(body, str) else json.dumps(body)
        records.append({**template, "messageId": f"m{number}", "body": text})
    return {"Records": records}


def run(
    repo: InMemoryTaskRepository,
    *bodies: Mapping[str, Any] | str,
    sources: Mapping[str, frozenset[str]] | None = None,
) -> list[str]:
    deps = Dependencies(
        repo=repo, clock=ManualClock(NOW), ids=UuidIdFactory(), types_by_source=sources
    )
    obs.metrics().clear_metrics()
    response = create_handler(lambda: deps)(sqs_batch(*bodies), FakeLambdaContext())
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def metric_counts() -> dict[str, float]:
    return {name: sum(m["Value"]) for name, m in obs.metrics().metric_set.items()}


def stored(repo: InMemoryTaskRepository) -> Any:
    task = repo.get(TASK)
    assert task is not None
    return task


# --- outcomes ----------------------------------------------------------------------------------


def test_a_success_record_finishes_the_task_with_the_returned_value(
    repo: InMemoryTaskRepository,
) -> None:
    assert run(repo, success()) == []

    task = stored(repo)
    assert (task.status, task.result, task.error) == (TaskStatus.SUCCESSFUL, {"pages": 12}, None)
    assert [e.event.DETAIL_TYPE for e in repo.undelivered] == ["TaskSuccessful"]
    assert metric_counts() == {obs.UPDATES_APPLIED: 1}


def test_a_handled_error_fails_the_task_with_the_sanitised_error_type(
    repo: InMemoryTaskRepository,
) -> None:
    record = failure("ValueError", "rows must be positive", function_error="Handled")
    assert run(repo, record) == []

    task = stored(repo)
    assert task.status is TaskStatus.FAILED
    assert task.error is not None
    assert (task.error.code, task.error.message) == (
        "VALUE_ERROR",
        "ValueError: rows must be positive",
    )


def test_an_unhandled_crash_without_an_error_type_is_a_function_error(
    repo: InMemoryTaskRepository,
) -> None:
    # AWS's own example record: the runtime process exited; no errorType.
    message = "RequestId: e4b46cbf Process exited before completing request"
    assert run(repo, failure(None, message)) == []

    task = stored(repo)
    assert task.error is not None
    assert (task.error.code, task.error.message) == ("FUNCTION_ERROR", message)


def test_a_timed_out_function_gets_its_own_code(repo: InMemoryTaskRepository) -> None:
    assert run(repo, load_event("lambda_destination_failure.json")) == []

    task = stored(repo)
    assert task.error is not None
    assert task.error.code == "FUNCTION_TIMEOUT"
    assert "Task timed out after 300.00 seconds" in task.error.message


def test_a_timeout_is_recognised_by_its_message_alone() -> None:
    record = InvocationRecord.model_validate(
        failure(None, "2026-03-10T13:45:53.651Z e4b46cbf Task timed out after 3.00 seconds")
    )
    update = update_from_invocation(record)
    assert update.error is not None
    assert update.error.code == "FUNCTION_TIMEOUT"


def test_a_function_out_of_memory_gets_its_own_code(repo: InMemoryTaskRepository) -> None:
    record = failure("Runtime.OutOfMemory", "RequestId: e4b46cbf Error: Runtime exited")
    assert run(repo, record) == []

    task = stored(repo)
    assert task.error is not None
    assert task.error.code == "FUNCTION_OUT_OF_MEMORY"


def test_an_event_too_old_to_run_fails_with_event_age_exceeded(
    repo: InMemoryTaskRepository,
) -> None:
    record = load_event("lambda_destination_failure.json")
    record["requestContext"].update(condition="EventAgeExceeded", approximateInvokeCount=0)
    record.pop("responseContext")
    record.pop("responsePayload")
    assert run(repo, record) == []

    task = stored(repo)
    assert task.error is not None
    assert task.error.code == "EVENT_AGE_EXCEEDED"


def test_the_error_message_is_cut_to_4_kib(repo: InMemoryTaskRepository) -> None:
    assert run(repo, failure("Error", "é" * 5000)) == []

    task = stored(repo)
    assert task.error is not None
    assert task.error.code == "ERROR"
    assert len(task.error.message.encode()) <= 4096
    assert task.error.message.endswith("...")


def test_a_result_over_128_kib_fails_the_task_with_invalid_result(
    repo: InMemoryTaskRepository,
) -> None:
    big = {"text": "x" * MAX_PAYLOAD_BYTES}
    assert run(repo, success(big)) == []

    task = stored(repo)
    assert (task.status, task.result) == (TaskStatus.FAILED, None)
    assert task.error is not None
    assert task.error.code == "INVALID_RESULT"
    assert "131072" in task.error.message


def test_a_result_at_128_kib_is_kept(repo: InMemoryTaskRepository) -> None:
    text = "x" * (MAX_PAYLOAD_BYTES - 2)  # the quotes make it exactly 128 KiB as JSON
    assert run(repo, success(text)) == []
    assert stored(repo).result == text


def test_a_result_that_is_not_json_fails_the_task_with_invalid_result(
    repo: InMemoryTaskRepository,
) -> None:
    # A Python function returning float("nan"): its runtime writes NaN, which is not JSON.
    body = json.dumps(success()).replace('{"pages": 12}', '{"pages": NaN}')
    assert "NaN" in body
    assert run(repo, body) == []

    task = stored(repo)
    assert task.status is TaskStatus.FAILED
    assert task.error is not None
    assert task.error.code == "INVALID_RESULT"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda r: r.pop("requestPayload"), id="no request payload"),
        pytest.param(
            lambda r: r["requestPayload"].update({"detail-type": "TaskRunning"}),
            id="not invoked with TaskCreated",
        ),
        pytest.param(lambda r: r["requestPayload"].pop("detail"), id="no task"),
        pytest.param(
            lambda r: r["requestContext"].update(condition="Maybe"), id="unknown condition"
        ),
        pytest.param(lambda r: r.update(timestamp="yesterday"), id="no time"),
        pytest.param(lambda r: r.update(requestContext={}), id="no request context"),
    ],
)
def test_a_message_of_unknown_shape_fails_for_the_dead_letter_queue(
    repo: InMemoryTaskRepository, change: Callable[[dict[str, Any]], object]
) -> None:
    record = success()
    change(record)
    assert run(repo, record, {"some": "json"}) == ["m0", "m1"]

    assert stored(repo).status is TaskStatus.CREATED
    assert metric_counts() == {obs.UPDATES_MALFORMED: 2}


# --- order and duplicates ------------------------------------------------------------------------


def test_a_record_delivered_twice_is_a_duplicate(repo: InMemoryTaskRepository) -> None:
    assert run(repo, success(), success()) == []
    assert metric_counts() == {obs.UPDATES_APPLIED: 1, obs.UPDATES_DUPLICATE: 1}
    assert stored(repo).version == 2


def test_a_failure_record_after_the_sdk_reported_success_is_stale_not_rejected(
    repo: InMemoryTaskRepository, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    """An SDK processor finished the task, then its invocation failed (killed on the way
    out): the task's outcome stands and nothing is logged as an error."""
    record = load_event("lambda_destination_failure.json")
    finished = TaskUpdated(
        task_id=TASK,
        status=TaskStatus.SUCCESSFUL,
        sequence=record_sequence(InvocationRecord.model_validate(record)) - 10**6,
        result={"pages": 3},
    )
    record_update(finished, repo=repo, clock=ManualClock(NOW))

    assert run(repo, record) == []

    task = stored(repo)
    assert (task.status, task.result) == (TaskStatus.SUCCESSFUL, {"pages": 3})
    assert metric_counts() == {obs.UPDATES_STALE: 1}
    (line,) = [line for line in log_lines() if line.get("outcome") == "stale"]
    assert line["level"] == "INFO"
    assert line["condition"] == "RetriesExhausted"


def test_a_failure_record_outranks_the_running_reports_of_a_killed_sdk_processor(
    repo: InMemoryTaskRepository,
) -> None:
    """The SDK numbers reports from the microsecond its attempt starts; the record comes
    after the attempt ended, so the processor killed mid-task ends FAILED at once."""
    record = load_event("lambda_destination_failure.json")
    started = record_sequence(InvocationRecord.model_validate(record)) - 300 * 10**6
    for step in range(3):
        running = TaskUpdated(task_id=TASK, status=TaskStatus.RUNNING, sequence=started + step)
        record_update(running, repo=repo, clock=ManualClock(NOW))

    assert run(repo, record) == []

    task = stored(repo)
    assert task.status is TaskStatus.FAILED
    assert task.error is not None
    assert task.error.code == "FUNCTION_TIMEOUT"


def test_the_record_sequence_is_its_timestamp_in_microseconds() -> None:
    record = InvocationRecord.model_validate(success())
    expected = int(datetime(2026, 3, 10, 13, 41, 25, 651000, tzinfo=UTC).timestamp()) * 10**6
    assert record_sequence(record) == expected + 651000


# --- who may report ------------------------------------------------------------------------------


def test_a_function_listed_for_the_tasks_type_reports(repo: InMemoryTaskRepository) -> None:
    sources = {FUNCTION: frozenset({"report.render"})}
    assert run(repo, success(), sources=sources) == []
    assert stored(repo).status is TaskStatus.SUCCESSFUL


def test_a_function_listed_for_another_type_is_rejected(
    repo: InMemoryTaskRepository, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    sources = {FUNCTION: frozenset({"text.wordcount"})}
    assert run(repo, success(), sources=sources) == []

    assert stored(repo).status is TaskStatus.CREATED
    assert metric_counts() == {obs.UPDATES_REJECTED: 1}
    (line,) = [line for line in log_lines() if line.get("outcome") == "rejected"]
    assert (line["reason"], line["source"]) == ("SOURCE_NOT_ALLOWED", FUNCTION)


def test_the_function_is_named_by_its_arn_without_version_or_alias(
    repo: InMemoryTaskRepository,
) -> None:
    record = success()
    record["requestContext"]["functionArn"] = f"{FUNCTION}:live"
    assert run(repo, record, sources={FUNCTION: frozenset({"report.render"})}) == []
    assert stored(repo).status is TaskStatus.SUCCESSFUL


@pytest.mark.parametrize(
    ("error_type", "code"),
    [
        ("ValueError", "VALUE_ERROR"),
        ("Runtime.ExitError", "RUNTIME_EXIT_ERROR"),
        ("HTTPError", "HTTPERROR"),
        ("net/http: timeout", "NET_HTTP_TIMEOUT"),
        ("Timeout", None),  # the task manager's own code: FUNCTION_ERROR instead
        ("Cancelled", None),
        ("42", None),
        ("é", None),
        ("A" * 100, "A" * 64),
    ],
)
def test_error_types_become_codes_of_the_contract(error_type: str, code: str | None) -> None:
    assert sanitised_code(error_type) == code


def test_the_records_module_is_not_imported_until_a_record_arrives() -> None:
    """The updates function's cold start serves TaskUpdated reports without the invocation
    records' models (about 15 ms of class building)."""
    code = (
        "import sys, taskmanager.entrypoints.updates; "
        "print('taskmanager.domain.invocations' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"
