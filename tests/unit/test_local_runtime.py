"""The pieces of `taskmanager serve` on their own: bus, worker pool, runtime, event bridge."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any, cast

import pytest
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.shared.cookies import Cookie

from taskmanager.adapters.memory import InMemoryEventBus, InMemoryTaskRepository
from taskmanager.adapters.sqlite import SQLiteTaskRepository
from taskmanager.domain.errors import PublishError, StorageError
from taskmanager.domain.events import TaskCreated, TaskUpdated, event_for
from taskmanager.domain.model import SubmitTask
from taskmanager.domain.ports import ListQuery
from taskmanager.domain.services import Policy, record_update, submit_task
from taskmanager.entrypoints.api import create_app
from taskmanager.entrypoints.http.owners import fixed_owner
from taskmanager.entrypoints.local.asgi import (
    MAX_BODY_BYTES,
    LocalApp,
    RequestGuard,
    _api_answer,
    _headers_and_query,
    _send_whole,
)
from taskmanager.entrypoints.local.runtime import LocalRuntime, RuntimeConfig
from taskmanager.entrypoints.local.threads import PoolClosedError, WorkerPool

if TYPE_CHECKING:
    from collections.abc import Coroutine, MutableMapping
    from pathlib import Path

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
    runtime.relay.dispatch()
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


def _post_scope() -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/tasks",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
    }


def _post(app: LocalApp, body: bytes) -> Coroutine[Any, Any, tuple[int, dict[str, Any]]]:
    scope = _post_scope()
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async def run() -> tuple[int, dict[str, Any]]:
        await app(scope, receive, send)
        return int(sent[0]["status"]), json.loads(sent[1]["body"])

    return run()


def _sqlite_app(tmp_path: Path) -> tuple[LocalRuntime, LocalApp, list[str]]:
    runtime = LocalRuntime(SQLiteTaskRepository(str(tmp_path / "tasks.db")))
    app = LocalApp(runtime, create_app(runtime.deps, owner=fixed_owner("local")), static={})
    commits: list[str] = []
    inner = cast("Any", runtime.store)
    commit = inner.commit_batch

    def counted() -> list[Any]:
        commits.append("commit")
        return cast("list[Any]", commit())

    inner.commit_batch = counted
    return runtime, app, commits


def test_posts_handled_in_one_loop_turn_share_one_commit(tmp_path: Path) -> None:
    runtime, app, commits = _sqlite_app(tmp_path)

    async def burst() -> list[tuple[int, dict[str, Any]]]:
        return await asyncio.gather(*(_post(app, b'{"type": "t"}') for _ in range(8)))

    answers = asyncio.run(burst())
    assert [status for status, _ in answers] == [202] * 8
    assert commits == ["commit"]  # eight requests, one transaction
    other = SQLiteTaskRepository(str(tmp_path / "tasks.db"))  # committed: another reader sees
    assert all(other.get(task["id"]) is not None for _, task in answers)
    assert len(other.pending(100)) == 8
    runtime.store.close()  # type: ignore[attr-defined]


def _three_posts_answered_503(app: LocalApp) -> None:
    """Three submits handled in one loop turn (one batch) are each answered 503."""

    async def burst() -> list[tuple[int, dict[str, Any]]]:
        return await asyncio.gather(*(_post(app, b'{"type": "t"}') for _ in range(3)))

    answers = asyncio.run(burst())
    assert [(status, body["error"]["code"]) for status, body in answers] == [
        (503, "STORAGE_UNAVAILABLE")
    ] * 3


def test_a_failed_group_commit_answers_every_request_of_the_batch_503(tmp_path: Path) -> None:
    runtime, app, _ = _sqlite_app(tmp_path)
    inner = cast("Any", runtime.store)
    commit = inner.commit_batch

    def broken() -> None:
        inner._db().execute("ROLLBACK")  # the batch's writes are lost: the COMMIT fails
        commit()

    inner.commit_batch = broken
    _three_posts_answered_503(app)
    assert inner.pending(100) == []  # nothing was committed, nothing is announced
    assert _task(runtime).id  # the store takes writes again afterwards
    runtime.store.close()  # type: ignore[attr-defined]


def test_a_write_failing_part_way_answers_every_request_of_its_batch_503(
    tmp_path: Path,
) -> None:
    runtime, app, commits = _sqlite_app(tmp_path)
    inner = cast("Any", runtime.store)
    append = inner._outbox.append
    calls: list[int] = []

    def fails_second(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:  # the second task's row is written, its event fails
            raise sqlite3.OperationalError("disk I/O error")
        return append(*args)

    inner._outbox.append = fails_second
    _three_posts_answered_503(app)
    assert commits == ["commit"]
    other = SQLiteTaskRepository(str(tmp_path / "tasks.db"))
    assert other.list_page(ListQuery(owner="local", limit=10), runtime.clock.now()).items == []
    assert other.pending(100) == []  # no task, no half of one, no event
    inner._outbox.append = append
    assert _task(runtime).id  # the store takes writes again afterwards
    runtime.store.close()  # type: ignore[attr-defined]


def test_the_checkpointer_thread_copies_the_log_into_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    store = SQLiteTaskRepository(str(path), autocheckpoint=False)
    runtime = LocalRuntime(store, RuntimeConfig(checkpoint_interval=0.05))
    before = path.stat().st_size
    runtime.start()
    try:
        for _ in range(50):
            _task(runtime)
        deadline = time.monotonic() + 10
        while path.stat().st_size == before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert path.stat().st_size > before  # no write ran a checkpoint; the thread did
    finally:
        runtime.shutdown()


def test_a_few_events_at_once_do_not_delay_the_next_delivery() -> None:
    # A task's lifecycle writes a few events at once; only a busy server (a group commit of
    # many submits) makes the dispatcher wait to gather the next round.
    runtime = LocalRuntime(InMemoryTaskRepository(), RuntimeConfig(dispatch_gather=5.0))
    seen: list[str] = []
    arrived = threading.Event()

    def job(event: TaskCreated) -> None:
        seen.append(event.id)
        arrived.set()

    runtime.add_job("t.one", job)
    runtime.start()
    try:
        with runtime.repo.writes_paused():  # three submits land in one dispatcher round
            for _ in range(3):
                _task(runtime)
        deadline = time.monotonic() + 5
        while len(seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(seen) == 3
        arrived.clear()
        started = time.monotonic()
        last = _task(runtime)
        assert arrived.wait(2)
        assert seen[-1] == last.id
        assert time.monotonic() - started < 1.0  # not after the 5 s gather
    finally:
        runtime.shutdown()


def _recording_runtime(tmp_path: Path) -> tuple[LocalRuntime, list[str]]:
    """A SQLite runtime whose bus records each delivered event as ``id:version``; its
    dispatcher thread is not started, so only what the test calls delivers anything."""
    runtime = LocalRuntime(SQLiteTaskRepository(str(tmp_path / "tasks.db")))
    delivered: list[str] = []
    runtime.bus.subscribe(lambda event: delivered.append(event.event_id))
    return runtime, delivered


def _batch_of_tasks(runtime: LocalRuntime, count: int) -> list[Task]:
    runtime.begin_batch()
    tasks = [_task(runtime) for _ in range(count)]
    runtime.commit_batch()
    return tasks


def test_a_group_commit_delivers_its_events_at_once_and_the_next_batch_deletes_their_rows(
    tmp_path: Path,
) -> None:
    runtime, delivered = _recording_runtime(tmp_path)
    first = _batch_of_tasks(runtime, 3)
    assert delivered == [f"{task.id}:1" for task in first]  # no dispatcher round needed
    assert len(runtime.store.pending(100)) == 3  # rows kept until a transaction deletes them
    second = _batch_of_tasks(runtime, 2)
    assert delivered == [f"{task.id}:1" for task in first + second]
    assert [e.event.id for e in runtime.store.pending(100)] == [task.id for task in second]
    assert runtime.relay.dispatch() == 0  # a dispatcher round delivers none of them again ...
    assert runtime.store.pending(100) == []  # ... and deletes the rows
    assert len(delivered) == 5
    runtime.store.close()  # type: ignore[attr-defined]


def test_a_group_commit_delivers_older_pending_events_first(tmp_path: Path) -> None:
    runtime, delivered = _recording_runtime(tmp_path)
    _batch_of_tasks(runtime, 1)
    older = _task(runtime)  # a write of another kind, not yet delivered (no dispatcher)
    newer = _batch_of_tasks(runtime, 2)
    assert delivered[1:] == [f"{task.id}:1" for task in [older, *newer]]  # outbox order
    assert runtime.relay.dispatch() == 0
    assert runtime.store.pending(100) == []
    runtime.store.close()  # type: ignore[attr-defined]


def test_an_event_refused_at_commit_is_delivered_again_before_newer_ones(
    tmp_path: Path,
) -> None:
    runtime, delivered = _recording_runtime(tmp_path)
    refusing = [True]

    def refuse_once(event: OutboundEvent) -> None:
        if refusing[0]:
            refusing[0] = False
            raise RuntimeError("not now")

    runtime.bus.subscribe(refuse_once, task_types=["t.refused"])
    ok = _task(runtime)
    runtime.relay.dispatch()
    runtime.begin_batch()
    refused = _task(runtime, "t.refused")
    after = _task(runtime)
    runtime.commit_batch()
    assert [e.event.id for e in runtime.store.pending(100)] == [refused.id, after.id]
    later = _batch_of_tasks(runtime, 1)[0]
    # The recorder saw the refused event's first try too; the bus delivered the one after
    # it then, and that one is not delivered again.
    ids = [event_id.split(":")[0] for event_id in delivered]
    assert ids == [ok.id, refused.id, after.id, refused.id, later.id]
    runtime.relay.dispatch()
    assert runtime.store.pending(100) == []
    runtime.store.close()  # type: ignore[attr-defined]


def _post_messages(app: LocalApp, messages: list[dict[str, Any]]) -> tuple[int, Any, int]:
    """POST /tasks whose body comes in ``messages``: (status, JSON body, messages read)."""
    scope = _post_scope()
    sent: list[MutableMapping[str, Any]] = []
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return int(sent[0]["status"]), json.loads(sent[1]["body"]), len(messages) - len(queue)


def test_a_request_body_over_the_server_limit_is_refused_413_before_more_is_read(
    tmp_path: Path,
) -> None:
    runtime, app, _ = _sqlite_app(tmp_path)
    one = {"type": "http.request", "body": b" " * (MAX_BODY_BYTES + 1), "more_body": False}
    status, body, read = _post_messages(app, [one])
    assert (status, body["error"]["code"], read) == (413, "PAYLOAD_TOO_LARGE", 1)
    # As docs/api.md has it: ``details.field`` says which value was too large.
    assert body["error"]["details"] == {"field": "body", "limit": MAX_BODY_BYTES}
    half = {"type": "http.request", "body": b" " * (MAX_BODY_BYTES // 2 + 1), "more_body": True}
    status, body, read = _post_messages(app, [half, half, half])
    assert (status, body["error"]["code"], read) == (413, "PAYLOAD_TOO_LARGE", 2)
    assert runtime.store.pending(10) == []  # nothing was submitted
    runtime.store.close()  # type: ignore[attr-defined]


def _get(app: LocalApp, path: str) -> tuple[int, Any]:
    """GET ``path`` of ``app``, answered whole: (status, JSON body)."""
    scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": []}
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return int(sent[0]["status"]), json.loads(sent[1]["body"])


class UnavailableStore(InMemoryTaskRepository):
    def get(self, task_id: str) -> Task | None:
        raise StorageError("the file is locked")


def test_the_server_s_own_paths_answer_errors_as_the_api_does() -> None:
    runtime = LocalRuntime(UnavailableStore())
    app = LocalApp(runtime, create_app(runtime.deps, owner=fixed_owner("local")), static={})
    status, body = _get(app, "/tasks/3f0a0c1e-0000-4000-8000-000000000000/events")
    assert (status, body["error"]["code"]) == (503, "STORAGE_UNAVAILABLE")  # not 400
    status, body = _get(app, "/static/missing.js")
    assert (status, body["error"]["code"]) == (404, "ROUTE_NOT_FOUND")  # not NOT_FOUND


def test_a_body_in_several_messages_is_read_whole(tmp_path: Path) -> None:
    runtime, app, _ = _sqlite_app(tmp_path)
    parts = [b'{"type": ', b'"t.parts", "input": {"n": 1}', b"}"]
    messages = [
        {"type": "http.request", "body": part, "more_body": number < len(parts) - 1}
        for number, part in enumerate(parts)
    ]
    status, body, read = _post_messages(app, messages)
    assert (status, body["type"], body["input"], read) == (202, "t.parts", {"n": 1}, 3)
    exact = {"type": "http.request", "body": b" " * MAX_BODY_BYTES, "more_body": False}
    status, body, _ = _post_messages(app, [exact])  # at the server's limit: read whole ...
    assert body["error"]["details"]["size"] == MAX_BODY_BYTES  # ... for the API to judge
    runtime.store.close()  # type: ignore[attr-defined]


def test_a_route_response_becomes_asgi_headers_with_repeats_and_cookies() -> None:
    response = Response(
        status_code=200,
        content_type="application/json",
        body='{"ok": true}',
        headers={"X-Many": ["1", "2"], "Retry-After": "3"},
        cookies=[Cookie(name="a", value="b")],
    )
    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    for _ in range(2):  # the second time with the names already converted
        sent.clear()
        status, headers, body = _api_answer(response)
        asyncio.run(_send_whole(send, status, headers, body, head=False))
        assert sent[0]["status"] == 200
        assert sorted(sent[0]["headers"]) == [
            (b"content-length", b"12"),
            (b"content-type", b"application/json"),
            (b"retry-after", b"3"),
            (b"set-cookie", b"a=b; Secure"),
            (b"x-many", b"1"),
            (b"x-many", b"2"),
        ]
        assert sent[1]["body"] == b'{"ok": true}'


def test_the_sweeper_deletes_expired_tasks_from_the_file_after_their_retention(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tasks.db"
    config = RuntimeConfig(
        sweep_interval=0.05, purge_interval=0.05, purge_batch=2, policy=Policy(retention_seconds=1)
    )
    runtime = LocalRuntime(SQLiteTaskRepository(str(path)), config)
    runtime.start()
    try:
        tasks = [_task(runtime) for _ in range(5)]
        for task in tasks:
            finish = TaskUpdated(task_id=task.id, status="SUCCESSFUL")
            record_update(finish, repo=runtime.repo, clock=runtime.clock, policy=config.policy)
        kept = _task(runtime)  # never finished: never expires
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT count(*) FROM tasks").fetchone()[0] == 6
            time.sleep(0.5)  # within the retention, nothing is deleted
            assert db.execute("SELECT count(*) FROM tasks").fetchone()[0] == 6
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                ids = [row[0] for row in db.execute("SELECT id FROM tasks")]
                if ids == [kept.id]:
                    break
                time.sleep(0.05)
            assert ids == [kept.id]  # five expired, deleted in batches of two
    finally:
        runtime.shutdown()


def _guard_says(guard: RequestGuard, method: str, *headers: tuple[bytes, bytes]) -> str | None:
    refusal = guard.refusal({"method": method, "headers": list(headers)})
    return None if refusal is None else refusal.code


def test_the_guard_serves_the_bound_and_allowed_names_and_only_own_origin_writes() -> None:
    guard = RequestGuard("::1", ("tasks.lan", "FE80::1"))
    for host in (b"[::1]:8000", b"localhost", b"tasks.lan:80", b"[fe80::1]", b"127.0.0.1:1"):
        assert _guard_says(guard, "GET", (b"host", host)) is None, host
        assert _guard_says(guard, "GET", (b"host", host)) is None, host  # as remembered
    for host in (b"tasks.lan.evil.example", b"[::2]", b"0.0.0.0", b"localhost.", b""):
        assert _guard_says(guard, "GET", (b"host", host)) == "HOST_NOT_ALLOWED", host
    # Two Host headers: whichever a proxy or the app reads, one is not vouched for.
    twice = ((b"host", b"localhost"), (b"host", b"evil.example.com"))
    assert _guard_says(guard, "GET", *twice) == "HOST_NOT_ALLOWED"
    own = (b"host", b"tasks.lan:8000")
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert _guard_says(guard, method, own, (b"origin", b"http://tasks.lan:8000")) is None
        assert _guard_says(guard, method, own, (b"origin", b"https://tasks.lan:8000")) is None
        assert _guard_says(guard, method, own) is None  # curl, the CLI
        foreign = (b"origin", b"http://tasks.lan:8001")
        assert _guard_says(guard, method, own, foreign) == "CROSS_SITE_REQUEST"
        assert _guard_says(guard, method, foreign) == "CROSS_SITE_REQUEST"  # no Host to match
    assert _guard_says(guard, "GET", own, (b"origin", b"https://evil.example.com")) is None
    anyone = RequestGuard("127.0.0.1", ("*",))
    assert _guard_says(anyone, "GET", (b"host", b"evil.example.com")) is None
    evil = ((b"host", b"evil.example.com"), (b"origin", b"http://other.example.com"))
    assert _guard_says(anyone, "POST", *evil) == "CROSS_SITE_REQUEST"
