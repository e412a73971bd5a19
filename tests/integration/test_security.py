"""Security checks: owner isolation on every route, SQL built only from parameters, loopback
binding by default.

Owner isolation runs on the api handler over every store (memory, SQLite, DynamoDB on moto)
and on ``taskmanager serve`` over real HTTP, including its server-sent event streams.
"""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import boto3
import pytest
from moto import mock_aws

from taskmanager.adapters.dynamodb import DynamoDBTaskRepository, create_table
from taskmanager.adapters.memory import (
    InMemoryTaskRepository,
    ManualClock,
    SystemClock,
    UuidIdFactory,
)
from taskmanager.adapters.sqlite import SQLiteTaskRepository
from taskmanager.domain import services
from taskmanager.domain.errors import InvalidCursorError, TaskNotFoundError
from taskmanager.domain.events import TaskUpdated
from taskmanager.domain.model import SubmitTask, TaskStatus
from taskmanager.domain.ports import ListQuery
from taskmanager.entrypoints.api import create_app
from taskmanager.entrypoints.bootstrap import Dependencies
from tests.e2e.local.harness import ROOT, LocalServer, cli_env, free_port
from tests.support import ALICE, http_event

if TYPE_CHECKING:
    from collections.abc import Iterator

    from taskmanager.domain.ports import TaskRepository

BOB: Final = "arn:aws:iam::123456789012:user/bob"

INJECTIONS: Final = [
    "' OR '1'='1",
    "'; DROP TABLE tasks; --",
    '" OR ""="',
    "x' UNION SELECT * FROM outbox --",
    "%",
    "_",
    "*",
    "\\",
    "local') OR 1=1 --",
    "1; ATTACH DATABASE '/tmp/pwn.db' AS pwn; --",
    "\x00",
    "é' OR 'é'='é",
]


_SQL_LITERAL: Final = re.compile(r"'(?:[^']|'')*'")
_HOSTILE_FRAGMENTS: Final = ("DROP", "UNION", "ATTACH", "1=1", "'1'='1", '""="', "--")


# --- the api handler, on every store ---------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite", "dynamodb"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TaskRepository]:
    if request.param == "memory":
        yield InMemoryTaskRepository()
    elif request.param == "sqlite":
        with SQLiteTaskRepository(tmp_path / "tasks.db") as sqlite_repo:
            yield sqlite_repo
    else:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            create_table(client, "tasks")
            yield DynamoDBTaskRepository(client, "tasks")


class Caller:
    def __init__(self, repo: TaskRepository) -> None:
        self.clock = ManualClock()
        deps = Dependencies(repo=repo, clock=self.clock, ids=UuidIdFactory())
        self.app = create_app(lambda: deps)

    def __call__(
        self, owner: str, method: str, path: str, body: Any = None, **kw: Any
    ) -> tuple[int, Any]:
        text = None if body is None else json.dumps(body)
        response = self.app.resolve(http_event(method, path, text, owner=owner, **kw), None)  # type: ignore[arg-type]
        return response["statusCode"], json.loads(response["body"])


def test_another_owners_task_is_404_on_every_route_and_never_listed(repo: TaskRepository) -> None:
    call = Caller(repo)
    mine = []
    for n in range(3):
        status, task = call(ALICE, "POST", "/tasks", {"type": "secret.job", "input": n})
        assert status == 202
        mine.append(task["id"])
        call.clock.advance(1)
    theirs = call(BOB, "POST", "/tasks", {"type": "secret.job"})[1]["id"]

    for task_id in mine:
        for method, path in (("GET", f"/tasks/{task_id}"), ("POST", f"/tasks/{task_id}/cancel")):
            status, body = call(BOB, method, path)
            assert (status, body["error"]["code"]) == (404, "TASK_NOT_FOUND")
            # the same answer as for a task that does not exist: nothing tells them apart
            unknown = "00000000-0000-4000-8000-000000000000"
            other = call(BOB, method, path.replace(task_id, unknown))[1]
            assert json.dumps(other).replace(unknown, task_id) == json.dumps(body)
    for query in (
        None,
        {"status": "CREATED"},
        {"type": "secret.job"},
        {"limit": "100"},
        {"status": "CREATED", "type": "secret.job", "limit": "1"},
    ):
        status, page = call(BOB, "GET", "/tasks", query=query)
        assert status == 200
        assert {t["id"] for t in page["items"]} <= {theirs}
        assert not {t["id"] for t in page["items"]} & set(mine)

    # Alice's cursor does not page through Alice's tasks for Bob: SQLite and DynamoDB
    # cursors are bound to their owner (400); the memory store's only positions Bob's own.
    status, page = call(ALICE, "GET", "/tasks", query={"limit": "1"})
    assert page["next_cursor"]
    status, body = call(BOB, "GET", "/tasks", query={"limit": "1", "cursor": page["next_cursor"]})
    if isinstance(repo, InMemoryTaskRepository):
        assert status == 200
        assert {t["id"] for t in body["items"]} <= {theirs}
    else:
        assert (status, body["error"]["code"]) == (400, "INVALID_REQUEST")

    # Bob's failed cancels changed nothing of Alice's.
    for task_id in mine:
        status, task = call(ALICE, "GET", f"/tasks/{task_id}")
        assert (status, task["status"], task["version"]) == (200, "CREATED", 1)


