from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.local.harness import LocalServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One server for the tests that do not stop it (SQLite file in a temp dir). It accepts
    any task type: tests submit types no processor takes (``no.processor``), which stay
    CREATED."""
    db = tmp_path_factory.mktemp("serve") / "taskmanager.db"
    args = ("--workers", "4", "--grace-seconds", "3", "--accept-any-type")
    running = LocalServer(db, args).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def typed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A server as `taskmanager serve` starts by default: the demo processors, and a submit
    of any other task type refused (here with a default start timeout too)."""
    db = tmp_path_factory.mktemp("typed") / "taskmanager.db"
    args = ("--grace-seconds", "1", "--default-start-timeout-seconds", "600")
    running = LocalServer(db, args).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def fresh_db(tmp_path: Path) -> Path:
    return tmp_path / "taskmanager.db"
