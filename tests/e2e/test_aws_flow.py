"""The whole AWS flow on moto server: API -> table -> stream -> bus -> processor -> updates.

Our Lambda handlers run in-process through their module-level ``handler`` functions (so the
real bootstrap builds the real DynamoDB repository and EventBridge publisher from the
environment); :class:`~tests.e2e.pump.Pump` plays Lambda's pollers. Every scenario ends by
checking the stored task and the exact sequence of outbound events that crossed the bus
(an extra rule copies them to an audit queue).
"""

from __future__ import annotations

import json
import runpy
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from taskmanager.adapters.dynamodb import create_table
from taskmanager.adapters.dynamodb.connections import create_connections_table
from taskmanager.entrypoints import api, bootstrap, notify, sockets, stream, sweeper, updates
from taskmanager.processor import Processor, ProcessorContext, ProcessorError
from tests.e2e.pump import REGION, Pump
from tests.support import ALICE, FakeLambdaContext, http_event, load_event, posted, websocket_event

if TYPE_CHECKING:
    from collections.abc import Iterator

BOB = "arn:aws:iam::123456789012:user/bob"
BUS = "taskmanager-e2e"
SOURCE = "taskmanager.e2e"
PROCESSOR_TYPES = ("e2e.render", "e2e.fail", "e2e.cancel")
#: The source the SDK processors publish with (TASKMANAGER_PROCESSOR_SOURCE), and the one the
#: tests use when they play a processor themselves (World.send_update).
PROCESSORS_SOURCE = "e2e.processors"
MANUAL_SOURCE = "e2e.processor"
NOSDK_FUNCTION = f"arn:aws:lambda:{REGION}:123456789012:function:e2e-nosdk"
#: Who may report on which task type (TASKMANAGER_PROCESSOR_SOURCES, as Terraform sets it).
PROCESSOR_SOURCES = {
    **{task_type: [PROCESSORS_SOURCE] for task_type in PROCESSOR_TYPES},
    "e2e.manual": [MANUAL_SOURCE],
    "e2e.quiet": [MANUAL_SOURCE],
    # A function without the SDK: its invocation records name it by its ARN.
    "e2e.nosdk": [NOSDK_FUNCTION],
}
OUTBOUND = ["TaskCreated", "TaskRunning", "TaskSuccessful", "TaskFailed"]


class World:
    dlq_url: str

    def __init__(self, pump: Pump, events: Any, sqs: Any) -> None:
        self.pump, self.events, self.sqs = pump, events, sqs

    def call(
        self, method: str, path: str, body: Any = None, *, owner: str = ALICE, **kw: Any
    ) -> tuple[int, dict[str, str], Any]:
        text = None if body is None else json.dumps(body)
        response = api.handler(
            http_event(method, path, text, owner=owner, **kw), FakeLambdaContext()
        )
        return response["statusCode"], response["headers"], json.loads(response["body"])

    def submit(self, task_type: str, **fields: Any) -> dict[str, Any]:
        status, _, task = self.call("POST", "/tasks", {"type": task_type, **fields})
        assert status == 202, task
        return dict(task)

    def get(self, task_id: str) -> dict[str, Any]:
        status, _, task = self.call("GET", f"/tasks/{task_id}")
        assert status == 200, task
        return dict(task)

    def send_update(self, detail: dict[str, Any], source: str = MANUAL_SOURCE) -> None:
        """A processor's TaskUpdated, put on the bus as any processor would."""
        answer = self.events.put_events(
            Entries=[
                {
                    "Source": source,
                    "DetailType": "TaskUpdated",
                    "Detail": json.dumps(detail),
                    "EventBusName": BUS,
                }
            ]
        )
        assert answer["FailedEntryCount"] == 0


