"""The pieces of `taskmanager serve` on their own: bus, worker pool, runtime, event bridge."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest

from taskmanager.adapters.memory import InMemoryEventBus, InMemoryTaskRepository
from taskmanager.domain.errors import PublishError
from taskmanager.domain.events import TaskCreated, event_for
from taskmanager.domain.model import SubmitTask
from taskmanager.domain.services import submit_task
from taskmanager.entrypoints.local.asgi import _headers_and_query
from taskmanager.entrypoints.local.runtime import (
    LocalRuntime,
    PoolClosedError,
    RuntimeConfig,
    WorkerPool,
)

if TYPE_CHECKING:
    from taskmanager.domain.events import OutboundEvent
    from taskmanager.domain.model import Task


def _task(runtime: LocalRuntime, task_type: str = "t.one") -> Task:
    return submit_task(
        SubmitTask(type=task_type), owner="local", repo=runtime.repo, clock=runtime.clock,
        ids=runtime.ids,
    ).task  # fmt: skip


def test_bus_names_only_the_events_a_subscriber_failed() -> None:
    runtime = LocalRuntime(InMemoryTaskRepository())
    good, bad = _task(runtime, "good"), _task(runtime, "bad")
    bus = InMemoryEventBus(record=False)
    seen: list[str] = []
    bus.subscribe(lambda e: seen.append(e.id), task_types=["good"])

    def refuse(event: OutboundEvent) -> None:
        raise RuntimeError("no")

    bus.subscribe(refuse, detail_types=["TaskCreated"], task_types=["bad"])
    with pytest.raises(PublishError) as caught:
        bus.publish([event_for(good), event_for(bad)])
    assert caught.value.failed_event_ids == [f"{bad.id}:1"]
    assert seen == [good.id]
    assert bus.published == []  # a server's bus keeps nothing after delivery


def test_worker_pool_refuses_work_once_closed_and_reports_stragglers() -> None:
    pool = WorkerPool(2)
    pool.start()
    release = threading.Event()

    def hold() -> None:
        release.wait(5)

    pool.submit(hold)
    time.sleep(0.05)
    assert pool.active == 1
    started = time.monotonic()
    assert pool.close(grace_seconds=0.2) == 1  # one still running after the grace period
    assert time.monotonic() - started < 2
    with pytest.raises(PoolClosedError):
        pool.submit(lambda: None)
    release.set()


def test_runtime_delivers_task_created_to_the_job_of_its_type() -> None:
    runtime = LocalRuntime(InMemoryTaskRepository(), RuntimeConfig(workers=1))
    got: list[TaskCreated] = []
    done = threading.Event()

    def job(event: TaskCreated) -> None:
        got.append(event)
        done.set()

    runtime.add_job("t.one", job)
    runtime.start()
    try:
        task = _task(runtime)
        assert done.wait(5)
        assert [e.id for e in got] == [task.id]
    finally:
        runtime.shutdown()


def test_events_refused_at_shutdown_stay_in_the_outbox_for_the_next_start() -> None:
    store = InMemoryTaskRepository()
    runtime = LocalRuntime(store, RuntimeConfig(workers=1, grace_seconds=0.1))
    runtime.add_job("t.one", lambda event: None)
    runtime.start()
    runtime.shutdown()
    task = _task(runtime)  # committed after the pool closed: nobody may run it now
    runtime._dispatch()
    assert [entry.event.id for entry in store.undelivered] == [task.id]


def test_headers_and_query_read_as_api_gateway_gives_them() -> None:
    scope = {
        "method": "POST",
        "path": "/tasks",
        "query_string": b"a=1&a=2&b=&c=x%2Cy",
        "headers": [
            (b"Content-Type", b"application/json"),
            (b"x-many", b"1"),
            (b"x-many", b"2"),
        ],
    }
    headers, query = _headers_and_query(scope)
    assert headers == {"content-type": "application/json", "x-many": "1,2"}
    # A repeated name is a list (the route table refuses it for a one-value parameter).
    assert query == {"a": ["1", "2"], "b": "", "c": "x,y"}
