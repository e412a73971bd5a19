data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  table_name     = coalesce(var.table.name, "${var.name}-tasks")
  event_bus_name = var.event_bus.create ? coalesce(var.event_bus.name, var.name) : var.event_bus.name
  event_bus_arn  = var.event_bus.create ? aws_cloudwatch_event_bus.this[0].arn : data.aws_cloudwatch_event_bus.existing[0].arn
  owner_claim    = var.api.authorization == "JWT" ? "jwt_sub" : (var.api.iam_owner_keeps_session ? "iam_session" : "iam")

  # With JSON logs Lambda drops application logs below this level whatever Powertools emits,
  # so it follows lambda.log_level; Lambda spells WARNING as WARN.
  application_log_level = { DEBUG = "DEBUG", INFO = "INFO", WARNING = "WARN", ERROR = "ERROR" }[var.lambda.log_level]

  # Queue ARNs from their names, so each queue's policy can name the queue itself.
  queue_arn_prefix   = "arn:${data.aws_partition.current.partition}:sqs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}"
  updates_queue_name = "${var.name}-updates"
  updates_dlq_name   = "${var.name}-updates-dlq"

  # The same names as the settings model (entrypoints/bootstrap.py, docs/design.md §8).
  environment = merge({
    TASKMANAGER_TABLE_NAME              = aws_dynamodb_table.this.name
    TASKMANAGER_EVENT_BUS_NAME          = local.event_bus_name
    TASKMANAGER_EVENT_SOURCE            = var.settings.event_source
    TASKMANAGER_DEFAULT_TIMEOUT_SECONDS = tostring(var.settings.default_timeout_seconds)
    TASKMANAGER_RETENTION_SECONDS       = tostring(var.settings.retention_seconds)
    TASKMANAGER_OWNER_CLAIM             = local.owner_claim
    TASKMANAGER_DUE_SHARDS              = tostring(var.table.due_shards)
    TASKMANAGER_TRACING                 = var.lambda.tracing ? "true" : "false"
    POWERTOOLS_LOG_LEVEL                = var.lambda.log_level
    POWERTOOLS_METRICS_NAMESPACE        = "taskmanager"
    }, var.settings.default_start_timeout_seconds == null ? {} : {
    TASKMANAGER_DEFAULT_START_TIMEOUT_SECONDS = tostring(var.settings.default_start_timeout_seconds)
  })

  # The sources the TaskUpdated rule admits (empty: any): those of processor_sources, else
  # event_bus.update_sources.
  processor_sources = sort(distinct(flatten(values(var.processor_sources))))
  update_sources    = length(var.processor_sources) > 0 ? local.processor_sources : var.event_bus.update_sources

  # Event patterns live in JSON next to the module; tests check them against the contracts.
  task_updated_pattern = merge(
    jsondecode(file("${path.module}/patterns/task_updated.json")),
    length(local.update_sources) > 0 ? { source = local.update_sources } : {},
  )
}

# --- DynamoDB: the task table (its layout: docs/storage.md, "Item layout and indexes") -------

resource "aws_dynamodb_table" "this" {
  # checkov:skip=CKV_AWS_28:Point-in-time recovery is var.table.point_in_time_recovery, on by default; checkov cannot evaluate optional() defaults of an object variable.
  # checkov:skip=CKV_AWS_119:A customer managed key is var.table.kms_key_arn; without one the table uses DynamoDB's free AWS owned key, as documented, rather than the AWS managed key KMS charges for.
  name                        = local.table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "task_id"
  stream_enabled              = true
  stream_view_type            = "NEW_AND_OLD_IMAGES"
  deletion_protection_enabled = var.table.deletion_protection

  attribute {
    name = "task_id"
    type = "S"
  }
  attribute {
    name = "owner"
    type = "S"
  }
  attribute {
    name = "created_key"
    type = "S"
  }
  attribute {
    name = "open_shard"
    type = "S"
  }
  attribute {
    name = "deadline_epoch"
    type = "N"
  }
  attribute {
    name = "hb_shard"
    type = "S"
  }
  attribute {
    name = "heartbeat_due_epoch"
    type = "N"
  }

  # Each index projects only what its query reads: DynamoDB rewrites an index entry whenever
  # a projected attribute changes, so projecting ALL would copy the whole item (up to 400 KB)
  # into every index on each progress report. Lists filter on these three attributes and
  # read their page's tasks from the table by key.
  global_secondary_index {
    name               = "by-owner"
    hash_key           = "owner"
    range_key          = "created_key"
    projection_type    = "INCLUDE"
    non_key_attributes = ["expires_time", "status", "type"]
  }
  # Sparse: open_shard is present only while the task is open. Keys only: the sweeper reads
  # the due tasks from the table by key.
  global_secondary_index {
    name            = "by-deadline"
    hash_key        = "open_shard"
    range_key       = "deadline_epoch"
    projection_type = "KEYS_ONLY"
  }
  # Sparse: hb_shard is present only while the task is RUNNING. Keys only, as by-deadline.
  global_secondary_index {
    name            = "by-heartbeat"
    hash_key        = "hb_shard"
    range_key       = "heartbeat_due_epoch"
    projection_type = "KEYS_ONLY"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.table.point_in_time_recovery
  }

  # DynamoDB always encrypts. Enabled without a key would pick the AWS managed key
  # (aws/dynamodb, KMS charges); disabled is the AWS owned key, free, as table.kms_key_arn =
  # null promises. With a key ARN, that customer managed key.
  server_side_encryption {
    enabled     = var.table.kms_key_arn != null
    kms_key_arn = var.table.kms_key_arn
  }

  tags = var.tags
}

