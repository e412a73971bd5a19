output "api_url" {
  description = "Base URL of the HTTP API (the $default stage): POST {api_url}/tasks."
  value       = aws_apigatewayv2_stage.this.invoke_url
}

output "api_id" {
  description = "Id of the HTTP API."
  value       = aws_apigatewayv2_api.this.id
}

output "api_invoke_policy_json" {
  description = "IAM policy document JSON allowing a supplier to call every route of the API (for authorization = AWS_IAM)."
  value       = data.aws_iam_policy_document.api_invoke.json
}

output "table_name" {
  description = "Name of the DynamoDB task table (TASKMANAGER_TABLE_NAME)."
  value       = aws_dynamodb_table.this.name
}

output "table_arn" {
  description = "ARN of the DynamoDB task table."
  value       = aws_dynamodb_table.this.arn
}

output "table_stream_arn" {
  description = "ARN of the task table's stream (NEW_AND_OLD_IMAGES)."
  value       = aws_dynamodb_table.this.stream_arn
}

output "event_bus_name" {
  description = "Name of the EventBridge bus carrying task events (TASKMANAGER_EVENT_BUS_NAME)."
  value       = local.event_bus_name
}

output "event_bus_arn" {
  description = "ARN of the EventBridge bus."
  value       = local.event_bus_arn
}

output "event_source" {
  description = "The source of outbound task events (TASKMANAGER_EVENT_SOURCE): processors' rules match it."
  value       = var.settings.event_source
}

output "updates_queue_url" {
  description = "URL of the SQS queue between the TaskUpdated rule and the updates function."
  value       = aws_sqs_queue.updates.url
}

output "updates_dlq_url" {
  description = "URL of the updates dead-letter queue (updates that failed every receive, events EventBridge could not deliver)."
  value       = aws_sqs_queue.updates_dlq.url
}

output "stream_failure_queue_url" {
  description = "URL of the queue receiving descriptions of stream batches that failed every retry."
  value       = aws_sqs_queue.stream_failures.url
}

output "function_names" {
  description = "Function names by role: api, stream, updates, sweeper."
  value       = { for k, f in aws_lambda_function.this : k => f.function_name }
}

output "role_arns" {
  description = "IAM role ARNs of the functions, by role."
  value       = { for k, r in aws_iam_role.this : k => r.arn }
}

output "lambda_environment" {
  description = "The TASKMANAGER_* settings every function gets; processors use the same names."
  value       = local.environment
}

output "processor_publish_policy_json" {
  description = "IAM policy document JSON a processor's role attaches to publish TaskUpdated on the bus (PutEvents limited to that detail-type). Any source: add an events:source condition naming the processor's own source, as the processor module does (statement sid PublishTaskUpdated)."
  value       = data.aws_iam_policy_document.processor_publish.json
}

output "processor_policy_json" {
  description = "IAM policy document JSON for a processor built with taskmanager.processor: publish TaskUpdated and read a task's status (GetItem on the table). The processor module narrows its publish statement (sid PublishTaskUpdated) to the processor's own source."
  value       = data.aws_iam_policy_document.processor.json
}

output "websocket_url" {
  description = "URL of the push WebSocket (wss://{id}.execute-api.{region}.amazonaws.com/{stage}); null unless websocket.enabled."
  value       = local.push ? aws_apigatewayv2_stage.websocket[0].invoke_url : null
}

output "websocket_api_id" {
  description = "Id of the WebSocket API; null unless websocket.enabled."
  value       = local.push ? aws_apigatewayv2_api.websocket[0].id : null
}

output "websocket_connect_policy_json" {
  description = "IAM policy document JSON allowing a supplier to connect to the push WebSocket (execute-api:Invoke on $connect, for authorization = AWS_IAM); null unless websocket.enabled."
  value       = local.push ? data.aws_iam_policy_document.websocket_connect[0].json : null
}

output "connections_table_name" {
  description = "Name of the DynamoDB table of WebSocket connections and subscriptions (TASKMANAGER_CONNECTIONS_TABLE_NAME); null unless websocket.enabled."
  value       = local.push ? aws_dynamodb_table.connections[0].name : null
}

output "updates_queue_arn" {
  description = "ARN of the updates queue: the processor module's task_manager.updates_queue_arn, where Lambda sends processors' asynchronous-invocation records (destinations)."
  value       = aws_sqs_queue.updates.arn
}
