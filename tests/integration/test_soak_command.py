"""The soak benchmark's command works (a few seconds of it; the real run is 60 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

from tests.e2e.local.harness import ROOT, cli_env

if TYPE_CHECKING:
    from pathlib import Path


def test_a_short_soak_reports_every_figure_with_no_errors(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "soak.py"),
            "--seconds",
            "3",
            "--baseline-seconds",
            "1",
            "--clients",
            "4",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        env=cli_env(),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(out.read_text())
    assert figures["errors"] == 0
    assert figures["tasks_accepted"] == figures["tasks_terminal_after_drain"] > 0
    assert figures["requests_per_s"] > 0
    assert figures["requests_per_s_ratio"] > 0
    assert figures["p99_ms"] >= figures["p50_ms"] > 0
    assert figures["peak_rss_mib"] > 0
    assert "requests_per_s" in result.stdout
