"""The examples in docs/ run as documented and print what the docs say they print."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def test_embedding_example_runs_a_task_to_success_and_delivers_every_event() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "examples" / "embedding.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    events = [re.fullmatch(rf"event (\w+)\s+({UUID}):(\d+)", line) for line in lines[:-1]]
    assert all(events), lines
    assert [(m[1], m[3]) for m in events if m] == [
        ("TaskCreated", "1"),
        ("TaskRunning", "2"),
        ("TaskRunning", "3"),
        ("TaskSuccessful", "4"),
    ]
    assert len({m[2] for m in events if m}) == 1
    assert re.fullmatch(
        rf"task {UUID} is SUCCESSFUL after 4 versions: \{{'pages': 12\}}", lines[-1]
    )


def test_embedding_guide_points_at_the_tested_example() -> None:
    guide = (ROOT / "docs" / "embedding.md").read_text(encoding="utf-8")
    assert "docs/examples/embedding.py" in guide
