"""The `taskmanager` command: run the local server, or talk to any taskmanager HTTP API.

    taskmanager serve [--host 127.0.0.1] [--port 8000] [--db PATH] [--processor MODULE:ATTR ...]
    taskmanager submit TYPE [--input JSON|@file] [--idempotency-key K] [--wait]
    taskmanager get ID | list [--status S] [--type T] | cancel ID | watch ID

``--url`` (or ``TASKMANAGER_URL``) names the server (``http://`` is assumed when it has no
scheme); ``--ws-url`` (or ``TASKMANAGER_WS_URL``) its push socket, which ``watch`` and
``submit --wait`` then follow (docs/push.md) instead of the local server's event stream.
``--json`` prints JSON, errors included. Exit codes: 0 done (a waited or watched task
SUCCESSFUL), 1 the task FAILED or the request failed, 2 a usage error (bad arguments, input
that is not JSON, a ``serve`` that cannot start: its port taken, a bad ``--processor``).

Client commands use the project's client (``taskmanager.client.TaskClient``), which needs no
extra; only ``serve`` needs the ``server`` extra.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any, Final, TextIO

from taskmanager.client import ApiError, TaskClient, error_from_response
from taskmanager.entrypoints.cli_parser import DEFAULT_URL, build_parser

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator, Sequence

    from pydantic import BaseModel

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
#: The error code of a cancelled task, and the status the CLI shows it with.
CANCELLED: Final = "CANCELLED"
TERMINAL: Final = frozenset({"SUCCESSFUL", "FAILED"})
#: How long ``watch`` keeps reconnecting to a server that went away (seconds), unless
#: TASKMANAGER_RECONNECT_SECONDS says otherwise.
RECONNECT_SECONDS: Final = 30.0


class UsageError(Exception):
    """Bad arguments the parser could not catch (exit 2)."""


def _reconnect_seconds() -> float:
    raw = os.environ.get("TASKMANAGER_RECONNECT_SECONDS")
    try:
        return RECONNECT_SECONDS if raw is None else max(0.0, float(raw))
    except ValueError:
        raise UsageError(
            f"TASKMANAGER_RECONNECT_SECONDS must be a number of seconds: {raw!r}"
        ) from None


class Api:
    """The project's HTTP client (``taskmanager.client.TaskClient``) plus the event stream
    of a task, which only the local server offers."""

    def __init__(self, base_url: str, ws_url: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = TaskClient(self.base_url, websocket_url=ws_url)

    def call(self, operation: Callable[..., BaseModel], *args: Any, **kwargs: Any) -> Any:
        """Run a client operation; its result as plain JSON data. Raises the client's
        ``ApiError`` for an error response, and for a server it cannot reach (status 0)."""
        try:
            return operation(*args, **kwargs).model_dump(mode="json")
        except OSError as exc:
            raise _unreachable(self.base_url, exc) from None

    def stream(self, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Server-sent events from ``path``: (event name, decoded data)."""
        request = urllib.request.Request(
            self.base_url + path, headers={"Accept": "text/event-stream"}
        )
        try:
            response = urllib.request.urlopen(request, timeout=None)
        except urllib.error.HTTPError as exc:
            with exc:
                raise error_from_response(exc.code, exc.read()) from None
        except OSError as exc:
            raise _unreachable(self.base_url, exc) from None
        with response:
            name, data = "message", list[str]()
            for raw in response:
                line = raw.decode("utf-8").rstrip("\r\n")
                if not line:
                    if data:
                        yield name, json.loads("\n".join(data))
                    name, data = "message", list[str]()
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))


def _changes(api: Api, task_id: str, path: str) -> Iterator[dict[str, Any]]:
    """The task after each change: over the push socket when one is configured (the SDK's
    ``watch``), else from the local server's event stream at ``path``."""
    if api.client.websocket_url is None:
        for _, task in api.stream(path):
            yield task
        return
    from websockets.exceptions import WebSocketException  # noqa: PLC0415 (only here)

    try:
        for resource in api.client.watch(task_id):
            yield resource.model_dump(mode="json")
    except (OSError, WebSocketException) as exc:
        reason = OSError(str(exc)) if isinstance(exc, WebSocketException) else exc
        raise _unreachable(api.client.websocket_url, reason) from None


def _unreachable(base_url: str, exc: OSError) -> ApiError:
    reason = getattr(exc, "reason", exc)
    return ApiError(0, "UNREACHABLE", f"cannot reach {base_url}: {reason}")


def base_url(url: str) -> str:
    """``url`` with ``http://`` when it names no scheme (``127.0.0.1:8000``)."""
    if "://" not in url:
        return "http://" + url
    if not url.startswith(("http://", "https://")):
        scheme = url.partition("://")[0]
        raise UsageError(f"--url {url}: {scheme}:// is not HTTP; use http:// or https://")
    return url


# --- output ---------------------------------------------------------------------------------


