"""The push protocol (docs/push.md): parsing client messages and the use case that answers
them, on the in-memory adapters."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from taskmanager.domain.events import TaskResource
from taskmanager.domain.push import (
    MAX_CLIENT_MESSAGE_BYTES,
    SERVER_MESSAGE_ADAPTER,
    Accepted,
    ErrorMessage,
    Subscribe,
    Subscribed,
    TaskMessage,
    Unsubscribed,
    answer,
    parse_client_message,
    request_id_of,
    task_message_json,
)
from taskmanager.domain.services import DEFAULT_POLICY, Policy

if TYPE_CHECKING:
    from taskmanager.adapters.memory import InMemoryTaskRepository, ManualClock, UuidIdFactory
    from tests.unit.conftest import World


@dataclass
class Connection:
    """A connection's subscriptions, as a transport keeps them."""

    following: set[str | None] = field(default_factory=set)

    def subscribe(self, task_id: str | None) -> None:
        self.following.add(task_id)

    def unsubscribe(self, task_id: str | None) -> None:
        self.following.discard(task_id)


@dataclass(frozen=True)
class Deps:
    repo: InMemoryTaskRepository
    clock: ManualClock
    ids: UuidIdFactory
    policy: Policy = DEFAULT_POLICY


def serve(
    world: World, raw: str | dict[str, Any], owner: str = "alice", conn: Connection | None = None
) -> Any:
    text = raw if isinstance(raw, str) else json.dumps(raw)
    message = parse_client_message(text)
    deps = Deps(world.repo, world.clock, world.ids)
    return answer(message, owner=owner, subscriptions=conn or Connection(), deps=deps)


def test_subscribe_to_a_task_answers_with_its_current_state_and_follows_it(world: World) -> None:
    task = world.task()
    conn = Connection()
    reply = serve(world, {"action": "subscribe", "task_id": task.id, "request_id": "r1"}, conn=conn)
    assert isinstance(reply.message, TaskMessage)
    assert reply.message.request_id == "r1"
    assert reply.message.task.id == task.id
    assert reply.message.task.version == 1
    assert conn.following == {task.id}


def test_subscribe_to_a_finished_task_catches_up_and_keeps_nothing(world: World) -> None:
    task = world.task(input={"n": 1})
    world.update(task.id, "SUCCESSFUL", result={"ok": True})
    conn = Connection()
    reply = serve(world, {"action": "subscribe", "task_id": task.id}, conn=conn)
    assert reply.message.task.status == "SUCCESSFUL"
    assert reply.message.task.result == {"ok": True}
    assert reply.message.task.input == {"n": 1}
    assert conn.following == set()


def test_another_owners_task_is_not_found_and_leaves_no_subscription(world: World) -> None:
    task = world.task(owner="bob")
    conn = Connection()
    reply = serve(world, {"action": "subscribe", "task_id": task.id, "request_id": "x"}, conn=conn)
    assert isinstance(reply.message, ErrorMessage)
    assert reply.message.error.code == "TASK_NOT_FOUND"
    assert reply.message.request_id == "x"
    assert conn.following == set()


def test_subscribe_to_every_task_and_unsubscribe(world: World) -> None:
    conn = Connection()
    assert isinstance(serve(world, {"action": "subscribe"}, conn=conn).message, Subscribed)
    assert conn.following == {None}
    reply = serve(world, {"action": "unsubscribe", "request_id": "u"}, conn=conn)
    assert reply.message == Unsubscribed(request_id="u")
    assert conn.following == set()


def test_submit_accepts_the_task_and_follows_it(world: World) -> None:
    conn = Connection()
    message = {"action": "submit", "request_id": "s1", "task": {"type": "t", "input": [1]}}
    reply = serve(world, message, conn=conn)
    assert isinstance(reply.message, Accepted)
    assert reply.message.request_id == "s1"
    assert reply.message.task.status == "CREATED"
    assert reply.created == reply.message.task
    assert conn.following == {reply.message.task.id}
    assert world.stored(reply.message.task.id).owner == "alice"


