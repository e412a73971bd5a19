"""Least privilege in the Terraform: every IAM policy document statement, parsed from HCL.

The checker runs on every ``*.tf`` under ``infra/terraform`` and, so that it is known to bite,
on a small policy file written here with one good and several bad statements.

No action may carry a wildcard (``dynamodb:*``, ``*``). A resource may be ``*`` only for the
actions AWS offers without resource-level permissions; otherwise it names the resource
(a Terraform reference, maybe with a documented suffix such as ``:*`` for a log group's
streams or ``/stream/*`` for a table's streams), never a bare or account-wide wildcard.
No principal is ``*``, and no AWS-managed admin or full-access policy is attached.

Processors live in the task manager's account (docs/deploy.md, "Processors"): no resource
policy names another account (``principals`` of type ``AWS``), no bus or table policy
resource exists, and functions may be invoked by AWS services only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

import hcl2

TERRAFORM: Final = Path(__file__).resolve().parents[2] / "infra" / "terraform"

#: Actions IAM evaluates only against "*" (no resource-level permissions), per the AWS
#: Service Authorization Reference.
ONLY_STAR_RESOURCE: Final = frozenset(
    {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "cloudwatch:PutMetricData",
        "logs:CreateLogGroup",
        "sts:GetCallerIdentity",
        # ECR's registry token is account-wide (the worker service's execution role).
        "ecr:GetAuthorizationToken",
    }
)
_INTERPOLATION: Final = re.compile(r"\$\{[^}]*\}")


def _plain(value: Any) -> Any:
    """python-hcl2 keeps string literals quoted; unquote them."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = list(document.get("statement", []))
    for dynamic in document.get("dynamic", []):
        for name, block in dynamic.items():
            if _plain(name) == "statement":
                found += block.get("content", [])
    return found


def policy_statements(root: Path = TERRAFORM) -> list[tuple[str, dict[str, Any]]]:
    """(where, statement) for every statement of every ``aws_iam_policy_document``."""
    out: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(root.rglob("*.tf")):
        if ".terraform" in path.parts:
            continue
        with path.open() as handle:
            parsed = hcl2.load(handle)
        for data in parsed.get("data", []):
            for kind, documents in data.items():
                if _plain(kind) != "aws_iam_policy_document":
                    continue
                for name, document in documents.items():
                    for statement in _statements(document):
                        where = f"{path.relative_to(root)}:{_plain(name)}"
                        sid = _plain(statement.get("sid", ""))
                        out.append((f"{where}:{sid}" if sid else where, statement))
    return out


def _strings(value: Any) -> list[str]:
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [str(_plain(value))]


def resource_is_specific(resource: str) -> bool:
    """Names a resource: a Terraform reference (with at most a suffix wildcard) or an ARN
    whose resource part has no wildcard."""
    literal = _INTERPOLATION.sub("X", resource)
    if "*" not in literal:
        return True
    if resource == "*" or not _INTERPOLATION.search(resource):
        return False
    # "${arn}:*" (a log group's streams) or "${table_arn}/stream/*": the prefix is specific.
    return literal.startswith("X") and "*" not in literal.rstrip("*").rstrip(":/").split("/")[0]


def wildcard_actions(statements: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str]]:
    return [
        (where, action)
        for where, statement in statements
        for action in _strings(statement.get("actions", []))
        if "*" in action
    ]


def wildcard_resources(statements: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, Any]]:
    offenders: list[tuple[str, Any]] = []
    for where, statement in statements:
        actions = set(_strings(statement.get("actions", [])))
        for resource in _strings(statement.get("resources", [])):
            if resource == "*":
                if not actions <= ONLY_STAR_RESOURCE:
                    offenders.append((where, sorted(actions - ONLY_STAR_RESOURCE)))
            elif not resource_is_specific(resource):
                offenders.append((where, resource))
    return offenders


