"""``terraform apply`` of examples/complete against moto server, checked with boto3, then
``terraform destroy`` leaves nothing.

The provider settings that point at moto live only in an override file this test writes
into its scratch copy; the module and the example know nothing of moto.

Where moto accepts a setting but does not keep or enforce it, the test says so and checks
only what moto returns (docs/deploy.md lists the gaps):
- Lambda code never runs (moto 5.2 cannot run it), so the handlers are not exercised here.
- moto drops a function's ``logging_config`` and rewrites JSON whitespace in the queue
  redrive policy, so a second plan right after apply is not empty.
- moto holds no public layers: the test publishes a stand-in for the Powertools layer.
- Throttling, access logs, IAM authorisation, alarms and policies are stored, never enforced.
- The WebSocket API (docs/push.md): moto stores the API, its routes, route responses,
  integration and stage, but deploys nothing (no wss:// endpoint answers), so the push
  functions are exercised in tests/integration/test_push_aws.py and tests/e2e/test_aws_flow.py
  instead; ``$connect``'s IAM authorization is stored, never enforced.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import time
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from taskmanager.build_lambda import build
from tests.e2e.terraform.conftest import REPO, Applies, Terraform

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.slow

REGION = "us-east-1"
NAME = "tm-moto"
EXAMPLE = "examples/complete"
SERVICES = (
    "apigatewayv2",
    "cloudwatch",
    "dynamodb",
    "events",
    "iam",
    "kms",
    "lambda",
    "logs",
    "sns",
    "sqs",
    "sts",
)
FUNCTIONS = ("api", "stream", "updates", "sweeper", "sockets", "notify")
#: The word-count processor's own source (the example's default, from the processor's name).
PROCESSOR_SOURCE = f"taskmanager.processor.{NAME}-word-count"
TIMINGS: dict[str, float] = {}


@dataclass
class Deployment:
    endpoint: str
    workdir: Path
    terraform: Terraform
    outputs: dict[str, Any]
    layer_arn: str
    destroyed: bool = False

    def outputs_bus_arn(self) -> str:
        bus = self.client("events").describe_event_bus(Name=self.outputs["event_bus_name"])
        return str(bus["Arn"])

    def client(self, service: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )


def _override(endpoint: str) -> str:
    endpoints = "\n".join(f'    {s} = "{endpoint}"' for s in SERVICES)
    return f"""provider "aws" {{
  region                      = "{REGION}"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  s3_use_path_style           = true

  endpoints {{
{endpoints}
  }}
}}
"""


def _stand_in_layer(endpoint: str, name: str = NAME) -> str:
    """moto has no public layers: publish a stand-in for the Powertools layer (one per
    stack's ``name``: the applies run at the same time)."""
    content = io.BytesIO()
    with zipfile.ZipFile(content, "w") as archive:
        archive.writestr("python/README.txt", "stand-in for the Powertools layer\n")
    client = boto3.client(
        "lambda",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    layer = client.publish_layer_version(
        LayerName=f"{name}-powertools-stand-in", Content={"ZipFile": content.getvalue()}
    )
    return layer["LayerVersionArn"]


def apply_complete(
    terraform: Terraform, infra_copy: Path, lambda_zip: Path, moto_server: str, scratch: Path
) -> Deployment:
    """Apply examples/complete (with a word-count processor) to moto; run by the session's
    ``applies`` fixture, beside the other applies (tests/e2e/terraform/conftest.py)."""
    processor_zip = scratch / "word-count-python3.12-x86_64.zip"
    build(
        arch="x86_64",
        output=processor_zip,
        includes=(REPO / "docs" / "examples" / "wordcount_processor.py",),
    )
    workdir = infra_copy.parent / "apply" / "terraform"
    shutil.copytree(
        infra_copy, workdir, ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl")
    )
    example = workdir / EXAMPLE
    (example / "moto_override.tf").write_text(_override(moto_server))
    layer_arn = _stand_in_layer(moto_server)
    (example / "moto.auto.tfvars.json").write_text(
        json.dumps(
            {
                "region": REGION,
                "name": NAME,
                "lambda_zip": str(lambda_zip),
                "processor_zip": str(processor_zip),
                "powertools_layer_arn": layer_arn,
            }
        )
    )
    terraform.init(example)
    started = time.monotonic()
    terraform.run(example, "apply", "-auto-approve", "-input=false", "-parallelism=20")
    TIMINGS["apply"] = time.monotonic() - started
    outputs = {
        key: value["value"]
        for key, value in json.loads(terraform.run(example, "output", "-json")).items()
    }
    return Deployment(moto_server, example, terraform, outputs, layer_arn)


@pytest.fixture(scope="module")
def deployment(applies: Applies) -> Iterator[Deployment]:
    deployed = applies.result("complete")
    assert isinstance(deployed, Deployment)
    yield deployed
    if not deployed.destroyed:
        deployed.terraform.run(
            deployed.workdir, "destroy", "-auto-approve", "-input=false", "-parallelism=20"
        )


# --- the table -------------------------------------------------------------------------------


def test_table_has_the_repository_layout(deployment: Deployment) -> None:
    ddb = deployment.client("dynamodb")
    table = ddb.describe_table(TableName=f"{NAME}-tasks")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "task_id", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    indexes = {
        gsi["IndexName"]: (
            [(k["AttributeName"], k["KeyType"]) for k in gsi["KeySchema"]],
            gsi["Projection"]["ProjectionType"],
            sorted(gsi["Projection"].get("NonKeyAttributes", [])),
        )
        for gsi in table["GlobalSecondaryIndexes"]
    }
    assert indexes == {
        "by-owner": (
            [("owner", "HASH"), ("created_key", "RANGE")],
            "INCLUDE",
            ["expires_time", "status", "type"],
        ),
        "by-deadline": ([("open_shard", "HASH"), ("deadline_epoch", "RANGE")], "KEYS_ONLY", []),
        "by-heartbeat": (
            [("hb_shard", "HASH"), ("heartbeat_due_epoch", "RANGE")],
            "KEYS_ONLY",
            [],
        ),
    }
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert types == {
        "task_id": "S",
        "owner": "S",
        "created_key": "S",
        "open_shard": "S",
        "deadline_epoch": "N",
        "hb_shard": "S",
        "heartbeat_due_epoch": "N",
    }
    assert table["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    assert table["LatestStreamArn"] == deployment.outputs["table_stream_arn"]
    # The example turns deletion protection off so that it can be destroyed.
    assert table["DeletionProtectionEnabled"] is False
    # Encrypted with DynamoDB's AWS owned key, which DescribeTable does not describe; an
    # SSEDescription would mean the AWS managed key (KMS charges) or a customer managed one.
    assert "SSEDescription" not in table


def test_table_expires_finished_tasks_and_keeps_backups(deployment: Deployment) -> None:
    ddb = deployment.client("dynamodb")
    ttl = ddb.describe_time_to_live(TableName=f"{NAME}-tasks")["TimeToLiveDescription"]
    assert ttl == {"AttributeName": "expires_at", "TimeToLiveStatus": "ENABLED"}
    backups = ddb.describe_continuous_backups(TableName=f"{NAME}-tasks")
    pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"


def _layout(ddb: Any, table_name: str) -> dict[str, Any]:
    table = ddb.describe_table(TableName=table_name)["Table"]
    ttl = ddb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    return {
        "keys": table["KeySchema"],
        "attributes": sorted(
            (a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]
        ),
        "indexes": sorted(
            (
                g["IndexName"],
                str(g["KeySchema"]),
                g["Projection"]["ProjectionType"],
                # A set to DynamoDB: Terraform may send it in another order.
                sorted(g["Projection"].get("NonKeyAttributes", [])),
            )
            for g in table.get("GlobalSecondaryIndexes", [])
        ),
        "local_indexes": table.get("LocalSecondaryIndexes", []),
        "stream": table["StreamSpecification"],
        "billing": table["BillingModeSummary"]["BillingMode"],
        "ttl": (ttl.get("AttributeName"), ttl["TimeToLiveStatus"]),
    }


def test_terraform_table_matches_the_adapters_create_table(deployment: Deployment) -> None:
    from taskmanager.adapters.dynamodb import create_table

    ddb = deployment.client("dynamodb")
    create_table(ddb, f"{NAME}-made-by-the-adapter")
    try:
        made_by_adapter = _layout(ddb, f"{NAME}-made-by-the-adapter")
        made_by_terraform = _layout(ddb, f"{NAME}-tasks")
    finally:
        ddb.delete_table(TableName=f"{NAME}-made-by-the-adapter")
    assert made_by_terraform == made_by_adapter
    assert len(made_by_terraform["indexes"]) == 3


# --- events: bus, rules, patterns, targets -----------------------------------------------------


def test_task_updated_rule_feeds_the_updates_queue_with_a_dead_letter_queue(
    deployment: Deployment,
) -> None:
    events = deployment.client("events")
    bus = deployment.outputs["event_bus_name"]
    assert bus == NAME
    rules = {r["Name"]: r for r in events.list_rules(EventBusName=bus)["Rules"]}
    rule = rules[f"{NAME}-task-updated"]
    # Only the example's processors may report (processor_sources).
    assert json.loads(rule["EventPattern"]) == {
        "detail-type": ["TaskUpdated"],
        "source": [f"taskmanager.processor.{NAME}-export", PROCESSOR_SOURCE],
    }
    assert deployment.outputs["processor_event_source"] == PROCESSOR_SOURCE
    (target,) = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]
    assert target["Arn"] == _queue_arn(deployment, f"{NAME}-updates")
    assert target["DeadLetterConfig"]["Arn"] == _queue_arn(deployment, f"{NAME}-updates-dlq")
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}


def test_processor_rule_matches_task_created_of_its_type_only(deployment: Deployment) -> None:
    events = deployment.client("events")
    rule = events.describe_rule(Name=f"{NAME}-word-count", EventBusName=NAME)
    assert json.loads(rule["EventPattern"]) == {
        "detail-type": ["TaskCreated"],
        "source": ["taskmanager"],
        "detail": {"type": ["text.wordcount"]},
    }
    (target,) = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=NAME)["Targets"]
    assert target["Arn"].endswith(f":function:{NAME}-word-count")
    assert target["DeadLetterConfig"]["Arn"] == _queue_arn(
        deployment, f"{NAME}-word-count-failures"
    )
    invoke = deployment.client("lambda").get_function_event_invoke_config(
        FunctionName=f"{NAME}-word-count"
    )
    assert invoke["MaximumRetryAttempts"] == 2
    assert invoke["MaximumEventAgeInSeconds"] == 3600
    # A failed invocation's record ends the task through the updates queue.
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == _queue_arn(
        deployment, f"{NAME}-updates"
    )


