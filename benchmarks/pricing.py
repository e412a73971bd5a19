"""AWS prices the cost model uses, and the Lambda settings it reads from the Terraform modules.

us-east-1, on-demand, as published on the pages below when they were read on 2026-12-05.
A price here is per unit of the service's own billing granularity (a write unit is 1 KB, a
read unit 4 KB, an EventBridge event or an SQS request 64 KB, a WebSocket message 32 KB);
:mod:`benchmarks.cost` turns recorded requests into those units.

Changing a price: edit the constant and its ``READ_ON`` date; docs/cost.md names each one.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Final

#: When the prices below were read from their pages.
READ_ON: Final = "2026-12-05"
REGION: Final = "us-east-1"

PER_MILLION: Final = 1e-6

# --- DynamoDB, on-demand capacity ------------------------------------------------------------
DYNAMODB_SOURCE: Final = "https://aws.amazon.com/dynamodb/pricing/on-demand/"
DYNAMODB_WRITE_UNIT: Final = 0.625 * PER_MILLION  # per write request unit (1 KB)
DYNAMODB_READ_UNIT: Final = 0.125 * PER_MILLION  # per read request unit (4 KB, strong)
#: Reading a stream with Lambda's event source mapping is free ("GetRecords API calls
#: invoked by AWS Lambda as part of DynamoDB triggers are free").
DYNAMODB_STREAM_READ_BY_LAMBDA: Final = 0.0
DYNAMODB_WRITE_UNIT_BYTES: Final = 1024
DYNAMODB_READ_UNIT_BYTES: Final = 4096

# --- EventBridge --------------------------------------------------------------------------
EVENTBRIDGE_SOURCE: Final = "https://aws.amazon.com/eventbridge/pricing/"
EVENTBRIDGE_CUSTOM_EVENT: Final = 1.00 * PER_MILLION  # per event, per 64 KB chunk
EVENTBRIDGE_CHUNK_BYTES: Final = 64 * 1024
#: Delivery by a rule to an AWS target (Lambda, SQS) is not charged by EventBridge.
EVENTBRIDGE_RULE_DELIVERY: Final = 0.0

# --- SQS, standard queue ------------------------------------------------------------------
SQS_SOURCE: Final = "https://aws.amazon.com/sqs/pricing/"
SQS_REQUEST: Final = 0.40 * PER_MILLION  # per request, per 64 KB chunk
SQS_CHUNK_BYTES: Final = 64 * 1024

# --- Lambda -------------------------------------------------------------------------------
LAMBDA_SOURCE: Final = "https://aws.amazon.com/lambda/pricing/"
LAMBDA_REQUEST: Final = 0.20 * PER_MILLION
LAMBDA_GB_SECOND: Final = {"x86_64": 0.0000166667, "arm64": 0.0000133334}

# --- API Gateway --------------------------------------------------------------------------
API_GATEWAY_SOURCE: Final = "https://aws.amazon.com/api-gateway/pricing/"
HTTP_API_REQUEST: Final = 1.00 * PER_MILLION  # first 300 million a month, per 512 KB
WEBSOCKET_MESSAGE: Final = 1.00 * PER_MILLION  # per message, per 32 KB
WEBSOCKET_CONNECTION_MINUTE: Final = 0.25 * PER_MILLION

# --- Step Functions -----------------------------------------------------------------------
STEP_FUNCTIONS_SOURCE: Final = "https://aws.amazon.com/step-functions/pricing/"
STEP_FUNCTIONS_STANDARD_TRANSITION: Final = 0.025 / 1000

SOURCES: Final = {
    "DynamoDB": DYNAMODB_SOURCE,
    "EventBridge": EVENTBRIDGE_SOURCE,
    "SQS": SQS_SOURCE,
    "Lambda": LAMBDA_SOURCE,
    "API Gateway": API_GATEWAY_SOURCE,
    "Step Functions": STEP_FUNCTIONS_SOURCE,
}

# --- the deployment's own settings, from the Terraform modules' defaults --------------------
MODULES: Final = Path(__file__).resolve().parents[1] / "infra" / "terraform" / "modules"


def _default(module: str, variable: str, field: str) -> str:
    """The ``optional(<type>, <default>)`` default of ``field`` in ``variable``'s object type,
    read from ``modules/<module>/variables.tf``."""
    text = (MODULES / module / "variables.tf").read_text()
    block = re.search(rf'variable "{variable}" \{{(.*?)\n\}}', text, re.DOTALL)
    if block is None:
        raise LookupError(f"no variable {variable!r} in modules/{module}/variables.tf")
    found = re.search(rf"^\s*{field}\s*=\s*optional\(\w+,\s*\"?([^\")]+)\"?\)", block[1], re.M)
    if found is None:
        raise LookupError(f"no default for {variable}.{field} in modules/{module}")
    return found[1]


def task_manager_memory_mb() -> int:
    """``lambda.memory_size``: the memory of the api, stream, updates and sweeper functions."""
    return int(_default("task-manager", "lambda", "memory_size"))


def task_manager_architecture() -> str:
    return _default("task-manager", "lambda_package", "architecture")


def processor_memory_mb() -> int:
    """``function.memory_size`` of the processor module."""
    return int(_default("processor", "function", "memory_size"))


def due_shards() -> int:
    """``table.due_shards``: partitions of each sweeper index (queries per sweep: 2 x this)."""
    return int(_default("task-manager", "table", "due_shards"))


def stream_batch_size() -> int:
    """``stream_processing.batch_size``: the most records one stream invocation gets."""
    return int(_default("task-manager", "stream_processing", "batch_size"))


def sweeps_per_day() -> int:
    """Invocations of the sweeper a day at ``sweeper_schedule_expression``'s default."""
    text = (MODULES / "task-manager" / "variables.tf").read_text()
    block = re.search(r'variable "sweeper_schedule_expression" \{(.*?)\n\}', text, re.DOTALL)
    assert block is not None
    rate = re.search(r'default\s*=\s*"rate\((\d+) (minute|hour|day)s?\)"', block[1])
    if rate is None:
        raise LookupError("sweeper_schedule_expression's default is not a rate()")
    per_day = {"minute": 1440, "hour": 24, "day": 1}[rate[2]]
    return per_day // int(rate[1])


def lambda_cost(invocations: float, seconds: float, memory_mb: int, arch: str) -> float:
    """What ``invocations`` of ``seconds`` each (billed by the millisecond) cost."""
    billed = max(1, math.ceil(seconds * 1000)) / 1000  # billed by the started millisecond
    gb_seconds = invocations * billed * memory_mb / 1024
    return invocations * LAMBDA_REQUEST + gb_seconds * LAMBDA_GB_SECOND[arch]


if __name__ == "__main__":  # `make bench` runs every script here: show what the model uses
    print(f"prices: {REGION}, on-demand, read {READ_ON}")
    for service, url in SOURCES.items():
        print(f"  {service}: {url}")
    print(
        f"functions {task_manager_memory_mb()} MB {task_manager_architecture()}, processor "
        f"{processor_memory_mb()} MB, due shards {due_shards()}, sweeps a day "
        f"{sweeps_per_day()} (Terraform defaults)"
    )
