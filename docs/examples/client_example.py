"""The client SDK against a running task manager.

Run it: ``python docs/examples/client_example.py``. It starts ``taskmanager serve`` on a free
loopback port (SQLite in memory, the word-count processor of this folder), then submits,
waits, resubmits with an idempotency key, cancels and lists. A test runs it too
(tests/unit/test_docs_api_and_processors.py). Against AWS, pass
``auth=SigV4Auth(region="...")`` and the API's URL instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from taskmanager.client import ApiError, TaskClient, TaskNotFoundError

HERE = Path(__file__).resolve().parent


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    command = [sys.executable, "-m", "taskmanager.entrypoints.cli", "serve", "--port", str(port)]
    command += ["--db", ":memory:", "--processor", "wordcount_processor:processor"]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):  # up to 30 s for the server to listen
        try:
            TaskClient(url, timeout=1).list(limit=1)
            return server, url
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("taskmanager serve did not start")


def main() -> None:
    server, url = start_server()
    try:
        client = TaskClient(url)

        # Submit, then wait: polls honour Retry-After and back off; progress is reported.
        task = client.submit("text.wordcount", {"text": "one two\nthree"}, timeout_seconds=60)
        print(f"submitted {task.type} -> {task.status}")
        done = client.wait(
            task.id,
            timeout=30,
            on_progress=lambda t: (
                print(f"progress {t.progress.percent:.0f}%") if t.progress else None
            ),
        )
        print(f"finished {done.status} {done.result}")

        # The same Idempotency-Key and request: the same task again, not a second one.
        first = client.submit("demo.echo", {"n": 1}, idempotency_key="order-42")
        again = client.submit("demo.echo", {"n": 1}, idempotency_key="order-42")
        print(f"idempotent resubmit returns the same task: {again.id == first.id}")

        # Cancel a long task: it fails with CANCELLED; a second cancel is a 409.
        slow = client.submit("demo.sleep", {"seconds": 30, "steps": 30})
        cancelled = client.cancel(slow.id)
        print(f"cancelled -> {cancelled.status} {cancelled.error.code if cancelled.error else ''}")
        try:
            client.cancel(slow.id)
        except ApiError as exc:
            print(f"cancel again -> {exc.status} {exc.code}")

        # Errors are typed by the API's error code.
        try:
            client.get("no-such-task")
        except TaskNotFoundError as exc:
            print(f"get unknown -> {exc.status} {exc.code}")

        page = client.list(type="demo.echo", limit=10)
        print(f"listed {len(page.items)} demo.echo task(s)")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