def _queue(sqs: Any, name: str, **attributes: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def _rule(events: Any, name: str, pattern: dict[str, Any], queue_arn: str) -> None:
    events.put_rule(Name=name, EventBusName=BUS, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=name, EventBusName=BUS, Targets=[{"Id": "q", "Arn": queue_arn}])


def _render(task_input: Any, ctx: ProcessorContext) -> Any:
    ctx.progress(50, "half way")
    return {"pages": task_input["rows"] * 2}


def _fail(task_input: Any, ctx: ProcessorContext) -> Any:
    raise ProcessorError("BAD_INPUT", f"rows must be positive, got {task_input['rows']}")


@pytest.fixture(scope="module")
def world(moto_server: str) -> Iterator[World]:
    suffix = uuid.uuid4().hex[:8]
    table = f"tasks-{suffix}"
    connections = f"connections-{suffix}"
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_ENDPOINT_URL": moto_server,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "TASKMANAGER_TABLE_NAME": table,
            "TASKMANAGER_EVENT_BUS_NAME": BUS,
            "TASKMANAGER_EVENT_SOURCE": SOURCE,
            "TASKMANAGER_PROCESSOR_SOURCES": json.dumps(PROCESSOR_SOURCES),
            "TASKMANAGER_PROCESSOR_SOURCE": PROCESSORS_SOURCE,
            "POWERTOOLS_SERVICE_NAME": "taskmanager-e2e",
            # The push protocol: moto keeps what PostToConnection sends (docs/push.md).
            "TASKMANAGER_CONNECTIONS_TABLE_NAME": connections,
            "TASKMANAGER_WEBSOCKET_ENDPOINT": moto_server,
        }.items():
            env.setenv(name, value)
        _forget_handlers()
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        create_table(dynamodb, table)
        create_connections_table(dynamodb, connections)
        events.create_event_bus(Name=BUS)
        dlq_url, dlq_arn = _queue(sqs, f"updates-dlq-{suffix}")
        # As Terraform makes it, but a failed message is visible again at once (moto would
        # otherwise hold it for the default 30 s) and moves to the DLQ after 2 receives.
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
        updates_url, updates_arn = _queue(
            sqs, f"updates-{suffix}", VisibilityTimeout="0", RedrivePolicy=redrive
        )
        audit_url, audit_arn = _queue(sqs, f"audit-{suffix}")
        # Any source, unlike Terraform's rule with processor_sources: so that the updates
        # function's own check of each update's source is what the tests see.
        _rule(events, f"updates-{suffix}", {"detail-type": ["TaskUpdated"]}, updates_arn)
        _rule(events, f"audit-{suffix}", {"source": [SOURCE], "detail-type": OUTBOUND}, audit_arn)
        # As Terraform's notify rule (infra/terraform/modules/task-manager/push.tf).
        notify_url, notify_arn = _queue(sqs, f"notify-{suffix}")
        _rule(events, f"notify-{suffix}", {"source": [SOURCE], "detail-type": OUTBOUND}, notify_arn)
        processor_queues = {}
        for n, task_type in enumerate(PROCESSOR_TYPES):
            url, arn = _queue(sqs, f"processor-{n}-{suffix}")
            pattern = {"detail-type": ["TaskCreated"], "detail": {"type": [task_type]}}
            _rule(events, f"processor-{n}-{suffix}", pattern, arn)
            processor_queues[task_type] = url
        processors = {
            "e2e.render": Processor("e2e.render", _render),
            "e2e.fail": Processor("e2e.fail", _fail),
        }
        pump = Pump(
            dynamodb=dynamodb,
            streams=boto3.client("dynamodbstreams", region_name=REGION),
            sqs=sqs,
            table_name=table,
            updates_queue=updates_url,
            audit_queue=audit_url,
            processor_queues=processor_queues,
            processors=processors,
            stream_handler=stream.handler,
            updates_handler=updates.handler,
            notify_queue=notify_url,
            notify_handler=notify.handler,
        )
        world = World(pump, events, sqs)
        world.dlq_url = dlq_url
        processors["e2e.cancel"] = Processor("e2e.cancel", _cancelled_midway(world))
        try:
            yield world
        finally:
            _forget_handlers()


def _forget_handlers() -> None:
    bootstrap.reset()
    for module in (api, stream, updates, sweeper, sockets, notify):
        module._lambda_handler.cache_clear()


def _cancelled_midway(world: World) -> Any:
    def job(task_input: Any, ctx: ProcessorContext) -> Any:
        ctx.progress(10, "started")
        world.pump.run()  # the RUNNING reports are applied and published meanwhile
        status, _, cancelled = world.call("POST", f"/tasks/{ctx.task_id}/cancel")
        assert (status, cancelled["status"]) == (202, "FAILED")
        assert ctx.refresh()  # the processor learns of it ...
        ctx.progress(90, "too late")  # ... and reports nothing more
        return "never reported"

    return job


