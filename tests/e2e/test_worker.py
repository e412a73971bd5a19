"""`taskmanager worker` as a real process on a queue fed by the TaskCreated rule (moto server):
visibility kept while a task runs, heartbeats, cancels, graceful stop and hand-back, crashes,
poison messages and the retry policy.

The processor queue's visibility timeout is 2 s, so every lapse the tests wait for is short.
"""

from __future__ import annotations

import json
import signal
import time
from typing import TYPE_CHECKING

import pytest

from tests.e2e.queue_world import MAX_RECEIVE_COUNT, VISIBILITY_TIMEOUT, QueueWorld, queue_world

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(scope="module")
def world(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueueWorld]:
    with queue_world(moto_server, tmp_path_factory.mktemp("worker")) as world:
        yield world


@pytest.fixture(autouse=True)
def _own_workers(world: QueueWorld) -> Iterator[None]:
    """Each test starts the workers it needs; none outlives it."""
    yield
    world.stop_workers()


def _events(world: QueueWorld, task_id: str) -> list[tuple[str, int]]:
    """(detail-type, version) of the task's outbound events, once the last one is seen."""
    deadline = time.monotonic() + 10
    while True:
        events = world.pump.events_of(task_id)
        if events and events[-1][0] in {"TaskSuccessful", "TaskFailed"}:
            return [(kind, version) for kind, version, _ in events]
        assert time.monotonic() < deadline, events
        time.sleep(0.05)


def _progress_at_least(percent: float) -> object:
    return lambda task: (task["progress"] or {}).get("percent", 0) >= percent


def test_a_task_longer_than_the_visibility_timeout_runs_once(world: QueueWorld) -> None:
    worker = world.start_worker("--concurrency", "2")
    task = world.submit("w.steps", {"seconds": 3 * VISIBILITY_TIMEOUT, "steps": 4})
    done = world.wait_until_done(task["id"], timeout=30)

    assert done["status"] == "SUCCESSFUL", done
    assert done["result"] == {"attempt": 1, "resumed_after": 0, "steps": 4}
    # Created, RUNNING, four progress reports, SUCCESSFUL: in order, each once.
    assert _events(world, task["id"]) == [
        ("TaskCreated", 1),
        *[("TaskRunning", version) for version in range(2, 7)],
        ("TaskSuccessful", 7),
    ]
    assert worker.log().count(f"task {task['id']}: successful (attempt 1)") == 1
    assert world.queue_counts(world.queue_url) == (0, 0)  # deleted once done


def test_sigterm_hands_the_task_back_and_another_worker_resumes_it(world: QueueWorld) -> None:
    first = world.start_worker("--grace-seconds", "0.5")
    task = world.submit("w.steps", {"seconds": 6, "steps": 6})
    world.wait_for(task["id"], _progress_at_least(33), what="two steps")

    first.signal(signal.SIGTERM)
    assert first.wait(15) == 0
    assert "1 task(s) still running after 0.5 s: handed back to the queue" in first.log()
    handed_back = time.monotonic()
    second = world.start_worker()
    done = world.wait_until_done(task["id"], timeout=20)

    assert done["status"] == "SUCCESSFUL", done
    assert done["result"]["attempt"] == 2
    assert done["result"]["resumed_after"] >= 2  # it saw the first attempt's progress
    # Released, not left to lapse: the second worker did not wait for a visibility timeout
    # on top of the remaining (at most four) steps.
    assert time.monotonic() - handed_back < 4 + VISIBILITY_TIMEOUT + 3
    assert f"task {task['id']}: successful (attempt 2)" in second.log()


def test_after_kill_9_another_worker_takes_the_task_once_its_visibility_lapses(
    world: QueueWorld,
) -> None:
    first = world.start_worker()
    task = world.submit("w.steps", {"seconds": 4, "steps": 4})
    world.wait_for(task["id"], _progress_at_least(50), what="two steps")
    first.signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL

    second = world.start_worker()
    done = world.wait_until_done(task["id"], timeout=20)
    assert done["status"] == "SUCCESSFUL", done
    assert done["result"]["attempt"] == 2
    assert done["result"]["resumed_after"] >= 2
    assert f"task {task['id']}: successful (attempt 2)" in second.log()


