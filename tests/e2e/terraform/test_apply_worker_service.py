"""``terraform apply`` of the worker-service module against moto server, read back with
boto3: the cluster, the task definition (image, size, command, settings, stop timeout), the
roles (the worker policy on the task role, only logs on the execution role) and the scaling
on the queue's backlog.

moto starts no container (its ECS tasks go RUNNING and run nothing) and evaluates no IAM or
scaling policy: what the worker does is tested where it runs as a real process. moto has no
ListTagsForResource for application-autoscaling, which the provider calls on every read of a
scalable target, so the scaling target and policy are read from a plan made against the
applied state (every value known) rather than applied. The queue
is named by its ARN (moto does not check it; a queue would cost the apply about 25 s). The
state is left to the session's moto: its names (NAME) are no other test's.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from tests.e2e.terraform.test_apply_moto import REGION

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e.terraform.conftest import Applies, Terraform

pytestmark = pytest.mark.slow

NAME = "tm-fargate"
QUEUE = f"arn:aws:sqs:{REGION}:123456789012:{NAME}-render"
QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/123456789012/{NAME}-render"
WORKER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "ReadTheQueue",
            "Effect": "Allow",
            "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"],
            "Resource": QUEUE,
        }
    ],
}
#: What the apply creates (with what they depend on): all but the scaling.
APPLIED = (
    "aws_ecs_service.this",
    "aws_iam_role_policy.task",
    "aws_iam_role_policy.execution",
)
SERVICES = ("appautoscaling", "cloudwatch", "ec2", "ecs", "iam", "logs", "sts")

ROOT = """
resource "aws_vpc" "this" {
  cidr_block = "10.0.0.0/16"
}

resource "aws_subnet" "this" {
  vpc_id     = aws_vpc.this.id
  cidr_block = "10.0.1.0/24"
}

resource "aws_security_group" "this" {
  name   = "NAME-worker"
  vpc_id = aws_vpc.this.id
}

module "render" {
  source = "MODULE"

  name               = "NAME"
  image              = "123456789012.dkr.ecr.REGION.amazonaws.com/render-worker:1.0"
  processor          = "render_tasks:processor"
  queue              = { url = "QUEUE_URL", arn = "QUEUE_ARN" }
  worker_policy_json = jsonencode(POLICY)
  concurrency        = 16
  grace_seconds      = 60
  task_manager = {
    table_name       = "NAME-tasks"
    event_bus_name   = "NAME"
    event_source     = "taskmanager"
    processor_source = "taskmanager.processor.NAME-render"
  }
  task    = { cpu = 1024, memory = 2048 }
  scaling = { min_tasks = 1, max_tasks = 8, backlog_per_task = 32 }
  network = {
    subnet_ids         = [aws_subnet.this.id]
    security_group_ids = [aws_security_group.this.id]
  }
}

