"""Any Lambda function, no SDK: it reads the ``TaskCreated`` event and returns its result.

Deployed with the Terraform processor module and ``sdk = false``, the function's
asynchronous-invocation records (on success, on failure) go to the task manager's updates
queue, which turns them into the task's outcome: the return value is the result, an
exception is the error (docs/processors.md, "Any function, no SDK").

Run as a script, it plays Lambda's part on one machine: it invokes ``handler`` as EventBridge
would, builds the invocation record Lambda would send, and records it on an in-memory store.
"""

from __future__ import annotations

from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    task = event["detail"]  # the task: id, type, input, deadline_at, ...
    text = (task.get("input") or {}).get("text")
    if not isinstance(text, str):
        raise ValueError('input must be {"text": "..."}')
    return {"words": len(text.split())}


# --- what Lambda does around it (only for this demonstration) ------------------------------


def invocation_record(event: dict[str, Any]) -> dict[str, Any]:
    """Invoke ``handler`` and describe the invocation as Lambda's destination record."""
    from datetime import UTC, datetime  # noqa: PLC0415

    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(),
        "requestContext": {
            "requestId": "c2a6f2ae-7dbb-4d22-8782-d0485c9877e2",
            "functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:word-count:$LATEST",
            "condition": "Success",
            "approximateInvokeCount": 1,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
    }
    try:
        record["responsePayload"] = handler(event, None)
    except Exception as exc:  # Lambda catches whatever the function raises
        record["requestContext"].update(condition="RetriesExhausted", approximateInvokeCount=3)
        record["responseContext"]["functionError"] = "Unhandled"
        record["responsePayload"] = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
    return record


def main() -> None:
    from taskmanager.adapters.memory import InMemoryTaskRepository, SystemClock  # noqa: PLC0415
    from taskmanager.domain.events import envelope, event_for  # noqa: PLC0415
    from taskmanager.domain.invocations import InvocationRecord, record_invocation  # noqa: PLC0415
    from taskmanager.domain.model import SubmitTask  # noqa: PLC0415
    from taskmanager.domain.services import new_task  # noqa: PLC0415

    repo, clock = InMemoryTaskRepository(), SystemClock()
    for number, task_input in enumerate(({"text": "to be or not"}, {"words": 3})):
        command = SubmitTask(type="text.wordcount", input=task_input)
        task = new_task(command, task_id=f"task-{number}", owner="me", now=clock.now())
        repo.create(task, clock.now())
        event = envelope(event_for(task)).model_dump(mode="json", by_alias=True)
        record = InvocationRecord.model_validate(invocation_record(event))
        outcome = record_invocation(record, repo=repo, clock=clock).outcome
        done = repo.get(task.id)
        assert done is not None
        error = done.error.model_dump() if done.error else None
        print(outcome.value, done.status.value, done.result, error)


if __name__ == "__main__":
    main()
