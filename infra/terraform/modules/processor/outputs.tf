output "function_name" {
  description = "Name of the processor's Lambda function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the processor's Lambda function."
  value       = aws_lambda_function.this.arn
}

output "role_arn" {
  description = "ARN of the processor's IAM role."
  value       = aws_iam_role.this.arn
}

output "rule_arn" {
  description = "ARN of the EventBridge rule matching this task type's TaskCreated events."
  value       = aws_cloudwatch_event_rule.this.arn
}

output "failure_destination_arn" {
  description = "Where failed invocations go after their retries (the created queue, or the given destination)."
  value       = local.on_failure_arn
}

output "failure_queue_url" {
  description = "URL of the created failure queue (null when a destination was given)."
  value       = local.create_failure_queue ? aws_sqs_queue.failures[0].url : null
}

output "event_source" {
  description = "Who reports for this processor, to list under task_type in the task-manager module's processor_sources: the source of its TaskUpdated events (the only one its role may publish with), or with sdk = false the function's ARN (its invocation records name it)."
  value       = var.sdk ? local.event_source : aws_lambda_function.this.arn
}
