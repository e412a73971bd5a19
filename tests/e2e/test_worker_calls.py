"""The AWS requests a queue worker makes per task (what benchmarks/worker.py prints as
`aws calls per task`), counted on moto server with the benchmark's own code."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_worker", ROOT / "benchmarks" / "worker.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("concurrency", [1, 16])
def test_a_no_op_task_costs_one_read_two_reports_one_delete_and_a_share_of_a_receive(
    bench: ModuleType, moto_server: str, concurrency: int
) -> None:
    tasks = 30
    world = bench.World(moto_server)
    _, calls = bench.run_worker(world, tasks, concurrency)
    assert calls["GetItem"] == tasks  # status (and earlier progress) once, before the start
    assert calls["PutEvents"] == 2 * tasks  # RUNNING, SUCCESSFUL
    assert calls["DeleteMessage"] == tasks
    # Receives: one per task at concurrency 1 (it asks for as many as it has room for);
    # batches of up to ten at 16. A final empty poll may be counted as well.
    receives = calls["ReceiveMessage"]
    if concurrency == 1:
        assert tasks <= receives <= tasks + 1
    else:
        assert receives <= tasks / 2
    # Nothing else: no visibility change for a task far shorter than the timeout, no
    # attribute reads.
    assert set(calls) == {"GetItem", "PutEvents", "DeleteMessage", "ReceiveMessage"}
