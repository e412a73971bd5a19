"""Lambda cold start of each handler beside a bare boto3 handler, measured in one run.

For each handler (api, stream, updates, sweeper, processor) a fresh interpreter imports the
handler module, builds its clients and serves its first invocation with a fixture event from
tests/events/. Its AWS calls go over real HTTP to a loopback stub in this process (it answers
DynamoDB and EventBridge by ``X-Amz-Target``), not moto, whose own import would dwarf what is
measured. The baseline is the minimal handler a Lambda could be: ``import boto3``, one
DynamoDB client, one ``PutItem`` to the same stub. Each child times itself from its first
statement to the end of the first invocation, so interpreter start-up (the same for all) is
left out. Runs are interleaved (baseline, api, stream, ... baseline, api, ...) and the median
of each is kept, so a slow spell of this shared machine weighs on all alike.

Also the warm per-invocation time of ``POST /tasks`` through the API's routes on the
in-memory adapters.

Run: ``python benchmarks/cold_start.py``. Prints a table, then ``ratio cold/<handler>: X``
per handler (target <= 1.5) and ``warm api post µs: N`` (target <= 300).
"""

from __future__ import annotations

import functools
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
EVENTS: Final = ROOT / "tests" / "events"
# The development machine's CPU speed changes in spells (the same child's wall time can move
# by a third from one minute to the next): with 9 rounds the median ratios swung by +-0.2
# between runs, with 15 by about +-0.07.
ROUNDS: Final = int(os.environ.get("COLD_START_ROUNDS", "15"))
WARM_CALLS: Final = 3_000

TASK_ID: Final = "0b6c7f43-5a1e-4d0f-9a55-3c1f4c2a9e01"

# A stored RUNNING task as DynamoDB returns it (the updates handler's UpdateItem answer).
_RUNNING_ITEM: Final = {
    "task_id": {"S": TASK_ID},
    "owner": {"S": "alice"},
    "created_key": {"S": f"2026-03-10T13:40:52.000000Z#{TASK_ID}"},
    "type": {"S": "report.render"},
    "status": {"S": "RUNNING"},
    "input": {"S": '{"rows":10}'},
    "version": {"N": "2"},
    "created_at": {"S": "2026-03-10T13:40:52.000000Z"},
    "updated_at": {"S": "2026-03-10T13:41:00.000000Z"},
    "started_at": {"S": "2026-03-10T13:41:00.000000Z"},
    "deadline_at": {"S": "2026-03-10T14:40:52.000000Z"},
    "last_sequence": {"N": "1"},
}

_ANSWERS: Final[dict[str, Any]] = {
    "DynamoDB_20120810.PutItem": {},
    "DynamoDB_20120810.UpdateItem": {"Attributes": _RUNNING_ITEM},
    "DynamoDB_20120810.GetItem": {"Item": {"status": {"S": "CREATED"}}},
    "DynamoDB_20120810.Query": {"Items": [], "Count": 0, "ScannedCount": 0},
    "AWSEvents.PutEvents": {"FailedEntryCount": 0, "Entries": [{"EventId": "e-1"}]},
}


class _Stub(BaseHTTPRequestHandler):
    """Answers the AWS JSON protocol calls the handlers make; counts them by target."""

    protocol_version = "HTTP/1.1"
    # One write per response and no Nagle: otherwise each call waits out a delayed ACK
    # (~40 ms), an artefact of the stub that would swamp the measure.
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024
    calls: dict[str, int] = {}  # noqa: RUF012 (one stub per run)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        target = self.headers.get("X-Amz-Target", "")
        _Stub.calls[target] = _Stub.calls.get(target, 0) + 1
        answer = _ANSWERS.get(target)
        body = json.dumps(answer if answer is not None else {"__type": "UnknownOperation"})
        payload = body.encode()
        self.send_response(200 if answer is not None else 400)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return


# Each child: time from its first statement to the end of the first invocation.
_PRELUDE = "import time\n_t0, _c0 = time.perf_counter(), time.process_time()\nimport json\n"
_EPILOGUE = (
    "\nprint(json.dumps({'seconds': time.perf_counter() - _t0, "
    "'cpu': time.process_time() - _c0, 'result': str(_r)[:200]}))\n"
)

CHILDREN: Final[dict[str, str]] = {
    "baseline": (
        "import boto3\n"
        "_c = boto3.client('dynamodb')\n"
        "def handler(event, context):\n"
        "    return _c.put_item(TableName='tasks', Item={'task_id': {'S': event['id']}})\n"
        "_r = handler({'id': 't-1'}, None)\n"
    ),
    "api": (
        "from taskmanager.entrypoints.api import handler\n"
        f"_e = json.loads(open({str(EVENTS / 'api_submit.json')!r}).read())\n"
        "_r = handler(_e, None)\n"
        "assert _r['statusCode'] == 202, _r\n"
    ),
    "stream": (
        "from taskmanager.entrypoints.stream import handler\n"
        f"_e = json.loads(open({str(EVENTS / 'stream_batch.json')!r}).read())\n"
        "_r = handler(_e, None)\n"
        "assert _r == {'batchItemFailures': []}, _r\n"
    ),
    "updates": (
        "from taskmanager.entrypoints.updates import handler\n"
        f"_e = json.loads(open({str(EVENTS / 'sqs_updates.json')!r}).read())\n"
        "_e['Records'] = _e['Records'][:1]\n"
        "_r = handler(_e, None)\n"
        "assert _r == {'batchItemFailures': []}, _r\n"
    ),
    "sweeper": (
        "from taskmanager.entrypoints.sweeper import handler\n"
        f"_e = json.loads(open({str(EVENTS / 'scheduled_sweep.json')!r}).read())\n"
        "_r = handler(_e, None)\n"
        "assert _r == {'timed_out': 0, 'heartbeat_timed_out': 0, 'start_timed_out': 0}, _r\n"
    ),
    "sockets": (
        "from taskmanager.entrypoints.sockets import handler\n"
        f"_e = json.loads(open({str(EVENTS / 'websocket_connect.json')!r}).read())\n"
        "_r = handler(_e, None)\n"
        "assert _r == {'statusCode': 200}, _r\n"
    ),
    "processor": (
        "from taskmanager.processor import Processor\n"
        "handler = Processor('report.render', lambda i: {'pages': i['rows']}).lambda_handler\n"
        f"_e = json.loads(open({str(EVENTS / 'eventbridge_task_created.json')!r}).read())\n"
        "_r = handler(_e, None)\n"
        "assert _r['outcome'] == 'successful', _r\n"
    ),
}