def test_the_same_idempotency_key_from_two_owners_makes_two_tasks(repo: TaskRepository) -> None:
    call = Caller(repo)
    key = {"Idempotency-Key": "shared-key"}
    status_a, a = call(ALICE, "POST", "/tasks", {"type": "t"}, headers=key)
    status_b, b = call(BOB, "POST", "/tasks", {"type": "t", "input": "other"}, headers=key)
    assert (status_a, status_b) == (202, 202)
    assert a["id"] != b["id"]
    assert call(BOB, "GET", f"/tasks/{a['id']}")[0] == 404


# --- the local server, over HTTP and its event streams ---------------------------------------


def _seed_foreign_task(db: Path, timeout_seconds: int) -> str:
    """A task owned by someone other than ``local``, written straight into the file."""
    with SQLiteTaskRepository(db) as store:
        result = services.submit_task(
            SubmitTask(type="foreign.job", input={"secret": 1}, timeout_seconds=timeout_seconds),
            owner=BOB,
            repo=store,
            clock=SystemClock(),
            ids=UuidIdFactory(),
        )
        return result.task.id


def test_local_server_never_shows_another_owners_task(tmp_path: Path) -> None:
    db = tmp_path / "taskmanager.db"
    foreign = _seed_foreign_task(db, timeout_seconds=3_600)
    expiring = _seed_foreign_task(db, timeout_seconds=2)
    server = LocalServer(db, ("--grace-seconds", "1")).start()
    try:
        seen_on_all_events: list[str] = []

        def follow_all() -> None:
            try:
                for _, data in server.events("/events", timeout=60):
                    seen_on_all_events.append(str(data.get("id")))
            except OSError:  # the server stopped under us: the test is over
                return

        watcher = threading.Thread(target=follow_all, daemon=True)
        watcher.start()
        time.sleep(0.3)

        mine = server.submit("demo.echo", {"x": 1})
        for task_id in (foreign, expiring):
            for method, path in (
                ("GET", f"/tasks/{task_id}"),
                ("POST", f"/tasks/{task_id}/cancel"),
                ("GET", f"/tasks/{task_id}/events"),
            ):
                response = server.request(method, path)
                assert response.status == 404, (method, path, response.body)
                assert response.body["error"]["code"] == "TASK_NOT_FOUND"
        for query in ("", "?type=foreign.job", "?status=CREATED", "?limit=100"):
            page = server.request("GET", f"/tasks{query}").body
            ids = {t["id"] for t in page["items"]}
            assert foreign not in ids
            assert expiring not in ids

        # The sweeper fails the foreign task at its deadline; its change must not reach
        # the local owner's stream of all changes.
        with SQLiteTaskRepository(db) as store:
            deadline = time.monotonic() + 10
            while (task := store.get(expiring)) is not None and task.status != TaskStatus.FAILED:
                assert time.monotonic() < deadline, "the sweeper never failed the task"
                time.sleep(0.1)
        server.wait_for(mine["id"], {"SUCCESSFUL"})
        time.sleep(0.5)
        assert mine["id"] in seen_on_all_events
        assert expiring not in seen_on_all_events
        assert foreign not in seen_on_all_events
    finally:
        server.stop()