def test_queue_processor_rule_feeds_its_queue_with_a_dead_letter_queue(
    deployment: Deployment,
) -> None:
    """delivery = "queue": TaskCreated of export.run -> the export queue (DLQ after 5
    receives), no function; the worker policy allows exactly what `taskmanager worker` calls."""
    events, sqs = deployment.client("events"), deployment.client("sqs")
    rule = events.describe_rule(Name=f"{NAME}-export", EventBusName=NAME)
    assert json.loads(rule["EventPattern"])["detail"] == {"type": ["export.run"]}
    queue_arn = _queue_arn(deployment, f"{NAME}-export-tasks")
    dlq_arn = _queue_arn(deployment, f"{NAME}-export-tasks-dlq")
    (target,) = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=NAME)["Targets"]
    assert target["Arn"] == queue_arn
    assert target["DeadLetterConfig"]["Arn"] == dlq_arn
    url = deployment.outputs["export_queue_url"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "120"
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": 5,
    }
    (admit,) = json.loads(attributes["Policy"])["Statement"]
    assert admit["Principal"] == {"Service": "events.amazonaws.com"}
    assert admit["Condition"] == {"ArnEquals": {"aws:SourceArn": rule["Arn"]}}
    names = deployment.client("lambda").list_functions()["Functions"]
    assert f"{NAME}-export" not in {f["FunctionName"] for f in names}

    policy = json.loads(deployment.outputs["export_worker_policy_json"])
    granted: dict[str, list[str]] = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"]):
            assert "*" not in action
            granted[action] = _as_list(statement["Resource"])
    assert granted == {
        "sqs:ReceiveMessage": [queue_arn],
        "sqs:ChangeMessageVisibility": [queue_arn],
        "sqs:DeleteMessage": [queue_arn],
        "events:PutEvents": [deployment.outputs_bus_arn()],
        "dynamodb:GetItem": granted["dynamodb:GetItem"],
    }
    assert all(
        arn.endswith(f":table/{deployment.outputs['table_name']}")
        for arn in granted["dynamodb:GetItem"]
    )
    (publish,) = [s for s in policy["Statement"] if "events:PutEvents" in _as_list(s["Action"])]
    assert publish["Condition"] == {
        "StringEquals": {
            "events:detail-type": "TaskUpdated",
            "events:source": f"taskmanager.processor.{NAME}-export",
        }
    }
    assert deployment.outputs["export_worker_environment"] == {
        "TASKMANAGER_QUEUE_URL": url,
        "TASKMANAGER_VISIBILITY_TIMEOUT": "120",
        "TASKMANAGER_TABLE_NAME": deployment.outputs["table_name"],
        "TASKMANAGER_EVENT_BUS_NAME": NAME,
        "TASKMANAGER_EVENT_SOURCE": "taskmanager",
        "TASKMANAGER_PROCESSOR_SOURCE": f"taskmanager.processor.{NAME}-export",
    }


