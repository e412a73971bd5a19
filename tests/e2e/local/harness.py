"""A `taskmanager serve` process on a free loopback port, and a small HTTP client for it.

Tests talk to the server over real HTTP only (``http.client`` from the standard library),
including the server-sent event streams.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Generator

    from websockets.sync.client import ClientConnection

ROOT = Path(__file__).resolve().parents[3]
OPEN = frozenset({"CREATED", "RUNNING"})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: Any


def cli_env(extra_path: str = "") -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT), extra_path, env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class PushSocket:
    """A client of ``/ws`` speaking the push protocol in JSON (docs/push.md)."""

    connection: ClientConnection

    def __enter__(self) -> PushSocket:
        self.connection.__enter__()  # websockets wants its connection used as a context
        return self

    def __exit__(self, *exc: object) -> None:
        self.connection.close()

    def send(self, message: dict[str, Any] | str | bytes) -> None:
        self.connection.send(message if isinstance(message, str | bytes) else json.dumps(message))

    def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.connection.recv(timeout=timeout))
        return message

    def ask(self, message: dict[str, Any] | str | bytes, timeout: float = 10.0) -> dict[str, Any]:
        """Send ``message`` and return the next message (the answer, where no change is
        under way)."""
        self.send(message)
        return self.recv(timeout)

    def until_terminal(self, task_id: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        """The task resources received for ``task_id`` up to its terminal one."""
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            message = self.recv(max(0.1, deadline - time.monotonic()))
            task = message.get("task")
            if task is None or task["id"] != task_id:
                continue
            seen.append(task)
            if task["status"] not in OPEN:
                return seen

    def quiet(self, seconds: float) -> list[dict[str, Any]]:
        """Every message received within ``seconds`` (to show that nothing came)."""
        received: list[dict[str, Any]] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                received.append(self.recv(left))
            except TimeoutError:
                break
        return received


@dataclass
class LocalServer:
    db: Path
    args: tuple[str, ...] = ()
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    extra_path: str = ""
    _logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def socket(self, **options: Any) -> PushSocket:
        """A WebSocket client connected to ``/ws`` (a context manager)."""
        from websockets.sync.client import connect

        return PushSocket(connect(self.ws_url, open_timeout=10, **options))

    def start(self, timeout: float = 20.0) -> LocalServer:
        self.port = free_port()
        self.log_path = self.db.with_name(f"server-{self.port}.log")
        command = [
            sys.executable,
            "-m",
            "taskmanager.entrypoints.cli",
            "serve",
            "--port",
            str(self.port),
            "--db",
            str(self.db),
            "--sweep-interval",
            "0.2",
            *self.args,
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.db.parent,
                env=cli_env(self.extra_path),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if self.request("GET", "/tasks?limit=1").status == 200:
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as in a crash."""
        self.stop(signal.SIGKILL)

    # -- HTTP --
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Response:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            all_headers = dict(headers or {})
            data = raw
            if body is not None:
                data = json.dumps(body).encode()
                all_headers.setdefault("Content-Type", "application/json")
            connection.request(method, path, body=data, headers=all_headers)
            response = connection.getresponse()
            payload = response.read()
            content_type = response.getheader("content-type", "")
            decoded: Any = payload
            if content_type.startswith("application/json"):
                decoded = json.loads(payload)
            return Response(
                response.status, {k.lower(): v for k, v in response.getheaders()}, decoded
            )
        finally:
            connection.close()

    def submit(self, task_type: str, task_input: Any = None, **extra: Any) -> dict[str, Any]:
        response = self.request("POST", "/tasks", {"type": task_type, "input": task_input, **extra})
        assert response.status == 202, response.body
        task: dict[str, Any] = response.body
        return task

    def get(self, task_id: str) -> dict[str, Any]:
        response = self.request("GET", f"/tasks/{task_id}")
        assert response.status == 200, response.body
        task: dict[str, Any] = response.body
        return task

    def wait_for(self, task_id: str, statuses: set[str], timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            task = self.get(task_id)
            if task["status"] in statuses:
                return task
            if time.monotonic() > deadline:
                raise AssertionError(f"task {task_id} still {task['status']}")
            time.sleep(0.02)

    def events(
        self, path: str, timeout: float = 20.0
    ) -> Generator[tuple[str, dict[str, Any]], None, None]:
        """Server-sent events of ``path`` until the server ends the stream."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", path, headers={"Accept": "text/event-stream"})
            response = connection.getresponse()
            if response.status != 200:
                raise AssertionError(f"{response.status}: {response.read()!r}")
            assert response.getheader("content-type", "").startswith("text/event-stream")
            name, data = "message", list[str]()
            while True:
                line = response.readline()
                if not line:
                    return
                text = line.decode().rstrip("\r\n")
                if not text:
                    if data:
                        yield name, json.loads("\n".join(data))
                    name, data = "message", list[str]()
                elif text.startswith("event:"):
                    name = text[6:].strip()
                elif text.startswith("data:"):
                    data.append(text[5:].strip())
        finally:
            connection.close()