def test_submit_with_the_same_idempotency_key_replays_the_task(world: World) -> None:
    message = {"action": "submit", "idempotency_key": "k-1", "task": {"type": "t"}}
    first = serve(world, message).message
    again = serve(world, message)
    assert again.message.replayed is True
    assert again.message.task.id == first.task.id
    assert again.created is None
    reused = serve(world, {**message, "task": {"type": "other"}}).message
    assert reused.error.code == "IDEMPOTENCY_KEY_REUSED"


@pytest.mark.parametrize(
    ("raw", "code", "needle"),
    [
        ("not json", "INVALID_REQUEST", "not valid JSON"),
        ("[]", "INVALID_REQUEST", "action"),
        ('{"action": "dance"}', "INVALID_REQUEST", "action"),
        ('{"task_id": "x"}', "INVALID_REQUEST", "action"),
        ('{"action": "submit"}', "INVALID_REQUEST", "protocol"),
        ('{"action": "submit", "task": {"type": "!"}}', "INVALID_REQUEST", "protocol"),
        ('{"action": "subscribe", "task_id": ""}', "INVALID_REQUEST", "protocol"),
        ('{"action": "subscribe", "extra": 1}', "INVALID_REQUEST", "protocol"),
        ('{"action": "subscribe", "task_id": "' + "a" * 65 + '"}', "INVALID_REQUEST", "protocol"),
    ],
)
def test_malformed_messages_are_invalid_requests(raw: str, code: str, needle: str) -> None:
    with pytest.raises(Exception) as caught:  # noqa: PT011 (the code is what is checked)
        parse_client_message(raw)
    assert getattr(caught.value, "code", None) == code
    assert needle in str(caught.value)


def test_a_message_over_the_limit_is_payload_too_large() -> None:
    raw = json.dumps({"action": "subscribe", "pad": "x" * MAX_CLIENT_MESSAGE_BYTES})
    with pytest.raises(Exception) as caught:  # noqa: PT011
        parse_client_message(raw)
    assert getattr(caught.value, "code", None) == "PAYLOAD_TOO_LARGE"


def test_an_input_over_its_limit_is_refused_with_an_error_message(world: World) -> None:
    message = {"action": "submit", "task": {"type": "t", "input": "x" * (128 * 1024 + 1)}}
    assert serve(world, message).message.error.code == "PAYLOAD_TOO_LARGE"


def test_the_request_id_of_a_malformed_message_is_kept_where_readable() -> None:
    assert request_id_of('{"action": "x", "request_id": "r9"}') == "r9"
    assert request_id_of("nope") is None
    assert request_id_of('{"request_id": 5}') is None


def test_a_task_message_too_large_to_send_leaves_out_input_then_result(world: World) -> None:
    big = "x" * (100 * 1024)
    task = world.task(input=big)
    world.update(task.id, "SUCCESSFUL", result=big)
    resource = TaskResource.model_validate(world.stored(task.id), from_attributes=True)
    message = SERVER_MESSAGE_ADAPTER.validate_json(task_message_json(resource))
    assert isinstance(message, TaskMessage)
    assert message.omitted == ["input"]
    assert message.task.input is None
    assert message.task.result == big
    small = json.loads(task_message_json(resource, limit=1000))
    assert small["omitted"] == ["input", "result"]
    whole = json.loads(task_message_json(resource, limit=10**6))
    assert whole["omitted"] == []
    assert whole["task"]["input"] == big


def test_every_server_message_parses_back(world: World) -> None:
    task = world.task()
    resource = TaskResource.model_validate(task, from_attributes=True)
    for message in (
        Accepted(request_id="a", task=resource),
        TaskMessage(task=resource),
        Subscribed(),
        Unsubscribed(task_id=task.id),
    ):
        assert SERVER_MESSAGE_ADAPTER.validate_json(message.model_dump_json()) == message
    assert isinstance(parse_client_message('{"action":"subscribe"}'), Subscribe)


def test_every_message_in_the_push_guide_is_valid() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "push.md").read_text()
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", guide, re.DOTALL)]
    sent = [b for b in blocks if "action" in b]
    received = [b for b in blocks if "type" in b and "action" not in b]
    assert len(sent) >= 4
    assert len(received) >= 4
    for block in sent:
        parse_client_message(json.dumps(block))
    for block in received:
        SERVER_MESSAGE_ADAPTER.validate_python(block)
