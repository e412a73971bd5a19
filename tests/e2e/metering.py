"""Every AWS request and Lambda invocation of a task's life on moto server, recorded.

The cost model (benchmarks/cost.py) prices what this records, and
tests/e2e/test_request_counts.py pins the counts, so a change that adds a request per task
shows in CI. A :class:`MeteredDeployment` is the AWS flow of test_aws_flow.py (the real
handlers in-process, :class:`~tests.e2e.pump.Pump` as Lambda's pollers) with a :class:`Meter`
on every client a Lambda of ours would use:

- the clients the handlers' bootstrap builds (api, stream, updates and sweeper functions);
- the processor SDK's ``AwsTransport`` (its ``PutEvents`` and ``GetItem``);
- the pump's SQS client, for the updates queue only: Lambda's SQS event source mapping
  receives and deletes those messages in AWS, and those requests are billed to the account.

What the pump does that AWS does for free is not recorded: reading the table's stream
(GetRecords by Lambda is free), the rule delivering ``TaskCreated`` to the processor
(an EventBridge target), and the test-only queues standing in for those targets.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import boto3

from taskmanager.adapters.aws_session import new_session
from taskmanager.adapters.dynamodb import create_table
from taskmanager.entrypoints import api, bootstrap, stream, sweeper, updates
from taskmanager.processor import AwsTransport, Processor, ProcessorContext
from tests.e2e.pump import REGION, Pump
from tests.support import ALICE, FakeLambdaContext, http_event, load_event

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

BUS: Final = "taskmanager-cost"
SOURCE: Final = "taskmanager"
PROCESSORS_SOURCE: Final = "cost.processors"
#: How long the polled task runs, in seconds of the simulated clock.
POLLED_TASK_SECONDS: Final = 60
PROGRESS_REPORTS: Final = 10


@dataclass(frozen=True, slots=True)
class Request:
    """One AWS API call as the account is billed for it."""

    component: str  # the function that sent it: api, stream, updates, processor, sweeper
    service: str  # botocore's name: dynamodb, events, sqs
    operation: str
    request_bytes: int
    response_bytes: int
    params: Mapping[str, Any]
    response: Mapping[str, Any]
    #: From sending the request to its parsed answer (moto on loopback, not AWS).
    seconds: float

    @property
    def failed(self) -> bool:
        return "Error" in self.response


@dataclass
class Meter:
    """Records the requests of the clients it is attached to, and the invocations of the
    handlers run through :meth:`invoke`, each under the component running at the time."""

    requests: list[Request] = field(default_factory=list)
    invocations: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    #: (OldImage, NewImage) of every stream record the stream function was handed, in order.
    images: list[tuple[dict[str, Any] | None, dict[str, Any] | None]] = field(default_factory=list)
    _acting: list[str] = field(default_factory=lambda: ["outside"])

    def reset(self) -> None:
        self.requests.clear()
        self.invocations.clear()
        self.seconds.clear()
        self.images.clear()

    def invoke(self, component: str, handler: Callable[..., Any], *args: Any) -> Any:
        """One Lambda invocation of ``component``: counted, timed. What it prints (its
        metrics, as CloudWatch's embedded format) goes to its log, here nowhere."""
        self._acting.append(component)
        start = time.perf_counter()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                return handler(*args)
        finally:
            self.seconds[component].append(time.perf_counter() - start)
            self.invocations[component] += 1
            self._acting.pop()

    def attach(
        self,
        client: Any,
        component: str | None = None,
        accept: Callable[[str, Mapping[str, Any], Mapping[str, Any]], bool] | None = None,
    ) -> None:
        """Record ``client``'s requests (as ``component``, else whoever is acting), those
        ``accept(operation, params, response)`` approves if given."""
        service = client.meta.service_model.service_name

        def params_of(params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
            context["meter.params"] = dict(params)

        def body_of(params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
            body = params.get("body") or b""
            context["meter.bytes"] = len(body.encode() if isinstance(body, str) else body)
            context["meter.start"] = time.perf_counter()

        def after(
            http_response: Any, parsed: Mapping[str, Any], model: Any, context: Any, **_: Any
        ) -> None:
            call_params = context.get("meter.params", {})
            if accept is not None and not accept(model.name, call_params, parsed):
                return
            self.requests.append(
                Request(
                    component=component or self._acting[-1],
                    service=service,
                    operation=model.name,
                    request_bytes=context.get("meter.bytes", 0),
                    response_bytes=len(http_response.content or b""),
                    params=call_params,
                    response=parsed,
                    seconds=time.perf_counter() - context.get("meter.start", 0.0),
                )
            )

        events = client.meta.events
        events.register(f"before-parameter-build.{service}", params_of)
        events.register(f"before-call.{service}", body_of)
        events.register(f"after-call.{service}", after)

    def counts(self) -> dict[str, int]:
        """``{"<component> <service>.<operation>": n}`` and ``{"<component> invocations": n}``."""
        found: Counter[str] = Counter(
            f"{r.component} {r.service}.{r.operation}" for r in self.requests
        )
        for component, n in self.invocations.items():
            found[f"{component} invocations"] = n
        return dict(sorted(found.items()))


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _forget_handlers() -> None:
    bootstrap.reset()
    for module in (api, stream, updates, sweeper):
        module._lambda_handler.cache_clear()


class MeteredProcessor(Processor):
    """A processor whose Lambda invocations the meter counts and times."""

    def __init__(
        self, meter: Meter, task_type: str, fn: Callable[..., Any], transport: AwsTransport
    ) -> None:
        super().__init__(task_type, fn, transport)
        self.meter = meter

    def lambda_handler(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        result: dict[str, Any] = self.meter.invoke(
            "processor", super().lambda_handler, event, context
        )
        return result


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """What one task's life cost: its requests and invocations, recorded."""

    task: dict[str, Any]
    requests: list[Request]
    invocations: dict[str, int]
    seconds: dict[str, list[float]]
    images: list[tuple[dict[str, Any] | None, dict[str, Any] | None]]
    #: GET /tasks/{id} calls the client made (the polled scenario).
    polls: int
    counts: dict[str, int]


class MeteredDeployment:
    """The AWS flow on moto server with every billed request recorded."""

    TYPES: Final = ("cost.minimal", "cost.progress", "cost.polled")

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.meter = Meter()
        self.polls = 0
        self._clock = 0.0

    # -- set up ------------------------------------------------------------------------------
    @classmethod
    @contextlib.contextmanager
    def running(cls, endpoint: str) -> Iterator[MeteredDeployment]:
        deployment = cls(endpoint)
        suffix = uuid.uuid4().hex[:8]
        table = f"cost-{suffix}"
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "TASKMANAGER_TABLE_NAME": table,
            "TASKMANAGER_EVENT_BUS_NAME": BUS,
            "TASKMANAGER_EVENT_SOURCE": SOURCE,
            "TASKMANAGER_PROCESSOR_SOURCE": PROCESSORS_SOURCE,
            "POWERTOOLS_SERVICE_NAME": "taskmanager-cost",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        with _environment(env):
            _forget_handlers()
            try:
                deployment._build(table, suffix)
                yield deployment
            finally:
                _forget_handlers()

    def _build(self, table: str, suffix: str) -> None:
        meter = self.meter
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        create_table(dynamodb, table)
        self.table_description = dynamodb.describe_table(TableName=table)["Table"]
        if BUS not in {b["Name"] for b in events.list_event_buses()["EventBuses"]}:
            events.create_event_bus(Name=BUS)

        def queue(name: str, pattern: dict[str, Any]) -> str:
            url = sqs.create_queue(QueueName=f"{name}-{suffix}")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            rule = f"{name}-{suffix}"
            events.put_rule(Name=rule, EventBusName=BUS, EventPattern=json.dumps(pattern))
            events.put_targets(
                Rule=rule,
                EventBusName=BUS,
                Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}],
            )
            return url

        updates_url = queue("updates", {"detail-type": ["TaskUpdated"]})
        outbound = ["TaskCreated", "TaskRunning", "TaskSuccessful", "TaskFailed"]
        audit_url = queue("audit", {"source": [SOURCE], "detail-type": outbound})
        processor_queues = {
            task_type: queue(
                f"p{n}", {"detail-type": ["TaskCreated"], "detail": {"type": [task_type]}}
            )
            for n, task_type in enumerate(self.TYPES)
        }
        # The handlers' clients, as bootstrap builds them for every function.
        for service in ("dynamodb", "events"):
            meter.attach(bootstrap.client(service))
        session = new_session()
        transport = AwsTransport(
            events_client=session.create_client("events"),
            dynamodb_client=session.create_client("dynamodb"),
            table_name=table,
            bus_name=BUS,
            source=PROCESSORS_SOURCE,
        )
        meter.attach(transport._events)
        meter.attach(transport._dynamodb)

        def lambda_poller(operation: str, params: Mapping[str, Any], answer: Any) -> bool:
            # Lambda's event source mapping on the updates queue: the receives that found
            # messages, and their deletes (its empty long polls are a fixed cost per
            # queue, not per task: docs/cost.md).
            if params.get("QueueUrl") != updates_url:
                return False
            return operation != "ReceiveMessage" or bool(answer.get("Messages"))

        meter.attach(sqs, component="updates", accept=lambda_poller)
        processors = {
            "cost.minimal": MeteredProcessor(meter, "cost.minimal", _minimal, transport),
            "cost.progress": MeteredProcessor(meter, "cost.progress", _progress, transport),
            "cost.polled": MeteredProcessor(meter, "cost.polled", self._polled, transport),
        }

        def stream_handler(event: Any, context: Any) -> Any:
            for record in event["Records"]:
                image = record["dynamodb"]
                meter.images.append((image.get("OldImage"), image.get("NewImage")))
            return meter.invoke("stream", stream.handler, event, context)

        def updates_handler(event: Any, context: Any) -> Any:
            return meter.invoke("updates", updates.handler, event, context)

        self.pump = Pump(
            dynamodb=dynamodb,
            streams=boto3.client("dynamodbstreams", region_name=REGION),
            sqs=sqs,
            table_name=table,
            updates_queue=updates_url,
            audit_queue=audit_url,
            processor_queues=processor_queues,
            processors=dict(processors),
            stream_handler=stream_handler,
            updates_handler=updates_handler,
        )

    # -- the supplier ------------------------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
        """One request through API Gateway to the api function."""
        text = None if body is None else json.dumps(body)
        event = http_event(method, path, text, owner=ALICE)
        response = self.meter.invoke("api", api.handler, event, FakeLambdaContext())
        return response["statusCode"], response["headers"], json.loads(response["body"])

    def poll(self, task_id: str) -> tuple[dict[str, Any], float | None]:
        """``GET /tasks/{id}``: the task and the ``Retry-After`` it came with."""
        status, headers, task = self.call("GET", f"/tasks/{task_id}")
        assert status == 200, task
        self.polls += 1
        retry_after = headers.get("Retry-After")
        return task, None if retry_after is None else float(retry_after)

    def _polled(self, task_input: Any, ctx: ProcessorContext) -> Any:
        """A task that runs for ``POLLED_TASK_SECONDS`` of the simulated clock while its
        submitter polls as each answer's ``Retry-After`` says."""
        while self._clock < POLLED_TASK_SECONDS:
            _, retry_after = self.poll(ctx.task_id)
            assert retry_after is not None, "an open task's answer names no Retry-After"
            self._clock += retry_after
        return {"ok": True}

    # -- the scenarios -----------------------------------------------------------------------
    def lifecycle(self, task_type: str) -> Lifecycle:
        """Submit a task of ``task_type`` and let every function run until the flow settles;
        the polled scenario's client then polls once more and sees the task finished."""
        self.meter.reset()
        self.polls = 0
        status, headers, task = self.call("POST", "/tasks", {"type": task_type, "input": {}})
        assert status == 202, task
        self._clock = float(headers["Retry-After"])  # the first poll waits as told
        self.pump.run()
        if task_type == "cost.polled":  # the client's last poll finds the task finished
            task, retry_after = self.poll(task["id"])
            assert (task["status"], retry_after) == ("SUCCESSFUL", None), task
        # Checked on what crossed the bus (not a request of the supplier's, not billed).
        last = self.pump.events_of(task["id"])[-1]
        assert last[0] == "TaskSuccessful", self.pump.events_of(task["id"])
        meter = self.meter
        return Lifecycle(
            task=task,
            requests=list(meter.requests),
            invocations=dict(meter.invocations),
            seconds={k: list(v) for k, v in meter.seconds.items()},
            images=list(meter.images),
            polls=self.polls,
            counts=meter.counts(),
        )

    def sweep(self) -> Lifecycle:
        """One scheduled sweep with nothing due."""
        self.meter.reset()
        result = self.meter.invoke(
            "sweeper", sweeper.handler, load_event("scheduled_sweep.json"), FakeLambdaContext()
        )
        assert set(result.values()) == {0}, result  # nothing was due
        meter = self.meter
        return Lifecycle(
            task={},
            requests=list(meter.requests),
            invocations=dict(meter.invocations),
            seconds={k: list(v) for k, v in meter.seconds.items()},
            images=[],
            polls=0,
            counts=meter.counts(),
        )


def _minimal(task_input: Any) -> Any:
    return {"ok": True}


def _progress(task_input: Any, ctx: ProcessorContext) -> Any:
    for n in range(1, PROGRESS_REPORTS + 1):
        ctx.progress(100 * n / (PROGRESS_REPORTS + 1), f"step {n}")
    return {"ok": True}
