"""The updates handler: SQS batches of EventBridge TaskUpdated events -> record_update."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from taskmanager.adapters.memory import InMemoryTaskRepository, ManualClock, UuidIdFactory
from taskmanager.domain.errors import StorageError
from taskmanager.domain.model import SubmitTask, TaskStatus
from taskmanager.domain.services import new_task
from taskmanager.entrypoints import observability as obs
from taskmanager.entrypoints.bootstrap import Dependencies
from taskmanager.entrypoints.updates import create_handler
from tests.support import FakeLambdaContext, load_event

if TYPE_CHECKING:
    from collections.abc import Callable

    from taskmanager.domain.model import Change, Guard
    from taskmanager.domain.ports import WriteResult

TASK = "0b6c7f43-5a1e-4d0f-9a55-3c1f4c2a9e01"
NOW = datetime(2026, 3, 10, 13, 40, 52, tzinfo=UTC)


@pytest.fixture
def repo() -> InMemoryTaskRepository:
    repo = InMemoryTaskRepository()
    task = new_task(
        SubmitTask(type="report.render", input={"rows": 10}), task_id=TASK, owner="alice", now=NOW
    )
    repo.create(task, NOW)
    repo.mark_delivered([e.position for e in repo.pending(10)])
    return repo


def run(repo: InMemoryTaskRepository, event: dict[str, Any]) -> list[str]:
    deps = Dependencies(repo=repo, clock=ManualClock(NOW), ids=UuidIdFactory())
    obs.metrics().clear_metrics()
    response = create_handler(lambda: deps)(event, FakeLambdaContext())
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def metric_counts() -> dict[str, float]:
    return {name: sum(m["Value"]) for name, m in obs.metrics().metric_set.items()}


def test_the_fixture_batch_is_classified_and_only_malformed_messages_fail(
    repo: InMemoryTaskRepository, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    failed = run(repo, load_event("sqs_updates.json"))
    # 6: not JSON; 7: FAILED without an error. Both go back to SQS and on to the DLQ.
    assert failed == [
        "2e1424d4-f796-459a-8184-9c92662be606",
        "2e1424d4-f796-459a-8184-9c92662be607",
    ]
    task = repo.get(TASK)
    assert task is not None
    assert (task.status, task.result, task.version) == (TaskStatus.SUCCESSFUL, {"pages": 12}, 4)
    assert [e.event.DETAIL_TYPE for e in repo.undelivered] == [
        "TaskRunning",
        "TaskRunning",
        "TaskSuccessful",
    ]
    assert metric_counts() == {
        obs.UPDATES_APPLIED: 3,
        obs.UPDATES_DUPLICATE: 1,
        obs.UPDATES_STALE: 1,
        obs.UPDATES_REJECTED: 1,
        obs.UPDATES_MALFORMED: 2,
    }
    rejected = [line for line in log_lines() if line.get("outcome") == "rejected"]
    assert len(rejected) == 1
    assert rejected[0]["reason"] == "UNKNOWN_TASK"
    assert rejected[0]["task_id"] == "no-such-task"
    assert rejected[0]["level"] == "WARNING"


def test_a_different_outcome_for_a_finished_task_is_acknowledged_and_rejected(
    repo: InMemoryTaskRepository,
) -> None:
    event = load_event("sqs_updates.json")
    done, late = event["Records"][7], json.loads(event["Records"][7]["body"])
    late["detail"] = {"task_id": TASK, "status": "FAILED", "error": {"code": "X", "message": "m"}}
    event["Records"] = [done, {**done, "messageId": "late", "body": json.dumps(late)}]
    assert run(repo, event) == []
    task = repo.get(TASK)
    assert task is not None
    assert task.status is TaskStatus.SUCCESSFUL
    assert metric_counts() == {obs.UPDATES_APPLIED: 1, obs.UPDATES_REJECTED: 1}


@pytest.mark.parametrize(
    "body",
    [
        "",
        "[]",
        '{"detail-type": "TaskCreated", "detail": {}}',
        '{"detail-type": "TaskUpdated", "detail": {"task_id": "t", "status": "CREATED"}}',
        '{"detail-type": "TaskUpdated", "detail": {"task_id": "t", "status": "RUNNING", '
        '"sequence": 0}}',
    ],
)
def test_malformed_messages_fail_for_the_dead_letter_queue(
    repo: InMemoryTaskRepository, body: str
) -> None:
    event = load_event("sqs_updates.json")
    event["Records"] = [{**event["Records"][0], "body": body}]
    assert run(repo, event) == [event["Records"][0]["messageId"]]


class UnavailableRepository(InMemoryTaskRepository):
    def apply(self, guard: Guard, change: Change) -> WriteResult:
        raise StorageError("throttled")


def test_a_storage_failure_fails_the_record_so_sqs_retries_it() -> None:
    event = load_event("sqs_updates.json")
    event["Records"] = event["Records"][:1]
    assert run(UnavailableRepository(), event) == [event["Records"][0]["messageId"]]


def test_log_lines_carry_the_correlation_id_and_the_task_id(
    repo: InMemoryTaskRepository, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:

    deps = Dependencies(repo=repo, clock=ManualClock(NOW), ids=UuidIdFactory())
    handler = obs.instrument(create_handler(lambda: deps), obs.first_record("messageId"))
    event = load_event("sqs_updates.json")
    event["Records"] = event["Records"][:1]
    handler(event, FakeLambdaContext())
    (line,) = [line for line in log_lines() if line["message"] == "update applied"]
    assert line["correlation_id"] == event["Records"][0]["messageId"]
    assert line["task_id"] == TASK
    assert line["function_request_id"] == FakeLambdaContext.aws_request_id
    assert obs.metrics().metric_set == {}  # flushed at the end of the invocation


# --- who may report: the envelope's source decides the task types ----------------------------

RENDERER = "taskmanager.processor.tm-prod-render"
COUNTER = "taskmanager.processor.tm-prod-wordcount"
SOURCES = {RENDERER: frozenset({"report.render"}), COUNTER: frozenset({"text.wordcount"})}


def from_source(record: dict[str, Any], source: str, message_id: str) -> dict[str, Any]:
    """The fixture's SQS record with the EventBridge envelope's ``source`` replaced."""
    body = json.loads(record["body"])
    body["source"] = source
    return {**record, "messageId": message_id, "body": json.dumps(body)}


def run_with_sources(repo: InMemoryTaskRepository, event: dict[str, Any]) -> list[str]:
    deps = Dependencies(
        repo=repo, clock=ManualClock(NOW), ids=UuidIdFactory(), types_by_source=SOURCES
    )
    obs.metrics().clear_metrics()
    response = create_handler(lambda: deps)(event, FakeLambdaContext())
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def test_an_update_from_a_source_allowed_another_type_is_rejected_and_logged(
    repo: InMemoryTaskRepository, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    event = load_event("sqs_updates.json")
    finish = event["Records"][7]  # SUCCESSFUL, sequence 3, of the report.render task
    event["Records"] = [from_source(finish, COUNTER, "forged")]

    assert run_with_sources(repo, event) == []  # acknowledged: a retry cannot make it legal

    task = repo.get(TASK)
    assert task is not None
    assert (task.status, task.version) == (TaskStatus.CREATED, 1)
    assert repo.undelivered == []
    assert metric_counts() == {obs.UPDATES_REJECTED: 1}
    (line,) = [line for line in log_lines() if line.get("outcome") == "rejected"]
    assert line["reason"] == "SOURCE_NOT_ALLOWED"
    assert line["source"] == COUNTER
    assert line["task_id"] == TASK
    assert line["level"] == "WARNING"


def test_the_processor_of_the_tasks_type_reports_as_usual(repo: InMemoryTaskRepository) -> None:
    event = load_event("sqs_updates.json")
    running, finish = event["Records"][0], event["Records"][7]
    event["Records"] = [from_source(running, RENDERER, "1"), from_source(finish, RENDERER, "2")]

    assert run_with_sources(repo, event) == []

    task = repo.get(TASK)
    assert task is not None
    assert (task.status, task.result) == (TaskStatus.SUCCESSFUL, {"pages": 12})
    assert metric_counts() == {obs.UPDATES_APPLIED: 2}


class CountingRepository(InMemoryTaskRepository):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def apply(self, guard: Guard, change: Change) -> WriteResult:
        self.writes += 1
        return super().apply(guard, change)


def test_a_source_no_processor_publishes_with_is_rejected_without_a_write(
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    """The fixture's events carry the task manager's own source, which no processor has."""
    repo = CountingRepository()
    task = new_task(SubmitTask(type="report.render"), task_id=TASK, owner="alice", now=NOW)
    repo.create(task, NOW)
    event = load_event("sqs_updates.json")
    event["Records"] = event["Records"][7:]

    assert run_with_sources(repo, event) == []

    assert repo.writes == 0
    assert repo.get(TASK) == task
    (line,) = [line for line in log_lines() if line.get("outcome") == "rejected"]
    assert (line["reason"], line["source"]) == ("SOURCE_NOT_ALLOWED", "taskmanager")


def test_without_processor_sources_any_source_reports_on_any_task(
    repo: InMemoryTaskRepository,
) -> None:
    event = load_event("sqs_updates.json")
    event["Records"] = [from_source(event["Records"][7], COUNTER, "any")]
    assert run(repo, event) == []
    task = repo.get(TASK)
    assert task is not None
    assert task.status is TaskStatus.SUCCESSFUL
