locals {
  dead_letter_queues = merge({
    updates-dlq     = aws_sqs_queue.updates_dlq.name
    stream-failures = aws_sqs_queue.stream_failures.name
  }, local.push ? { notify-dlq = aws_sqs_queue.notify_dlq[0].name } : {})
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  for_each = var.alarms.enabled ? local.dead_letter_queues : {}

  alarm_name          = "${var.name}-${each.key}-not-empty"
  alarm_description   = "Messages wait in ${each.value}: updates or stream records that failed every retry. See docs/operations.md (redrive)."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarms.actions
  ok_actions          = var.alarms.actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "lambda_errors" {
  for_each = var.alarms.enabled ? local.functions : {}

  alarm_name          = "${var.name}-${each.key}-errors"
  alarm_description   = "The ${var.name}-${each.key} function raised errors (not handled task failures: crashes, timeouts, throttles)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.this[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.alarms.lambda_errors_threshold
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarms.actions
  ok_actions          = var.alarms.actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "stream_iterator_age" {
  count = var.alarms.enabled ? 1 : 0

  alarm_name          = "${var.name}-stream-iterator-age"
  alarm_description   = "Outbound task events lag behind the table: the stream function is failing or too slow."
  namespace           = "AWS/Lambda"
  metric_name         = "IteratorAge"
  dimensions          = { FunctionName = aws_lambda_function.this["stream"].function_name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.alarms.stream_iterator_age_max_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarms.actions
  ok_actions          = var.alarms.actions
  tags                = var.tags
}
