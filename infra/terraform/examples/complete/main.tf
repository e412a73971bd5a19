# The task manager plus one processor (word counting) built with taskmanager.processor.

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

  name                 = "${var.name}-word-count"
  task_type            = "example.word-count"
  task_manager         = module.task_manager
  powertools_layer_arn = var.powertools_layer_arn
  lambda_package = {
    path         = var.processor_zip
    handler      = "word_count.handler"
    architecture = var.architecture
  }

  function = {
    timeout = 60
  }

  alarm_actions = var.alarm_topic_arns
}
