# delivery = "queue": the rule's target is a queue that `taskmanager worker` processes read,
# anywhere and for any duration (docs/processors.md, "On a queue, in a container").

locals {
  queue_name        = "${var.name}-tasks"
  dead_letters_name = "${var.name}-tasks-dlq"
  queue_arn_prefix  = "arn:${data.aws_partition.current.partition}:sqs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}"
  # Every queue this processor's rule sends to (name = the policy statement's sid): the
  # task queue and its dead-letter queue with queue delivery; with Lambda delivery the
  # failure queue, which is the rule's dead-letter queue too (main.tf).
  rule_queues = merge(
    local.create_failure_queue ? { (local.failure_queue_name) = "RuleDeadLetters" } : {},
    local.lambda ? {} : {
      (local.queue_name)        = "RuleSendsTaskCreated"
      (local.dead_letters_name) = "RuleDeadLetters"
    },
  )
}

# Only this processor's rule may send to each of those queues: TaskCreated to the task queue,
# the events EventBridge could not deliver after its retries to the dead-letter queue.
data "aws_iam_policy_document" "queue" {
  for_each = local.rule_queues

  statement {
    sid       = each.value
    actions   = ["sqs:SendMessage"]
    resources = ["${local.queue_arn_prefix}:${each.key}"]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.this.arn]
    }
  }
}

resource "aws_sqs_queue" "dead_letters" {
  count = local.lambda ? 0 : 1

  name                      = local.dead_letters_name
  message_retention_seconds = 1209600
  policy                    = data.aws_iam_policy_document.queue[local.dead_letters_name].json
  sqs_managed_sse_enabled   = var.kms_key_arn == null ? true : null
  kms_master_key_id         = var.kms_key_arn
  tags                      = var.tags
}

resource "aws_sqs_queue" "tasks" {
  count = local.lambda ? 0 : 1

  name                       = local.queue_name
  visibility_timeout_seconds = var.queue.visibility_timeout_seconds
  message_retention_seconds  = var.queue.message_retention_seconds
  # Workers long-poll (20 s) whatever this says; it only makes other readers poll long too.
  receive_wait_time_seconds = 20
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letters[0].arn
    maxReceiveCount     = var.queue.max_receive_count
  })
  policy                  = data.aws_iam_policy_document.queue[local.queue_name].json
  sqs_managed_sse_enabled = var.kms_key_arn == null ? true : null
  kms_master_key_id       = var.kms_key_arn
  tags                    = var.tags
}

# What a worker may do, and nothing more: take, keep and delete messages of its queue;
# publish TaskUpdated with this processor's own source; read a task's status. The task
# manager's processor policy gives the GetItem (and a publish statement this module narrows
# to the processor's source by its sid, as for a function's role).
data "aws_iam_policy_document" "worker" {
  count = local.lambda ? 0 : 1

  source_policy_documents   = [var.task_manager.processor_policy_json]
  override_policy_documents = [data.aws_iam_policy_document.publish.json]

  statement {
    sid       = "ReceiveTasks"
    actions   = ["sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:DeleteMessage"]
    resources = [aws_sqs_queue.tasks[0].arn]
  }
  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "QueueKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  count = local.lambda ? 0 : 1

  alarm_name          = "${var.name}-tasks-dlq-not-empty"
  alarm_description   = "Messages of the ${var.task_type} task queue that no worker could take (unreadable, or received ${var.queue.max_receive_count} times) are in ${aws_sqs_queue.dead_letters[0].name}."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dead_letters[0].name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
}
