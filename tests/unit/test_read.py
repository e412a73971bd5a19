"""get_task and list_tasks: owner isolation, expiry, filters and cursor paging."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import pytest

from taskmanager.adapters.memory import encode_cursor
from taskmanager.domain.errors import InvalidCursorError, TaskNotFoundError
from taskmanager.domain.model import TaskStatus
from taskmanager.domain.services import Policy, get_task, list_tasks

if TYPE_CHECKING:
    from tests.unit.conftest import World


def test_get_returns_the_callers_task(world: World) -> None:
    task = world.task()
    assert get_task(task.id, owner="alice", repo=world.repo, clock=world.clock) == task


def test_get_of_another_owners_task_is_not_found(world: World) -> None:
    task = world.task("alice")
    with pytest.raises(TaskNotFoundError) as raised:
        get_task(task.id, owner="bob", repo=world.repo, clock=world.clock)
    assert raised.value.code == "TASK_NOT_FOUND"
    assert raised.value.details == {"task_id": task.id}


def test_get_of_an_unknown_task_is_not_found(world: World) -> None:
    with pytest.raises(TaskNotFoundError):
        get_task("no-such-task", owner="alice", repo=world.repo, clock=world.clock)


def test_get_of_a_task_past_its_retention_is_not_found(world: World) -> None:
    task = world.task()
    world.update(task.id, "SUCCESSFUL")
    world.clock.advance(Policy().retention_seconds - 1)
    assert get_task(task.id, owner="alice", repo=world.repo, clock=world.clock).id == task.id

    world.clock.advance(1)
    with pytest.raises(TaskNotFoundError):
        get_task(task.id, owner="alice", repo=world.repo, clock=world.clock)


def test_list_shows_only_the_callers_tasks_newest_first(world: World) -> None:
    mine = []
    for _ in range(3):
        mine.append(world.task("alice"))
        world.task("bob")
        world.clock.advance(1)

    page = list_tasks(owner="alice", repo=world.repo, clock=world.clock)

    assert [t.id for t in page.items] == [t.id for t in reversed(mine)]
    assert page.next_cursor is None


def test_list_filters_by_status_and_type(world: World) -> None:
    a = world.task(type="a")
    b = world.task(type="b")
    c = world.task(type="a")
    world.update(c.id, "RUNNING")

    def ids(**filters: object) -> set[str]:
        page = list_tasks(owner="alice", repo=world.repo, clock=world.clock, **filters)  # type: ignore[arg-type]
        return {t.id for t in page.items}

    assert ids(type="a") == {a.id, c.id}
    assert ids(status=TaskStatus.CREATED) == {a.id, b.id}
    assert ids(status=TaskStatus.RUNNING, type="a") == {c.id}
    assert ids(status=TaskStatus.RUNNING, type="b") == set()
    assert ids(type="zzz") == set()


def test_list_leaves_out_expired_tasks(world: World) -> None:
    old = world.task()
    world.update(old.id, "SUCCESSFUL")
    world.clock.advance(Policy().retention_seconds)
    fresh = world.task()

    page = list_tasks(owner="alice", repo=world.repo, clock=world.clock)

    assert [t.id for t in page.items] == [fresh.id]


def test_cursor_pages_through_every_task_once(world: World) -> None:
    created = []
    for i in range(7):
        created.append(world.task())
        if i % 2:  # some share a created_at: the id breaks the tie
            world.clock.advance(1)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = list_tasks(owner="alice", repo=world.repo, clock=world.clock, limit=3, cursor=cursor)
        pages += 1
        assert len(page.items) <= 3
        seen.extend(t.id for t in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break

    assert pages == 3
    assert sorted(seen) == sorted(t.id for t in created)
    assert len(seen) == len(set(seen))
    keys = [(t.created_at, t.id) for t in (world.stored(i) for i in seen)]
    assert keys == sorted(keys, reverse=True)


def test_a_full_last_page_has_no_cursor(world: World) -> None:
    for _ in range(4):
        world.task()
    first = list_tasks(owner="alice", repo=world.repo, clock=world.clock, limit=2)
    assert first.next_cursor is not None
    second = list_tasks(
        owner="alice", repo=world.repo, clock=world.clock, limit=2, cursor=first.next_cursor
    )
    assert len(second.items) == 2
    assert second.next_cursor is None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "%%%",
        "é",
        _b64(b"not json"),
        _b64(b"[1, 2]"),
        _b64(b'["only one"]'),
        _b64(b'["a", "b", "c"]'),
        _b64(b'{"a": 1, "b": 2}'),
        _b64(b'"text"'),
        _b64(b'["not a time", "00000000-0000-4000-8000-000000000000"]'),
        _b64(b'["2026-01-01T00:00:00.000000Z", ""]'),
    ],
)
def test_a_tampered_cursor_is_refused(world: World, cursor: str) -> None:
    world.task()
    with pytest.raises(InvalidCursorError) as raised:
        list_tasks(owner="alice", repo=world.repo, clock=world.clock, cursor=cursor)
    assert raised.value.code == "INVALID_REQUEST"


def test_a_cursor_never_reveals_another_owners_tasks(world: World) -> None:
    world.task("bob")
    world.clock.advance(1)
    cursor = encode_cursor(world.task("bob"))
    page = list_tasks(owner="alice", repo=world.repo, clock=world.clock, cursor=cursor)
    assert page.items == []
