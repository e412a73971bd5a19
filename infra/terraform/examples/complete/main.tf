# The task manager plus two processors built with taskmanager.processor: word counting
# (docs/examples/wordcount_processor.py) on Lambda, and a long export
# (docs/examples/export_processor.py) fed by a queue to `taskmanager worker` processes
# that run wherever you give them the worker policy and environment (outputs export_*).

locals {
  # Each processor: its task type and the source it publishes TaskUpdated with. Both modules
  # read these values here, so the task manager's processor_sources never waits for (or
  # cycles through) a processor module.
  processors = {
    word_count = {
      name      = "${var.name}-word-count"
      task_type = "text.wordcount"
      source    = "taskmanager.processor.${var.name}-word-count"
    }
    export = {
      name      = "${var.name}-export"
      task_type = "export.run"
      source    = "taskmanager.processor.${var.name}-export"
    }
  }
}

module "task_manager" {
  source = "../../modules/task-manager"

  name                 = var.name
  powertools_layer_arn = var.powertools_layer_arn
  lambda_package = {
    path         = var.lambda_zip
    architecture = var.architecture
  }

  # An example is meant to be destroyed; keep deletion protection on in real deployments.
  table = {
    deletion_protection = false
  }

  event_bus = {
    create = true
  }

  # Each processor may report only on tasks of its own type; nothing else may report.
  processor_sources = {
    for p in values(local.processors) : p.task_type => p.source...
  }

  # A submit of a type no processor takes is refused (422 UNKNOWN_TASK_TYPE), and a task
  # nobody picks up within 10 minutes fails (START_TIMEOUT).
  task_types = [for p in values(local.processors) : p.task_type]
  settings   = { default_start_timeout_seconds = 600 }

  api = {
    authorization          = "AWS_IAM"
    throttling_burst_limit = 50
    throttling_rate_limit  = 20
  }

  # Push over WebSocket (docs/push.md): connect with SigV4 (AWS_IAM, as the HTTP API).
  websocket = {
    enabled = true
  }

  alarms = {
    actions = var.alarm_topic_arns
  }
}

module "word_count" {
  source = "../../modules/processor"

  name         = local.processors.word_count.name
  task_type    = local.processors.word_count.task_type
  event_source = local.processors.word_count.source
  # Only what the processor uses, so it does not wait for the whole task manager.
  task_manager = {
    event_bus_name        = module.task_manager.event_bus_name
    event_bus_arn         = module.task_manager.event_bus_arn
    event_source          = module.task_manager.event_source
    table_name            = module.task_manager.table_name
    processor_policy_json = module.task_manager.processor_policy_json
    # Invocations that fail after Lambda's retries (killed by the timeout, out of memory)
    # end their task FAILED through the updates queue.
    updates_queue_arn = module.task_manager.updates_queue_arn
  }
  powertools_layer_arn = var.powertools_layer_arn
  lambda_package = {
    path         = var.processor_zip
    handler      = "wordcount_processor.handler"
    architecture = var.architecture
  }

  function = {
    timeout = 60
  }

  alarm_actions = var.alarm_topic_arns
}

module "export" {
  source = "../../modules/processor"

  name         = local.processors.export.name
  task_type    = local.processors.export.task_type
  event_source = local.processors.export.source
  task_manager = {
    event_bus_name        = module.task_manager.event_bus_name
    event_bus_arn         = module.task_manager.event_bus_arn
    event_source          = module.task_manager.event_source
    table_name            = module.task_manager.table_name
    processor_policy_json = module.task_manager.processor_policy_json
  }

  # TaskCreated -> an SQS queue (and its dead-letter queue) that workers read: tasks of any
  # duration, on any host or container (docs/processors.md, "On a queue, in a container").
  delivery = "queue"
  queue = {
    visibility_timeout_seconds = 120
    max_receive_count          = 5
  }

  alarm_actions = var.alarm_topic_arns
}

# The export workers on ECS Fargate: tasks of any duration, scaled on the queue's backlog
# (docs/processors.md, "The container image and Fargate service"). Optional: the subnets and
# security groups are your VPC's.
module "export_workers" {
  source = "../../modules/worker-service"
  count  = var.export_workers == null ? 0 : 1

  name                 = "${local.processors.export.name}-workers"
  image                = var.export_workers.image
  image_repository_arn = var.export_workers.image_repository_arn
  processor            = "export_processor:processor"
  queue                = { url = module.export.queue_url, arn = module.export.queue_arn }
  worker_policy_json   = module.export.worker_policy_json
  task_manager = {
    table_name       = module.task_manager.table_name
    event_bus_name   = module.task_manager.event_bus_name
    event_source     = module.task_manager.event_source
    processor_source = module.export.event_source
  }
  concurrency   = 4
  grace_seconds = 60
  scaling       = { min_tasks = 1, max_tasks = 10, backlog_per_task = 8 }
  network = {
    subnet_ids         = var.export_workers.subnet_ids
    security_group_ids = var.export_workers.security_group_ids
  }
  tags = { example = "complete" }
}