def test_sweeper_runs_on_a_schedule(deployment: Deployment) -> None:
    events = deployment.client("events")
    rule = events.describe_rule(Name=f"{NAME}-sweeper")
    assert rule["ScheduleExpression"] == "rate(1 minute)"
    (target,) = events.list_targets_by_rule(Rule=f"{NAME}-sweeper")["Targets"]
    assert target["Arn"].endswith(f":function:{NAME}-sweeper")


# --- queues ------------------------------------------------------------------------------------


def _queue_arn(deployment: Deployment, name: str) -> str:
    sqs = deployment.client("sqs")
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return arn


def test_updates_queue_redrives_to_its_dlq_and_admits_only_the_rule(
    deployment: Deployment,
) -> None:
    sqs = deployment.client("sqs")
    url = sqs.get_queue_url(QueueName=f"{NAME}-updates")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == _queue_arn(deployment, f"{NAME}-updates-dlq")
    assert int(redrive["maxReceiveCount"]) == 5
    assert attributes["VisibilityTimeout"] == "180"  # 6 x the updates function timeout
    (statement,) = json.loads(attributes["Policy"])["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == attributes["QueueArn"]
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"].endswith(
        f"rule/{NAME}/{NAME}-task-updated"
    )
    assert attributes["SqsManagedSseEnabled"] == "true"
    for name in (f"{NAME}-updates-dlq", f"{NAME}-stream-failures"):
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        dlq = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert dlq["MessageRetentionPeriod"] == "1209600"
        assert "RedrivePolicy" not in dlq


