"""The AWS requests and Lambda invocations one task costs, pinned per scenario.

These are the counts docs/cost.md prices (benchmarks/cost.py): a change that adds a request
to a task's life fails here first, and then the table in docs/cost.md is updated with it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import hcl2
import pytest

from taskmanager.adapters.dynamodb.items import DEFAULT_DUE_SHARDS
from tests.e2e.metering import POLLED_TASK_SECONDS, MeteredDeployment

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT: Final = Path(__file__).resolve().parents[2]

#: Every lifecycle: one submit (PutItem); the processor reads the status when it starts (a
#: function that returns within a second of that read skips the read before its last
#: report: GetItem x1) and reports RUNNING and SUCCESSFUL (PutEvents x2, one
#: entry each); the updates function gets both in one SQS batch (one receive, one delete, two
#: guarded UpdateItems); the stream function publishes TaskCreated from the first batch and
#: TaskRunning + TaskSuccessful (one PutEvents) from the second.
MINIMAL: Final = {
    "api dynamodb.PutItem": 1,
    "api invocations": 1,
    "processor dynamodb.GetItem": 1,
    "processor events.PutEvents": 2,
    "processor invocations": 1,
    "stream events.PutEvents": 2,
    "stream invocations": 2,
    "updates dynamodb.UpdateItem": 2,
    "updates invocations": 1,
    "updates sqs.DeleteMessageBatch": 1,
    "updates sqs.ReceiveMessage": 1,
}


@pytest.fixture(scope="module")
def deployment(moto_server: str) -> Iterator[MeteredDeployment]:
    with MeteredDeployment.running(moto_server) as world:
        yield world


def test_a_minimal_task_makes_these_requests_and_no_more(deployment: MeteredDeployment) -> None:
    life = deployment.lifecycle("cost.minimal")
    assert life.counts == MINIMAL
    assert len(life.images) == 3  # submit, RUNNING, SUCCESSFUL: one stream record each


def test_ten_progress_reports_cost_one_report_write_and_event_each(
    deployment: MeteredDeployment,
) -> None:
    life = deployment.lifecycle("cost.progress")
    assert life.counts == {
        **MINIMAL,
        "processor events.PutEvents": 12,
        "updates dynamodb.UpdateItem": 12,
        # 12 messages: SQS batches of at most 10 (the updates queue's batch_size).
        "updates invocations": 2,
        "updates sqs.ReceiveMessage": 2,
        "updates sqs.DeleteMessageBatch": 2,
        # TaskCreated alone, then the 10 + 2 records the updates function's two batches wrote.
        "stream invocations": 3,
        "stream events.PutEvents": 3,
    }
    entries = [
        len(r.params["Entries"])
        for r in life.requests
        if (r.component, r.operation) == ("stream", "PutEvents")
    ]
    assert entries == [1, 10, 2]  # PutEvents takes 10 entries at most


def test_a_polled_minute_costs_one_api_call_and_read_per_retry_after(
    deployment: MeteredDeployment,
) -> None:
    life = deployment.lifecycle("cost.polled")
    polls = POLLED_TASK_SECONDS  # Retry-After: 1 -> a poll a second, the last sees the end
    assert life.polls == polls
    assert life.counts == {
        **MINIMAL,
        "api invocations": 1 + polls,
        "api dynamodb.GetItem": polls,
    }
    reads = [r for r in life.requests if (r.component, r.operation) == ("api", "GetItem")]
    assert all(r.params["ConsistentRead"] for r in reads)  # one read unit each, not half


def test_a_sweep_with_nothing_due_queries_each_due_shard_of_both_indexes(
    deployment: MeteredDeployment,
) -> None:
    life = deployment.sweep()
    assert life.counts == {
        "sweeper dynamodb.Query": 2 * DEFAULT_DUE_SHARDS,
        "sweeper invocations": 1,
    }


def _pricing() -> Any:
    spec = importlib.util.spec_from_file_location("pricing", ROOT / "benchmarks" / "pricing.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cost_model_reads_the_terraform_defaults() -> None:
    pricing = _pricing()
    assert 128 <= pricing.task_manager_memory_mb() <= 10240
    assert 128 <= pricing.processor_memory_mb() <= 10240
    assert pricing.task_manager_architecture() in pricing.LAMBDA_GB_SECOND
    # The module's default shard count is the adapter's (the count the tests above see).
    assert pricing.due_shards() == DEFAULT_DUE_SHARDS
    with (ROOT / "infra/terraform/modules/task-manager/variables.tf").open() as handle:
        variables = {
            name.strip('"'): block
            for entry in hcl2.load(handle)["variable"]
            for name, block in entry.items()
        }
    schedule = variables["sweeper_schedule_expression"]["default"].strip('"')
    minutes = int(schedule.removeprefix("rate(").split()[0])
    assert schedule.endswith("minute)") or schedule.endswith("minutes)"), schedule
    assert pricing.sweeps_per_day() == 1440 // minutes
