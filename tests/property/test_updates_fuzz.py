"""Hypothesis-generated ``TaskUpdated`` messages, valid and not, through the updates handler.

Each batch mixes well-formed updates (for known and unknown tasks, any status, sequence,
progress, result or error) with broken messages (not JSON, wrong detail-type, wrong types,
missing or extra fields, oversized values). The handler never raises and never loses the
batch: exactly the messages that are not a valid ``TaskUpdated`` come back as batch item
failures (SQS redelivers them, then the DLQ takes them, docs/design.md §3); every valid one is
acknowledged, whatever its outcome; and the stored tasks stay legal.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from taskmanager.adapters.memory import InMemoryTaskRepository, ManualClock, UuidIdFactory
from taskmanager.domain.errors import InvalidRequestError
from taskmanager.domain.events import TaskUpdatedEvent, parse_event
from taskmanager.domain.model import TERMINAL_STATUSES, SubmitTask, TaskStatus
from taskmanager.domain.services import new_task
from taskmanager.entrypoints.bootstrap import Dependencies
from taskmanager.entrypoints.updates import create_handler
from tests.support import FakeLambdaContext

NOW: Final = datetime(2026, 3, 10, 13, 40, tzinfo=UTC)
KNOWN: Final = [f"00000000-0000-4000-8000-00000000000{n}" for n in range(4)]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
statuses = st.sampled_from(["RUNNING", "SUCCESSFUL", "FAILED", "CREATED", "running", "DONE"])
details = st.fixed_dictionaries(
    {"task_id": st.sampled_from(KNOWN) | st.uuids().map(str) | st.text(max_size=70)},
    optional={
        "status": statuses,
        "sequence": st.integers(min_value=-2, max_value=2**60)
        | st.booleans()
        | st.text(max_size=3),
        "progress": st.none()
        | st.fixed_dictionaries(
            {"percent": st.floats(min_value=-10, max_value=110) | st.text(max_size=3)},
            optional={"message": st.text(max_size=1100)},
        ),
        "result": json_values,
        "error": st.none()
        | st.fixed_dictionaries(
            {"code": st.sampled_from(["BROKEN", "bad code", "", "X" * 70]), "message": st.text()}
        ),
        "unknown_field": json_values,
    },
)


def envelope(detail: Any, detail_type: str) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": "7f0e8b1c-33c1-4e6e-9f3a-000000000001",
            "detail-type": detail_type,
            "source": "processor.reports",
            "account": "123456789012",
            "time": "2026-03-10T13:41:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": detail,
        }
    )


bodies = st.one_of(
    details.map(lambda d: envelope(d, "TaskUpdated")),
    details.map(lambda d: envelope(d, "TaskUpdated")),
    details.map(lambda d: envelope(d, "TaskCreated")),
    json_values.map(lambda v: envelope(v, "TaskUpdated")),
    json_values.map(json.dumps),
    st.text(max_size=50),
    st.binary(max_size=30).map(lambda b: b.decode("latin-1")),
)


def is_valid_update(body: str) -> bool:
    try:
        return isinstance(parse_event(body), TaskUpdatedEvent)
    except (ValidationError, InvalidRequestError, ValueError):
        return False


def sqs_record(n: int, body: str) -> dict[str, Any]:
    return {
        "messageId": f"message-{n}",
        "receiptHandle": f"handle-{n}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "0",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:taskmanager-updates",
        "awsRegion": "us-east-1",
    }


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=st.lists(bodies, min_size=1, max_size=10))
def test_no_batch_is_lost_and_only_malformed_messages_fail(batch: list[str]) -> None:
    repo = InMemoryTaskRepository()
    for task_id in KNOWN:
        repo.create(new_task(SubmitTask(type="report"), task_id=task_id, owner="a", now=NOW), NOW)
    deps = Dependencies(repo=repo, clock=ManualClock(NOW), ids=UuidIdFactory())
    handler = create_handler(lambda: deps)

    response = handler(
        {"Records": [sqs_record(n, b) for n, b in enumerate(batch)]}, FakeLambdaContext()
    )

    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    malformed = {f"message-{n}" for n, body in enumerate(batch) if not is_valid_update(body)}
    assert failed == malformed
    for task_id in KNOWN:
        task = repo.get(task_id)
        assert task is not None
        assert task.version >= 1
        if task.status in TERMINAL_STATUSES:
            assert (task.status == TaskStatus.SUCCESSFUL) == (task.error is None)
        assert (task.status == TaskStatus.RUNNING) or task.progress is None
