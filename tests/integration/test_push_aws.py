"""The push protocol's AWS functions on moto server (docs/push.md, "On AWS"): ``sockets``
(connect, messages, disconnect) and ``notify`` (posts to the followers of a task).

moto keeps what ``post_to_connection`` sent in its backend (``connections[id].data``, read
by ``tests.support.posted``); it never raises ``GoneException`` nor throttles, so those go through
botocore's Stubber on a real ``apigatewaymanagementapi`` client.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.stub import Stubber

from taskmanager.adapters.apigateway import ConnectionPusher
from taskmanager.adapters.dynamodb import create_table
from taskmanager.adapters.dynamodb.connections import create_connections_table
from taskmanager.domain.events import envelope, event_for
from taskmanager.domain.model import SubmitTask
from taskmanager.domain.services import submit_task
from taskmanager.entrypoints import bootstrap, notify, sockets
from tests.support import ALICE, FakeLambdaContext, load_event, posted

if TYPE_CHECKING:
    from collections.abc import Iterator

    from taskmanager.domain.model import Task

BOB = "arn:aws:iam::123456789012:user/bob"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def tables(moto_server: str) -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    tasks, connections = f"tasks-{suffix}", f"connections-{suffix}"
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_ENDPOINT_URL": moto_server,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "TASKMANAGER_TABLE_NAME": tasks,
            "TASKMANAGER_CONNECTIONS_TABLE_NAME": connections,
            "TASKMANAGER_WEBSOCKET_ENDPOINT": moto_server,
            "POWERTOOLS_SERVICE_NAME": "taskmanager-push",
        }.items():
            env.setenv(name, value)
        _forget()
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_table(dynamodb, tasks)
        create_connections_table(dynamodb, connections)
        try:
            yield tasks, connections
        finally:
            _forget()


def _forget() -> None:
    bootstrap.reset()
    sockets._lambda_handler.cache_clear()
    notify._lambda_handler.cache_clear()


def _new_id() -> str:
    return "c" + uuid.uuid4().hex[:14]  # no "=": moto keys its connections URL-quoted


def connect(owner: str | None = ALICE) -> str:
    event = load_event("websocket_connect.json")
    connection_id = event["requestContext"]["connectionId"] = _new_id()
    if owner is None:
        event["requestContext"]["identity"].pop("userArn")
    else:
        event["requestContext"]["identity"]["userArn"] = owner
    assert sockets.handler(event, FakeLambdaContext()) == {"statusCode": 200}
    return connection_id


def send(connection_id: str, message: dict[str, Any] | str | bytes) -> dict[str, Any]:
    event = load_event("websocket_message.json")
    event["requestContext"]["connectionId"] = connection_id
    if isinstance(message, bytes):
        event["body"], event["isBase64Encoded"] = base64.b64encode(message).decode(), True
    else:
        event["body"] = message if isinstance(message, str) else json.dumps(message)
    event["requestContext"]["routeKey"] = (
        message.get("action", "$default") if isinstance(message, dict) else "$default"
    )
    response = sockets.handler(event, FakeLambdaContext())
    assert response["statusCode"] == 200
    answer: dict[str, Any] = json.loads(response["body"])
    return answer


def disconnect(connection_id: str) -> None:
    event = load_event("websocket_connect.json")
    event["requestContext"].update(routeKey="$disconnect", eventType="DISCONNECT")
    event["requestContext"]["connectionId"] = connection_id
    assert sockets.handler(event, FakeLambdaContext()) == {"statusCode": 200}


def task_of(owner: str = ALICE, task_type: str = "push.test") -> Task:
    deps = bootstrap.aws_dependencies()
    return submit_task(
        SubmitTask(type=task_type, input={"n": 1}),
        owner=owner,
        repo=deps.repo,
        clock=deps.clock,
        ids=deps.ids,
    ).task


def update(task: Task, status: str, **fields: Any) -> Task:
    from taskmanager.domain.events import TaskUpdated
    from taskmanager.domain.services import record_update

    deps = bootstrap.aws_dependencies()
    detail = TaskUpdated.model_validate({"task_id": task.id, "status": status, **fields})
    record_update(detail, repo=deps.repo, clock=deps.clock)
    stored = deps.repo.get(task.id)
    assert stored is not None
    return stored


def sqs_batch(*tasks: Task) -> dict[str, Any]:
    record = load_event("sqs_updates.json")["Records"][0]
    records = []
    for n, task in enumerate(tasks):
        body = envelope(event_for(task), "taskmanager").model_dump_json(by_alias=True)
        records.append({**record, "messageId": f"m-{n}", "body": body})
    return {"Records": records}


def items_of(table: str, connection_id: str) -> list[dict[str, Any]]:
    scanned = boto3.client("dynamodb", region_name=REGION).scan(TableName=table)["Items"]
    return [
        i
        for i in scanned
        if f"CONN#{connection_id}" == i["pk"]["S"] or i["sk"]["S"] == connection_id
    ]


# --- sockets ---------------------------------------------------------------------------------


def test_connect_without_an_identity_is_refused(tables: tuple[str, str]) -> None:
    event = load_event("websocket_connect.json")
    event["requestContext"]["identity"].pop("userArn")
    assert sockets.handler(event, FakeLambdaContext()) == {"statusCode": 401}


def test_subscribe_answers_with_the_task_now_and_a_finished_one_with_its_final_state(
    tables: tuple[str, str],
) -> None:
    connection = connect()
    open_task = task_of()
    reply = send(connection, {"action": "subscribe", "task_id": open_task.id, "request_id": "1"})
    assert (reply["type"], reply["request_id"]) == ("task", "1")
    assert reply["task"]["status"] == "CREATED"
    assert reply["task"]["input"] == {"n": 1}
    done = update(task_of(), "SUCCESSFUL", result={"ok": True})
    caught_up = send(connection, {"action": "subscribe", "task_id": done.id})
    assert caught_up["task"]["status"] == "SUCCESSFUL"
    assert caught_up["task"]["result"] == {"ok": True}
    kept = {
        i["sk"]["S"] for i in items_of(tables[1], connection) if i["pk"]["S"].startswith("CONN#")
    }
    assert kept == {"#", f"SUB#TASK#{open_task.id}"}  # nothing kept for the finished one


def test_another_owners_task_is_not_found(tables: tuple[str, str]) -> None:
    connection = connect(BOB)
    reply = send(
        connection, {"action": "subscribe", "task_id": task_of(ALICE).id, "request_id": "x"}
    )
    assert reply["type"] == "error"
    assert reply["request_id"] == "x"
    assert reply["error"]["code"] == "TASK_NOT_FOUND"


def test_submit_over_the_socket_belongs_to_the_connection_owner(tables: tuple[str, str]) -> None:
    connection = connect(BOB)
    reply = send(connection, {"action": "submit", "request_id": "s", "task": {"type": "push.test"}})
    assert reply["type"] == "accepted"
    stored = bootstrap.repository().get(reply["task"]["id"])
    assert stored is not None
    assert stored.owner == BOB


@pytest.mark.parametrize(
    "frame",
    ["nope", '{"action": "dance"}', '{"action": "subscribe", "task_id": ""}', b"\x00\xff", ""],
)
def test_malformed_messages_get_an_error_message(
    tables: tuple[str, str], frame: str | bytes
) -> None:
    reply = send(connect(), frame)
    assert reply["type"] == "error"
    assert reply["error"]["code"] == "INVALID_REQUEST"


def test_a_message_on_an_unknown_connection_is_unauthenticated(tables: tuple[str, str]) -> None:
    reply = send(_new_id(), {"action": "subscribe", "request_id": "u"})
    assert (reply["error"]["code"], reply["request_id"]) == ("UNAUTHENTICATED", "u")


def test_disconnect_deletes_the_connection_and_its_subscriptions(tables: tuple[str, str]) -> None:
    connection = connect()
    send(connection, {"action": "subscribe"})
    send(connection, {"action": "subscribe", "task_id": task_of().id})
    assert len(items_of(tables[1], connection)) == 5  # connection + 2 x 2 subscription items
    disconnect(connection)
    assert items_of(tables[1], connection) == []


# --- notify ----------------------------------------------------------------------------------


def test_notify_posts_to_the_owners_followers_only(tables: tuple[str, str]) -> None:
    task = task_of()
    follows_task, follows_all, left = connect(), connect(), connect()
    bobs = connect(BOB)
    send(follows_task, {"action": "subscribe", "task_id": task.id})
    send(follows_all, {"action": "subscribe"})
    send(left, {"action": "subscribe", "task_id": task.id})
    send(left, {"action": "unsubscribe", "task_id": task.id})
    send(bobs, {"action": "subscribe"})
    running = update(task, "RUNNING", progress={"percent": 40, "message": "p"})
    result = notify.handler(sqs_batch(running), FakeLambdaContext())
    assert result == {"batchItemFailures": []}
    for connection in (follows_task, follows_all):
        (message,) = posted(connection)
        assert message["type"] == "task"
        assert message["task"]["version"] == running.version
        assert message["task"]["progress"] == {"percent": 40.0, "message": "p"}
        assert message["task"]["input"] == {"n": 1}  # the full resource, not the event
    assert posted(left) == []
    assert posted(bobs) == []


def test_notify_refuses_a_message_that_is_not_an_outbound_event(tables: tuple[str, str]) -> None:
    batch = load_event("sqs_updates.json")
    result = notify.handler({"Records": batch["Records"][:1]}, FakeLambdaContext())
    assert result["batchItemFailures"] == [{"itemIdentifier": batch["Records"][0]["messageId"]}]


def _stubbed_pusher() -> tuple[ConnectionPusher, Stubber]:
    client = boto3.client(
        "apigatewaymanagementapi", region_name=REGION, endpoint_url="https://x.example/live"
    )
    return ConnectionPusher(client, sleep=lambda _s: None), Stubber(client)


def _someone() -> str:
    """An owner of the test's own: no other test's connection follows its tasks."""
    return f"arn:aws:iam::123456789012:user/u{uuid.uuid4().hex[:8]}"


def test_a_gone_connection_loses_its_subscriptions(tables: tuple[str, str]) -> None:
    owner = _someone()
    task = task_of(owner)
    gone = connect(owner)
    send(gone, {"action": "subscribe", "task_id": task.id})
    pusher, stub = _stubbed_pusher()
    stub.add_client_error("post_to_connection", "GoneException", http_status_code=410)
    handle = notify.create_handler(
        bootstrap.aws_dependencies, bootstrap.connections, lambda: pusher
    )
    with stub:
        result = handle(sqs_batch(update(task, "RUNNING")), FakeLambdaContext())
    stub.assert_no_pending_responses()
    assert result == {"batchItemFailures": []}
    assert items_of(tables[1], gone) == []
    assert bootstrap.connections().following(task.id, owner) == []


def test_a_throttled_post_is_retried_then_handed_back_to_the_queue(
    tables: tuple[str, str],
) -> None:
    owner = _someone()
    task = task_of(owner)
    send(connect(owner), {"action": "subscribe", "task_id": task.id})
    running = update(task, "RUNNING")
    pusher, stub = _stubbed_pusher()
    handle = notify.create_handler(
        bootstrap.aws_dependencies, bootstrap.connections, lambda: pusher
    )
    for _ in range(2):
        stub.add_client_error("post_to_connection", "LimitExceededException", http_status_code=429)
    stub.add_response("post_to_connection", {})
    with stub:
        assert handle(sqs_batch(running), FakeLambdaContext()) == {"batchItemFailures": []}
    stub.assert_no_pending_responses()
    for _ in range(4):  # every attempt throttled: the record fails, SQS brings it back
        stub.add_client_error("post_to_connection", "LimitExceededException", http_status_code=429)
    with stub:
        result = handle(sqs_batch(running), FakeLambdaContext())
    stub.assert_no_pending_responses()
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
