"""The server the reliability tests drive over real HTTP: ``taskmanager serve`` on loopback."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.e2e.local.harness import LocalServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@dataclass
class FuzzTarget:
    """A ``taskmanager serve`` process (SQLite file, demo processors) on a free loopback port,
    accepting any task type (the bodies probe every other rule with made-up types)."""

    url: str
    server: LocalServer

    @classmethod
    @contextlib.contextmanager
    def start(cls, directory: Path, *args: str) -> Iterator[FuzzTarget]:
        server = LocalServer(
            directory / "taskmanager.db", ("--grace-seconds", "1", "--accept-any-type", *args)
        )
        server.start()
        try:
            yield cls(server.url, server)
        finally:
            server.stop()

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            try:
                return error.code, json.loads(error.read())
            finally:
                error.close()

    def assert_healthy(self) -> None:
        """After the abuse the server is still up and serves a plain request."""
        assert self.server.process is not None
        assert self.server.process.poll() is None, self.server.log()
        status, task = self.request("POST", "/tasks", {"type": "after.fuzz"})
        assert status == 202, task
        status, got = self.request("GET", f"/tasks/{task['id']}")
        assert (status, got["id"]) == (200, task["id"])
        assert "Traceback" not in self.server.log()