def _emit_json(value: Any, out: TextIO) -> None:
    out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def _emit_error(error: dict[str, Any], out: TextIO, status: int | None = None) -> None:
    """An error as one JSON line (the API's error body, with ``status`` when there is one)."""
    body = {"error": error} if status is None else {"status": status, "error": error}
    out.write(json.dumps(body, ensure_ascii=False) + "\n")


def is_cancelled(task: dict[str, Any]) -> bool:
    """A cancelled task: stored FAILED with the error code CANCELLED (docs/design.md §2)."""
    error = task.get("error") or {}
    return bool(task["status"] == "FAILED" and error.get("code") == CANCELLED)


def shown_status(task: dict[str, Any]) -> str:
    """The status as shown: CANCELLED for a cancelled task, which is no failure to its
    owner; otherwise the stored status."""
    return CANCELLED if is_cancelled(task) else str(task["status"])


def _describe(task: dict[str, Any]) -> str:
    lines = [f"{task['id']}  {task['type']}  {shown_status(task)}"]
    progress = task.get("progress")
    if progress:
        lines.append(f"  progress: {progress['percent']:.0f}% {progress.get('message') or ''}")
    for field in ("input", "result"):
        if task.get(field) is not None:
            lines.append(f"  {field}: {json.dumps(task[field], ensure_ascii=False)}")
    error = task.get("error")
    if error and is_cancelled(task):
        lines.append(f"  {error['message']}")  # who cancelled it
    elif error:
        lines.append(f"  error: {error['code']}: {error['message']}")
    for field in ("created_at", "started_at", "finished_at", "deadline_at"):
        if task.get(field):
            lines.append(f"  {field}: {task[field]}")
    return "\n".join(lines)


def _exit_for(task: dict[str, Any]) -> int:
    return EXIT_OK if task["status"] == "SUCCESSFUL" else EXIT_FAILED


def _progress_line(task: dict[str, Any], width: int = 30) -> str:
    status = shown_status(task)
    progress = task.get("progress") or {}
    percent = 100.0 if status == "SUCCESSFUL" else float(progress.get("percent") or 0.0)
    filled = round(width * percent / 100)
    bar = "#" * filled + "-" * (width - filled)
    message = progress.get("message") or ""
    return f"[{bar}] {percent:5.1f}%  {status:<10} {message}".rstrip()


def _plain_line(task: dict[str, Any]) -> str:
    progress = task.get("progress")
    parts = [shown_status(task)]
    if progress:
        parts.append(f"{progress['percent']:g}%")
        if progress.get("message"):
            parts.append(str(progress["message"]))
    if is_cancelled(task):
        parts.append(task["error"]["message"])
    elif task.get("error"):
        parts.append(f"{task['error']['code']}: {task['error']['message']}")
    return " ".join(parts)


def watch(api: Api, task_id: str, *, as_json: bool, out: TextIO) -> int:
    """Follow a task until it is terminal; reconnects (the stream starts with the task)."""
    tty = out.isatty() and not as_json
    path = f"/tasks/{urllib.parse.quote(task_id, safe='')}/events"
    last: dict[str, Any] | None = None
    patience = _reconnect_seconds()
    gave_up_at = time.monotonic() + patience
    while True:
        try:
            for task in _changes(api, task_id, path):
                if last is not None and task["version"] <= last["version"]:
                    continue
                last = task
                if as_json:
                    out.write(json.dumps(task, ensure_ascii=False) + "\n")
                elif tty:
                    out.write("\r\x1b[2K" + _progress_line(task))
                else:
                    out.write(_plain_line(task) + "\n")
                out.flush()
                gave_up_at = time.monotonic() + patience
        except ApiError as exc:
            if exc.status != 0 or time.monotonic() > gave_up_at:
                raise
        if last is not None and last["status"] in TERMINAL:
            break
        time.sleep(0.5)  # the server closed the stream (restart): follow it again
    if not as_json:
        # The outcome in full (the result, or the error), terminal or pipe alike.
        out.write(("\n" if tty else "") + _describe(last) + "\n")
    return _exit_for(last)


# --- commands -------------------------------------------------------------------------------