# --- functions and their event sources ------------------------------------------------------


def _mappings(deployment: Deployment) -> dict[str, dict[str, Any]]:
    # moto's FunctionName filter does not match mappings made with a function ARN: list all.
    found = deployment.client("lambda").list_event_source_mappings()["EventSourceMappings"]
    mine = (m for m in found if f":function:{NAME}-" in m["FunctionArn"])
    return {m["FunctionArn"].rsplit(":", 1)[-1]: m for m in mine}


def test_stream_mapping_reports_partial_failures_and_gives_up_boundedly(
    deployment: Deployment,
) -> None:
    mapping = _mappings(deployment)[f"{NAME}-stream"]
    assert mapping["EventSourceArn"] == deployment.outputs["table_stream_arn"]
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == 10
    assert mapping["MaximumRecordAgeInSeconds"] == 3600
    assert mapping["BatchSize"] == 100
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == _queue_arn(
        deployment, f"{NAME}-stream-failures"
    )


def test_updates_mapping_reports_partial_failures(deployment: Deployment) -> None:
    mapping = _mappings(deployment)[f"{NAME}-updates"]
    assert mapping["EventSourceArn"] == _queue_arn(deployment, f"{NAME}-updates")
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 10
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 10}
    assert set(_mappings(deployment)) == {f"{NAME}-stream", f"{NAME}-updates", f"{NAME}-notify"}


