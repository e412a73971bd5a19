"""The task table: its creation (indexes, stream, TTL, billing) and the sweeper's indexes as
the repository queries them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, NamedTuple

from taskmanager.adapters.dynamodb.items import (
    BY_DEADLINE,
    BY_HEARTBEAT,
    BY_OWNER,
    OWNER_INDEX_ATTRIBUTES,
    TTL_ATTRIBUTE,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TableDescriptionTypeDef


class DueIndex(NamedTuple):
    name: str
    shard: str
    at: str


DUE_INDEXES: Final = (
    DueIndex(BY_DEADLINE, "open_shard", "deadline_epoch"),
    DueIndex(BY_HEARTBEAT, "hb_shard", "heartbeat_due_epoch"),
)


def create_table(client: DynamoDBClient, table_name: str) -> TableDescriptionTypeDef:
    """Create the task table with exactly the layout in the package docstring (indexes,
    stream, TTL, on-demand billing), wait until it is active, and return its description."""

    def gsi(name: str, hash_key: str, range_key: str, *attributes: str) -> Any:
        projection = (
            {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(attributes)}
            if attributes
            else {"ProjectionType": "KEYS_ONLY"}
        )
        return {
            "IndexName": name,
            "KeySchema": [
                {"AttributeName": hash_key, "KeyType": "HASH"},
                {"AttributeName": range_key, "KeyType": "RANGE"},
            ],
            "Projection": projection,
        }

    client.create_table(
        TableName=table_name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "task_id", "AttributeType": "S"},
            {"AttributeName": "owner", "AttributeType": "S"},
            {"AttributeName": "created_key", "AttributeType": "S"},
            {"AttributeName": "open_shard", "AttributeType": "S"},
            {"AttributeName": "deadline_epoch", "AttributeType": "N"},
            {"AttributeName": "hb_shard", "AttributeType": "S"},
            {"AttributeName": "heartbeat_due_epoch", "AttributeType": "N"},
        ],
        KeySchema=[{"AttributeName": "task_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            gsi(BY_OWNER, "owner", "created_key", *OWNER_INDEX_ATTRIBUTES),
            gsi(BY_DEADLINE, "open_shard", "deadline_epoch"),
            gsi(BY_HEARTBEAT, "hb_shard", "heartbeat_due_epoch"),
        ],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    client.get_waiter("table_exists").wait(
        TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
    return client.describe_table(TableName=table_name)["Table"]
