output "cluster_arn" {
  description = "The cluster the service runs in (created or given)."
  value       = local.cluster_arn
}

output "service_name" {
  description = "Name of the ECS service."
  value       = aws_ecs_service.this.name
}

output "task_definition_arn" {
  description = "ARN of the worker's task definition (its revision included)."
  value       = aws_ecs_task_definition.this.arn
}

output "task_role_arn" {
  description = "The tasks' role: the worker policy and nothing more."
  value       = aws_iam_role.task.arn
}

output "execution_role_arn" {
  description = "The role ECS uses to pull the image and write the logs."
  value       = aws_iam_role.execution.arn
}

output "log_group_name" {
  description = "The workers' log group."
  value       = aws_cloudwatch_log_group.this.name
}