def test_functions_run_the_named_handlers_with_the_settings(deployment: Deployment) -> None:
    lam = deployment.client("lambda")
    for role in FUNCTIONS:
        config = lam.get_function_configuration(FunctionName=f"{NAME}-{role}")
        assert config["Handler"] == f"taskmanager.entrypoints.{role}.handler"
        assert config["Runtime"] == "python3.12"
        assert config["Architectures"] == ["x86_64"]
        assert config["TracingConfig"] == {"Mode": "Active"}
        assert [layer["Arn"] for layer in config["Layers"]] == [deployment.layer_arn]
        assert config["Role"].endswith(f":role/{NAME}-{role}")
        variables = dict(config["Environment"]["Variables"])
        if role == "updates":  # the only function that checks who may report on what
            sources = json.loads(variables.pop("TASKMANAGER_PROCESSOR_SOURCES"))
            assert sources == {
                "text.wordcount": [PROCESSOR_SOURCE],
                "export.run": [f"taskmanager.processor.{NAME}-export"],
            }
        if role == "api":  # the only function that checks the task type of a submit
            assert json.loads(variables.pop("TASKMANAGER_TASK_TYPES")) == [
                "export.run",
                "text.wordcount",
            ]
        if role in {"sockets", "notify"}:  # the push functions' own settings
            table = variables.pop("TASKMANAGER_CONNECTIONS_TABLE_NAME")
            assert table == f"{NAME}-connections"
        if role == "notify":
            api_id = deployment.outputs["websocket_url"].split("//")[1].split(".")[0]
            endpoint = variables.pop("TASKMANAGER_WEBSOCKET_ENDPOINT")
            assert endpoint.startswith(f"https://{api_id}.execute-api.")
            assert endpoint.endswith("/live")
        assert variables == {
            "TASKMANAGER_TABLE_NAME": f"{NAME}-tasks",
            "TASKMANAGER_EVENT_BUS_NAME": NAME,
            "TASKMANAGER_EVENT_SOURCE": "taskmanager",
            "TASKMANAGER_DEFAULT_TIMEOUT_SECONDS": "3600",
            "TASKMANAGER_RETENTION_SECONDS": "604800",
            "TASKMANAGER_DEFAULT_START_TIMEOUT_SECONDS": "600",
            "TASKMANAGER_OWNER_CLAIM": "iam",
            "TASKMANAGER_DUE_SHARDS": "4",
            "TASKMANAGER_TRACING": "true",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_METRICS_NAMESPACE": "taskmanager",
            "POWERTOOLS_SERVICE_NAME": f"{NAME}-{role}",
            "PYDANTIC_DISABLE_PLUGINS": "__all__",
        }
    processor = lam.get_function_configuration(FunctionName=f"{NAME}-word-count")
    assert processor["Handler"] == "wordcount_processor.handler"
    assert processor["Environment"]["Variables"]["TASKMANAGER_PROCESSOR_SOURCE"] == PROCESSOR_SOURCE
    logs = deployment.client("logs")
    groups = {
        g["logGroupName"]: g.get("retentionInDays") for g in logs.describe_log_groups()["logGroups"]
    }
    for role in (*FUNCTIONS, "word-count"):
        assert groups[f"/aws/lambda/{NAME}-{role}"] == 30
    assert groups[f"/aws/apigateway/{NAME}"] == 30


# --- least privilege ------------------------------------------------------------------------

EXPECTED_ACTIONS = {
    "api": {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "dynamodb:BatchGetItem",
    },
    "stream": {
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
        "events:PutEvents",
        "sqs:SendMessage",
    },
    "updates": {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
    },
    "sweeper": {
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:UpdateItem",
    },
    "sockets": {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:BatchWriteItem",
    },
    "notify": {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:BatchWriteItem",
        "execute-api:ManageConnections",
    },
    "word-count": {"events:PutEvents", "dynamodb:GetItem", "sqs:SendMessage"},
}
COMMON_ACTIONS = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
}
#: X-Ray has no resource-level permissions; everything else names its resource.
STAR_RESOURCE_ALLOWED = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def _statements(deployment: Deployment, role: str) -> list[dict[str, Any]]:
    iam = deployment.client("iam")
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    statements: list[dict[str, Any]] = []
    for policy in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
        if isinstance(document, str):
            document = json.loads(document)
        statements += document["Statement"]
    return statements


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


@pytest.mark.parametrize("role", sorted(EXPECTED_ACTIONS))
def test_each_role_allows_only_what_its_function_calls(deployment: Deployment, role: str) -> None:
    statements = _statements(deployment, f"{NAME}-{role}")
    actions: set[str] = set()
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"]):
            assert "*" not in action, f"{role}: wildcard action {action}"
            actions.add(action)
            if action not in STAR_RESOURCE_ALLOWED:
                resources = _as_list(statement["Resource"])
                assert all(r != "*" for r in resources), f"{role}: {action} on *"
                # moto's execution ARNs name the API by its id (and no account): see below.
                named = all(NAME in r for r in resources) or action.startswith("execute-api:")
                assert named, f"{role}: {action} on {resources}"
    assert actions == EXPECTED_ACTIONS[role] | COMMON_ACTIONS
    if role == "notify":  # posts to this API's connections on its stage, nothing else
        (manage,) = [s for s in statements if "execute-api:ManageConnections" in s["Action"]]
        api_id = deployment.outputs["websocket_url"].split("//")[1].split(".")[0]
        (resource,) = _as_list(manage["Resource"])
        # moto's execution_arn leaves the account out (AWS's has it).
        assert re.fullmatch(
            rf"arn:aws:execute-api:{REGION}:\d*:{api_id}/live/POST/@connections/\*", resource
        ), resource
    publish = [s for s in statements if "events:PutEvents" in _as_list(s["Action"])]
    if role == "word-count":
        # A processor may publish TaskUpdated only, with its own source only.
        (statement,) = publish
        assert statement["Condition"] == {
            "StringEquals": {
                "events:detail-type": "TaskUpdated",
                "events:source": PROCESSOR_SOURCE,
            }
        }


