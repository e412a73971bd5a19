output "api_url" {
  description = "Base URL of the task API."
  value       = module.task_manager.api_url
}

output "table_name" {
  description = "The task table."
  value       = module.task_manager.table_name
}

output "event_bus_name" {
  description = "The bus carrying task events."
  value       = module.task_manager.event_bus_name
}

output "updates_dlq_url" {
  description = "Updates that failed every retry."
  value       = module.task_manager.updates_dlq_url
}

output "stream_failure_queue_url" {
  description = "Stream batches that failed every retry."
  value       = module.task_manager.stream_failure_queue_url
}

output "function_names" {
  description = "The task manager's functions."
  value       = module.task_manager.function_names
}

output "processor_function_name" {
  description = "The word-count processor's function."
  value       = module.word_count.function_name
}

output "processor_event_source" {
  description = "The source the word-count processor publishes TaskUpdated with."
  value       = module.word_count.event_source
}

output "processor_failure_queue_url" {
  description = "TaskCreated events the processor failed on every retry."
  value       = module.word_count.failure_queue_url
}

output "api_invoke_policy_json" {
  description = "Attach to a supplier's role to call the API."
  value       = module.task_manager.api_invoke_policy_json
}

output "api_id" {
  description = "Id of the HTTP API."
  value       = module.task_manager.api_id
}

output "table_stream_arn" {
  description = "The task table's stream."
  value       = module.task_manager.table_stream_arn
}

output "updates_queue_url" {
  description = "Queue between the TaskUpdated rule and the updates function."
  value       = module.task_manager.updates_queue_url
}

output "websocket_url" {
  description = "URL of the push WebSocket (docs/push.md)."
  value       = module.task_manager.websocket_url
}

output "connections_table_name" {
  description = "The table of WebSocket connections and subscriptions."
  value       = module.task_manager.connections_table_name
}

output "export_queue_url" {
  description = "The export processor's task queue: `taskmanager worker --queue-url` for its workers."
  value       = module.export.queue_url
}

output "export_worker_policy_json" {
  description = "Attach to the role the export workers run with (ECS task role, instance profile)."
  value       = module.export.worker_policy_json
}

output "export_worker_environment" {
  description = "The environment of an export worker, besides TASKMANAGER_PROCESSOR=export_processor:processor."
  value       = module.export.worker_environment
}
