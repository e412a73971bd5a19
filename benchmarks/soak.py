"""Soak: `taskmanager serve` under a bounded load from a second process, on loopback.

    python benchmarks/soak.py [--seconds 60] [--clients 32] [--baseline-seconds 10]

A load process runs ``--clients`` threads for ``--seconds``; each submits a ``demo.echo``
task and polls it until it is terminal, over and over (keep-alive HTTP/1.1 connections).
Beside it, in the same run, the same load is pointed at a baseline server: a bare uvicorn
app that answers the same routes with a fixed body and does no work (once before and once
after the soak; the median is used). Reported: requests/s (and the ratio to the baseline),
errors (must be 0), tasks accepted vs terminal after the drain (must be equal), p50/p99
latency (and the p99 ratio), the server's peak RSS, and its mean RSS in the first and the
last 10 s of the load (growth without bound would show as last >> first).

Loopback only; every loop is bounded in time and in count.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parents[1]
MAX_REQUESTS_PER_CLIENT: Final = 200_000
TERMINAL: Final = {"SUCCESSFUL", "FAILED"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited early")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/tasks?limit=1")
            if connection.getresponse().status == 200:
                connection.close()
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# --- the load process ------------------------------------------------------------------------


def client_loop(
    port: int, stop_at: float, latencies: list[float], counts: dict[str, int], ids: list[str]
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps({"type": "demo.echo", "input": {"soak": True}, "timeout_seconds": 300})
    headers = {"Content-Type": "application/json"}

    def call(method: str, path: str, data: str | None = None) -> tuple[int, Any]:
        nonlocal connection
        started = time.perf_counter()
        try:
            connection.request(method, path, body=data, headers=headers if data else {})
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            counts["errors"] += 1
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            return 0, None
        latencies.append(time.perf_counter() - started)
        counts["requests"] += 1
        if response.status >= 400:
            counts["errors"] += 1
        return response.status, json.loads(payload)

    for _ in range(MAX_REQUESTS_PER_CLIENT):
        if time.monotonic() >= stop_at:
            break
        status, task = call("POST", "/tasks", body)
        if status != 202:
            continue
        ids.append(task["id"])
        while task["status"] not in TERMINAL and time.monotonic() < stop_at:
            time.sleep(0.02)
            status, task = call("GET", f"/tasks/{task['id']}")
            if status != 200:
                break
    connection.close()


def run_load(port: int, seconds: float, clients: int, out: Path) -> None:
    stop_at = time.monotonic() + seconds
    latencies: list[list[float]] = [[] for _ in range(clients)]
    counts = [{"requests": 0, "errors": 0} for _ in range(clients)]
    ids: list[list[str]] = [[] for _ in range(clients)]
    threads = [
        threading.Thread(target=client_loop, args=(port, stop_at, latencies[n], counts[n], ids[n]))
        for n in range(clients)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    elapsed = time.monotonic() - started
    all_latencies = sorted(x for part in latencies for x in part)
    out.write_text(
        json.dumps(
            {
                "elapsed": elapsed,
                "requests": sum(c["requests"] for c in counts),
                "errors": sum(c["errors"] for c in counts),
                "accepted": [i for part in ids for i in part],
                "p50_ms": 1000 * all_latencies[len(all_latencies) // 2] if all_latencies else 0,
                "p99_ms": 1000 * all_latencies[int(len(all_latencies) * 0.99)]
                if all_latencies
                else 0,
            }
        )
    )


# --- the servers -----------------------------------------------------------------------------


BASELINE_APP: Final = """
import json, itertools
counter = itertools.count()
TASK = {"status": "SUCCESSFUL", "type": "demo.echo", "input": {"soak": True}}

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["method"] == "POST":
        status, body = 202, {**TASK, "id": f"b-{next(counter)}"}
    elif scope["path"] == "/tasks":
        status, body = 200, {"items": [], "next_cursor": None}
    else:
        status, body = 200, {**TASK, "id": scope["path"].rsplit("/", 1)[-1]}
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})
"""


def start_taskmanager(directory: Path, port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "taskmanager.entrypoints.cli",
        "serve",
        "--port",
        str(port),
        "--db",
        str(directory / "soak.db"),
        "--workers",
        "4",
        "--grace-seconds",
        "2",
    ]
    log = (directory / "server.log").open("wb")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=directory)


def start_baseline(directory: Path, port: int) -> subprocess.Popen[bytes]:
    (directory / "baseline_app.py").write_text(BASELINE_APP)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(directory),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        "baseline_app:app",
    ]
    return subprocess.Popen(command, cwd=directory)


def load_from_second_process(port: int, seconds: float, clients: int, directory: Path) -> Any:
    out = directory / f"load-{port}-{time.monotonic_ns()}.json"
    command = [
        sys.executable,
        __file__,
        "--load",
        str(port),
        "--seconds",
        str(seconds),
        "--clients",
        str(clients),
        "--out",
        str(out),
    ]
    return subprocess.Popen(command), out


def measure(
    server: subprocess.Popen[bytes], port: int, seconds: float, clients: int, directory: Path
) -> dict[str, Any]:
    load, out = load_from_second_process(port, seconds, clients, directory)
    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    while load.poll() is None and time.monotonic() - started < seconds + 120:
        samples.append((time.monotonic() - started, rss_kib(server.pid)))
        time.sleep(0.5)
    load.wait(60)
    result: dict[str, Any] = json.loads(out.read_text())
    result["rss_samples"] = samples
    return result


def drain(port: int, ids: list[str], timeout: float = 120) -> int:
    """Poll until every accepted task is terminal (bounded); returns how many are."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    deadline = time.monotonic() + timeout
    terminal = 0
    pending = list(ids)
    while pending and time.monotonic() < deadline:
        still = []
        for task_id in pending:
            connection.request("GET", f"/tasks/{task_id}")
            task = json.loads(connection.getresponse().read())
            if task.get("status") in TERMINAL:
                terminal += 1
            else:
                still.append(task_id)
        pending = still
        if pending:
            time.sleep(0.2)
    connection.close()
    return terminal


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--baseline-seconds", type=float, default=10)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--load", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        run_load(args.load, args.seconds, args.clients, args.out)
        return 0

    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        directory = Path(tmp)
        # Baseline before and after the soak (the machine is noisy); the median is used.
        baselines = [run_baseline(directory, args)]
        soak = run_soak(directory, args)
        baselines.append(run_baseline(directory, args))
    report(soak, baselines, args)
    ok = soak["errors"] == 0 and soak["accepted"] == soak["terminal"]
    return 0 if ok else 1