def test_success_with_progress(world: World) -> None:
    task = world.submit("e2e.render", input={"rows": 6})
    world.pump.run()
    stored = world.get(task["id"])
    assert (stored["status"], stored["result"], stored["version"]) == (
        "SUCCESSFUL",
        {"pages": 12},
        4,
    )
    assert stored["progress"] is None
    assert world.pump.events_of(task["id"]) == [
        ("TaskCreated", 1, "CREATED"),
        ("TaskRunning", 2, "RUNNING"),
        ("TaskRunning", 3, "RUNNING"),
        ("TaskSuccessful", 4, "SUCCESSFUL"),
    ]
    created, _, progress, done = [e for e in world.pump.outbound if e["detail"]["id"] == task["id"]]
    assert created["source"] == SOURCE
    assert created["detail"]["input"] == {"rows": 6}
    assert progress["detail"]["progress"] == {"percent": 50.0, "message": "half way"}
    assert done["detail"]["result"] == {"pages": 12}
    assert [e["detail"]["event_id"] for e in (created, done)] == [
        f"{task['id']}:1",
        f"{task['id']}:4",
    ]


def test_processor_failure(world: World) -> None:
    task = world.submit("e2e.fail", input={"rows": -1})
    world.pump.run()
    stored = world.get(task["id"])
    assert stored["status"] == "FAILED"
    assert stored["error"] == {"code": "BAD_INPUT", "message": "rows must be positive, got -1"}
    assert world.pump.events_of(task["id"]) == [
        ("TaskCreated", 1, "CREATED"),
        ("TaskRunning", 2, "RUNNING"),
        ("TaskFailed", 3, "FAILED"),
    ]


def test_duplicated_and_reordered_updates(world: World) -> None:
    task = world.submit("e2e.manual")  # no processor: the test is the processor
    world.pump.run()
    failures = len(world.pump.update_failures)
    task_id = task["id"]
    half = {"task_id": task_id, "status": "RUNNING", "sequence": 2, "progress": {"percent": 50}}
    done = {"task_id": task_id, "status": "SUCCESSFUL", "sequence": 3, "result": "ok"}
    for detail in (
        half,  # arrives before its predecessor
        {"task_id": task_id, "status": "RUNNING", "sequence": 1},  # late: stale
        half,  # again: duplicate
        done,
        done,  # again: duplicate
        {**half, "sequence": 4},  # RUNNING after terminal: stale
        {"task_id": task_id, "status": "FAILED", "error": {"code": "X", "message": "no"}},
    ):
        world.send_update(detail)
    world.pump.run()
    stored = world.get(task_id)
    assert (stored["status"], stored["result"], stored["version"]) == ("SUCCESSFUL", "ok", 3)
    assert world.pump.events_of(task_id) == [
        ("TaskCreated", 1, "CREATED"),
        ("TaskRunning", 2, "RUNNING"),
        ("TaskSuccessful", 3, "SUCCESSFUL"),
    ]
    assert len(world.pump.update_failures) == failures  # all acknowledged, even the rejected


def test_cancel_while_running(world: World) -> None:
    task = world.submit("e2e.cancel")
    world.pump.run()
    stored = world.get(task["id"])
    assert stored["status"] == "FAILED"
    assert stored["error"]["code"] == "CANCELLED"
    assert world.pump.events_of(task["id"]) == [
        ("TaskCreated", 1, "CREATED"),
        ("TaskRunning", 2, "RUNNING"),
        ("TaskRunning", 3, "RUNNING"),
        ("TaskFailed", 4, "FAILED"),
    ]


def test_heartbeat_timeout_by_the_sweeper(world: World) -> None:
    task = world.submit("e2e.quiet", heartbeat_seconds=1)
    world.send_update({"task_id": task["id"], "status": "RUNNING", "sequence": 1})
    world.pump.run()
    assert world.get(task["id"])["status"] == "RUNNING"
    time.sleep(1.2)  # quiet for longer than heartbeat_seconds
    swept = sweeper.handler(load_event("scheduled_sweep.json"), FakeLambdaContext())
    assert swept == {"timed_out": 0, "heartbeat_timed_out": 1, "start_timed_out": 0}
    world.pump.run()
    stored = world.get(task["id"])
    assert (stored["status"], stored["error"]["code"]) == ("FAILED", "HEARTBEAT_TIMEOUT")
    assert world.pump.events_of(task["id"]) == [
        ("TaskCreated", 1, "CREATED"),
        ("TaskRunning", 2, "RUNNING"),
        ("TaskFailed", 3, "FAILED"),
    ]


