"""The threads of `taskmanager serve` beside the HTTP server's: the worker pool where
processors run, and the background loops (dispatcher, sweeper, checkpointer).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskmanager.domain.errors import TaskManagerError

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger("taskmanager.local")


class PoolClosedError(TaskManagerError):
    """The worker pool is shutting down; the event stays in the outbox for the next start."""

    code = "SHUTTING_DOWN"


class WorkerPool:
    """Daemon worker threads fed from one queue.

    Daemon threads, so that a processor still running after the grace period does not keep
    the process alive; its task stays RUNNING and the next start hands it to its processor
    again (see ``LocalRuntime._resume_running``)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("the worker pool needs at least one worker")
        self.size = size
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._lock = threading.Lock()
        self._active = 0

    def start(self) -> None:
        for number in range(self.size):
            thread = threading.Thread(
                target=self._work, name=f"taskmanager-worker-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._closed:
                raise PoolClosedError("the worker pool is shutting down")
            self._jobs.put(job)

    @property
    def active(self) -> int:
        return self._active

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            with self._lock:
                if self._closed:  # queued but not started when shutdown began: left alone
                    continue
                self._active += 1
            try:
                job()
            except Exception:
                logger.exception("a processor raised outside its task")
            finally:
                with self._lock:
                    self._active -= 1

    def close(self, grace_seconds: float) -> int:
        """Start no more jobs; wait up to ``grace_seconds`` for running ones.

        Returns how many were still running when the grace period ended."""
        with self._lock:
            self._closed = True
        for _ in self._threads:
            self._jobs.put(None)
        deadline = time.monotonic() + grace_seconds
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return sum(thread.is_alive() for thread in self._threads)


@dataclass
class Loop:
    """A background thread that calls ``step`` whenever woken or every ``interval``."""

    name: str
    step: Callable[[], Any]
    interval: float
    wake: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            self.wake.wait(self.interval)
            self.wake.clear()
            if self.stop.is_set():
                return
            try:
                self.step()
            except Exception:
                logger.exception("%s failed; retrying in %.1f s", self.name, self.interval)

    def halt(self, timeout: float) -> None:
        self.stop.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout)