def account_principals(statements: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Statements granting to IAM principals (accounts, roles, users) by resource policy."""
    return [
        where
        for where, statement in statements
        for principal in statement.get("principals", [])
        if _plain(principal.get("type")) == "AWS"
    ]


def resources_of_type(root: Path = TERRAFORM) -> dict[str, list[dict[str, Any]]]:
    """Every ``resource`` block under ``root``, by type."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(root.rglob("*.tf")):
        if ".terraform" in path.parts:
            continue
        with path.open() as handle:
            parsed = hcl2.load(handle)
        for resource in parsed.get("resource", []):
            for kind, blocks in resource.items():
                found.setdefault(_plain(kind), []).extend(blocks.values())
    return found


#: Resource policies that would let another account reach the bus or the table.
CROSS_ACCOUNT_POLICIES: Final = frozenset(
    {
        "aws_cloudwatch_event_bus_policy",
        "aws_cloudwatch_event_permission",
        "aws_dynamodb_resource_policy",
    }
)


def open_principals(statements: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [
        where
        for where, statement in statements
        for principal in statement.get("principals", [])
        if "*" in _strings(principal.get("identifiers", []))
    ]


SAMPLE: Final = """
data "aws_iam_policy_document" "sample" {
  statement {
    sid       = "Good"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem"]
    resources = [aws_dynamodb_table.this.arn, "${aws_cloudwatch_log_group.this.arn}:*"]
  }
  statement {
    sid       = "Traces"
    actions   = ["xray:PutTraceSegments"]
    resources = ["*"]
  }
  statement {
    sid       = "AnyAction"
    actions   = ["dynamodb:*"]
    resources = [aws_dynamodb_table.this.arn]
  }
  statement {
    sid       = "AnyTable"
    actions   = ["dynamodb:Query"]
    resources = ["*"]
  }
  dynamic "statement" {
    for_each = [1]
    content {
      sid       = "AnyQueue"
      actions   = ["sqs:SendMessage"]
      resources = ["arn:aws:sqs:*:*:*"]
    }
  }
  statement {
    sid     = "Everyone"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
  }
  statement {
    sid     = "Service"
    actions = ["sqs:SendMessage"]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
  }
}

resource "aws_cloudwatch_event_bus_policy" "this" {
  event_bus_name = "bus"
  policy         = data.aws_iam_policy_document.sample.json
}
"""


def test_the_checker_finds_each_kind_of_wildcard(tmp_path: Path) -> None:
    (tmp_path / "sample.tf").write_text(SAMPLE)
    statements = policy_statements(tmp_path)
    assert len(statements) == 7
    assert [w.rsplit(":", 1)[1] for w, _ in wildcard_actions(statements)] == ["AnyAction"]
    assert [w.rsplit(":", 1)[1] for w, _ in wildcard_resources(statements)] == [
        "AnyTable",
        "AnyQueue",
    ]
    assert [w.rsplit(":", 1)[1] for w in open_principals(statements)] == ["Everyone"]
    assert [w.rsplit(":", 1)[1] for w in account_principals(statements)] == ["Everyone"]
    assert set(resources_of_type(tmp_path)) & CROSS_ACCOUNT_POLICIES == {
        "aws_cloudwatch_event_bus_policy"
    }
    assert resource_is_specific("${aws_dynamodb_table.this.arn}/stream/*")
    assert not resource_is_specific("arn:${data.aws_partition.current.partition}:sqs:*:*:*")


def test_the_projects_terraform_policies_have_no_needless_wildcard() -> None:
    """Every policy document under infra/terraform (all of them, as the Terraform grows)."""
    statements = policy_statements()
    assert wildcard_actions(statements) == []
    assert wildcard_resources(statements) == []
    assert open_principals(statements) == []
    text = "\n".join(p.read_text() for p in TERRAFORM.rglob("*.tf")) if TERRAFORM.exists() else ""
    assert "AdministratorAccess" not in text
    assert not re.search(r"arn:aws:iam::aws:policy/\S*FullAccess", text)


def test_nothing_opens_the_task_managers_resources_to_other_accounts() -> None:
    """Processors run in the task manager's account. A bus policy for other accounts'
    TaskUpdated could not make them work (they read the table in their own account and never
    receive TaskCreated), so none is made, and Lambda functions admit only AWS services."""
    assert account_principals(policy_statements()) == []
    resources = resources_of_type()
    assert set(resources) & CROSS_ACCOUNT_POLICIES == set()
    principals = [_plain(p["principal"]) for p in resources.get("aws_lambda_permission", [])]
    assert principals
    assert all(p.endswith(".amazonaws.com") for p in principals), principals


def _conditions(statement: dict[str, Any]) -> dict[tuple[str, str], list[str]]:
    return {
        (_plain(c["test"]), _plain(c["variable"])): _strings(c["values"])
        for c in statement.get("condition", [])
    }


def _policy_documents(path: Path) -> dict[str, dict[str, Any]]:
    with path.open() as handle:
        parsed = hcl2.load(handle)
    return {
        _plain(name): document
        for data in parsed.get("data", [])
        for kind, documents in data.items()
        if _plain(kind) == "aws_iam_policy_document"
        for name, document in documents.items()
    }


def test_a_processor_may_publish_taskupdated_with_its_own_source_only() -> None:
    """Whoever may publish TaskUpdated with a source may report as that processor, so each
    processor's role names its own source (events:source, a PutEvents condition key, checked
    per entry) beside the detail-type. StringEquals, not ForAllValues: a request without the
    key must not pass. The statement replaces the task manager's unconditioned one through
    the same sid: both together would allow any source."""
    statements = dict(policy_statements())
    publish = statements["modules/processor/main.tf:publish:PublishTaskUpdated"]
    assert _strings(publish["actions"]) == ["events:PutEvents"]
    assert _conditions(publish) == {
        ("StringEquals", "events:detail-type"): ["TaskUpdated"],
        ("StringEquals", "events:source"): ["${local.event_source}"],
    }
    assert "modules/task-manager/policies.tf:processor_publish:PublishTaskUpdated" in statements
    role = _policy_documents(TERRAFORM / "modules" / "processor" / "main.tf")["this"]
    # An SDK processor gets both; a function without the SDK (sdk = false) neither.
    assert role["source_policy_documents"] == (
        "${var.sdk ? [var.task_manager.processor_policy_json] : []}"
    )
    assert role["override_policy_documents"] == (
        "${var.sdk ? [data.aws_iam_policy_document.publish.json] : []}"
    )
    # No statement of the processor's own may publish on its side.
    others = [
        where
        for where, statement in statements.items()
        if where.startswith("modules/processor/")
        and "events:PutEvents" in _strings(statement.get("actions", []))
        and where != "modules/processor/main.tf:publish:PublishTaskUpdated"
    ]
    assert others == []


def test_a_queue_worker_may_take_its_queues_messages_and_report_nothing_more() -> None:
    """delivery = "queue": the worker policy (an output, for whatever role runs the
    workers) adds to the processor's publish and status read only receive, change visibility
    and delete on its own task queue, and the queue's key; the queues admit only the rule."""
    statements = dict(policy_statements())
    receive = statements["modules/processor/queue.tf:worker:ReceiveTasks"]
    assert sorted(_strings(receive["actions"])) == [
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:ReceiveMessage",
    ]
    assert _strings(receive["resources"]) == ["${aws_sqs_queue.tasks[0].arn}"]
    key = statements["modules/processor/queue.tf:worker:QueueKey"]
    assert sorted(_strings(key["actions"])) == ["kms:Decrypt", "kms:GenerateDataKey"]
    worker = _policy_documents(TERRAFORM / "modules" / "processor" / "queue.tf")["worker"]
    assert worker["source_policy_documents"] == ["${var.task_manager.processor_policy_json}"]
    assert worker["override_policy_documents"] == ["${data.aws_iam_policy_document.publish.json}"]
    own = {w for w in statements if w.startswith("modules/processor/queue.tf:worker")}
    assert own == {
        "modules/processor/queue.tf:worker:ReceiveTasks",
        "modules/processor/queue.tf:worker:QueueKey",
    }
    queue = _policy_documents(TERRAFORM / "modules" / "processor" / "queue.tf")["queue"]
    (statement,) = queue["statement"]
    assert _strings(statement["actions"]) == ["sqs:SendMessage"]
    assert _conditions(statement) == {
        ("ArnEquals", "aws:SourceArn"): ["${aws_cloudwatch_event_rule.this.arn}"]
    }


def test_a_function_without_the_sdk_may_only_send_its_records_to_the_updates_queue() -> None:
    """With sdk = false, Lambda sends the function's invocation records with its role: on
    success one statement more, SendMessage on the task manager's updates queue only."""
    statements = dict(policy_statements())
    on_success = statements["modules/processor/main.tf:this:OnSuccessDestination"]
    assert _strings(on_success["actions"]) == ["sqs:SendMessage"]
    assert _strings(on_success["resources"]) == ["${statement.value}"]
    role = _policy_documents(TERRAFORM / "modules" / "processor" / "main.tf")["this"]
    (dynamic,) = [
        block
        for item in role["dynamic"]
        for name, block in item.items()
        if _plain(name) == "statement"
        and _strings(block["content"][0].get("sid", "")) == ["OnSuccessDestination"]
    ]
    assert dynamic["for_each"] == "${var.sdk ? [] : [local.updates_queue_arn]}"