# --- EventBridge: the bus and the TaskUpdated rule --------------------------------------------
# Processors publish TaskUpdated from this account (docs/deploy.md, "Processors"): their roles
# attach processor_policy_json, and the bus needs no resource policy.

resource "aws_cloudwatch_event_bus" "this" {
  count = var.event_bus.create ? 1 : 0

  name = local.event_bus_name
  tags = var.tags
}

data "aws_cloudwatch_event_bus" "existing" {
  count = var.event_bus.create ? 0 : 1

  name = var.event_bus.name
}

resource "aws_cloudwatch_event_rule" "task_updated" {
  name           = "${var.name}-task-updated"
  description    = "Processors' TaskUpdated reports -> the updates queue."
  event_bus_name = local.event_bus_name
  event_pattern  = jsonencode(local.task_updated_pattern)
  tags           = var.tags

  depends_on = [aws_cloudwatch_event_bus.this]

  lifecycle {
    # TaskCreated comes with the task manager's own source: a processor allowed to publish
    # with it could not be told from the task manager.
    precondition {
      condition     = !contains(local.processor_sources, var.settings.event_source)
      error_message = "processor_sources must not list the task manager's own source (settings.event_source = ${var.settings.event_source}): give each processor a source of its own."
    }
    precondition {
      condition     = length(var.processor_sources) == 0 || length(var.event_bus.update_sources) == 0
      error_message = "Set processor_sources or event_bus.update_sources, not both: processor_sources sets the TaskUpdated rule's sources itself."
    }
  }
}

resource "aws_cloudwatch_event_target" "task_updated" {
  rule           = aws_cloudwatch_event_rule.task_updated.name
  event_bus_name = local.event_bus_name
  target_id      = "updates-queue"
  arn            = aws_sqs_queue.updates.arn

  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }
  # Events EventBridge could not deliver to the queue land beside the failed updates.
  dead_letter_config {
    arn = aws_sqs_queue.updates_dlq.arn
  }
}

# --- SQS: updates queue, its DLQ, and the stream's failure queue -------------------------------

resource "aws_sqs_queue" "updates_dlq" {
  name                      = local.updates_dlq_name
  message_retention_seconds = var.updates_queue.dlq_retention_seconds
  policy                    = data.aws_iam_policy_document.events_send["updates_dlq"].json
  sqs_managed_sse_enabled   = var.kms_key_arn == null ? true : null
  kms_master_key_id         = var.kms_key_arn
  tags                      = var.tags
}

resource "aws_sqs_queue" "updates" {
  name   = local.updates_queue_name
  policy = data.aws_iam_policy_document.events_send["updates"].json
  # Six times the function timeout, as Lambda recommends for SQS event sources.
  visibility_timeout_seconds = 6 * var.lambda.updates_timeout
  message_retention_seconds  = 345600
  sqs_managed_sse_enabled    = var.kms_key_arn == null ? true : null
  kms_master_key_id          = var.kms_key_arn
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.updates_dlq.arn
    maxReceiveCount     = var.updates_queue.max_receive_count
  })
  tags = var.tags
}

resource "aws_sqs_queue" "stream_failures" {
  name                      = "${var.name}-stream-failures"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = var.kms_key_arn == null ? true : null
  kms_master_key_id         = var.kms_key_arn
  tags                      = var.tags
}

# The TaskUpdated rule may send to the updates queue and, for events it cannot deliver, to the
# DLQ. The policies are set on the queues themselves (no separate queue policy resource).
data "aws_iam_policy_document" "events_send" {
  for_each = {
    updates     = "${local.queue_arn_prefix}:${local.updates_queue_name}"
    updates_dlq = "${local.queue_arn_prefix}:${local.updates_dlq_name}"
  }

  statement {
    sid       = "TaskUpdatedRuleSends"
    actions   = ["sqs:SendMessage"]
    resources = [each.value]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.task_updated.arn]
    }
  }
}