# --- SQL is built from parameters only -------------------------------------------------------


def test_injection_strings_in_every_sqlite_filter_are_data_not_sql(tmp_path: Path) -> None:
    """Each filter gets hostile strings: they come back as data (stored verbatim, found by
    exact match only), the SQLite trace shows none of them ever became statement text, and
    the file is intact."""
    clock = ManualClock()
    with SQLiteTaskRepository(tmp_path / "tasks.db") as repo:
        statements: list[str] = []
        repo._db().set_trace_callback(statements.append)  # this thread's connection
        created = services.submit_task(
            SubmitTask(type="real.job"), owner="local", repo=repo, clock=clock, ids=UuidIdFactory()
        ).task
        for text in INJECTIONS:
            assert repo.get(text) is None
            for status in (None, TaskStatus.CREATED):
                page = repo.list_page(
                    ListQuery(owner=text, limit=100, status=status, type=text), clock.now()
                )
                assert page.items == []
                page = repo.list_page(ListQuery(owner="local", limit=100, type=text), clock.now())
                assert page.items == []
            with pytest.raises(InvalidCursorError):
                repo.list_page(ListQuery(owner="local", limit=5, cursor=text), clock.now())
            with pytest.raises(TaskNotFoundError):
                services.cancel_task(text, owner="local", repo=repo, clock=clock)
            outcome = services.record_update(
                TaskUpdated(task_id=text, status=TaskStatus.RUNNING), repo=repo, clock=clock
            )
            assert outcome.outcome.value == "rejected"
            # A hostile owner and idempotency key are stored verbatim and found again.
            stored = services.submit_task(
                SubmitTask(type="real.job", input=text),
                owner=text,
                repo=repo,
                clock=clock,
                ids=UuidIdFactory(),
                idempotency_key="k" + str(len(statements)),
            ).task
            again = repo.list_page(ListQuery(owner=text, limit=100), clock.now()).items
            assert [t.id for t in again] == [stored.id]
            assert again[0].input == text
        assert repo.due(clock.now() + timedelta(days=30), 1_000)
        # SQLite's trace shows each statement with its bound values expanded as SQL string
        # literals. Strip the literals: what remains is the statement's own text, and no
        # fragment of a hostile value may be found in it.
        assert statements
        for statement in statements:
            skeleton = _SQL_LITERAL.sub("''", statement).upper()
            for fragment in _HOSTILE_FRAGMENTS:
                assert fragment not in skeleton, statement
        assert repo.get(created.id) == created

    with sqlite3.connect(tmp_path / "tasks.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert {"tasks", "outbox"} <= tables
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        count = db.execute("SELECT count(*) FROM tasks").fetchone()[0]
        assert count == 1 + len(INJECTIONS)


# --- binding ---------------------------------------------------------------------------------


def test_serve_binds_loopback_by_default(tmp_path: Path) -> None:
    server = LocalServer(tmp_path / "taskmanager.db").start()
    try:
        port_hex = f"{server.port:04X}"
        listening = [
            line.split()[1]
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
            if line.split()[1].endswith(":" + port_hex) and line.split()[3] == "0A"
        ]
        assert listening == ["0100007F:" + port_hex]  # 127.0.0.1, and nothing else
    finally:
        server.stop()


def test_serve_warns_when_told_to_bind_beyond_loopback(tmp_path: Path) -> None:
    # 192.0.2.1 is TEST-NET-1: not this machine's address, so nothing is ever exposed; the
    # warning comes before the bind, which then fails.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "taskmanager.entrypoints.cli",
            "serve",
            "--host",
            "192.0.2.1",
            "--port",
            str(free_port()),
            "--db",
            str(tmp_path / "taskmanager.db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=cli_env(),
        check=False,
    )
    output = result.stdout + result.stderr
    assert "192.0.2.1" in output
    assert "no authentication" in output
    assert result.returncode != 0


def _endless_header_is_cut_off(port: int) -> bool:
    """Send one header of up to 4 MiB in pieces, never ending it: the server answers 431 and
    closes (the client may see the reset first) rather than keep reading."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(b"GET /tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
            for _ in range(64):
                sock.sendall(b"a" * 65536)
                time.sleep(0.001)
            answer = sock.recv(64)
        except OSError:  # reset: the server closed while the client still sent
            return True
    return answer.startswith(b"HTTP/1.1 431 ")


# --- only its own hosts and its own page ------------------------------------------------------


def test_serve_refuses_foreign_hosts_cross_site_writes_and_oversized_headers(
    tmp_path: Path,
) -> None:
    args = ("--allowed-host", "Tasks.Home.Arpa", "--accept-any-type")
    server = LocalServer(tmp_path / "taskmanager.db", args).start()
    try:
        port = server.port
        task = server.submit("never.runs")
        # DNS rebinding: a page of evil.example.com whose name now points at this machine.
        for method, path in (
            ("GET", "/tasks"),
            ("GET", f"/tasks/{task['id']}"),
            ("GET", "/"),
            ("GET", "/static/app.js"),
            ("GET", "/events"),
            ("POST", "/tasks"),
            ("POST", f"/tasks/{task['id']}/cancel"),
        ):
            for host in ("evil.example.com", f"evil.example.com:{port}", "127.0.0.1.nip.io"):
                response = server.request(
                    method, path, {"type": "t"} if method == "POST" else None,
                    headers={"Host": host},
                )  # fmt: skip
                assert response.status == 421, (method, path, host, response.body)
                assert response.body["error"]["code"] == "HOST_NOT_ALLOWED"
        for host in (
            f"127.0.0.1:{port}",
            "127.0.0.1",
            f"localhost:{port}",
            "LOCALHOST",
            f"[::1]:{port}",
            "tasks.home.arpa",
            f"tasks.home.arpa:{port}",
        ):
            assert server.request("GET", "/tasks", headers={"Host": host}).status == 200, host
        assert server.get(task["id"])["status"] == "CREATED"
        assert len(server.request("GET", "/tasks").body["items"]) == 1  # no POST got in

        # A form posted from another site (no preflight) names that site in Origin.
        for origin in (
            "https://evil.example.com",
            f"http://localhost:{port + 1}",  # another local server's page
            f"http://127.0.0.1:{port}.evil.example.com",
            "null",  # a sandboxed frame, a file:// page
        ):
            response = server.request(
                "POST", f"/tasks/{task['id']}/cancel", headers={"Origin": origin}
            )
            assert (response.status, response.body["error"]["code"]) == (
                403,
                "CROSS_SITE_REQUEST",
            ), origin
            response = server.request("POST", "/tasks", {"type": "t"}, headers={"Origin": origin})
            assert response.status == 403, origin
        assert server.get(task["id"])["status"] == "CREATED"
        # The page's own requests, and requests without Origin (curl, the CLI), are served.
        own = {"Origin": f"http://127.0.0.1:{port}"}
        assert server.request("POST", "/tasks", {"type": "t"}, headers=own).status == 202
        named = {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}
        assert server.request("POST", "/tasks", {"type": "t"}, headers=named).status == 202
        cancel = server.request("POST", f"/tasks/{task['id']}/cancel", headers=own)
        assert (cancel.status, cancel.body["status"]) == (202, "FAILED"), cancel.body
        # A GET with another Origin is served: the browser hides the answer from that page
        # (no CORS header is ever sent), and a GET changes nothing.
        response = server.request("GET", "/tasks", headers={"Origin": "https://evil.example.com"})
        assert response.status == 200
        assert "access-control-allow-origin" not in response.headers

        # A head over 16 KiB, read at once or in pieces: 431, before it is read whole.
        for size in (17 * 1024, 200 * 1024):
            response = server.request("GET", "/tasks", headers={"X-Big": "a" * size})
            assert (response.status, response.body["error"]["code"]) == (
                431,
                "HEADERS_TOO_LARGE",
            ), size
        many = {f"X-Header-{n}": "b" * 100 for n in range(200)}
        assert server.request("GET", "/tasks", headers=many).status == 431
        assert server.request("GET", "/tasks", headers={"X-Fits": "c" * 8000}).status == 200
        assert _endless_header_is_cut_off(port)

        # The page says where its script, style and requests may come from, and that no
        # other site may frame it.
        page = server.request("GET", "/")
        assert page.status == 200
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        assert server.process is not None
        assert server.process.poll() is None
    finally:
        server.stop()
