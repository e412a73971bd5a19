"""DynamoDB and EventBridge: create the table, run a task, publish its events.

Run it against moto server (`moto_server -p 5000`) or any endpoint that speaks the AWS APIs:
`python docs/examples/storage_aws.py http://127.0.0.1:5000`. Without an argument it uses
the account and region of your AWS configuration, so only do that on purpose.
The test suite runs it against moto server (tests/contract/test_storage_docs.py).
"""

from __future__ import annotations

import sys
import uuid

import boto3

from taskmanager.adapters.dynamodb import DynamoDBTaskRepository, create_table, task_from_image
from taskmanager.adapters.eventbridge import EventBridgePublisher
from taskmanager.adapters.memory import SystemClock, UuidIdFactory
from taskmanager.domain.events import TaskUpdated, events_for_change
from taskmanager.domain.model import SubmitTask
from taskmanager.domain.services import record_update, submit_task


def main(endpoint_url: str | None) -> None:
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint_url)
    events = boto3.client("events", endpoint_url=endpoint_url)
    table = f"tasks-example-{uuid.uuid4().hex[:8]}"
    description = create_table(dynamodb, table)
    print("indexes:", sorted(i["IndexName"] for i in description["GlobalSecondaryIndexes"]))

    repo = DynamoDBTaskRepository(dynamodb, table)
    clock = SystemClock()
    command = SubmitTask(type="report.render", input={"month": "2026-11"})
    created = submit_task(command, owner="alice", repo=repo, clock=clock, ids=UuidIdFactory())
    again = submit_task(  # the same Idempotency-Key and request: the same task, no new item
        command, owner="alice", repo=repo, clock=clock, ids=UuidIdFactory(), idempotency_key="k"
    )
    replay = submit_task(
        command, owner="alice", repo=repo, clock=clock, ids=UuidIdFactory(), idempotency_key="k"
    )
    print("replayed:", replay.replayed, replay.task.id == again.task.id)

    task_id = created.task.id
    for body in (
        {"task_id": task_id, "status": "RUNNING", "sequence": 1},
        {"task_id": task_id, "status": "SUCCESSFUL", "sequence": 2, "result": {"pages": 12}},
        {"task_id": task_id, "status": "SUCCESSFUL", "sequence": 2, "result": {"pages": 12}},
    ):
        result = record_update(TaskUpdated.model_validate(body), repo=repo, clock=clock)
        print("update:", body["status"], result.outcome.value)

    # What the stream handler does with each stream record: decode both images, derive the
    # events, publish them. Here the item as stored stands in for the record's NewImage.
    item = dynamodb.get_item(TableName=table, Key={"task_id": {"S": task_id}})["Item"]
    final = task_from_image(item)
    publisher = EventBridgePublisher(events, "default", "taskmanager")
    publisher.publish(events_for_change(None, final))
    print("published:", final.status.value, "version", final.version)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