def test_a_cancel_reaches_the_function_within_a_heartbeat_period(
    world: QueueWorld, tmp_path: Path
) -> None:
    world.start_worker()
    marker = tmp_path / "cancel-seen"
    heartbeat = 2
    task = world.submit("w.cancel", {"marker": str(marker)}, heartbeat_seconds=heartbeat)
    world.wait_for(task["id"], _progress_at_least(1), what="start")
    world.reports_of(task["id"])  # what was reported before the cancel

    status, cancelled = world.call("POST", f"/tasks/{task['id']}/cancel")
    cancelled_at = time.time()
    assert (status, cancelled["status"]) == (202, "FAILED")
    deadline = time.monotonic() + 10
    while not marker.exists():
        assert time.monotonic() < deadline, "the function never saw the cancel"
        time.sleep(0.02)
    time.sleep(0.1)  # the marker's text is written
    assert float(marker.read_text()) - cancelled_at < heartbeat

    time.sleep(heartbeat + VISIBILITY_TIMEOUT)  # heartbeats or an outcome would be sent by now
    late = [r for r in world.reports_of(task["id"]) if r["sequence"] > 0]
    assert all(r["status"] == "RUNNING" for r in late), late  # nothing after the outcome
    stored = world.get(task["id"])
    assert (stored["status"], stored["error"]["code"]) == ("FAILED", "CANCELLED")
    assert stored["version"] == cancelled["version"]  # nothing the worker sent changed it
    assert world.queue_counts(world.queue_url) == (0, 0)


def test_the_worker_heartbeats_for_a_function_that_never_reports(world: QueueWorld) -> None:
    world.start_worker()
    # Quiet for 5 s with a 2 s heartbeat: the sweeper fails it unless the worker beats.
    task = world.submit("w.quiet", {"seconds": 5}, heartbeat_seconds=2)
    done = world.wait_until_done(task["id"], timeout=20)
    assert (done["status"], done["result"]) == ("SUCCESSFUL", "done"), done
    events = _events(world, task["id"])
    assert sum(kind == "TaskRunning" for kind, _ in events) >= 1 + 2  # RUNNING + heartbeats


def test_poison_messages_go_to_the_dlq_and_the_worker_keeps_serving(world: QueueWorld) -> None:
    worker = world.start_worker()
    not_json = "this is not an event"
    other = json.dumps({"detail-type": "TaskRunning", "source": "x", "detail": {}})
    for body in (not_json, other):
        world.sqs.send_message(QueueUrl=world.queue_url, MessageBody=body)

    deadline = time.monotonic() + 20
    dead: list[str] = []
    while len(dead) < 2:
        assert time.monotonic() < deadline, worker.log()
        dead += [m["Body"] for m in world.drain(world.dlq_url)]
        time.sleep(0.1)
    assert sorted(dead) == sorted([not_json, other])
    assert worker.log().count("is not a TaskCreated event, left for the dead-letter queue") >= 2
    assert worker.log().count("left for the dead-letter queue") <= 2 * MAX_RECEIVE_COUNT

    task = world.submit("w.steps", {"seconds": 0.1, "steps": 1})
    assert world.wait_until_done(task["id"])["status"] == "SUCCESSFUL"
    assert worker.process.poll() is None


def test_a_retryable_failure_is_retried_and_reported_as_progress(world: QueueWorld) -> None:
    world.start_worker()
    task = world.submit("w.flaky", {"failures": 1})
    done = world.wait_until_done(task["id"])
    assert (done["status"], done["result"]) == ("SUCCESSFUL", {"retries": 1, "resumed_at": 10})
    _events(world, task["id"])  # every event has crossed the bus
    messages = [
        e["detail"]["progress"]["message"]
        for e in world.pump.outbound
        if e["detail"]["id"] == task["id"] and e["detail"]["progress"]
    ]
    assert any(m.startswith("attempt 1 of 3 failed: THROTTLED: try 1 throttled") for m in messages)


def test_a_failure_that_is_not_retryable_fails_at_once(world: QueueWorld) -> None:
    world.start_worker()
    task = world.submit("w.broken")
    done = world.wait_until_done(task["id"])
    assert done["error"] == {"code": "BAD_INPUT", "message": "not retryable"}
    assert _events(world, task["id"]) == [("TaskCreated", 1), ("TaskRunning", 2), ("TaskFailed", 3)]


def test_exhausted_attempts_fail_with_the_last_code(world: QueueWorld) -> None:
    world.start_worker()
    task = world.submit("w.flaky", {"failures": 5})
    done = world.wait_until_done(task["id"])
    assert done["error"] == {"code": "THROTTLED", "message": "try 3 throttled"}
    _events(world, task["id"])
    retries = [
        e["detail"]["progress"]["message"]
        for e in world.pump.outbound
        if e["detail"]["id"] == task["id"]
        and (e["detail"]["progress"] or {}).get("message", "").startswith("attempt ")
    ]
    assert [m.split(":")[0] for m in retries] == ["attempt 1 of 3 failed", "attempt 2 of 3 failed"]
