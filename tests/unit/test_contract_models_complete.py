"""Every contract model is complete at import: it serialises without a rebuild."""

from __future__ import annotations

from datetime import UTC, datetime

from taskmanager.domain.events import TaskResource, event_for, task_resource
from taskmanager.domain.model import SubmitTask
from taskmanager.domain.services import new_task

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_task_resource_and_events_serialise_to_json() -> None:
    task = new_task(SubmitTask(type="report"), task_id="t-1", owner="o", now=NOW)
    resource = TaskResource.model_validate_json(task_resource(task).model_dump_json())
    assert resource.created_at == NOW
    assert '"event_id":"t-1:1"' in event_for(task).model_dump_json()