def _read_input(raw: str | None) -> Any:
    if raw is None:
        return None
    text = raw
    if raw.startswith("@"):
        try:
            with open(raw[1:], encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise UsageError(f"cannot read {raw[1:]}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--input is not JSON: {exc}") from None


def cmd_submit(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    task = api.call(
        api.client.submit,
        args.type,
        _read_input(args.input),
        timeout_seconds=args.timeout_seconds,
        heartbeat_seconds=args.heartbeat_seconds,
        start_timeout_seconds=args.start_timeout_seconds,
        idempotency_key=args.idempotency_key,
    )
    if args.wait:
        if not args.json:
            out.write(f"submitted {task['id']}\n")
            out.flush()
        return watch(api, task["id"], as_json=args.json, out=out)
    if args.json:
        _emit_json(task, out)
    else:
        out.write(f"{task['id']}  {task['type']}  {task['status']}\n")
    return EXIT_OK


def cmd_get(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    task = api.call(api.client.get, args.id)
    if args.json:
        _emit_json(task, out)
    else:
        out.write(_describe(task) + "\n")
    return EXIT_OK


def cmd_list(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    page = api.call(
        api.client.list, status=args.status, type=args.type, limit=args.limit, cursor=args.cursor
    )
    if args.json:
        _emit_json(page, out)
        return EXIT_OK
    for task in page["items"]:
        progress = task.get("progress")
        percent = f"{progress['percent']:.0f}%" if progress else ""
        out.write(
            f"{task['id']}  {shown_status(task):<10} {percent:>4}  {task['type']:<20} "
            f"{task['created_at']}\n"
        )
    if page.get("next_cursor"):
        out.write(f"more: --cursor {page['next_cursor']}\n")
    return EXIT_OK


def cmd_cancel(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    task = api.call(api.client.cancel, args.id)
    if args.json:
        _emit_json(task, out)
    else:
        out.write(f"{task['id']}  {shown_status(task)}  {task['error']['message']}\n")
    return EXIT_OK


def cmd_watch(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    return watch(api, args.id, as_json=args.json, out=out)


def cmd_serve(args: argparse.Namespace) -> int:
    # Only `serve` needs uvicorn and the resolver; client commands start without them.
    from taskmanager.entrypoints.local.server import (  # noqa: PLC0415
        ServeOptions,
        StartupError,
        serve,
    )

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    options = ServeOptions(
        host=args.host,
        port=args.port,
        db=args.db,
        processors=tuple(args.processor),
        workers=args.workers,
        grace_seconds=args.grace_seconds,
        sweep_interval=args.sweep_interval,
        allowed_hosts=tuple(args.allowed_host),
        accept_any_type=args.accept_any_type,
        default_start_timeout_seconds=args.default_start_timeout_seconds,
    )
    try:
        return serve(options)
    except StartupError as exc:
        sys.stderr.write(f"taskmanager serve: error: {exc}\n")
        return EXIT_USAGE


def cmd_worker(args: argparse.Namespace) -> int:
    """Serve processors from an SQS queue (taskmanager.worker) until SIGTERM/SIGINT. Options
    not given on the command line come from the environment (a container's settings)."""
    from taskmanager.entrypoints.local.processors import (  # noqa: PLC0415
        ProcessorLoadError,
        load_given,
    )
    from taskmanager.worker import (  # noqa: PLC0415
        QUEUE_URL_VARIABLE,
        Worker,
        options_from_environment,
    )

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    queue_url = args.queue_url or os.environ.get(QUEUE_URL_VARIABLE)
    specs = tuple(args.processor) or tuple(
        filter(None, os.environ.get("TASKMANAGER_PROCESSOR", "").split(","))
    )
    given = {
        option: value
        for option in ("concurrency", "grace_seconds", "wait_seconds", "visibility_timeout")
        if (value := getattr(args, option)) is not None
    }
    try:
        if not queue_url:
            raise UsageError(f"--queue-url (or ${QUEUE_URL_VARIABLE}) is required")
        if not specs:
            raise UsageError("--processor MODULE:ATTR (or $TASKMANAGER_PROCESSOR) is required")
        options = {**options_from_environment(), **given}
        return Worker(load_given(specs), queue_url, **options).run()
    except (UsageError, ProcessorLoadError, ValueError, RuntimeError) as exc:
        # ValueError: an option out of range (Worker says which); RuntimeError: a setting
        # missing from the environment (TASKMANAGER_TABLE_NAME).
        sys.stderr.write(f"taskmanager worker: error: {exc}\n")
        return EXIT_USAGE


COMMANDS: Final = {
    "submit": cmd_submit,
    "get": cmd_get,
    "list": cmd_list,
    "cancel": cmd_cancel,
    "watch": cmd_watch,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return cmd_serve(args)
    if args.command == "worker":
        return cmd_worker(args)
    args.json = getattr(args, "json", False)
    url = getattr(args, "url", None) or os.environ.get("TASKMANAGER_URL") or DEFAULT_URL
    try:
        ws_url = getattr(args, "ws_url", None) or os.environ.get("TASKMANAGER_WS_URL")
        api = Api(base_url(url), ws_url or None)
        return COMMANDS[args.command](api, args, sys.stdout)
    except UsageError as exc:
        if args.json:
            _emit_error({"code": "USAGE_ERROR", "message": str(exc)}, sys.stderr)
        else:
            parser.print_usage(sys.stderr)
            sys.stderr.write(f"taskmanager: error: {exc}\n")
        return EXIT_USAGE
    except ApiError as exc:
        if args.json:
            # The API's error body, plus the status (0: no server answered).
            error = {"code": exc.code, "message": exc.message, "details": exc.details}
            _emit_error(error, sys.stderr, exc.status)
        elif exc.status == 0:  # no server answered, so there is no status to show
            sys.stderr.write(f"taskmanager: {exc.code}: {exc.summary}\n")
        else:
            sys.stderr.write(f"taskmanager: {exc.status} {exc.code}: {exc.summary}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
