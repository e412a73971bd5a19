"""docs/processors.md and docs/api.md: their examples run and print what the docs show."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(name: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "examples" / name)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_processor_example_succeeds_fails_with_codes_and_skips_a_cancelled_task() -> None:
    lines = [re.sub(r"\s+", " ", line) for line in _run("report_processor.py")]
    assert lines == [
        "{'rows': 25} successful SUCCESSFUL v6 {'pages': 3}",
        "{'rows': 0} failed FAILED v3 {'code': 'INVALID_INPUT', "
        """'message': 'input must be {"rows": <positive int>}'}""",
        "{'rows': 5000} failed FAILED v3 {'code': 'OUT_OF_PAPER', "
        "'message': '5000 rows would need 500 pages'}",
        "{'rows': 25} skipped FAILED v2 {'code': 'CANCELLED', "
        "'message': 'cancelled by the client that submitted it'}",
    ]


def test_client_example_runs_against_taskmanager_serve() -> None:
    lines = [line for line in _run("client_example.py") if not line.startswith("progress ")]
    assert lines == [
        "submitted text.wordcount -> CREATED",
        "finished SUCCESSFUL {'lines': 2, 'words': 3}",
        "idempotent resubmit returns the same task: True",
        "cancelled -> FAILED CANCELLED",
        "cancel again -> 409 TASK_ALREADY_FINISHED",
        "get unknown -> 404 TASK_NOT_FOUND",
        "listed 1 demo.echo task(s)",
    ]


def test_the_guides_show_the_tested_examples() -> None:
    processors = (ROOT / "docs" / "processors.md").read_text()
    api = (ROOT / "docs" / "api.md").read_text()
    for line in (ROOT / "docs" / "examples" / "report_processor.py").read_text().splitlines():
        if line.startswith(("def render", "processor = ", "handler = ")):
            assert line in processors
    assert "docs/examples/client_example.py" in api
    for code in (
        "INVALID_REQUEST",
        "PAYLOAD_TOO_LARGE",
        "UNSUPPORTED_MEDIA_TYPE",
        "TASK_NOT_FOUND",
        "TASK_ALREADY_FINISHED",
        "IDEMPOTENCY_KEY_REUSED",
    ):
        assert f"`{code}`" in api
