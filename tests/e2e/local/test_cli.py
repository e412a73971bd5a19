"""The `taskmanager` command through subprocess: exit codes, --json, --wait, watch."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING

from tests.e2e.local.harness import cli_env

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e.local.harness import LocalServer


def run(server: LocalServer | None, *args: str) -> subprocess.CompletedProcess[str]:
    url = ["--url", server.url] if server is not None else []
    return subprocess.run(
        [sys.executable, "-m", "taskmanager.entrypoints.cli", *url, *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
        check=False,
    )


def test_submit_json_prints_the_task(server: LocalServer) -> None:
    result = run(server, "--json", "submit", "no.processor", "--input", '{"a": 1}')
    assert result.returncode == 0, result.stderr
    task = json.loads(result.stdout)
    assert task["status"] == "CREATED"
    assert task["input"] == {"a": 1}
    assert server.get(task["id"])["type"] == "no.processor"


def test_json_flag_also_works_after_the_command(server: LocalServer) -> None:
    result = run(server, "submit", "no.processor", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "CREATED"


def test_submit_wait_exits_0_when_the_task_succeeds(server: LocalServer) -> None:
    result = run(
        server, "submit", "demo.sleep", "--input", '{"seconds": 0.4, "steps": 2}', "--wait"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("submitted ")
    assert "RUNNING 50% step 1/2" in lines
    # the status line, then the task in full, as `get` shows it: through a pipe as well
    end = lines.index("SUCCESSFUL")
    assert lines[end + 1].endswith("demo.sleep  SUCCESSFUL")
    assert '  result: {"slept": ' in result.stdout


def test_submit_wait_exits_1_when_the_task_fails(server: LocalServer) -> None:
    result = run(server, "submit", "demo.fail", "--input", '{"code": "NOPE"}', "--wait")
    assert result.returncode == 1
    assert "FAILED NOPE" in result.stdout
    assert "  error: NOPE: demo.fail always fails" in result.stdout.splitlines()


def test_submit_wait_json_prints_each_change_as_a_line(server: LocalServer) -> None:
    result = run(server, "--json", "submit", "demo.echo", "--input", "[1, 2]", "--wait")
    assert result.returncode == 0, result.stderr
    changes = [json.loads(line) for line in result.stdout.splitlines()]
    assert changes[-1]["status"] == "SUCCESSFUL"
    assert changes[-1]["result"] == [1, 2]
    versions = [c["version"] for c in changes]
    assert versions == sorted(set(versions))


def test_input_from_a_file(server: LocalServer, tmp_path: Path) -> None:
    path = tmp_path / "input.json"
    path.write_text('{"from": "file"}')
    result = run(server, "--json", "submit", "demo.echo", "--input", f"@{path}", "--wait")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["result"] == {"from": "file"}


def test_idempotency_key_gives_the_same_task(server: LocalServer) -> None:
    key = f"cli-{uuid.uuid4()}"
    first = run(server, "--json", "submit", "no.processor", "--idempotency-key", key)
    again = run(server, "--json", "submit", "no.processor", "--idempotency-key", key)
    assert json.loads(first.stdout)["id"] == json.loads(again.stdout)["id"]
    other = run(server, "submit", "no.processor", "--input", "1", "--idempotency-key", key)
    assert other.returncode == 1
    assert "IDEMPOTENCY_KEY_REUSED" in other.stderr


def test_get_list_and_cancel(server: LocalServer) -> None:
    task_type = f"cli.{uuid.uuid4().hex[:8]}"
    task_id = server.submit(task_type, {"k": "v"})["id"]
    shown = run(server, "get", task_id)
    assert shown.returncode == 0
    assert task_id in shown.stdout
    assert 'input: {"k": "v"}' in shown.stdout
    listed = run(server, "--json", "list", "--type", task_type)
    assert [t["id"] for t in json.loads(listed.stdout)["items"]] == [task_id]
    cancelled = run(server, "cancel", task_id)
    assert cancelled.returncode == 0
    assert cancelled.stdout == f"{task_id}  CANCELLED  cancelled by the client that submitted it\n"
    failed = run(server, "list", "--type", task_type, "--status", "FAILED")
    assert task_id in failed.stdout
    again = run(server, "cancel", task_id)
    assert again.returncode == 1
    assert "409 TASK_ALREADY_FINISHED" in again.stderr


def test_a_cancelled_task_shows_as_cancelled_not_failed(server: LocalServer) -> None:
    task_type = f"cli.{uuid.uuid4().hex[:8]}"
    cancelled_id = server.submit(task_type)["id"]
    assert server.request("POST", f"/tasks/{cancelled_id}/cancel").status == 202
    failed_id = server.submit("demo.fail", {"code": "OUT_OF_PAPER", "message": "tray 2"})["id"]
    server.wait_for(failed_id, {"FAILED"})

    shown = run(server, "get", cancelled_id)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"{cancelled_id}  {task_type}  CANCELLED"
    assert "  cancelled by the client that submitted it" in lines
    assert "FAILED" not in shown.stdout
    assert "error:" not in shown.stdout
    # A real failure still shows as FAILED, with its error.
    other = run(server, "get", failed_id).stdout.splitlines()
    assert other[0].endswith("demo.fail  FAILED")
    assert "  error: OUT_OF_PAPER: tray 2" in other

    listed = run(server, "list", "--type", task_type)
    [line] = listed.stdout.splitlines()
    assert line.split()[:2] == [cancelled_id, "CANCELLED"]
    # --json keeps the stored resource as the contract has it.
    as_json = json.loads(run(server, "--json", "get", cancelled_id).stdout)
    assert (as_json["status"], as_json["error"]["code"]) == ("FAILED", "CANCELLED")


def test_unknown_task_exits_1_with_the_error_code(server: LocalServer) -> None:
    result = run(server, "get", str(uuid.uuid4()))
    assert result.returncode == 1
    assert "404 TASK_NOT_FOUND" in result.stderr


def test_watch_plain_lines_when_not_a_terminal(server: LocalServer) -> None:
    task_id = server.submit("demo.sleep", {"seconds": 0.3, "steps": 3})["id"]
    result = run(server, "watch", task_id)
    assert result.returncode == 0
    assert "SUCCESSFUL" in result.stdout.splitlines()
    assert '  result: {"slept": ' in result.stdout
    assert "\r" not in result.stdout


def test_watch_draws_a_progress_bar_on_a_terminal(server: LocalServer) -> None:
    # submit --wait follows the task from its submission, so no step is missed
    command = ["submit", "demo.sleep", "--input", '{"seconds": 2, "steps": 4}', "--wait"]
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "taskmanager.entrypoints.cli", "--url", server.url, *command],
        stdout=follower,
        stderr=follower,
        env=cli_env(),
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(30) == 0
    text = output.decode()
    assert "\r" in text
    assert "[" + "#" * 30 + "] 100.0%  SUCCESSFUL" in text
    assert " 50.0%  RUNNING    step 2/4" in text


def test_usage_errors_exit_2(server: LocalServer) -> None:
    assert run(server, "submit", "demo.echo", "--input", "{not json").returncode == 2
    assert run(server, "submit", "demo.echo", "--input", "@/no/such/file").returncode == 2
    assert run(server, "list", "--status", "DONE").returncode == 2
    assert run(server, "frobnicate").returncode == 2
    assert run(None).returncode == 2


def test_unreachable_server_exits_1() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "taskmanager.entrypoints.cli",
            "--url",
            "http://127.0.0.1:9",
            "list",
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot reach" in result.stderr


# --- what an error line says ----------------------------------------------------------------


def test_an_invalid_field_is_named_with_its_rule(server: LocalServer) -> None:
    result = run(server, "submit", "bad type!")
    assert result.returncode == 1
    assert result.stderr.startswith(
        "taskmanager: 422 INVALID_REQUEST: request body does not match the contract: "
        "type: String should match pattern"
    ), result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_a_parameter_over_its_limit_is_named_with_the_limit(server: LocalServer) -> None:
    result = run(server, "list", "--limit", "500")
    assert result.returncode == 1
    assert result.stderr == (
        "taskmanager: 400 INVALID_REQUEST: request parameters are not valid: "
        "limit: Input should be less than or equal to 100\n"
    )


def test_details_the_message_already_says_are_not_repeated(server: LocalServer) -> None:
    task_id = str(uuid.uuid4())
    result = run(server, "get", task_id)
    assert result.stderr == f"taskmanager: 404 TASK_NOT_FOUND: task {task_id} was not found\n"


def test_json_errors_are_json_on_stderr(server: LocalServer) -> None:
    result = run(server, "--json", "list", "--limit", "500")
    assert result.returncode == 1
    assert result.stdout == ""
    error = json.loads(result.stderr)
    assert error["status"] == 400
    assert error["error"]["code"] == "INVALID_REQUEST"
    assert error["error"]["details"][0]["loc"] == ["query", "limit"]
    usage = run(server, "submit", "demo.echo", "--input", "{not json", "--json")
    assert usage.returncode == 2
    assert json.loads(usage.stderr)["error"]["code"] == "USAGE_ERROR"


def test_json_error_when_no_server_answers() -> None:
    result = run(None, "--url", "http://127.0.0.1:9", "--json", "list")
    assert result.returncode == 1
    error = json.loads(result.stderr)
    assert error["status"] == 0
    assert error["error"]["code"] == "UNREACHABLE"


def test_a_url_without_a_scheme_means_http(server: LocalServer) -> None:
    result = run(None, "--url", f"127.0.0.1:{server.port}", "list", "--limit", "1")
    assert result.returncode == 0, result.stderr
    other = run(None, "--url", f"ftp://127.0.0.1:{server.port}", "list")
    assert other.returncode == 2
    assert "ftp:// is not HTTP; use http:// or https://" in other.stderr


def test_version() -> None:
    from importlib.metadata import version

    result = run(None, "--version")
    assert result.returncode == 0
    assert result.stdout == f"taskmanager {version('taskmanager')}\n"


def test_every_option_has_help() -> None:
    from taskmanager.entrypoints.cli_parser import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    for name, sub in [("", parser), *commands.choices.items()]:  # type: ignore[union-attr]
        for action in sub._actions:
            if action.dest != "command":
                assert action.help, f"taskmanager {name} {action.option_strings or action.dest}"
