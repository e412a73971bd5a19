"""``terraform apply`` against moto server of the processor module with ``sdk = false``: a
function without the SDK whose invocation records report for it. Read back with boto3, then
left to the session's moto.

A small root of its own (a bus, and the task manager's updates queue named by its ARN), so
the check costs about half a minute (the module's failure queue), not the whole task
manager's apply. moto stores the destinations and never
sends a record (it runs no function code): what the records become is tested in
tests/unit/entrypoints/test_updates_invocations.py.
"""

from __future__ import annotations

import json
import zipfile
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from tests.e2e.terraform.conftest import REPO, Applies, Terraform
from tests.e2e.terraform.test_apply_moto import REGION, _override, _stand_in_layer

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow

NAME = "tm-dest"
FUNCTION = f"{NAME}-word-count"

ROOT = """
variable "function_zip" {
  type = string
}
variable "layer_arn" {
  type = string
}

resource "aws_cloudwatch_event_bus" "this" {
  name = "NAME"
}

locals {
  # The task manager's updates queue, named only: moto does not check that a destination
  # exists, and a queue costs the apply about 25 s.
  updates_queue_arn = "arn:aws:sqs:REGION:123456789012:NAME-updates"
}

module "word_count" {
  source = "MODULE"

  name      = "NAME-word-count"
  task_type = "text.wordcount"
  sdk       = false
  task_manager = {
    event_bus_name        = aws_cloudwatch_event_bus.this.name
    event_bus_arn         = aws_cloudwatch_event_bus.this.arn
    event_source          = "taskmanager"
    table_name            = "NAME-tasks"
    processor_policy_json = "{\\"Version\\":\\"2012-10-17\\",\\"Statement\\":[]}"
    updates_queue_arn     = local.updates_queue_arn
  }
  powertools_layer_arn = var.layer_arn
  lambda_package       = { path = var.function_zip, handler = "nosdk_function.handler" }
}

output "event_source" {
  value = module.word_count.event_source
}
output "function_arn" {
  value = module.word_count.function_arn
}
output "updates_queue_arn" {
  value = local.updates_queue_arn
}
"""


def _client(endpoint: str, service: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def apply_destinations(
    terraform: Terraform, infra_copy: Path, moto_server: str, workdir: Path
) -> dict[str, Any]:
    """Apply the processor module with ``sdk = false`` to moto; run by the session's
    ``applies`` fixture, beside the other applies (tests/e2e/terraform/conftest.py)."""
    function_zip = workdir / "word-count-python3.12-x86_64.zip"
    with zipfile.ZipFile(function_zip, "w") as archive:
        archive.write(REPO / "docs" / "examples" / "nosdk_function.py", "nosdk_function.py")
    root = (
        ROOT.replace("NAME", NAME)
        .replace("REGION", REGION)
        .replace("MODULE", str(infra_copy / "modules" / "processor"))
    )
    (workdir / "main.tf").write_text(root)
    (workdir / "moto_override.tf").write_text(_override(moto_server))
    layer_arn = _stand_in_layer(moto_server, NAME)
    (workdir / "moto.auto.tfvars.json").write_text(
        json.dumps({"function_zip": str(function_zip), "layer_arn": layer_arn})
    )
    terraform.init(workdir)
    terraform.run(workdir, "apply", "-auto-approve", "-input=false", "-parallelism=20")
    outputs = {
        key: value["value"]
        for key, value in json.loads(terraform.run(workdir, "output", "-json")).items()
    }
    # Not destroyed: moto's state lives as long as the test session, these names (NAME) are
    # no other test's, and a destroy would wait on the queue's deletion for a minute.
    return {"endpoint": moto_server, **outputs}


@pytest.fixture(scope="module")
def applied(applies: Applies) -> dict[str, Any]:
    outputs = applies.result("destinations")
    assert isinstance(outputs, dict)
    return outputs


def test_both_destinations_are_the_updates_queue(applied: dict[str, Any]) -> None:
    invoke = _client(applied["endpoint"], "lambda").get_function_event_invoke_config(
        FunctionName=FUNCTION
    )
    assert invoke["DestinationConfig"] == {
        "OnSuccess": {"Destination": applied["updates_queue_arn"]},
        "OnFailure": {"Destination": applied["updates_queue_arn"]},
    }


def test_the_role_may_only_send_to_the_updates_queue_and_write_logs(
    applied: dict[str, Any],
) -> None:
    iam = _client(applied["endpoint"], "iam")
    assert iam.list_attached_role_policies(RoleName=FUNCTION)["AttachedPolicies"] == []
    statements: list[dict[str, Any]] = []
    for name in iam.list_role_policies(RoleName=FUNCTION)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=FUNCTION, PolicyName=name)["PolicyDocument"]
        statements += (json.loads(document) if isinstance(document, str) else document)["Statement"]
    by_action: dict[str, set[str]] = {}
    for statement in statements:
        actions = statement["Action"]
        resources = statement["Resource"]
        for action in [actions] if isinstance(actions, str) else actions:
            by_action.setdefault(action, set()).update(
                [resources] if isinstance(resources, str) else resources
            )
    # No PutEvents, no GetItem: the function reports through its records only.
    assert set(by_action) == {
        "sqs:SendMessage",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    assert by_action["sqs:SendMessage"] == {applied["updates_queue_arn"]}


def test_the_function_is_its_own_reporter(applied: dict[str, Any]) -> None:
    """The event_source output, to list under the task type in processor_sources, is the
    function's ARN: the name its invocation records carry."""
    assert applied["event_source"] == applied["function_arn"]
    assert applied["function_arn"].endswith(f":function:{FUNCTION}")
