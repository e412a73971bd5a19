"""The repository contract on the in-memory and SQLite adapters, and the outbox contract."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from taskmanager.adapters.memory import InMemoryEventBus, InMemoryTaskRepository
from taskmanager.adapters.sqlite import SQLiteTaskRepository
from taskmanager.domain.errors import PublishError
from taskmanager.domain.services import DEFAULT_POLICY, dispatch_outbox, record_update
from tests.contract.repository_contract import RepositoryContract, Store, update

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from taskmanager.adapters.memory import ManualClock
    from taskmanager.domain.events import OutboundEvent


class OutboxContract(RepositoryContract):
    """Adapters that keep an outbox: committed events wait there until delivered."""

    def test_dispatch_delivers_in_commit_order_and_empties_the_outbox(
        self, store: Store, clock: ManualClock
    ) -> None:
        outbox = store.extra["outbox"]
        first = self.submit(store.repo, clock)
        second = self.submit(store.repo, clock)
        bus = InMemoryEventBus()
        assert dispatch_outbox(outbox, bus) == 2
        assert [e.event_id for e in bus.published] == [f"{first.id}:1", f"{second.id}:1"]
        assert outbox.pending(10) == []
        assert dispatch_outbox(outbox, bus) == 0

    def test_a_failed_delivery_stays_pending_and_is_delivered_again(
        self, store: Store, clock: ManualClock
    ) -> None:
        outbox = store.extra["outbox"]
        ok = self.submit(store.repo, clock, type="ok")
        bad = self.submit(store.repo, clock, type="flaky")
        bus = InMemoryEventBus()
        failures = [1]

        def flaky(event: OutboundEvent) -> None:
            if failures:
                failures.pop()
                raise RuntimeError("subscriber down")

        bus.subscribe(flaky, task_types=["flaky"])
        with pytest.raises(PublishError) as raised:
            dispatch_outbox(outbox, bus)
        assert raised.value.failed_event_ids == [f"{bad.id}:1"]
        assert [e.event.event_id for e in outbox.pending(10)] == [f"{bad.id}:1"]
        assert dispatch_outbox(outbox, bus) == 1
        assert [e.event_id for e in bus.published] == [
            f"{ok.id}:1",
            f"{bad.id}:1",
            f"{bad.id}:1",
        ]

    def test_pending_respects_its_limit(self, store: Store, clock: ManualClock) -> None:
        outbox = store.extra["outbox"]
        for _ in range(3):
            self.submit(store.repo, clock)
        assert len(outbox.pending(2)) == 2
        outbox.mark_delivered([])
        assert len(outbox.pending(10)) == 3

    def test_mark_delivered_removes_exactly_the_positions_it_names(
        self, store: Store, clock: ManualClock
    ) -> None:
        outbox = store.extra["outbox"]
        ids = [self.submit(store.repo, clock).id for _ in range(7)]
        positions = [entry.position for entry in outbox.pending(10)]
        outbox.mark_delivered([positions[4], positions[0], positions[2]])  # with gaps
        assert [e.event.id for e in outbox.pending(10)] == [ids[1], ids[3], ids[5], ids[6]]
        outbox.mark_delivered([positions[5], positions[6]])  # a run without gaps
        assert [e.event.id for e in outbox.pending(10)] == [ids[1], ids[3]]
        outbox.mark_delivered([positions[3], positions[3], positions[1]])  # repeated
        assert outbox.pending(10) == []

    def test_purge_deletes_expired_tasks_only_in_batches_and_keeps_their_events(
        self, store: Store, clock: ManualClock
    ) -> None:
        repo = store.extra["outbox"]
        finished = [self.submit(repo, clock) for _ in range(5)]
        for task in finished:
            record_update(update(task.id, "SUCCESSFUL"), repo=repo, clock=clock)
        clock.advance(1)
        late = self.submit(repo, clock)
        record_update(update(late.id, "SUCCESSFUL"), repo=repo, clock=clock)
        still_open = self.submit(repo, clock)
        events = [entry.event.event_id for entry in repo.pending(100)]
        # Exactly the retention after the first five finished: those have expired, no other.
        clock.advance(DEFAULT_POLICY.retention_seconds - 1)
        assert repo.purge_expired(clock.now(), 3) == 3
        assert repo.purge_expired(clock.now(), 3) == 2
        assert repo.purge_expired(clock.now(), 3) == 0
        assert [repo.get(task.id) for task in finished] == [None] * 5
        assert repo.get(late.id) is not None
        assert repo.get(still_open.id) is not None
        assert [entry.event.event_id for entry in repo.pending(100)] == events
        clock.advance(10 * DEFAULT_POLICY.retention_seconds)
        assert repo.purge_expired(clock.now(), 10) == 1  # an open task never expires
        assert repo.get(still_open.id) is not None


class TestInMemoryRepository(OutboxContract):
    @pytest.fixture
    def store(self) -> Store:
        repo = InMemoryTaskRepository()
        return Store(repo, lambda: [e.event for e in repo.undelivered], {"outbox": repo})


class TestSQLiteRepository(OutboxContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        repo = SQLiteTaskRepository(tmp_path / "tasks.db")
        yield Store(repo, lambda: [e.event for e in repo.undelivered], {"outbox": repo})
        repo.close()
