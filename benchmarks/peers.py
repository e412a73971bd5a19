"""The local deployment beside an embedded task queue, on one machine, in one run.

The same job three ways: N no-op tasks submitted and run to completion by 4 workers
(throughput), then one task at a time, submit to result (latency):

- serve: ``taskmanager serve`` (SQLite file, 4 processor threads) in its own process, its
  built-in ``demo.echo`` as the no-op; the client here submits over HTTP from 4 threads with
  keep-alive connections and learns of each result from the server's event stream
  (``GET /events``), as a web page would;
- embedded: the library in this process: the submit use case on the local runtime's store
  (SQLite file, WAL), its outbox dispatcher and its 4-thread worker pool running a processor
  of the SDK; results from the runtime's bus;
- huey: ``SqliteHuey`` (a file) with a 4-thread consumer in its own process (``huey_consumer
  -w 4 -k thread``), polling its queue every millisecond when idle (``-d 0.001``, its
  fastest useful setting; the default is 100 ms); the producer here enqueues and polls each
  result every millisecond (huey's own blocking wait starts at 50 ms).

Celery is left out: it needs a broker, and its broker-free transports (kombu's filesystem
and SQLAlchemy ones) are experimental and poll, so they would measure a poll interval.

The three run interleaved: a round is one throughput run of each (in alternating order),
then the latency runs; medians of the rounds.

Run: ``python benchmarks/peers.py [--short]``. Prints a table and ``ratio throughput
embedded/huey`` (target >= 1.0), ``ratio throughput serve/huey`` (floor 0.5) and ``ratio p50
serve/huey`` (target <= 0.5).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from taskmanager.domain.model import SubmitTask
from taskmanager.domain.services import submit_task
from taskmanager.entrypoints.local.processors import job_for
from taskmanager.entrypoints.local.runtime import LocalRuntime, RuntimeConfig
from taskmanager.entrypoints.local.server import open_store
from taskmanager.processor import Processor

if TYPE_CHECKING:
    from collections.abc import Iterator

WORKERS: Final = 4
HUEY_MODULE: Final = textwrap.dedent(
    """
    import os
    from huey import SqliteHuey

    huey = SqliteHuey(filename=os.environ["PEERS_HUEY_DB"])

    @huey.task()
    def noop(value):
        return value
    """
)


class Done:
    """The ids of finished tasks, and a way to wait for some."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._changed = threading.Condition()

    def add(self, task_id: str) -> None:
        with self._changed:
            self._ids.add(task_id)
            self._changed.notify_all()

    def wait(self, ids: set[str] | list[str], timeout: float = 60.0) -> None:
        wanted = set(ids)
        with self._changed:
            if not self._changed.wait_for(lambda: wanted <= self._ids, timeout):
                missing = len(wanted - self._ids)
                raise RuntimeError(f"{missing} task(s) unfinished after {timeout} s")


# --- (a) taskmanager serve ----------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/tasks?limit=1")
            connection.getresponse().read()
            connection.close()
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing answers on port {port}")


class Serve:
    name = "serve"

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "taskmanager.entrypoints.cli", "serve",
                "--port", str(self.port), "--db", str(folder / "serve.db"),
                "--workers", str(WORKERS),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_ready(self.port)
        self.done = Done()
        self._stream = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        self._stream.request("GET", "/events")
        response = self._stream.getresponse()
        threading.Thread(target=self._follow, args=(response,), daemon=True).start()
        self._local = threading.local()

    def _follow(self, response: Any) -> None:
        """Every change of every task, as server-sent events: note the finished ones."""
        # Ends when the stream is closed under it (AttributeError: http.client's reader).
        with contextlib.suppress(OSError, ValueError, AttributeError):
            for line in response:
                if line.startswith(b"data:"):
                    task = json.loads(line[5:])
                    if task.get("status") == "SUCCESSFUL":
                        self.done.add(task["id"])

    def _connection(self, fresh: bool = False) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None or fresh:
            if connection is not None:
                connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self._local.connection = connection
        return connection

    def submit(self, n: int) -> str:
        body = json.dumps({"type": "demo.echo", "input": {"n": n}}).encode()
        headers = {"Content-Type": "application/json"}
        connection = self._connection()
        try:
            connection.request("POST", "/tasks", body, headers)
            response = connection.getresponse()
        except (OSError, http.client.HTTPException):
            # The server closed a keep-alive connection left idle: a new one, as any client.
            connection = self._connection(fresh=True)
            connection.request("POST", "/tasks", body, headers)
            response = connection.getresponse()
        task = json.loads(response.read())
        assert response.status == 202, task
        return str(task["id"])

    def throughput(self, count: int) -> float:
        start = time.perf_counter()
        with ThreadPoolExecutor(WORKERS) as pool:
            ids = list(pool.map(self.submit, range(count)))
        self.done.wait(ids)
        return count / (time.perf_counter() - start)

    def latency(self) -> float:
        start = time.perf_counter()
        self.done.wait([self.submit(0)])
        return time.perf_counter() - start

    def close(self) -> None:
        self._stream.close()
        self.process.terminate()
        self.process.wait(timeout=30)


