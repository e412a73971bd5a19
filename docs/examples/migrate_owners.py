"""One-off: move tasks stored under an assumed role's *session* to the role itself.

Before the owner rule dropped the session name (docs/api.md, "Callers and isolation"), a task
submitted by ``arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`` was owned by that full ARN;
now its caller is ``arn:aws:sts::ACCOUNT:assumed-role/ROLE`` and no longer sees it. This
rewrites each such task's ``owner`` to the role (one conditional ``UpdateItem`` per task, so a
task changed meanwhile is left alone and the script may simply be run again). The version does
not move, so the stream publishes no event for the rewrite.

Tasks of Cognito identity-pool users (session ``CognitoIdentityCredentials``) are left alone:
their pool's users shared that one session, so nothing tells whose task each one was; they
age out with the retention period.

Run: ``python docs/examples/migrate_owners.py TABLE [ENDPOINT_URL]`` (the test suite runs it
against moto server: tests/contract/test_storage_docs.py).
"""

from __future__ import annotations

import re
import sys

import boto3

#: ``arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION``: group 1 is the new owner.
SESSION_OWNER = re.compile(r"^(arn:[a-z-]+:sts::\d{12}:assumed-role/[^/]+)/(.+)$")
SHARED_SESSIONS = {"CognitoIdentityCredentials"}


def migrate(table: str, endpoint_url: str | None = None) -> int:
    """Rewrite every session-owned task of ``table``; returns how many were rewritten."""
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint_url)
    rewritten = 0
    pages = dynamodb.get_paginator("scan").paginate(
        TableName=table,
        ProjectionExpression="task_id, #owner",
        ExpressionAttributeNames={"#owner": "owner"},
    )
    for page in pages:
        for item in page["Items"]:
            old = item["owner"]["S"]
            match = SESSION_OWNER.match(old)
            if match is None or match[2] in SHARED_SESSIONS:
                continue
            try:
                dynamodb.update_item(
                    TableName=table,
                    Key={"task_id": item["task_id"]},
                    UpdateExpression="SET #owner = :new",
                    ConditionExpression="#owner = :old",
                    ExpressionAttributeNames={"#owner": "owner"},
                    ExpressionAttributeValues={":new": {"S": match[1]}, ":old": {"S": old}},
                )
            except dynamodb.exceptions.ConditionalCheckFailedException:
                continue  # changed or deleted meanwhile
            rewritten += 1
    return rewritten


if __name__ == "__main__":
    count = migrate(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
    print(f"rewrote the owner of {count} task(s)")
