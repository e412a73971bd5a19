"""Servers the reliability tests drive over real HTTP on loopback."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskmanager.adapters.memory import SystemClock, UuidIdFactory
from taskmanager.adapters.sqlite import SQLiteTaskRepository
from taskmanager.entrypoints.api import create_app, fixed_owner
from taskmanager.entrypoints.bootstrap import Dependencies
from tests.support import base_url, serve

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@dataclass
class FuzzTarget:
    """The API routes over SQLite, as the local server wires them, behind loopback HTTP."""

    url: str
    repo: SQLiteTaskRepository

    @classmethod
    @contextlib.contextmanager
    def start(cls, directory: Path) -> Iterator[FuzzTarget]:
        repo = SQLiteTaskRepository(directory / "fuzz.db")
        deps = Dependencies(repo=repo, clock=SystemClock(), ids=UuidIdFactory())
        app = create_app(lambda: deps, owner=fixed_owner("local"))
        try:
            with serve(app, owner="local") as server:
                yield cls(base_url(server), repo)
        finally:
            repo.close()

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
            return error.code, json.loads(error.read())

    def assert_healthy(self) -> None:
        """After the fuzzing the server still takes and serves a plain request."""
        status, task = self.request("POST", "/tasks", {"type": "after.fuzz"})
        assert status == 202, task
        status, got = self.request("GET", f"/tasks/{task['id']}")
        assert (status, got["id"]) == (200, task["id"])