def run_baseline(directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    baseline = start_baseline(directory, port)
    try:
        wait_ready(port, baseline)
        return measure(baseline, port, args.baseline_seconds, args.clients, directory)
    finally:
        baseline.send_signal(signal.SIGTERM)
        baseline.wait(30)


def run_soak(directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    server = start_taskmanager(directory, port)
    try:
        wait_ready(port, server)
        result = measure(server, port, args.seconds, args.clients, directory)
        ids = result.pop("accepted")
        result["accepted"] = len(ids)
        result["terminal"] = drain(port, ids)
        result["rss_after_drain_kib"] = rss_kib(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    return result


def window_mean(samples: list[tuple[float, int]], start: float, end: float) -> float:
    values = [rss for t, rss in samples if start <= t < end]
    return statistics.fmean(values) if values else 0.0


def report(soak: dict[str, Any], baselines: list[dict[str, Any]], args: Any) -> None:
    samples = soak["rss_samples"]
    last_t = samples[-1][0] if samples else 0.0
    first = window_mean(samples, 0, 10)
    last = window_mean(samples, max(0.0, last_t - 10), last_t + 1)
    rps = soak["requests"] / soak["elapsed"]
    base_rps = statistics.median(b["requests"] / b["elapsed"] for b in baselines)
    base_p99 = statistics.median(b["p99_ms"] for b in baselines)
    figures = {
        "seconds": args.seconds,
        "clients": args.clients,
        "requests": soak["requests"],
        "requests_per_s": round(rps, 1),
        "baseline_requests_per_s": round(base_rps, 1),
        "requests_per_s_ratio": round(rps / base_rps, 3) if base_rps else None,
        "errors": soak["errors"],
        "tasks_accepted": soak["accepted"],
        "tasks_terminal_after_drain": soak["terminal"],
        "p50_ms": round(soak["p50_ms"], 2),
        "p99_ms": round(soak["p99_ms"], 2),
        "baseline_p99_ms": round(base_p99, 2),
        "p99_ratio": round(soak["p99_ms"] / base_p99, 2) if base_p99 else None,
        "peak_rss_mib": round(max(r for _, r in samples) / 1024, 1) if samples else None,
        "rss_first_10s_mib": round(first / 1024, 1),
        "rss_last_10s_mib": round(last / 1024, 1),
        "rss_last_over_first": round(last / first, 3) if first else None,
        "rss_after_drain_mib": round(soak["rss_after_drain_kib"] / 1024, 1),
    }
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
