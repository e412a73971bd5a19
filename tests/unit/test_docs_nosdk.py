"""docs/processors.md, "Any function, no SDK": its example runs and prints what the guide
shows, and the guide shows the example's code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "nosdk_function.py"


def test_the_example_function_succeeds_and_fails_through_its_invocation_records() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "applied SUCCESSFUL {'words': 4} None",
        "applied FAILED None {'code': 'VALUE_ERROR', "
        """'message': 'ValueError: input must be {"text": "..."}'}""",
    ]


def test_the_guide_shows_the_example_and_its_output() -> None:
    guide = (ROOT / "docs" / "processors.md").read_text()
    section = guide[guide.index("## Any function, no SDK") :]
    source = EXAMPLE.read_text()
    handler = source[source.index("def handler") : source.index("# --- what Lambda does")].strip()
    assert handler in section
    assert "applied SUCCESSFUL {'words': 4} None" in section
    assert "sdk       = false" in section
