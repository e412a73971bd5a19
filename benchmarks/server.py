"""`taskmanager serve` over loopback HTTP beside a bare JSON endpoint on uvicorn, in one run.

- bare: a minimal ASGI app on uvicorn (the same uvicorn, loop and HTTP parser the server
  uses: uvloop + httptools when installed) answering ``{"ok": true}``;
- post: ``POST /tasks`` of a type with no processor (validation, one SQLite transaction with
  its outbox row, the dispatcher delivering the event);
- get: ``GET /tasks/{id}`` of one task;
- echo: submit ``demo.echo`` and follow its event stream until SUCCESSFUL, one at a time.

Each load run is bounded (``--seconds``, fixed ``--connections``) and made by a load generator
in another process: ``wrk`` (Debian's package) when installed, else a Python asyncio client.
Runs are interleaved in rounds, each round in the reverse order of the one before (bare,
post, get, then get, post, bare, ...). A ratio is taken within each round, between runs
seconds apart, and the median of the rounds' ratios is reported: this shared machine's
speed swings by half from minute to minute, and a ratio of two medians taken minutes apart
would carry that swing.

Run: ``python benchmarks/server.py`` (about a minute). Prints a table and the lines
``ratio post/bare: X``, ``ratio get/bare: Y`` and ``echo p50 ms: N``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BARE_APP = textwrap.dedent(
    """
    import sys
    import uvicorn

    BODY = b'{"ok":true}'
    HEADERS = [(b"content-type", b"application/json")]

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": BODY})

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False, lifespan="off")
    """
)

WRK_POST = textwrap.dedent(
    """
    wrk.method = "POST"
    wrk.body = '{"type": "bench.noop", "input": {"n": 1}}'
    wrk.headers["Content-Type"] = "application/json"
    """
)


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, path: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            connection.getresponse().read()
            connection.close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answers on port {port}")


def request(port: int, method: str, path: str, body: Any = None) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data else {}
    connection.request(method, path, body=data, headers=headers)
    payload = connection.getresponse().read()
    connection.close()
    return json.loads(payload)


# --- load generators (each runs in its own process) -----------------------------------------


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if match is None:
        raise ValueError(text)
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def load_wrk(wrk: str, url: str, method: str, seconds: float, connections: int) -> Run:
    command = [wrk, "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    with tempfile.TemporaryDirectory() as scratch:
        if method == "POST":
            script = Path(scratch) / "post.lua"
            script.write_text(WRK_POST)
            command[1:1] = ["-s", str(script)]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(match.group(1))
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    ):
        errors += sum(int(n) for n in match.groups())
    return Run(rps, p50, p99, total, errors)


async def _python_load(port: int, method: str, path: str, seconds: float, connections: int) -> Run:
    body = b'{"type": "bench.noop", "input": {"n": 1}}' if method == "POST" else b""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < stop:
            started = time.perf_counter()
            writer.write(head + body)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in {b"\r\n", b""}:
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                elif line.lower().startswith(b"transfer-encoding: chunked"):
                    length = -1
            if length >= 0:
                await reader.readexactly(length)
            else:
                while (size := int((await reader.readline()).strip(), 16)) > 0:
                    await reader.readexactly(size + 2)
                await reader.readline()
            latencies.append(time.perf_counter() - started)
            if not status_line.split()[1].startswith((b"2", b"3")):
                errors += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return Run(
        len(latencies) / elapsed,
        latencies[len(latencies) // 2] * 1000,
        latencies[int(len(latencies) * 0.99)] * 1000,
        len(latencies),
        errors,
    )


def load(url: str, method: str, seconds: float, connections: int) -> Run:
    """One bounded run from a separate process."""
    wrk = shutil.which("wrk")
    if wrk is not None:
        return load_wrk(wrk, url, method, seconds, connections)
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--load",
            json.dumps([port, method, path, seconds, connections]),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return Run(**json.loads(out))


# --- the measurement ------------------------------------------------------------------------


def echo_latencies(port: int, count: int) -> list[float]:
    """Submit demo.echo and read its event stream until SUCCESSFUL; milliseconds each."""
    samples: list[float] = []
    post = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for n in range(count):
        started = time.perf_counter()
        body = json.dumps({"type": "demo.echo", "input": {"n": n}}).encode()
        post.request("POST", "/tasks", body=body, headers={"Content-Type": "application/json"})
        task = json.loads(post.getresponse().read())
        stream = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        stream.request("GET", f"/tasks/{task['id']}/events")
        response = stream.getresponse()
        status = ""
        while status not in {"SUCCESSFUL", "FAILED"}:
            line = response.readline()
            if not line:
                raise RuntimeError("stream ended before the task finished")
            if line.startswith(b"data:"):
                status = json.loads(line[5:])["status"]
        samples.append((time.perf_counter() - started) * 1000)
        stream.close()
        if status != "SUCCESSFUL":
            raise RuntimeError(f"demo.echo ended {status}")
    post.close()
    return samples


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each load run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--echo", type=int, default=200, help="demo.echo round trips")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        port, method, path, seconds, connections = json.loads(args.load)
        run = asyncio.run(_python_load(port, method, path, seconds, connections))
        print(json.dumps(run.__dict__))
        return

    bare_port, app_port = free_port(), free_port()
    scratch = tempfile.mkdtemp(prefix="taskmanager-bench-")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    bare = subprocess.Popen(
        [sys.executable, "-c", BARE_APP, str(bare_port)], env=env, stdout=subprocess.DEVNULL
    )
    server = subprocess.Popen(
        [
            sys.executable, "-m", "taskmanager.entrypoints.cli", "serve",
            "--port", str(app_port), "--db", str(Path(scratch) / "bench.db"),
            # bench.noop tasks have no processor: they stay CREATED, as the load wants.
            "--accept-any-type",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_ready(bare_port, "/")
        wait_ready(app_port, "/tasks?limit=1")
        task_id = request(app_port, "POST", "/tasks", {"type": "bench.noop"})["id"]
        targets = {
            "bare": (f"http://127.0.0.1:{bare_port}/", "GET"),
            "post": (f"http://127.0.0.1:{app_port}/tasks", "POST"),
            "get": (f"http://127.0.0.1:{app_port}/tasks/{task_id}", "GET"),
        }
        generator = "wrk" if shutil.which("wrk") else "python asyncio client"
        print(
            f"load: {generator}, {args.connections} connections, {args.rounds} rounds of "
            f"{args.seconds:g} s each, interleaved; medians, ratios within each round"
        )
        for url, method in targets.values():  # warm-up
            load(url, method, 1.0, args.connections)
        runs: dict[str, list[Run]] = {name: [] for name in targets}
        for number in range(args.rounds):
            order = list(targets.items())
            for name, (url, method) in order if number % 2 == 0 else reversed(order):
                runs[name].append(load(url, method, args.seconds, args.connections))
        echo = echo_latencies(app_port, args.echo)
    finally:
        for process in (bare, server):
            process.terminate()
            process.wait(30)
        shutil.rmtree(scratch, ignore_errors=True)

    medians: dict[str, Run] = {}
    print(f"{'run':<6} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'requests':>10} {'errors':>7}")
    for name, results in runs.items():
        medians[name] = Run(
            statistics.median(r.rps for r in results),
            statistics.median(r.p50_ms for r in results),
            statistics.median(r.p99_ms for r in results),
            sum(r.requests for r in results),
            sum(r.errors for r in results),
        )
        m = medians[name]
        row = f"{name:<6} {m.rps:>10.0f} {m.p50_ms:>8.2f} {m.p99_ms:>8.2f}"
        print(f"{row} {m.requests:>10} {m.errors:>7}")
    print(
        f"echo   submit->SUCCESSFUL over {args.echo} tasks: p50 {percentile(echo, 0.5):.2f} ms, "
        f"p99 {percentile(echo, 0.99):.2f} ms"
    )
    ratios = {
        name: [run.rps / bare.rps for run, bare in zip(runs[name], runs["bare"], strict=True)]
        for name in ("post", "get")
    }
    for name, values in ratios.items():
        print(f"{name}/bare by round: {', '.join(f'{ratio:.3f}' for ratio in values)}")
    for name, values in ratios.items():
        print(f"ratio {name}/bare: {statistics.median(values):.3f}")
    print(f"echo p50 ms: {percentile(echo, 0.5):.2f}")
    print(f"echo p99 ms: {percentile(echo, 0.99):.2f}")
    print(f"errors: {sum(m.errors for m in medians.values())}")


if __name__ == "__main__":
    main()
