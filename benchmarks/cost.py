"""What a million tasks cost on AWS, from the requests a task's life really makes.

Runs real lifecycles through the real handlers (api, stream, updates, sweeper) and the real
processor SDK against moto server, recording every AWS request (service, operation, payload
bytes) and every Lambda invocation (tests/e2e/metering.py), then prices them with the
constants of ``benchmarks/pricing.py`` (us-east-1, on-demand) and the Lambda memory sizes of
the Terraform modules' defaults. Scenarios:

- ``minimal``: submit, RUNNING, SUCCESSFUL;
- ``progress10``: the same with 10 progress reports;
- ``polled60``: a 60-second task whose submitter polls ``GET /tasks/{id}`` as each answer's
  ``Retry-After`` says (the clock is simulated: the polls are made, the minute is not waited).

Each is priced per component (the function that causes the cost), beside the same job on
Step Functions Standard with a callback task and on the naive topology (docs/cost.md says
how each is modelled). The processor's own compute is the same in all three and printed
apart; every ratio leaves it out.

Run: ``python benchmarks/cost.py [--short] [--arch x86_64|arm64] [--tasks-per-day N]``.
Prints tables, ``cost per million tasks: $X`` (the minimal task) and
``ratio cost/stepfunctions: Y`` (target <= 0.2), and the same per scenario.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pricing as price

ROOT: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.contract.dynamodb_capacity import indexes_of, item_size, write_units  # noqa: E402
from tests.e2e.metering import (  # noqa: E402
    POLLED_TASK_SECONDS,
    Lifecycle,
    MeteredDeployment,
    Request,
)
from tests.support import running_moto_server  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

SCENARIOS: Final = {
    "minimal": "cost.minimal",
    "progress10": "cost.progress",
    "polled60": "cost.polled",
}
COMPONENTS: Final = ("api", "stream", "updates", "processor sdk", "sweeper share")
SERVICES: Final = ("HTTP API", "Lambda", "DynamoDB", "EventBridge", "SQS", "Step Functions")
#: State transitions of one execution of the least Standard state machine that does this job:
#: one Task state (``lambda:invoke.waitForTaskToken``, End). Heartbeats and
#: ``SendTaskSuccess`` are API calls, not transitions. A Catch to a Fail state, a Retry or a
#: Choice would each add one: this is the count most favourable to Step Functions.
SFN_TRANSITIONS_PER_TASK: Final = 1
#: The target of ``ratio cost/stepfunctions``.
TARGET: Final = 0.2
MILLION: Final = 1_000_000

Costs = dict[str, dict[str, float]]  # component -> service -> $ per task


def chunks(size: int, chunk: int) -> int:
    return max(1, math.ceil(size / chunk))


def entry_size(entry: Mapping[str, Any]) -> int:
    """A PutEvents entry's size as EventBridge bills it: the UTF-8 bytes of Source,
    DetailType, Detail and each Resource, plus 14 for a Time
    (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html)."""
    size = sum(len(str(entry.get(k, "")).encode()) for k in ("Source", "DetailType", "Detail"))
    size += sum(len(r.encode()) for r in entry.get("Resources", []))
    return size + (14 if "Time" in entry else 0)


def read_units(request: Request) -> float:
    """Read units of one DynamoDB read: 4 KB units of what it read, halved when eventually
    consistent (a Query on an index always is); each item of a BatchGetItem rounds up on its
    own, a Query's items round up together."""
    op, params, answer = request.operation, request.params, request.response
    if op == "GetItem":
        factor = 1.0 if params.get("ConsistentRead") else 0.5
        item = answer.get("Item")
        size = item_size(item) if item else 0
        return factor * chunks(size, price.DYNAMODB_READ_UNIT_BYTES)
    if op == "BatchGetItem":
        units = 0.0
        for table, items in answer.get("Responses", {}).items():
            strong = params["RequestItems"][table].get("ConsistentRead")
            factor = 1.0 if strong else 0.5
            units += sum(
                factor * chunks(item_size(i), price.DYNAMODB_READ_UNIT_BYTES) for i in items
            )
        return units
    if op == "Query":
        factor = 1.0 if params.get("ConsistentRead") and not params.get("IndexName") else 0.5
        size = sum(item_size(i) for i in answer.get("Items", []))
        return factor * chunks(size, price.DYNAMODB_READ_UNIT_BYTES)
    raise ValueError(f"no read-unit rule for {op}")


