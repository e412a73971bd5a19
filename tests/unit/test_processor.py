"""The processor SDK on in-memory adapters: what it reports, and when it stays quiet."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from botocore.stub import Stubber

from taskmanager.adapters.memory import InMemoryTaskRepository, ManualClock
from taskmanager.domain.events import (
    TaskCreated,
    TaskUpdated,
    envelope,
    event_for,
    events_for_change,
)
from taskmanager.domain.model import MAX_ERROR_MESSAGE_BYTES, SubmitTask, TaskStatus
from taskmanager.domain.services import cancel_task, new_task, submit_task
from taskmanager.processor import (
    AwsTransport,
    DirectTransport,
    Processor,
    ProcessorContext,
    ProcessorError,
    truncate_utf8,
)

if TYPE_CHECKING:
    from taskmanager.domain.model import Task


class Recorder(DirectTransport):
    """The direct transport, remembering every update it was given."""

    def __init__(self, repo: InMemoryTaskRepository, clock: ManualClock) -> None:
        super().__init__(repo, clock)
        self.sent: list[TaskUpdated] = []
        self.repo = repo

    def send(self, update: TaskUpdated) -> None:
        self.sent.append(update)
        super().send(update)


@pytest.fixture
def transport() -> Recorder:
    return Recorder(InMemoryTaskRepository(), ManualClock())


def created(transport: Recorder, task_type: str = "render", task_input: Any = None) -> TaskCreated:
    task = submit_task(
        SubmitTask(type=task_type, input=task_input),
        owner="o",
        repo=transport.repo,
        clock=transport._clock,
        ids=_Ids(),
    ).task
    event = event_for(task)
    assert isinstance(event, TaskCreated)
    return event


class _Ids:
    n = 0

    def new_id(self) -> str:
        _Ids.n += 1
        return f"task-{_Ids.n}"


def stored(transport: Recorder, task_id: str) -> Task:
    task = transport.repo.get(task_id)
    assert task is not None
    return task


def test_success_reports_running_progress_then_the_result(transport: Recorder) -> None:
    def render(task_input: Any, ctx: ProcessorContext) -> Any:
        ctx.progress(50, "half way")
        return {"pages": task_input["rows"] * 2}

    event = created(transport, task_input={"rows": 3})
    assert Processor("render", render).handle(event, transport) == "successful"
    assert [(u.status, u.progress) for u in transport.sent] == [
        (TaskStatus.RUNNING, None),
        (TaskStatus.RUNNING, transport.sent[1].progress),
        (TaskStatus.SUCCESSFUL, None),
    ]
    assert transport.sent[1].progress is not None
    assert transport.sent[1].progress.percent == 50
    sequences = [u.sequence or 0 for u in transport.sent]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == 3
    task = stored(transport, event.id)
    assert (task.status, task.result, task.version) == (TaskStatus.SUCCESSFUL, {"pages": 6}, 4)


def test_a_function_of_one_argument_is_called_with_the_input(transport: Recorder) -> None:
    event = created(transport, task_input="a b c")
    Processor("render", lambda text: len(text.split())).handle(event, transport)
    assert stored(transport, event.id).result == 3


class QuotaExceededError(Exception):
    code = "QUOTA_EXCEEDED"


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (
            ProcessorError("BAD_INPUT", "rows must be positive"),
            "BAD_INPUT",
            "rows must be positive",
        ),
        (QuotaExceededError("too many pages"), "QUOTA_EXCEEDED", "too many pages"),
        (ValueError("boom"), "PROCESSOR_ERROR", "boom"),
        (ProcessorError("lower-case", "x"), "PROCESSOR_ERROR", "x"),
        (RuntimeError(), "PROCESSOR_ERROR", "RuntimeError"),
    ],
)
def test_failure_reports_the_exceptions_code_and_message(
    transport: Recorder, exc: Exception, code: str, message: str
) -> None:
    def fail(_input: Any, _ctx: ProcessorContext) -> None:
        raise exc

    event = created(transport)
    assert Processor("render", fail).handle(event, transport) == "failed"
    task = stored(transport, event.id)
    assert task.status is TaskStatus.FAILED
    assert task.error is not None
    assert (task.error.code, task.error.message) == (code, message)


def test_a_long_error_message_is_cut_to_4_kib(transport: Recorder) -> None:
    def fail(_input: Any, _ctx: ProcessorContext) -> None:
        raise ProcessorError("TOO_LONG", "é" * 5000)

    event = created(transport)
    Processor("render", fail).handle(event, transport)
    error = stored(transport, event.id).error
    assert error is not None
    assert len(error.message.encode()) <= MAX_ERROR_MESSAGE_BYTES
    assert error.message.endswith("...")


def test_truncation_keeps_text_within_the_limit_and_whole_characters() -> None:
    assert truncate_utf8("abc", 3) == "abc"
    cut = truncate_utf8("€" * 10, 10)
    assert len(cut.encode()) <= 10
    assert cut == "€€..."


def test_a_result_over_128_kib_fails_the_task_with_invalid_result(transport: Recorder) -> None:
    event = created(transport)
    Processor("render", lambda _i: "x" * (128 * 1024)).handle(event, transport)
    error = stored(transport, event.id).error
    assert error is not None
    assert error.code == "INVALID_RESULT"


def test_a_result_that_is_not_json_fails_the_task(transport: Recorder) -> None:
    event = created(transport)
    Processor("render", lambda _i: object()).handle(event, transport)
    error = stored(transport, event.id).error
    assert error is not None
    assert error.code == "INVALID_RESULT"


def test_a_terminal_task_is_skipped_without_any_report(transport: Recorder) -> None:
    event = created(transport)
    cancel_task(event.id, owner="o", repo=transport.repo, clock=transport._clock)
    calls: list[Any] = []
    assert Processor("render", calls.append).handle(event, transport) == "skipped"
    assert (calls, transport.sent) == ([], [])


def test_an_unknown_task_is_skipped(transport: Recorder) -> None:
    event = created(transport)
    other = event.model_copy(update={"id": "nobody"})
    assert Processor("render", lambda _i: 1).handle(other, transport) == "skipped"


def test_another_task_type_is_ignored(transport: Recorder) -> None:
    event = created(transport, task_type="other")
    assert Processor("render", lambda _i: 1).handle(event, transport) == "ignored"
    assert transport.sent == []


def test_cancel_while_running_stops_reporting(transport: Recorder) -> None:
    seen: list[bool] = []

    def long_job(_input: Any, ctx: ProcessorContext) -> str:
        ctx.progress(10)
        cancel_task(ctx.task_id, owner="o", repo=transport.repo, clock=transport._clock)
        seen.append(ctx.refresh())
        ctx.progress(20)  # ignored: the task is finished
        ctx.heartbeat()
        return "too late"

    event = created(transport)
    assert Processor("render", long_job).handle(event, transport) == "cancelled"
    assert seen == [True]
    assert len(transport.sent) == 2  # RUNNING, progress 10; nothing after the cancel
    task = stored(transport, event.id)
    assert task.error is not None
    assert task.error.code == "CANCELLED"


def test_a_long_progress_message_is_cut_to_1_kib(transport: Recorder) -> None:
    def chatty(_input: Any, ctx: ProcessorContext) -> None:
        ctx.progress(1, "m" * 2000)

    event = created(transport)
    Processor("render", chatty).handle(event, transport)
    progress = transport.sent[1].progress
    assert progress is not None
    assert progress.message is not None
    assert len(progress.message.encode()) == 1024


def test_a_redelivered_event_reruns_an_open_task_with_higher_sequences(
    transport: Recorder,
) -> None:
    event = created(transport)
    transport.send(TaskUpdated(task_id=event.id, status=TaskStatus.RUNNING, sequence=5))
    Processor("render", lambda _i: "done").handle(event, transport)
    assert stored(transport, event.id).status is TaskStatus.SUCCESSFUL


def test_lambda_handler_reports_through_put_events_and_one_get_item() -> None:
    import boto3

    events = boto3.client("events", region_name="us-east-1")
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    aws = AwsTransport(
        events_client=events, dynamodb_client=dynamodb, table_name="tasks", source="proc"
    )
    repo, clock = InMemoryTaskRepository(), ManualClock()
    task = submit_task(
        SubmitTask(type="render", input=2), owner="o", repo=repo, clock=clock, ids=_Ids()
    ).task
    (event,) = events_for_change(None, task)
    message = json.loads(envelope(event, "taskmanager").model_dump_json(by_alias=True))
    get_item = {
        "TableName": "tasks",
        "Key": {"task_id": {"S": task.id}},
        "ProjectionExpression": "#s, progress",
        "ExpressionAttributeNames": {"#s": "status"},
        "ConsistentRead": True,
    }
    ok = {"FailedEntryCount": 0, "Entries": [{"EventId": "e"}]}
    # A function that returns at once: the status read before RUNNING is fresh enough for
    # the look before the outcome (FRESH_STATUS_SECONDS), so one GetItem in all.
    with Stubber(events) as ev, Stubber(dynamodb) as db:
        db.add_response("get_item", {"Item": {"status": {"S": "CREATED"}}}, get_item)
        ev.add_response("put_events", ok)
        ev.add_response("put_events", ok)
        out = Processor("render", lambda n: n * 2, aws).lambda_handler(message, None)
        ev.assert_no_pending_responses()
        db.assert_no_pending_responses()
    assert out == {"task_id": task.id, "outcome": "successful"}


def test_a_refused_put_events_raises_so_lambda_retries() -> None:
    import boto3

    events = boto3.client("events", region_name="us-east-1")
    aws = AwsTransport(events_client=events, dynamodb_client=None, table_name="tasks")
    update = TaskUpdated(task_id="t", status=TaskStatus.RUNNING, sequence=1)
    with Stubber(events) as ev:
        ev.add_response(
            "put_events",
            {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "Throttled", "ErrorMessage": "x"}]},
        )
        with pytest.raises(RuntimeError, match="Throttled"):
            aws.send(update)


def test_from_environment_needs_the_table_name() -> None:
    with pytest.raises(RuntimeError, match="TASKMANAGER_TABLE_NAME"):
        AwsTransport.from_environment({})
    aws = AwsTransport.from_environment(
        {"TASKMANAGER_TABLE_NAME": "t", "TASKMANAGER_EVENT_SOURCE": "proc"}
    )
    assert (aws.table_name, aws.bus_name, aws.source) == ("t", "default", "proc")


def test_a_processor_publishes_with_its_own_source_when_the_module_sets_one() -> None:
    """The processor module sets TASKMANAGER_PROCESSOR_SOURCE, the only source the role may
    publish with; TASKMANAGER_EVENT_SOURCE stays the task manager's own."""
    environ = {
        "TASKMANAGER_TABLE_NAME": "t",
        "TASKMANAGER_EVENT_SOURCE": "taskmanager",
        "TASKMANAGER_PROCESSOR_SOURCE": "taskmanager.processor.tm-wordcount",
    }
    assert AwsTransport.from_environment(environ).source == "taskmanager.processor.tm-wordcount"
    assert AwsTransport.from_environment({"TASKMANAGER_TABLE_NAME": "t"}).source == "taskmanager"


def test_lambda_handler_runs_the_fixture_task_created_event() -> None:
    from tests.support import FakeLambdaContext, load_event

    repo, clock = InMemoryTaskRepository(), ManualClock()
    event = load_event("eventbridge_task_created.json")
    detail = TaskCreated.model_validate(event["detail"])
    task = new_task(
        SubmitTask(type=detail.type, input=detail.input),
        task_id=detail.id,
        owner="o",
        now=clock.now(),
    )
    repo.create(task, clock.now())
    processor = Processor(
        "report.render", lambda i: {"pages": i["rows"]}, DirectTransport(repo, clock)
    )
    out = processor.lambda_handler(event, FakeLambdaContext())
    assert out == {"task_id": detail.id, "outcome": "successful"}
    stored_task = repo.get(detail.id)
    assert stored_task is not None
    assert stored_task.result == {"pages": 10}
    other = {**event, "detail-type": "TaskRunning", "detail": {**event["detail"]}}
    other["detail"]["status"] = "RUNNING"
    assert processor.lambda_handler(other, None)["outcome"] == "ignored"