# --- API ---------------------------------------------------------------------------------------


def test_api_serves_the_design_routes_behind_iam_with_throttling_and_access_logs(
    deployment: Deployment,
) -> None:
    apigw = deployment.client("apigatewayv2")
    api_id = deployment.outputs["api_id"]
    routes = {r["RouteKey"]: r for r in apigw.get_routes(ApiId=api_id)["Items"]}
    assert set(routes) == {
        "POST /tasks",
        "GET /tasks",
        "GET /tasks/{id}",
        "POST /tasks/{id}/cancel",
        "GET /openapi.json",
    }
    (integration,) = apigw.get_integrations(ApiId=api_id)["Items"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["PayloadFormatVersion"] == "2.0"
    assert integration["IntegrationUri"].endswith(f":function:{NAME}-api/invocations")
    for route in routes.values():
        assert route["AuthorizationType"] == "AWS_IAM"
        assert route["Target"] == f"integrations/{integration['IntegrationId']}"
    (stage,) = apigw.get_stages(ApiId=api_id)["Items"]
    assert stage["StageName"] == "$default"
    assert stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] == 50
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] == 20.0
    assert stage["AccessLogSettings"]["DestinationArn"].endswith(
        f":log-group:/aws/apigateway/{NAME}"
    )
    assert "$context.routeKey" in stage["AccessLogSettings"]["Format"]


def test_websocket_api_routes_by_action_to_the_sockets_function(deployment: Deployment) -> None:
    apigw = deployment.client("apigatewayv2")
    api_id = deployment.outputs["websocket_url"].split("//")[1].split(".")[0]
    api = apigw.get_api(ApiId=api_id)
    assert api["ProtocolType"] == "WEBSOCKET"
    assert api["RouteSelectionExpression"] == "$request.body.action"
    (integration,) = apigw.get_integrations(ApiId=api_id)["Items"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["IntegrationUri"].endswith(f":function:{NAME}-sockets/invocations")
    routes = {r["RouteKey"]: r for r in apigw.get_routes(ApiId=api_id)["Items"]}
    assert set(routes) == {
        "$connect",
        "$disconnect",
        "$default",
        "subscribe",
        "unsubscribe",
        "submit",
    }
    assert routes["$connect"]["AuthorizationType"] == "AWS_IAM"
    for key, route in routes.items():
        assert route["Target"] == f"integrations/{integration['IntegrationId']}"
        if key not in {"$connect", "$disconnect"}:  # answered on the route: two-way
            assert route["RouteResponseSelectionExpression"] == "$default"
    # moto has no GetRouteResponses (500): the state says which were created.
    state = deployment.terraform.run(deployment.workdir, "state", "list")
    responses = {
        line.split('"')[1]
        for line in state.splitlines()
        if "aws_apigatewayv2_route_response" in line
    }
    assert responses == {"$default", "subscribe", "unsubscribe", "submit"}
    (stage,) = apigw.get_stages(ApiId=api_id)["Items"]
    assert stage["StageName"] == "live"
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] == 100
    assert stage["AccessLogSettings"]["DestinationArn"].endswith(
        f":log-group:/aws/apigateway/{NAME}-push"
    )
    assert "$context.connectionId" in stage["AccessLogSettings"]["Format"]


def test_connections_table_matches_the_adapters_create_table(deployment: Deployment) -> None:
    table = deployment.client("dynamodb").describe_table(TableName=f"{NAME}-connections")["Table"]
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert "StreamSpecification" not in table or not table["StreamSpecification"]["StreamEnabled"]
    ttl = deployment.client("dynamodb").describe_time_to_live(TableName=f"{NAME}-connections")
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"