WRITES: Final = frozenset({"PutItem", "UpdateItem", "DeleteItem"})


def dynamodb_write_units(life: Lifecycle, indexes: list[Any]) -> dict[str, float]:
    """Write units (table and indexes) of each component's writes. Each write that
    succeeded left one stream record, in order: its images give its size. A refused
    conditional write is billed a unit of the item it read (at least one); counted as one."""
    done = [r for r in life.requests if r.service == "dynamodb" and r.operation in WRITES]
    applied = [r for r in done if not r.failed]
    assert len(applied) == len(life.images), (len(applied), len(life.images))
    units: dict[str, float] = defaultdict(float)
    for request, (old, new) in zip(applied, life.images, strict=True):
        units[request.component] += sum(write_units(old, new, indexes).values())
    for request in done:
        if request.failed:
            units[request.component] += 1
    return units


def median_seconds(lives: Iterable[Lifecycle], component: str) -> float:
    samples = [s for life in lives for s in life.seconds.get(component, [])]
    return statistics.median(samples) if samples else 0.0


def median_request_seconds(lives: Iterable[Lifecycle], service: str, operation: str) -> float:
    samples = [
        r.seconds
        for life in lives
        for r in life.requests
        if (r.service, r.operation) == (service, operation)
    ]
    return statistics.median(samples) if samples else 0.0