def test_idempotent_resubmit(world: World) -> None:
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    body = {"type": "e2e.once", "input": {"n": 1}}
    status, _, first = world.call("POST", "/tasks", body, headers=key)
    assert status == 202
    status, headers, again = world.call("POST", "/tasks", body, headers=key)
    assert (status, headers["Idempotent-Replayed"], again) == (202, "true", first)
    status, _, refused = world.call("POST", "/tasks", {**body, "input": {"n": 2}}, headers=key)
    assert (status, refused["error"]["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    world.pump.run()
    assert world.get(first["id"])["version"] == 1
    assert world.pump.events_of(first["id"]) == [("TaskCreated", 1, "CREATED")]


def test_another_owner_gets_404(world: World) -> None:
    task = world.submit("e2e.private")
    for method, path in (("GET", f"/tasks/{task['id']}"), ("POST", f"/tasks/{task['id']}/cancel")):
        status, _, body = world.call(method, path, owner=BOB)
        assert (status, body["error"]["code"]) == (404, "TASK_NOT_FOUND")
    status, _, page = world.call("GET", "/tasks", owner=BOB, query={"type": "e2e.private"})
    assert (status, page["items"]) == (200, [])
    status, _, mine = world.call("GET", "/tasks", query={"type": "e2e.private"})
    assert [t["id"] for t in mine["items"]] == [task["id"]]
    world.pump.run()
    assert world.get(task["id"])["status"] == "CREATED"
    assert world.pump.events_of(task["id"]) == [("TaskCreated", 1, "CREATED")]


def test_a_malformed_update_ends_in_the_dead_letter_queue(world: World) -> None:
    task = world.submit("e2e.manual")
    world.pump.run()
    failures = len(world.pump.update_failures)
    world.send_update({"task_id": task["id"], "status": "FAILED"})  # FAILED without an error
    world.pump.run()
    assert len(world.pump.update_failures) - failures == 2  # tried twice, reported each time
    moved = world.sqs.receive_message(QueueUrl=world.dlq_url, MaxNumberOfMessages=10)
    (message,) = moved["Messages"]
    assert json.loads(message["Body"])["detail"] == {"task_id": task["id"], "status": "FAILED"}
    stored = world.get(task["id"])
    assert (stored["status"], stored["version"]) == ("CREATED", 1)
    assert world.pump.events_of(task["id"]) == [("TaskCreated", 1, "CREATED")]


def test_only_a_source_allowed_the_tasks_type_may_report_on_it(world: World) -> None:
    task = world.submit("e2e.manual")
    world.pump.run()
    failures = len(world.pump.update_failures)
    done = {"task_id": task["id"], "status": "SUCCESSFUL", "sequence": 1, "result": "forged"}
    world.send_update(done, source=PROCESSORS_SOURCE)  # allowed other types only
    world.send_update(done, source="e2e.stranger")  # allowed no type at all
    world.pump.run()
    stored = world.get(task["id"])
    assert (stored["status"], stored["version"]) == ("CREATED", 1)
    assert len(world.pump.update_failures) == failures  # rejected: acknowledged, not retried

    world.send_update({**done, "result": "mine"})  # the processor of e2e.manual
    world.pump.run()
    stored = world.get(task["id"])
    assert (stored["status"], stored["result"]) == ("SUCCESSFUL", "mine")
    assert world.pump.events_of(task["id"]) == [
        ("TaskCreated", 1, "CREATED"),
        ("TaskSuccessful", 2, "SUCCESSFUL"),
    ]


# --- push over the WebSocket API (docs/push.md) ------------------------------------------------


def _ws(route: str, connection_id: str, body: Any = None, owner: str = ALICE) -> dict[str, Any]:
    text = None if body is None else json.dumps(body)
    event = websocket_event(route, connection_id, text, owner=owner)
    response: dict[str, Any] = sockets.handler(event, FakeLambdaContext())
    assert response["statusCode"] == 200, response
    return json.loads(response["body"]) if "body" in response else {}


def test_submit_over_the_socket_then_follow_it_to_success(world: World) -> None:
    alices, bobs = f"a{uuid.uuid4().hex[:12]}", f"b{uuid.uuid4().hex[:12]}"
    _ws("$connect", alices)
    _ws("$connect", bobs, owner=BOB)
    assert _ws("subscribe", bobs, {"action": "subscribe"}, owner=BOB)["type"] == "subscribed"
    message = {
        "action": "submit",
        "request_id": "r1",
        "task": {"type": "e2e.render", "input": {"rows": 3}},
    }
    accepted = _ws("submit", alices, message)
    assert (accepted["type"], accepted["request_id"]) == ("accepted", "r1")
    task_id = accepted["task"]["id"]
    world.pump.run()
    received = [m["task"] for m in posted(alices)]
    assert all(m["type"] == "task" for m in posted(alices))
    assert [(t["version"], t["status"]) for t in received] == [
        (1, "CREATED"),
        (2, "RUNNING"),
        (3, "RUNNING"),
        (4, "SUCCESSFUL"),
    ]
    assert received[2]["progress"] == {"percent": 50.0, "message": "half way"}
    assert received[-1]["result"] == {"pages": 6}
    assert received[-1] == world.get(task_id)  # exactly what GET /tasks/{id} returns
    assert posted(bobs) == []  # another owner's subscriber hears nothing of it
    _ws("$disconnect", alices)
    _ws("$disconnect", bobs, owner=BOB)


# --- a function without the SDK: its invocation records come through the updates queue ------


def _invocation_record(task_created: dict[str, Any], function: str = NOSDK_FUNCTION) -> str:
    """What Lambda sends to an SQS destination after invoking the docs' example function
    (docs/examples/nosdk_function.py) with ``task_created``: moto never sends one."""
    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "nosdk_function.py"
    namespace = runpy.run_path(str(example))
    record: dict[str, Any] = namespace["invocation_record"](task_created)
    record["requestContext"]["functionArn"] = f"{function}:$LATEST"
    return json.dumps(record)


def _task_created(world: World, task_id: str) -> dict[str, Any]:
    """The TaskCreated event as it crossed the bus (the audit rule's copy)."""
    (event,) = [
        e
        for e in world.pump.outbound
        if e["detail"]["id"] == task_id and e["detail-type"] == "TaskCreated"
    ]
    return event


def test_a_function_without_the_sdk_reports_through_its_invocation_records(
    world: World,
) -> None:
    good = world.submit("e2e.nosdk", input={"text": "to be or not"})
    bad = world.submit("e2e.nosdk", input={"words": 3})
    world.pump.run()
    updates = world.pump.updates_queue
    for task in (good, bad):
        body = _invocation_record(_task_created(world, task["id"]))
        world.sqs.send_message(QueueUrl=updates, MessageBody=body)
    world.pump.run()

    assert world.get(good["id"])["result"] == {"words": 4}
    assert world.get(bad["id"])["error"] == {
        "code": "VALUE_ERROR",
        "message": 'ValueError: input must be {"text": "..."}',
    }
    assert world.pump.events_of(good["id"]) == [
        ("TaskCreated", 1, "CREATED"),
        ("TaskSuccessful", 2, "SUCCESSFUL"),
    ]
    assert world.pump.events_of(bad["id"]) == [
        ("TaskCreated", 1, "CREATED"),
        ("TaskFailed", 2, "FAILED"),
    ]


def test_a_record_of_another_function_is_rejected_and_a_broken_one_ends_in_the_dlq(
    world: World,
) -> None:
    task = world.submit("e2e.nosdk", input={"text": "a b"})
    world.pump.run()
    failures = len(world.pump.update_failures)
    created = _task_created(world, task["id"])
    stranger = _invocation_record(created, function=NOSDK_FUNCTION + "-stranger")
    broken = json.loads(_invocation_record(created))
    broken["requestContext"]["condition"] = "Perhaps"
    for body in (stranger, json.dumps(broken)):
        world.sqs.send_message(QueueUrl=world.pump.updates_queue, MessageBody=body)
    world.pump.run()

    assert len(world.pump.update_failures) - failures == 2  # the broken one, received twice
    moved = world.sqs.receive_message(QueueUrl=world.dlq_url, MaxNumberOfMessages=10)
    bodies = [json.loads(m["Body"]) for m in moved["Messages"]]
    assert broken in bodies
    stored = world.get(task["id"])
    assert (stored["status"], stored["version"]) == ("CREATED", 1)
