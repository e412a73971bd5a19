output "function_name" {
  description = "Name of the processor's Lambda function (null with delivery = \"queue\")."
  value       = one(aws_lambda_function.this[*].function_name)
}

output "function_arn" {
  description = "ARN of the processor's Lambda function (null with delivery = \"queue\")."
  value       = one(aws_lambda_function.this[*].arn)
}

output "role_arn" {
  description = "ARN of the processor's IAM role (null with delivery = \"queue\": give workers worker_policy_json)."
  value       = one(aws_iam_role.this[*].arn)
}

output "rule_arn" {
  description = "ARN of the EventBridge rule matching this task type's TaskCreated events."
  value       = aws_cloudwatch_event_rule.this.arn
}

output "failure_destination_arn" {
  description = "Where failed invocations go after their retries (the created queue, or the given destination; null with delivery = \"queue\")."
  value       = local.on_failure_arn
}

output "failure_queue_url" {
  description = "URL of the created failure queue (null when a destination was given)."
  value       = local.create_failure_queue ? aws_sqs_queue.failures[0].url : null
}

output "event_source" {
  description = "Who reports for this processor, to list under task_type in the task-manager module's processor_sources: the source of its TaskUpdated events (the only one its role may publish with), or with sdk = false the function's ARN (its invocation records name it)."
  value       = var.sdk ? local.event_source : one(aws_lambda_function.this[*].arn)
}

output "queue_url" {
  description = "With delivery = \"queue\": URL of the task queue workers read (taskmanager worker --queue-url, TASKMANAGER_QUEUE_URL); null otherwise."
  value       = one(aws_sqs_queue.tasks[*].url)
}

output "queue_arn" {
  description = "With delivery = \"queue\": ARN of the task queue (for scaling on its backlog); null otherwise."
  value       = one(aws_sqs_queue.tasks[*].arn)
}

output "dead_letter_queue_url" {
  description = "With delivery = \"queue\": URL of the task queue's dead-letter queue; null otherwise."
  value       = one(aws_sqs_queue.dead_letters[*].url)
}

output "worker_policy_json" {
  description = "With delivery = \"queue\": the IAM policy document a worker's role needs, nothing wider: sqs:ReceiveMessage, sqs:ChangeMessageVisibility and sqs:DeleteMessage on the task queue; events:PutEvents of TaskUpdated with this processor's source on the bus; dynamodb:GetItem on the task table (and the queue's KMS key when given). Null otherwise."
  value       = one(data.aws_iam_policy_document.worker[*].json)
}

output "worker_environment" {
  description = "With delivery = \"queue\": the environment a `taskmanager worker` process needs besides its --processor (TASKMANAGER_QUEUE_URL, TASKMANAGER_VISIBILITY_TIMEOUT, TASKMANAGER_TABLE_NAME, TASKMANAGER_EVENT_BUS_NAME, TASKMANAGER_EVENT_SOURCE, TASKMANAGER_PROCESSOR_SOURCE); null otherwise."
  value = local.lambda ? null : {
    TASKMANAGER_QUEUE_URL          = aws_sqs_queue.tasks[0].url
    TASKMANAGER_VISIBILITY_TIMEOUT = tostring(var.queue.visibility_timeout_seconds)
    TASKMANAGER_TABLE_NAME         = var.task_manager.table_name
    TASKMANAGER_EVENT_BUS_NAME     = var.task_manager.event_bus_name
    TASKMANAGER_EVENT_SOURCE       = var.task_manager.event_source
    TASKMANAGER_PROCESSOR_SOURCE   = local.event_source
  }
}