def test_outbound_events_feed_the_notify_queue_with_a_dead_letter_queue(
    deployment: Deployment,
) -> None:
    events = deployment.client("events")
    rule = events.describe_rule(Name=f"{NAME}-notify", EventBusName=NAME)
    assert json.loads(rule["EventPattern"]) == {
        "detail-type": ["TaskCreated", "TaskRunning", "TaskSuccessful", "TaskFailed"],
        "source": ["taskmanager"],
    }
    (target,) = events.list_targets_by_rule(Rule=f"{NAME}-notify", EventBusName=NAME)["Targets"]
    assert target["Arn"].endswith(f":{NAME}-notify")
    assert target["DeadLetterConfig"]["Arn"].endswith(f":{NAME}-notify-dlq")
    sqs = deployment.client("sqs")
    url = sqs.get_queue_url(QueueName=f"{NAME}-notify")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"].endswith(
        f":{NAME}-notify-dlq"
    )
    mapping = _mappings(deployment)[f"{NAME}-notify"]
    assert mapping["EventSourceArn"].endswith(f":{NAME}-notify")
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_alarms_watch_dead_letters_errors_and_stream_lag(deployment: Deployment) -> None:
    # This stack's alarms: other Terraform tests share the session's moto server.
    described = deployment.client("cloudwatch").describe_alarms(AlarmNamePrefix=f"{NAME}-")
    alarms = {a["AlarmName"]: a for a in described["MetricAlarms"]}
    assert set(alarms) == {
        f"{NAME}-updates-dlq-not-empty",
        f"{NAME}-stream-failures-not-empty",
        f"{NAME}-notify-dlq-not-empty",
        f"{NAME}-stream-iterator-age",
        f"{NAME}-word-count-errors",
        f"{NAME}-word-count-failures-not-empty",
        f"{NAME}-export-tasks-dlq-not-empty",
        *(f"{NAME}-{f}-errors" for f in FUNCTIONS),
    }
    dlq = alarms[f"{NAME}-updates-dlq-not-empty"]
    assert dlq["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert dlq["Threshold"] == 0
    assert dlq["ComparisonOperator"] == "GreaterThanThreshold"
    assert dlq["Dimensions"] == [{"Name": "QueueName", "Value": f"{NAME}-updates-dlq"}]
    age = alarms[f"{NAME}-stream-iterator-age"]
    assert age["MetricName"] == "IteratorAge"
    assert age["Dimensions"] == [{"Name": "FunctionName", "Value": f"{NAME}-stream"}]


# --- destroy (last: the module's tests above share one deployment) ---------------------------


def test_destroy_leaves_nothing(deployment: Deployment) -> None:
    started = time.monotonic()
    deployment.terraform.run(
        deployment.workdir, "destroy", "-auto-approve", "-input=false", "-parallelism=20"
    )
    TIMINGS["destroy"] = time.monotonic() - started
    deployment.destroyed = True
    # moto keeps one state per process, shared with other tests: look at this deployment's
    # names (all start with NAME) only.
    c = deployment.client

    def ours(names: list[str]) -> list[str]:
        return [n for n in names if NAME in n]

    assert ours(c("dynamodb").list_tables()["TableNames"]) == []
    assert ours(c("sqs").list_queues().get("QueueUrls", [])) == []
    assert ours([f["FunctionName"] for f in c("lambda").list_functions()["Functions"]]) == []
    mappings = c("lambda").list_event_source_mappings()["EventSourceMappings"]
    assert ours([m["FunctionArn"] for m in mappings]) == []
    assert ours([b["Name"] for b in c("events").list_event_buses()["EventBuses"]]) == []
    assert ours([r["Name"] for r in c("events").list_rules()["Rules"]]) == []
    assert ours([r["RoleName"] for r in c("iam").list_roles()["Roles"]]) == []
    assert ours([a["Name"] for a in c("apigatewayv2").get_apis()["Items"]]) == []
    groups = c("logs").describe_log_groups()["logGroups"]
    assert ours([g["logGroupName"] for g in groups]) == []
    alarms = c("cloudwatch").describe_alarms()["MetricAlarms"]
    assert ours([a["AlarmName"] for a in alarms]) == []
    print(f"\nterraform apply {TIMINGS.get('apply', 0):.0f} s, destroy {TIMINGS['destroy']:.0f} s")