# --- (b) the library, embedded ------------------------------------------------------------
def _noop(task_input: Any) -> Any:
    return task_input


class Embedded:
    name = "embedded"

    def __init__(self, folder: Path) -> None:
        self.runtime = LocalRuntime(open_store(str(folder / "embedded.db")), RuntimeConfig())
        processor = Processor("peers.noop", _noop)
        self.runtime.add_job(processor.task_type, job_for(processor, self.runtime))
        self.done = Done()
        self.runtime.bus.subscribe(lambda e: self.done.add(e.id), detail_types=["TaskSuccessful"])
        self.runtime.start()

    def submit(self, n: int) -> str:
        command = SubmitTask(type="peers.noop", input={"n": n})
        runtime = self.runtime
        result = submit_task(
            command, owner="local", repo=runtime.repo, clock=runtime.clock, ids=runtime.ids
        )
        return result.task.id

    def throughput(self, count: int) -> float:
        start = time.perf_counter()
        ids = [self.submit(n) for n in range(count)]
        self.done.wait(ids)
        return count / (time.perf_counter() - start)

    def latency(self) -> float:
        start = time.perf_counter()
        self.done.wait([self.submit(0)])
        return time.perf_counter() - start

    def close(self) -> None:
        self.runtime.shutdown()


# --- (c) huey -----------------------------------------------------------------------------
class Huey:
    name = "huey"

    def __init__(self, folder: Path) -> None:
        (folder / "peers_huey.py").write_text(HUEY_MODULE)
        os.environ["PEERS_HUEY_DB"] = str(folder / "huey.db")
        sys.path.insert(0, str(folder))
        self.module: Any = importlib.import_module("peers_huey")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(folder), *sys.path]))
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "huey.bin.huey_consumer", "peers_huey.huey",
                "-w", str(WORKERS), "-k", "thread", "-d", "0.001", "-n", "-q",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.latency()  # ready once a task comes back

    @staticmethod
    def _wait(results: list[Any], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for result in results:
            while result.get() is None:
                if time.monotonic() > deadline:
                    raise RuntimeError("huey did not finish in time")
                time.sleep(0.001)

    def throughput(self, count: int) -> float:
        start = time.perf_counter()
        results = [self.module.noop({"n": n}) for n in range(count)]
        self._wait(results)
        return count / (time.perf_counter() - start)

    def latency(self) -> float:
        start = time.perf_counter()
        self._wait([self.module.noop({"n": 0})])
        return time.perf_counter() - start

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


@contextlib.contextmanager
def peers(folder: Path) -> Iterator[list[Any]]:
    started: list[Any] = []
    try:
        for make in (Serve, Embedded, Huey):
            started.append(make(folder))
        yield started
    finally:
        for peer in started:
            peer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="fewer tasks and rounds (CI)")
    args = parser.parse_args(argv)
    count, rounds, singles = (150, 2, 15) if args.short else (2_000, 5, 40)
    rates: dict[str, list[float]] = {}
    waits: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch, peers(Path(scratch)) as started:
        for peer in started:  # warm-up
            peer.throughput(max(20, count // 10))
        for number in range(rounds):
            order = started if number % 2 == 0 else list(reversed(started))
            for peer in order:
                rates.setdefault(peer.name, []).append(peer.throughput(count))
            for peer in order:
                for _ in range(singles):
                    waits.setdefault(peer.name, []).append(peer.latency())
    print(f"load average: {os.getloadavg()[0]:.1f} (a shared machine: figures swing)")
    print(
        f"{count} no-op tasks x {rounds} rounds (4 workers each), then {singles} x {rounds} "
        "one at a time; medians"
    )
    print(f"{'peer':<10}{'tasks/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    throughput = {name: statistics.median(values) for name, values in rates.items()}
    p50 = {name: statistics.median(values) * 1000 for name, values in waits.items()}
    for name in rates:
        p99 = percentile(waits[name], 0.99) * 1000
        print(f"{name:<10}{throughput[name]:>10.0f}{p50[name]:>10.2f}{p99:>10.2f}")
    print()
    print(f"ratio throughput embedded/huey: {throughput['embedded'] / throughput['huey']:.2f}"
          " (target >= 1.0)")  # fmt: skip
    print(f"ratio throughput serve/huey: {throughput['serve'] / throughput['huey']:.2f}"
          " (floor 0.5)")  # fmt: skip
    print(f"ratio p50 serve/huey: {p50['serve'] / p50['huey']:.2f} (target <= 0.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