class Model:
    """Prices recorded lifecycles: memory and architecture from Terraform, durations from the
    warm invocations measured in this run."""

    def __init__(
        self, lives: list[Lifecycle], sweep: Lifecycle, indexes: list[Any], args: Any
    ) -> None:
        self.lives, self.sweep, self.indexes = lives, sweep, indexes
        self.arch: str = args.arch or price.task_manager_architecture()
        self.memory = price.task_manager_memory_mb()
        self.processor_memory = price.processor_memory_mb()
        self.tasks_per_day: int = args.tasks_per_day
        self.warm = {c: median_seconds(lives, c) for c in ("api", "stream", "updates")}
        self.warm["sweeper"] = median_seconds([sweep], "sweeper")
        self.put_events_s = median_request_seconds(lives, "events", "PutEvents")
        self.get_item_s = median_request_seconds(lives, "dynamodb", "GetItem")

    def longer(self, seconds: float) -> float:
        """What ``seconds`` more of a function's duration cost (GB-seconds only)."""
        return seconds * self.memory / 1024 * price.LAMBDA_GB_SECOND[self.arch]

    def function(self, component: str, invocations: float, seconds: float | None = None) -> float:
        warm = self.warm[component] if seconds is None else seconds
        return price.lambda_cost(invocations, warm, self.memory, self.arch)

    # -- this project --------------------------------------------------------------------------
    def ours(self, life: Lifecycle) -> Costs:
        costs: Costs = defaultdict(lambda: defaultdict(float))
        for component in ("api", "stream", "updates"):
            costs[component]["Lambda"] += self.function(component, life.invocations[component])
        costs["api"]["HTTP API"] += life.invocations["api"] * price.HTTP_API_REQUEST
        for component, units in dynamodb_write_units(life, self.indexes).items():
            costs[_row(component)]["DynamoDB"] += units * price.DYNAMODB_WRITE_UNIT
        for request in life.requests:
            row = _row(request.component)
            if request.service == "dynamodb" and request.operation not in WRITES:
                costs[row]["DynamoDB"] += read_units(request) * price.DYNAMODB_READ_UNIT
            elif request.service == "events":
                for entry in request.params["Entries"]:
                    events = chunks(entry_size(entry), price.EVENTBRIDGE_CHUNK_BYTES)
                    costs[row]["EventBridge"] += events * price.EVENTBRIDGE_CUSTOM_EVENT
                    if entry["DetailType"] == "TaskUpdated":
                        # The rule's delivery to the updates queue: one SendMessage.
                        sends = chunks(entry_size(entry), price.SQS_CHUNK_BYTES)
                        costs["updates"]["SQS"] += sends * price.SQS_REQUEST
            elif request.service == "sqs":
                size = max(request.request_bytes, request.response_bytes)
                costs[row]["SQS"] += chunks(size, price.SQS_CHUNK_BYTES) * price.SQS_REQUEST
        costs["sweeper share"] = self.sweeper_share()
        return costs

    def units(self, life: Lifecycle) -> str:
        """The task's billing units, for the table in docs/cost.md."""
        writes = sum(dynamodb_write_units(life, self.indexes).values())
        reads = sum(
            read_units(r)
            for r in life.requests
            if r.service == "dynamodb" and r.operation not in WRITES
        )
        entries = [e for r in life.requests if r.service == "events" for e in r.params["Entries"]]
        events = sum(chunks(entry_size(e), price.EVENTBRIDGE_CHUNK_BYTES) for e in entries)
        updates = sum(1 for e in entries if e["DetailType"] == "TaskUpdated")
        sqs = updates + sum(1 for r in life.requests if r.service == "sqs")
        lambdas = sum(life.invocations.values())
        return (
            f"DynamoDB write units {writes:g}, read units {reads:g}; EventBridge events "
            f"{events}; SQS requests {sqs}; Lambda invocations {lambdas} (processor's included)"
        )

    def sweeper_share(self) -> dict[str, float]:
        """One scheduled sweep with nothing due, times the sweeps a day, over the tasks a
        day: the sweeper runs on its schedule whatever the traffic."""
        per_sweep = self.function("sweeper", 1)
        reads = sum(read_units(r) for r in self.sweep.requests) * price.DYNAMODB_READ_UNIT
        share = price.sweeps_per_day() / self.tasks_per_day
        return {"Lambda": per_sweep * share, "DynamoDB": reads * share}

    def processor_compute(self, life: Lifecycle, scenario: str) -> float:
        """The processor function's own requests and GB-seconds (the same on every
        topology). The polled task is billed its simulated minute."""
        if scenario == "polled60":
            seconds = float(POLLED_TASK_SECONDS)
        else:
            seconds = median_seconds([life], "processor")
        return price.lambda_cost(
            life.invocations["processor"], seconds, self.processor_memory, self.arch
        )

    # -- Step Functions Standard with a callback task --------------------------------------
    def step_functions(self, life: Lifecycle) -> float:
        """Submit through an HTTP API StepFunctions-StartExecution integration (no Lambda);
        the Task state invokes the processor with a token; each progress report is a
        SendTaskHeartbeat, the end a SendTaskSuccess (API calls: not billed on Standard).
        An HTTP API has no DescribeExecution integration, so each poll is an HTTP API
        request to a function that calls it, timed as our GET."""
        polls = life.polls
        cost = price.HTTP_API_REQUEST + SFN_TRANSITIONS_PER_TASK * (
            price.STEP_FUNCTIONS_STANDARD_TRANSITION
        )
        cost += polls * price.HTTP_API_REQUEST + self.function("api", polls)
        return cost

    # -- the naive topology ------------------------------------------------------------------
    def naive(self, life: Lifecycle) -> float:
        """Ours, changed where the naive topology differs, from the counted calls:
        - unconditional writes: the updates function reads the task (a strongly consistent
          GetItem) before each write, to check the transition in code;
        - one PutEvents per stream record: the stream function waits one PutEvents round
          trip per record instead of per batch of ten;
        - status polled from a Lambda: the processor reads the task's status before each
          report (ours reads it when it starts and before the last).
        EventBridge bills per event entry either way."""
        ours = sum(sum(v.values()) for v in self.ours(life).values())
        writes = sum(1 for r in life.requests if r.component == "updates" and r.operation in WRITES)
        reads = writes * price.DYNAMODB_READ_UNIT  # items under 4 KB: one unit each
        waits = writes * self.get_item_s  # the updates function waits for each read
        records = len(life.images)
        put_events = sum(
            1 for r in life.requests if r.component == "stream" and r.service == "events"
        )
        waits += (records - put_events) * self.put_events_s  # one PutEvents per record
        extra = reads + self.longer(waits)
        reports = sum(
            len(r.params["Entries"])
            for r in life.requests
            if r.component == "processor" and r.service == "events"
        )
        status_reads = sum(
            1 for r in life.requests if r.component == "processor" and r.service == "dynamodb"
        )
        extra += max(0, reports - status_reads) * price.DYNAMODB_READ_UNIT
        return ours + extra


