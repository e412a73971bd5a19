"""Every contract model is complete at import: it serialises without a rebuild."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import msgspec

from taskmanager.domain.events import TaskResource, event_detail_json, event_for, task_resource
from taskmanager.domain.model import SubmitTask, TaskStatus
from taskmanager.domain.services import new_task

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_task_resource_and_events_serialise_to_json() -> None:
    task = new_task(SubmitTask(type="report"), task_id="t-1", owner="o", now=NOW)
    resource = TaskResource.model_validate_json(task_resource(task).model_dump_json())
    assert resource.created_at == NOW
    assert '"event_id":"t-1:1"' in event_for(task).model_dump_json()


def test_status_serialises_as_its_text_and_stays_the_member_in_python() -> None:
    task = new_task(SubmitTask(type="report"), task_id="t-1", owner="o", now=NOW)
    running = msgspec.structs.replace(task, status=TaskStatus.RUNNING, version=2)
    cases = [
        (task_resource(task), TaskStatus.CREATED),
        (task_resource(running), TaskStatus.RUNNING),
        (event_for(task), TaskStatus.CREATED),
        (event_for(running), TaskStatus.RUNNING),
    ]
    for model, status in cases:
        assert json.loads(model.model_dump_json())["status"] == status.value
        assert model.model_dump(mode="json")["status"] == status.value
        assert model.model_dump()["status"] is status
    for event, status in cases[2:]:
        assert json.loads(event_detail_json(event))["status"] == status.value  # type: ignore[arg-type]