output "module" {
  value = module.render
}
"""


def _override(endpoint: str) -> str:
    endpoints = "\n".join(f'    {s} = "{endpoint}"' for s in SERVICES)
    return f"""provider "aws" {{
  region                      = "{REGION}"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  # moto answers what it lacks with a 500, which the provider would retry for minutes.
  max_retries = 1

  endpoints {{
{endpoints}
  }}
}}
"""


def _client(endpoint: str, service: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def apply_worker_service(
    terraform: Terraform, infra_copy: Path, moto_server: str, workdir: Path
) -> dict[str, Any]:
    """Apply the worker-service module to moto and plan its scaling; run by the session's
    ``applies`` fixture, beside the other applies (tests/e2e/terraform/conftest.py)."""
    root = (
        ROOT.replace("QUEUE_URL", QUEUE_URL)
        .replace("QUEUE_ARN", QUEUE)
        .replace("POLICY", json.dumps(WORKER_POLICY).replace('": ', '" = '))
        .replace("NAME", NAME)
        .replace("REGION", REGION)
        .replace("MODULE", str(infra_copy / "modules" / "worker-service"))
    )
    (workdir / "main.tf").write_text(root)
    (workdir / "moto_override.tf").write_text(_override(moto_server))
    terraform.init(workdir)
    # moto lacks application-autoscaling's ListTagsForResource, which the provider calls on
    # every read of a scalable target: everything else is applied, and the scaling is read
    # from the plan made against that state (all its values known by then).
    targets = [f"-target=module.render.{r}" for r in APPLIED]
    terraform.run(workdir, "apply", "-auto-approve", "-input=false", "-parallelism=20", *targets)
    # A targeted apply leaves the outputs unwritten: the module's outputs, from the state.
    state = json.loads(terraform.run(workdir, "show", "-json"))["values"]["root_module"]
    (module,) = state["child_modules"]
    values = {r["address"].removeprefix("module.render."): r["values"] for r in module["resources"]}
    outputs = {
        "cluster_arn": values["aws_ecs_cluster.this[0]"]["arn"],
        "service_name": values["aws_ecs_service.this"]["name"],
        "task_definition_arn": values["aws_ecs_task_definition.this"]["arn"],
        "task_role_arn": values["aws_iam_role.task"]["arn"],
        "execution_role_arn": values["aws_iam_role.execution"]["arn"],
        "log_group_name": values["aws_cloudwatch_log_group.this"]["name"],
    }
    terraform.run(workdir, "plan", "-input=false", "-out=scaling.plan")
    planned = json.loads(terraform.run(workdir, "show", "-json", "scaling.plan"))
    scaling = {
        change["type"]: change["change"]["after"]
        for change in planned["resource_changes"]
        if change["type"].startswith("aws_appautoscaling")
    }
    return {"endpoint": moto_server, "scaling": scaling, **outputs}


@pytest.fixture(scope="module")
def applied(applies: Applies) -> dict[str, Any]:
    outputs = applies.result("worker-service")
    assert isinstance(outputs, dict)
    return outputs


def test_the_service_runs_the_task_definition_on_fargate(applied: dict[str, Any]) -> None:
    ecs = _client(applied["endpoint"], "ecs")
    (service,) = ecs.describe_services(
        cluster=applied["cluster_arn"], services=[applied["service_name"]]
    )["services"]
    assert service["launchType"] == "FARGATE"
    assert service["taskDefinition"] == applied["task_definition_arn"]
    assert service["desiredCount"] == 1
    (cluster,) = ecs.describe_clusters(clusters=[applied["cluster_arn"]])["clusters"]
    assert {"name": "containerInsights", "value": "enabled"} in cluster["settings"]


def test_the_container_runs_the_worker_with_its_settings(applied: dict[str, Any]) -> None:
    ecs = _client(applied["endpoint"], "ecs")
    definition = ecs.describe_task_definition(taskDefinition=applied["task_definition_arn"])[
        "taskDefinition"
    ]
    assert (definition["cpu"], definition["memory"]) == ("1024", "2048")
    assert definition["requiresCompatibilities"] == ["FARGATE"]
    assert definition["networkMode"] == "awsvpc"
    assert definition["taskRoleArn"] == applied["task_role_arn"]
    assert definition["executionRoleArn"] == applied["execution_role_arn"]
    (container,) = definition["containerDefinitions"]
    assert container["command"] == [
        "--queue-url",
        QUEUE_URL,
        "--processor",
        "render_tasks:processor",
        "--concurrency",
        "16",
        "--grace-seconds",
        "60",
    ]
    assert container["stopTimeout"] == 70  # the grace period, then 10 s to release messages
    environment = {e["name"]: e["value"] for e in container["environment"]}
    assert environment == {
        "AWS_REGION": REGION,
        "TASKMANAGER_TABLE_NAME": f"{NAME}-tasks",
        "TASKMANAGER_EVENT_BUS_NAME": NAME,
        "TASKMANAGER_EVENT_SOURCE": "taskmanager",
        "TASKMANAGER_PROCESSOR_SOURCE": f"taskmanager.processor.{NAME}-render",
    }
    assert container["logConfiguration"]["options"]["awslogs-group"] == applied["log_group_name"]


def _role_actions(endpoint: str, role_arn: str) -> dict[str, Any]:
    iam = _client(endpoint, "iam")
    role = role_arn.rsplit("/", 1)[1]
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    documents = {}
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        documents[name] = json.loads(document) if isinstance(document, str) else document
    trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    return documents


def test_the_task_role_holds_the_worker_policy_and_nothing_else(applied: dict[str, Any]) -> None:
    documents = _role_actions(applied["endpoint"], applied["task_role_arn"])
    assert list(documents.values()) == [WORKER_POLICY]


def test_the_execution_role_writes_the_log_group_only(applied: dict[str, Any]) -> None:
    documents = _role_actions(applied["endpoint"], applied["execution_role_arn"])
    statements = [s for document in documents.values() for s in document["Statement"]]
    actions = set()
    for statement in statements:
        listed = statement["Action"]
        actions |= {listed} if isinstance(listed, str) else set(listed)
        resources = statement["Resource"]
        for resource in [resources] if isinstance(resources, str) else resources:
            if statement.get("Sid") != "RegistryToken":
                assert applied["log_group_name"] in resource or ":repository/" in resource
    # The image is in ECR only if image_repository_arn is given: not here.
    assert actions == {"logs:CreateLogStream", "logs:PutLogEvents"}


def test_the_service_scales_on_the_backlog_per_running_worker(applied: dict[str, Any]) -> None:
    target = applied["scaling"]["aws_appautoscaling_target"]
    resource = f"service/{applied['cluster_arn'].rsplit('/', 1)[1]}/{applied['service_name']}"
    assert target["resource_id"] == resource
    assert (target["min_capacity"], target["max_capacity"]) == (1, 8)
    assert target["scalable_dimension"] == "ecs:service:DesiredCount"
    policy = applied["scaling"]["aws_appautoscaling_policy"]
    assert (policy["policy_type"], policy["resource_id"]) == ("TargetTrackingScaling", resource)
    (configuration,) = policy["target_tracking_scaling_policy_configuration"]
    assert configuration["target_value"] == 32
    (specification,) = configuration["customized_metric_specification"]
    metrics = {m["id"]: m for m in specification["metrics"]}
    assert metrics["backlog_per_task"]["expression"] == "visible / running"
    assert [m["id"] for m in specification["metrics"] if m["return_data"]] == ["backlog_per_task"]
    (visible,) = metrics["visible"]["metric_stat"][0]["metric"]
    assert visible["metric_name"] == "ApproximateNumberOfMessagesVisible"
    assert visible["dimensions"] == [{"name": "QueueName", "value": f"{NAME}-render"}]
    (running,) = metrics["running"]["metric_stat"][0]["metric"]
    assert (running["namespace"], running["metric_name"]) == (
        "ECS/ContainerInsights",
        "RunningTaskCount",
    )
    assert {"name": "ServiceName", "value": applied["service_name"]} in running["dimensions"]
