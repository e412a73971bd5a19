# The task manager plus one processor (word counting, docs/examples/wordcount_processor.py)
# built with taskmanager.processor.

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

  # Only the word-count processor may report on text.wordcount tasks; nothing else may
  # report at all.
  processor_sources = {
    for p in values(local.processors) : p.task_type => p.source...
  }

  api = {
    authorization          = "AWS_IAM"
    throttling_burst_limit = 50
    throttling_rate_limit  = 20
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
