"""docs/storage.md's examples run as documented and print what the guide says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout.splitlines()


def test_sqlite_example_delivers_every_committed_event_after_reopening(tmp_path: Path) -> None:
    lines = _run(str(ROOT / "docs/examples/storage_sqlite.py"), str(tmp_path / "tasks.db"))
    assert lines == [
        "update: applied",
        "pending after the writes: 4",
        "delivered TaskCreated version 1",
        "delivered TaskCreated version 1",
        "delivered TaskCreated version 1",
        "delivered TaskSuccessful version 2",
        "pending after dispatch: 0",
        "page: ['2026-11', '2026-10']",
        "page: ['2026-09']",
    ]


def test_aws_example_runs_against_moto_server(moto_server: str) -> None:
    lines = _run(str(ROOT / "docs/examples/storage_aws.py"), moto_server)
    assert lines == [
        "indexes: ['by-deadline', 'by-heartbeat', 'by-owner']",
        "replayed: True True",
        "update: RUNNING applied",
        "update: SUCCESSFUL applied",
        "update: SUCCESSFUL duplicate",
        "published: SUCCESSFUL version 3",
    ]


def test_storage_guide_points_at_the_tested_examples() -> None:
    guide = (ROOT / "docs/storage.md").read_text(encoding="utf-8")
    assert "docs/examples/storage_sqlite.py" in guide
    assert "docs/examples/storage_aws.py" in guide


def test_owner_migration_example_moves_session_owned_tasks_to_their_role(
    moto_server: str,
) -> None:
    import uuid

    import boto3

    from taskmanager.adapters.dynamodb import DynamoDBTaskRepository, create_table
    from taskmanager.adapters.memory import SystemClock, UuidIdFactory
    from taskmanager.domain.model import SubmitTask
    from taskmanager.domain.services import list_tasks, submit_task

    client = boto3.client("dynamodb", endpoint_url=moto_server)
    table = f"tasks-migrate-{uuid.uuid4().hex[:8]}"
    create_table(client, table)
    repo, clock = DynamoDBTaskRepository(client, table), SystemClock()
    role = "arn:aws:sts::123456789012:assumed-role/report-service"
    owners = [
        f"{role}/i-replica-1",
        f"{role}/botocore-session-1767",
        "arn:aws:iam::123456789012:user/alice",
        "arn:aws:sts::123456789012:assumed-role/Cognito_Auth/CognitoIdentityCredentials",
    ]
    for owner in owners:
        submit_task(SubmitTask(type="r"), owner=owner, repo=repo, clock=clock, ids=UuidIdFactory())

    script = str(ROOT / "docs/examples/migrate_owners.py")
    assert _run(script, table, moto_server) == ["rewrote the owner of 2 task(s)"]
    assert _run(script, table, moto_server) == ["rewrote the owner of 0 task(s)"]

    def owned(owner: str) -> list[int]:
        page = list_tasks(owner=owner, repo=repo, clock=clock)
        return [task.version for task in page.items]

    assert owned(role) == [1, 1]  # both sessions' tasks, versions unchanged (no event)
    assert owned(owners[0]) == []
    assert owned(owners[2]) == [1]
    assert owned(owners[3]) == [1]  # a shared Cognito session is left to age out
