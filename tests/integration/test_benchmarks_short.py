"""The cost, scale and peers benchmarks run in their short mode and print every figure.

Timing on a shared machine proves nothing in CI, so no figure is held to its target here
(docs/performance.md and docs/cost.md give the measured ones); what is checked is that each
benchmark still runs to the end and prints its ratio lines as numbers. The request counts
the cost model prices are pinned exactly by tests/e2e/test_request_counts.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import TYPE_CHECKING, Final

import pytest

from tests.e2e.local.harness import ROOT, cli_env

if TYPE_CHECKING:
    from pathlib import Path

RATIO: Final = re.compile(r"^(ratio [^:]+): (\d+(?:\.\d+)?)\b", re.MULTILINE)

EXPECTED: Final = {
    "cost": {
        "ratio cost/stepfunctions",
        "ratio cost/stepfunctions minimal",
        "ratio cost/stepfunctions progress10",
        "ratio cost/stepfunctions polled60",
        "ratio cost/naive minimal",
    },
    "scale": {
        "ratio sweep 100k open/1k open sqlite",
        "ratio sweep 100k open/1k open memory",
        "ratio list page 10/page 1 sqlite",
        "ratio list page 10/page 1 memory",
    },
    "peers": {
        "ratio throughput embedded/huey",
        "ratio throughput serve/huey",
        "ratio p50 serve/huey",
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_short_mode_prints_every_ratio(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--short"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        env=cli_env(),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with capsys.disabled():  # the figures, in the CI log
        print(f"\n== benchmarks/{name}.py --short\n{result.stdout}")
    ratios = {label: float(value) for label, value in RATIO.findall(result.stdout)}
    assert EXPECTED[name] <= set(ratios), result.stdout
    assert all(value > 0 for value in ratios.values()), ratios
    if name == "cost":
        assert re.search(r"^cost per million tasks: \$\d+\.\d\d$", result.stdout, re.MULTILINE)
        assert "not available" in result.stdout  # WebSocket and queue worker, said so
    if name == "scale":
        assert "stream events per PutEvents at full batches: 10.0" in result.stdout