def _row(component: str) -> str:
    return "processor sdk" if component == "processor" else component


def per_million(value: float) -> str:
    return f"{value * MILLION:,.2f}"


def run(args: argparse.Namespace) -> int:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    rounds = 1 if args.short else 5
    lives: dict[str, list[Lifecycle]] = {}
    with running_moto_server() as endpoint, MeteredDeployment.running(endpoint) as world:
        for task_type in SCENARIOS.values():
            world.lifecycle(task_type)  # warm: the first invocation builds the clients
        world.sweep()
        for _ in range(rounds):
            for name, task_type in SCENARIOS.items():
                lives.setdefault(name, []).append(world.lifecycle(task_type))
        sweep = world.sweep()
        indexes = indexes_of(world.table_description)
    for name, runs in lives.items():  # every round makes the same requests
        counts = {tuple(sorted(life.counts.items())) for life in runs}
        assert len(counts) == 1, f"{name}: the requests differ between rounds: {counts}"
    model = Model([life for runs in lives.values() for life in runs], sweep, indexes, args)
    print(
        f"prices: {price.REGION}, on-demand, read {price.READ_ON}; functions "
        f"{model.memory} MB {model.arch}, processor {model.processor_memory} MB; "
        f"{args.tasks_per_day:,} tasks a day for the sweeper's share"
    )
    print(
        "warm ms (median, moto on loopback): "
        + ", ".join(f"{c} {s * 1000:.1f}" for c, s in model.warm.items())
    )
    print("\nrequests and invocations per task:")
    for name, runs in lives.items():
        life = runs[0]
        print(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in life.counts.items()))
    print(f"  sweep (each, whatever the traffic): {sweep.counts}")
    print("billing units per task:")
    for name, runs in lives.items():
        print(f"  {name}: {model.units(runs[0])}")

    ours = {name: model.ours(runs[0]) for name, runs in lives.items()}
    width = 16
    header = "$ per million tasks".ljust(width) + "".join(n.rjust(12) for n in lives)
    print("\n" + header + "\nby component")
    for component in COMPONENTS:
        cells = "".join(
            per_million(sum(ours[n].get(component, {}).values())).rjust(12) for n in lives
        )
        print(f"  {component}".ljust(width) + cells)
    print("by service")
    for service in SERVICES[:-1]:
        cells = "".join(
            per_million(sum(row.get(service, 0.0) for row in ours[n].values())).rjust(12)
            for n in lives
        )
        print(f"  {service}".ljust(width) + cells)
    totals = {n: sum(sum(row.values()) for row in ours[n].values()) for n in lives}
    sfn = {n: model.step_functions(runs[0]) for n, runs in lives.items()}
    naive = {n: model.naive(runs[0]) for n, runs in lives.items()}
    compute = {n: model.processor_compute(runs[0], n) for n, runs in lives.items()}
    for label, figures in (
        ("this project", totals),
        ("step functions", sfn),
        ("naive", naive),
        ("processor (apart)", compute),
    ):
        print(label.ljust(width) + "".join(per_million(figures[n]).rjust(12) for n in lives))
    print("websocket subscriber: not available (no WebSocket API in this version)")
    print("queue-fed worker: not available (no queue worker in this version)")
    print()
    print(f"cost per million tasks: ${per_million(totals['minimal'])}")
    print(
        f"ratio cost/stepfunctions: {totals['minimal'] / sfn['minimal']:.3f} (target <= {TARGET})"
    )
    for name in lives:
        print(f"cost per million tasks {name}: ${per_million(totals[name])}")
        print(f"ratio cost/stepfunctions {name}: {totals[name] / sfn[name]:.3f}")
        print(f"ratio cost/naive {name}: {totals[name] / naive[name]:.3f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="one round per scenario (CI)")
    parser.add_argument(
        "--arch", choices=sorted(price.LAMBDA_GB_SECOND), help="default: Terraform's"
    )
    parser.add_argument(
        "--tasks-per-day",
        type=int,
        default=1_000_000,
        help="traffic the scheduled sweeper's cost is shared over (1,000,000)",
    )
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
