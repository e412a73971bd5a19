from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.local.harness import LocalServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One server for the tests that do not stop it (SQLite file in a temp dir)."""
    db = tmp_path_factory.mktemp("serve") / "taskmanager.db"
    running = LocalServer(db, ("--workers", "4", "--grace-seconds", "3")).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def fresh_db(tmp_path: Path) -> Path:
    return tmp_path / "taskmanager.db"
