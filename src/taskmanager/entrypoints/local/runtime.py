"""What runs beside the HTTP server in `taskmanager serve`, put together and started and
stopped in order.

- the store, wrapped so that every committed write wakes the outbox dispatcher at once
  (:mod:`.store`);
- the outbox relay: committed events -> the in-process bus (at least once), by the
  dispatcher thread or, for a group commit of the HTTP server's writes, by the committing
  thread itself (:mod:`.relay`);
- the worker pool: processors run here when the bus hands them a ``TaskCreated``
  (:mod:`.threads`); at start, tasks a previous run left CREATED or RUNNING are handed to
  their processors again (a RUNNING one as a new attempt that sees the earlier progress);
- the sweeper thread: fails overdue tasks (``TIMEOUT``, ``HEARTBEAT_TIMEOUT``,
  ``START_TIMEOUT``) and, every
  ``purge_interval``, deletes expired tasks in batches of ``purge_batch`` (as DynamoDB's TTL
  does on AWS), so that a server left running keeps its file bounded;
- the checkpointer thread (SQLite): copies the write-ahead log into the database file, so
  that no request waits for a checkpoint;
- the change hub: every delivered event reaches the live streams (SSE) watching its task.

Shutdown runs in two steps: ``begin_shutdown`` (on the signal: close live streams, refuse
new work) and ``shutdown`` (once the HTTP server stopped accepting: let running processors
finish up to the grace period, stop the sweeper, flush the outbox).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from taskmanager.adapters.memory import InMemoryEventBus, SystemClock, UuidIdFactory
from taskmanager.domain.events import TaskCreated, event_for
from taskmanager.domain.model import TaskStatus
from taskmanager.domain.ports import ListQuery
from taskmanager.domain.services import DEFAULT_POLICY, Policy, expire_overdue
from taskmanager.entrypoints.bootstrap import Dependencies
from taskmanager.entrypoints.local.hub import ChangeHub
from taskmanager.entrypoints.local.relay import OutboxRelay
from taskmanager.entrypoints.local.store import NotifyingStore
from taskmanager.entrypoints.local.threads import Loop, WorkerPool

if TYPE_CHECKING:
    from taskmanager.domain.events import OutboundEvent
    from taskmanager.domain.model import Task
    from taskmanager.domain.ports import Clock, IdFactory
    from taskmanager.entrypoints.local.store import Store

logger = logging.getLogger("taskmanager.local")

#: At start, how many pending outbox entries and CREATED (and RUNNING) tasks the recovery
#: looks at.
_RECOVERY_SCAN_LIMIT = 100_000

#: The owner of every task on one machine (docs/design.md §5: "locally the owner is `local`").
LOCAL_OWNER = "local"

#: Runs one delivered ``TaskCreated`` to the end (a processor bound to its transport).
Job = Callable[[TaskCreated], None]


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    workers: int = 4
    grace_seconds: float = 10.0
    sweep_interval: float = 1.0
    #: How often the write-ahead log is copied into the database file, by a thread of its
    #: own (for a store that offers ``checkpoint``), so that no write waits for it.
    checkpoint_interval: float = 0.5
    #: A log larger than this (pages of 4 KiB) is caught up with writers held back.
    checkpoint_pages: int = 8192
    #: The dispatcher is woken by each write; this poll only bounds the retry of a failed
    #: delivery (and picks up writes made by another process on the same file).
    dispatch_interval: float = 0.5
    dispatch_batch: int = 100
    #: Under load, how long the dispatcher lets writes gather into one round (seconds):
    #: each round's delete of delivered rows is a commit that holds the writer lock, so
    #: fewer, larger rounds leave the API's writes more of it.
    dispatch_gather: float = 0.02
    #: A round that delivered at least this many events means the server is busy (a group
    #: commit of several submits); one task's lifecycle makes rounds of one to three.
    dispatch_busy_events: int = 8
    #: How often the sweeper deletes expired tasks (seconds), and at most how many each
    #: statement deletes: each batch is a short write of its own, so the API's writes take
    #: turns with it. Reads skip an expired task meanwhile.
    purge_interval: float = 60.0
    purge_batch: int = 500
    #: At most this many batches per sweep; the rest waits for the next sweep.
    purge_batches_per_sweep: int = 20
    policy: Policy = DEFAULT_POLICY
    owner: str = LOCAL_OWNER


class LocalRuntime:
    """The store, the bus, the outbox relay, the worker pool, the sweeper and the hub."""

    def __init__(
        self,
        store: Store,
        config: RuntimeConfig = RuntimeConfig(),
        *,
        clock: Clock | None = None,
        ids: IdFactory | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.ids: IdFactory = ids or UuidIdFactory()
        self.store = store
        self.repo = NotifyingStore(store, self._wake_dispatcher)
        self.bus = InMemoryEventBus(record=False)
        self.hub = ChangeHub()
        self.pool = WorkerPool(config.workers)
        self.task_types: tuple[str, ...] = ()
        self._jobs: dict[str, Job] = {}
        self.stopping = threading.Event()
        self._shutdown_lock = threading.Lock()
        self._shut_down = False
        self.relay = OutboxRelay(self.repo, self.bus, config)
        self._next_purge = 0.0  # monotonic time of the next purge: the first sweep purges
        self._sweeper = Loop("taskmanager-sweeper", self._sweep, config.sweep_interval)
        self._checkpointer = (
            Loop("taskmanager-checkpointer", self._checkpoint, config.checkpoint_interval)
            if callable(getattr(store, "checkpoint", None))
            else None
        )
        self.bus.subscribe(self.hub.deliver)
        self._deps = Dependencies(self.repo, self.clock, self.ids, config.policy, self.bus)

    def add_job(self, task_type: str, job: Job) -> None:
        """Run ``job`` in the worker pool for each ``TaskCreated`` of ``task_type``."""

        def enqueue(event: OutboundEvent) -> None:
            if isinstance(event, TaskCreated):
                self.pool.submit(lambda: job(event))

        self.bus.subscribe(enqueue, detail_types=[TaskCreated.DETAIL_TYPE], task_types=[task_type])
        self.task_types = tuple(sorted({*self.task_types, task_type}))
        self._jobs[task_type] = job

    def deps(self) -> Dependencies:
        """What the API routes need, for ``create_app``'s dependency provider."""
        return self._deps

    def _wake_dispatcher(self) -> None:
        self.relay.wake()

    # -- group commit (the HTTP server's writes; see OutboxRelay) --
    def begin_batch(self) -> None:
        """The calling thread's writes share one transaction until :meth:`commit_batch`."""
        self.relay.begin_batch()

    def commit_batch(self) -> None:
        """Commit the batch and deliver its events; raises ``StorageError`` when the batch
        failed (nothing of it was kept, nothing is delivered)."""
        self.relay.commit_batch()

    # -- background steps --
    def _checkpoint(self) -> None:
        """Copy the log into the file while writes go on. Once the log holds more than
        ``checkpoint_pages``, copy the rest with this process's writers held back for that
        moment: a checkpoint that never catches up with the writers would never let SQLite
        start the log over, and the log would grow for as long as the load lasts."""
        checkpoint = self.store.checkpoint  # type: ignore[attr-defined]
        if checkpoint() > self.config.checkpoint_pages:
            with self.repo.writes_paused():
                checkpoint()

    def _sweep(self) -> None:
        for task in expire_overdue(repo=self.repo, clock=self.clock, policy=self.config.policy):
            logger.info("task %s failed: %s", task.id, task.error.code if task.error else "")
        now = time.monotonic()
        if now >= self._next_purge:
            self._next_purge = now + self.config.purge_interval
            if (
                self.purge_expired()
                == self.config.purge_batch * self.config.purge_batches_per_sweep
            ):
                self._next_purge = now  # more may be left: the next sweep goes on

    def purge_expired(self) -> int:
        """Delete expired tasks, batch by batch (up to ``purge_batches_per_sweep``)."""
        deleted = 0
        for _ in range(self.config.purge_batches_per_sweep):
            count = self.repo.purge_expired(self.clock.now(), self.config.purge_batch)
            deleted += count
            if count < self.config.purge_batch:
                break
        if deleted:
            logger.debug("deleted %d expired task(s)", deleted)
        return deleted

    # -- lifecycle --
    def start(self) -> None:
        self.pool.start()
        recovered = self._redeliver_created()
        if recovered:
            logger.info("handed %d task(s) still CREATED to their processors again", recovered)
        resumed = self._resume_running()
        if resumed:
            logger.info("handed %d task(s) left RUNNING to their processors again", resumed)
        self.relay.start()
        self._sweeper.start()
        if self._checkpointer is not None:
            self._checkpointer.start()
        self.relay.wake()  # deliver what a previous run left undelivered

    def _open_tasks(self, status: TaskStatus) -> Iterator[list[Task]]:
        """Pages of this server's processors' tasks in ``status`` (bounded scan)."""
        now, cursor = self.clock.now(), None
        for _ in range(_RECOVERY_SCAN_LIMIT // 100):
            page = self.store.list_page(
                ListQuery(owner=self.config.owner, limit=100, status=status, cursor=cursor), now
            )
            yield [task for task in page.items if task.type in self.task_types]
            cursor = page.next_cursor
            if cursor is None:
                return

    def _redeliver_created(self) -> int:
        """Hand every task still CREATED whose ``TaskCreated`` counts as delivered to its
        processors again.

        Delivering a ``TaskCreated`` locally means queueing a job in memory; a crash
        (``kill -9``, power loss) empties that queue after the outbox marked the event
        delivered, and the task would wait for its deadline. At start, such tasks are the
        CREATED ones with no pending ``TaskCreated`` (those the dispatcher delivers anyway).
        At least once, as in AWS: the processor SDK skips a task that has moved on."""
        if not self.task_types:
            return 0
        pending = {entry.event.event_id for entry in self.store.pending(_RECOVERY_SCAN_LIMIT)}
        count = 0
        for tasks in self._open_tasks(TaskStatus.CREATED):
            created = [
                event_for(task) for task in tasks if f"{task.id}:{task.version}" not in pending
            ]
            if created:
                self.bus.publish(created)
                count += len(created)
        return count

    def _resume_running(self) -> int:
        """Hand every task left RUNNING to its processor again, as a new attempt.

        Processors run in this process only, so a task RUNNING at start lost its processor
        when the previous run ended (a crash, or a shutdown whose grace period ran out).
        Rather than wait for its deadline, the processor runs it again: the SDK reads the
        task, sees it RUNNING and gives the function ``ctx.attempt`` (2) and the progress
        the earlier attempt reported (``ctx.previous_progress``). The job goes straight to
        the worker pool: nothing is published, the task's record is what it was."""
        count = 0
        for tasks in self._open_tasks(TaskStatus.RUNNING):
            for task in tasks:
                # The TaskCreated the processor first saw, with the task as it is now.
                event = event_for(msgspec.structs.replace(task, status=TaskStatus.CREATED))
                assert isinstance(event, TaskCreated)
                self.pool.submit(functools.partial(self._jobs[task.type], event))
                count += 1
        return count

    def begin_shutdown(self) -> None:
        """On the signal: live streams end, no new processor job starts after shutdown."""
        if not self.stopping.is_set():
            self.stopping.set()
            self.hub.close_all()

    @property
    def is_shut_down(self) -> bool:
        return self._shut_down

    def shutdown(self) -> None:
        """Let running processors finish (up to the grace period), then flush the outbox.
        Runs once: a second call waits for the first to end."""
        with self._shutdown_lock:
            if not self._shut_down:
                self._shutdown()
                self._shut_down = True

    def _shutdown(self) -> None:
        self.begin_shutdown()
        self._sweeper.halt(timeout=5)
        running = self.pool.close(self.config.grace_seconds)
        if running:
            logger.warning(
                "%d processor(s) still running after %.0f s; their tasks stay RUNNING and "
                "are handed to their processors again at the next start",
                running,
                self.config.grace_seconds,
            )
        self.relay.halt(timeout=5)
        flushed = self.relay.dispatch()
        logger.info("outbox flushed (%d event(s) delivered at shutdown)", flushed)
        if self._checkpointer is not None:
            self._checkpointer.halt(timeout=5)
        close = getattr(self.store, "close", None)
        if callable(close):
            close()
