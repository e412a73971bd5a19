"""docs/storage.md's examples run as documented and print what the guide says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout.splitlines()


def test_sqlite_example_delivers_every_committed_event_after_reopening(tmp_path: Path) -> None:
    lines = _run(str(ROOT / "docs/examples/storage_sqlite.py"), str(tmp_path / "tasks.db"))
    assert lines == [
        "update: applied",
        "pending after the writes: 4",
        "delivered TaskCreated version 1",
        "delivered TaskCreated version 1",
        "delivered TaskCreated version 1",
        "delivered TaskSuccessful version 2",
        "pending after dispatch: 0",
        "page: ['2026-11', '2026-10']",
        "page: ['2026-09']",
    ]


def test_aws_example_runs_against_moto_server(moto_server: str) -> None:
    lines = _run(str(ROOT / "docs/examples/storage_aws.py"), moto_server)
    assert lines == [
        "indexes: ['by-deadline', 'by-heartbeat', 'by-owner']",
        "replayed: True True",
        "update: RUNNING applied",
        "update: SUCCESSFUL applied",
        "update: SUCCESSFUL duplicate",
        "published: SUCCESSFUL version 3",
    ]


def test_storage_guide_points_at_the_tested_examples() -> None:
    guide = (ROOT / "docs/storage.md").read_text(encoding="utf-8")
    assert "docs/examples/storage_sqlite.py" in guide
    assert "docs/examples/storage_aws.py" in guide