def _child_env(endpoint: str, pycache: str) -> dict[str, str]:
    """The children's environment: AWS pointed at the stub, and bytecode cached under
    ``pycache`` even where the caller's environment says not to write it
    (``PYTHONDONTWRITEBYTECODE``). A deployed package carries its ``.pyc`` files (the Lambda
    zip builder compiles them; Lambda's code folder is read-only), and so do the installed
    dependencies here: without a cache the children would compile this project's sources
    on every run, which no deployed cold start does."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "TASKMANAGER_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(
        {
            "PYTHONPYCACHEPREFIX": pycache,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "TASKMANAGER_TABLE_NAME": "tasks",
            "TASKMANAGER_EVENT_BUS_NAME": "taskmanager",
            "TASKMANAGER_CONNECTIONS_TABLE_NAME": "connections",
            "POWERTOOLS_SERVICE_NAME": "bench",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            # As the Terraform modules deploy the functions (docs/deploy.md); the baseline
            # does not import pydantic, so this changes nothing for it.
            "PYDANTIC_DISABLE_PLUGINS": "__all__",
        }
    )
    return env


def _run_child(code: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall, cpu) seconds of the child from its first statement to its first answer."""
    out = subprocess.run(
        [sys.executable, "-c", _PRELUDE + code + _EPILOGUE],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if out.returncode != 0:
        raise RuntimeError(f"child failed:\n{out.stderr[-3000:]}")
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    return float(measured["seconds"]), float(measured["cpu"])


def cold_starts(endpoint: str) -> dict[str, tuple[float, float]]:
    """Median (wall, cpu) seconds per child, runs interleaved; one unmeasured warm-up of
    each first (it fills the OS file cache, as a provisioned Lambda image would be, and the
    bytecode cache, as the zip's ``.pyc`` files are)."""
    with tempfile.TemporaryDirectory(prefix="cold-start-pycache-") as pycache:
        return _cold_starts(_child_env(endpoint, pycache))


def _cold_starts(env: dict[str, str]) -> dict[str, tuple[float, float]]:
    for code in CHILDREN.values():
        _run_child(code, env)
    walls: dict[str, list[float]] = {name: [] for name in CHILDREN}
    cpus: dict[str, list[float]] = {name: [] for name in CHILDREN}
    for _ in range(ROUNDS):
        for name, code in CHILDREN.items():
            wall, cpu = _run_child(code, env)
            walls[name].append(wall)
            cpus[name].append(cpu)
    return {
        name: (statistics.median(walls[name]), statistics.median(cpus[name])) for name in CHILDREN
    }


def _same(value: Any) -> Any:
    return value


def warm_api_post_us() -> float:
    """Median µs of one ``POST /tasks`` through the routes on the in-memory adapters."""
    sys.path.insert(0, str(ROOT))
    from taskmanager.adapters.memory import InMemoryTaskRepository, SystemClock, UuidIdFactory
    from taskmanager.entrypoints.api import create_app
    from taskmanager.entrypoints.bootstrap import Dependencies

    event = json.loads((EVENTS / "api_submit.json").read_text())
    samples: list[float] = []
    for _ in range(7):
        deps = Dependencies(repo=InMemoryTaskRepository(), clock=SystemClock(), ids=UuidIdFactory())
        app = create_app(functools.partial(_same, deps))
        for _ in range(200):
            app.resolve(event, None)  # type: ignore[arg-type]
        gc.collect()
        start = time.perf_counter()
        for _ in range(WARM_CALLS):
            response = app.resolve(event, None)  # type: ignore[arg-type]
        samples.append((time.perf_counter() - start) / WARM_CALLS * 1e6)
        assert response["statusCode"] == 202
    return statistics.median(samples)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        cold = cold_starts(f"http://{host!s}:{port}")
    finally:
        server.shutdown()
        server.server_close()
    base_wall, base_cpu = cold.pop("baseline")
    print(f"{'handler':<12}{'wall ms':>10}{'ratio':>8}{'cpu ms':>10}{'ratio':>8}")
    print(f"{'baseline':<12}{base_wall * 1000:>10.0f}{1:>8.2f}{base_cpu * 1000:>10.0f}{1:>8.2f}")
    for name, (wall, cpu) in cold.items():
        print(
            f"{name:<12}{wall * 1000:>10.0f}{wall / base_wall:>8.2f}"
            f"{cpu * 1000:>10.0f}{cpu / base_cpu:>8.2f}"
        )
    print(f"AWS calls answered by the stub: {dict(sorted(_Stub.calls.items()))}")
    print("(cpu: the children's own CPU time, steadier than wall time on a busy machine)")
    for name, (wall, _cpu) in cold.items():
        print(f"ratio cold/{name}: {wall / base_wall:.2f}")
    print(f"warm api post µs: {warm_api_post_us():.0f}")


if __name__ == "__main__":
    main()
