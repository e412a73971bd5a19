"""Fixtures for the use-case tests: the real in-memory adapters and a clock that obeys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from taskmanager.adapters.memory import (
    InMemoryEventBus,
    InMemoryTaskRepository,
    ManualClock,
    UuidIdFactory,
)
from taskmanager.domain.events import TaskUpdated
from taskmanager.domain.model import SubmitTask, Task
from taskmanager.domain.services import (
    SubmitResult,
    UpdateResult,
    record_update,
    submit_task,
)


@dataclass
class World:
    """One service's worth of adapters, with helpers that go through the use cases."""

    repo: InMemoryTaskRepository
    clock: ManualClock
    ids: UuidIdFactory
    bus: InMemoryEventBus

    def submit(
        self,
        owner: str = "alice",
        *,
        key: str | None = None,
        type: str = "report.render",
        **fields: Any,
    ) -> SubmitResult:
        command = SubmitTask.model_validate({"type": type, **fields})
        return submit_task(
            command,
            owner=owner,
            repo=self.repo,
            clock=self.clock,
            ids=self.ids,
            idempotency_key=key,
        )

    def task(self, owner: str = "alice", **fields: Any) -> Task:
        return self.submit(owner, **fields).task

    def update(self, task_id: str, status: str, **fields: Any) -> UpdateResult:
        update = TaskUpdated.model_validate({"task_id": task_id, "status": status, **fields})
        return record_update(update, repo=self.repo, clock=self.clock)

    def update_from(
        self, types: frozenset[str], task_id: str, status: str, **fields: Any
    ) -> UpdateResult:
        """An update from a sender that may report on tasks of ``types`` only."""
        update = TaskUpdated.model_validate({"task_id": task_id, "status": status, **fields})
        return record_update(update, repo=self.repo, clock=self.clock, types=types)

    def stored(self, task_id: str) -> Task:
        task = self.repo.get(task_id)
        assert task is not None
        return task

    def outbox_types(self, task_id: str) -> list[str]:
        return [e.event.DETAIL_TYPE for e in self.repo.undelivered if e.event.id == task_id]


@pytest.fixture
def world() -> World:
    return World(InMemoryTaskRepository(), ManualClock(), UuidIdFactory(), InMemoryEventBus())
