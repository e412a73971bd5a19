data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  # The source of this processor's TaskUpdated events, and the only one its role may use.
  event_source = coalesce(var.event_source, "taskmanager.processor.${var.name}")

  # delivery = "lambda": the rule invokes the function below. "queue": the rule feeds an SQS
  # queue (queue.tf) that workers anywhere read (`taskmanager worker`); no function here.
  lambda = var.delivery == "lambda"
  # The function and what it needs; without a package the rule's precondition stops the plan.
  function = local.lambda && var.lambda_package != null && var.powertools_layer_arn != null

  failure_queue_name   = "${var.name}-failures"
  create_failure_queue = local.lambda && var.async_invoke.on_failure_destination_arn == null
  # Invocation records go to the task manager's updates queue, which ends the task: the
  # failure of any invocation, and with sdk = false its success too (docs/processors.md,
  # "Any function, no SDK"). A destination given in async_invoke takes the failures instead;
  # without either, they wait in the failure queue for a human. (No function: no records.)
  updates_queue_arn = var.task_manager.updates_queue_arn
  on_failure_arn = !local.lambda ? null : coalesce(
    var.async_invoke.on_failure_destination_arn, local.updates_queue_arn,
    try(aws_sqs_queue.failures[0].arn, null),
  )
  failure_service = try(split(":", local.on_failure_arn)[2], null)

  # The pattern lives in JSON next to the module; tests check it against the contracts.
  base_pattern = jsondecode(file("${path.module}/patterns/task_created.json"))
  task_created_pattern = merge(local.base_pattern, {
    source = [var.task_manager.event_source]
    detail = merge(local.base_pattern.detail, { type = [var.task_type] })
  })

  # With JSON logs Lambda drops application logs below this level whatever Powertools emits,
  # so it follows function.log_level; Lambda spells WARNING as WARN.
  application_log_level = { DEBUG = "DEBUG", INFO = "INFO", WARNING = "WARN", ERROR = "ERROR" }[var.function.log_level]

  # The public Powertools layers are built per Python version and architecture and named for
  # them (AWSLambdaPowertoolsPythonV3-python312-x86_64); a layer named otherwise is the
  # deployer's own and is not checked.
  # (try: with delivery = "queue" neither the layer nor the package is given.)
  powertools_layer_name = try(split(":", var.powertools_layer_arn)[6], "")
  powertools_layer_fits = !local.lambda || (
    !can(regex("-python3[0-9]+-(x86_64|arm64)$", local.powertools_layer_name)) ||
    endswith(local.powertools_layer_name, "-${replace(try(var.lambda_package.runtime, ""), ".", "")}-${try(var.lambda_package.architecture, "")}")
  )

  failure_send_action = {
    sqs    = "sqs:SendMessage"
    sns    = "sns:Publish"
    lambda = "lambda:InvokeFunction"
    events = "events:PutEvents"
  }
}

# --- The rule: TaskCreated events of this task type ------------------------------------------

resource "aws_cloudwatch_event_rule" "this" {
  name           = var.name
  description    = "TaskCreated events of type ${var.task_type} -> ${var.name}."
  event_bus_name = var.task_manager.event_bus_name
  event_pattern  = jsonencode(local.task_created_pattern)
  tags           = var.tags

  lifecycle {
    # The rule is made on the bus by name, and the SDK reads the task table by name, both
    # with this provider's credentials: another account or region would find nothing there.
    precondition {
      condition = (
        split(":", var.task_manager.event_bus_arn)[4] == data.aws_caller_identity.current.account_id &&
        split(":", var.task_manager.event_bus_arn)[3] == data.aws_region.current.name
      )
      error_message = "The processor must be deployed in the task manager's account and region (the bus ${var.task_manager.event_bus_arn}); see docs/deploy.md, \"Processors\"."
    }
    # The task manager's source is the one TaskCreated comes with: a processor publishing
    # with it could not be told from the task manager.
    precondition {
      condition     = local.event_source != var.task_manager.event_source
      error_message = "event_source (${local.event_source}) must differ from the task manager's own source (task_manager.event_source)."
    }
    precondition {
      condition     = !local.lambda || local.function
      error_message = "delivery = \"lambda\" needs lambda_package and powertools_layer_arn (delivery = \"queue\" needs neither)."
    }
    # Workers on a queue report with the SDK; only a function's invocation records can
    # report for code without it.
    precondition {
      condition     = local.lambda || var.sdk
      error_message = "sdk = false needs delivery = \"lambda\": a queue's workers report with the SDK."
    }
  }
}

resource "aws_cloudwatch_event_target" "this" {
  rule           = aws_cloudwatch_event_rule.this.name
  event_bus_name = var.task_manager.event_bus_name
  target_id      = "processor"
  arn            = local.lambda ? one(aws_lambda_function.this[*].arn) : aws_sqs_queue.tasks[0].arn

  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }
  # Events EventBridge could not deliver after its retries: the failure queue of a function,
  # the dead-letter queue of a task queue.
  dynamic "dead_letter_config" {
    for_each = local.create_failure_queue ? [aws_sqs_queue.failures[0].arn] : local.lambda ? [] : [aws_sqs_queue.dead_letters[0].arn]
    content {
      arn = dead_letter_config.value
    }
  }
}

resource "aws_lambda_permission" "events" {
  count = local.function ? 1 : 0

  statement_id  = "AllowTaskCreatedRule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this[0].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.this.arn
}

# --- Failures: the async-invoke destination --------------------------------------------------

resource "aws_sqs_queue" "failures" {
  count = local.create_failure_queue ? 1 : 0

  name                      = local.failure_queue_name
  message_retention_seconds = 1209600
  # Set on the queue itself: a separate queue policy resource costs another wait.
  policy                  = data.aws_iam_policy_document.queue[local.failure_queue_name].json
  sqs_managed_sse_enabled = var.kms_key_arn == null ? true : null
  kms_master_key_id       = var.kms_key_arn
  tags                    = var.tags
}

resource "aws_lambda_function_event_invoke_config" "this" {
  count = local.function ? 1 : 0

  function_name                = aws_lambda_function.this[0].function_name
  maximum_retry_attempts       = var.async_invoke.maximum_retry_attempts
  maximum_event_age_in_seconds = var.async_invoke.maximum_event_age_in_seconds

  destination_config {
    on_failure {
      destination = local.on_failure_arn
    }
    # A function without the SDK reports nothing itself: its return value is the result.
    dynamic "on_success" {
      for_each = var.sdk ? [] : [local.updates_queue_arn]
      content {
        destination = on_success.value
      }
    }
  }

  lifecycle {
    # Sending failure records to a bus needs events:PutEvents on it, with no source
    # condition: on the task manager's bus that would let the processor publish as anyone.
    precondition {
      condition     = local.on_failure_arn != var.task_manager.event_bus_arn
      error_message = "async_invoke.on_failure_destination_arn must not be the task manager's bus: the role would then publish there with any source."
    }
    # Without the SDK, the invocation records are the only reports: both must reach the
    # task manager's updates queue.
    precondition {
      condition     = var.sdk || (local.updates_queue_arn != null && var.async_invoke.on_failure_destination_arn == null)
      error_message = "sdk = false needs task_manager.updates_queue_arn (the task-manager module's updates_queue_arn output) and no async_invoke.on_failure_destination_arn: the function's invocation records are its only reports."
    }
  }
}

# --- The function and its role ----------------------------------------------------------------

data "aws_iam_policy_document" "assume" {
  count = local.function ? 1 : 0

  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  count = local.function ? 1 : 0

  name               = var.name
  description        = "Runs the ${var.task_type} processor ${var.name}."
  assume_role_policy = data.aws_iam_policy_document.assume[0].json
  tags               = var.tags
}

# Publish TaskUpdated with this processor's own source only. Its sid is the one of the task
# manager's publish statement, which it replaces: with both, the unconditioned one would let
# the processor publish as anyone.
data "aws_iam_policy_document" "publish" {
  statement {
    sid       = "PublishTaskUpdated"
    actions   = ["events:PutEvents"]
    resources = [var.task_manager.event_bus_arn]
    condition {
      test     = "StringEquals"
      variable = "events:detail-type"
      values   = ["TaskUpdated"]
    }
    condition {
      test     = "StringEquals"
      variable = "events:source"
      values   = [local.event_source]
    }
  }
}

data "aws_iam_policy_document" "this" {
  count = local.function ? 1 : 0

  # Read a task's status (and publish, narrowed above): the task manager's ready-made policy.
  # A function without the SDK does neither: its invocation records report for it.
  source_policy_documents   = var.sdk ? [var.task_manager.processor_policy_json] : []
  override_policy_documents = var.sdk ? [data.aws_iam_policy_document.publish.json] : []

  statement {
    sid       = "OwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this[0].arn}:*"]
  }
  statement {
    # Lambda sends invocation records with the function's role.
    sid       = "OnFailureDestination"
    actions   = [local.failure_send_action[local.failure_service]]
    resources = [local.on_failure_arn]
  }
  dynamic "statement" {
    for_each = var.sdk ? [] : [local.updates_queue_arn]
    content {
      sid       = "OnSuccessDestination"
      actions   = ["sqs:SendMessage"]
      resources = [statement.value]
    }
  }
  dynamic "statement" {
    for_each = var.function.tracing ? [1] : []
    content {
      # X-Ray has no resource-level permissions: "*" is the only resource it accepts.
      sid       = "XRayTraces"
      actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
      resources = ["*"]
    }
  }
  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "QueueAndEnvironmentKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "this" {
  count = local.function ? 1 : 0

  name   = var.name
  role   = aws_iam_role.this[0].id
  policy = data.aws_iam_policy_document.this[0].json
}

resource "aws_cloudwatch_log_group" "this" {
  count = local.function ? 1 : 0

  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.function.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  # checkov:skip=CKV_AWS_117:The processor calls only AWS APIs (EventBridge, DynamoDB); put it in a VPC yourself if its work needs private resources.
  # checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile the deployer owns; the zip is built reproducibly by taskmanager.build_lambda instead.
  # checkov:skip=CKV_AWS_50:Tracing is var.function.tracing, Active by default; checkov cannot evaluate optional() defaults of an object variable.
  # checkov:skip=CKV_AWS_115:Concurrency is left to the account; set it on the function if the processor's work must be throttled.
  # checkov:skip=CKV_AWS_116:Failed asynchronous invocations go to the on-failure destination (aws_lambda_function_event_invoke_config), which supersedes a function DLQ.

  count = local.function ? 1 : 0

  function_name    = var.name
  description      = "Processes ${var.task_type} tasks."
  role             = aws_iam_role.this[0].arn
  handler          = var.lambda_package.handler
  runtime          = var.lambda_package.runtime
  architectures    = [var.lambda_package.architecture]
  filename         = var.lambda_package.path
  source_code_hash = filebase64sha256(var.lambda_package.path)
  memory_size      = var.function.memory_size
  timeout          = var.function.timeout
  layers           = [var.powertools_layer_arn]
  kms_key_arn      = var.kms_key_arn

  environment {
    # PYDANTIC_DISABLE_PLUGINS: skip pydantic's entry point scan on each cold start
    # (docs/deploy.md); function.environment may set it otherwise for a processor that uses a
    # pydantic plugin.
    variables = merge({ PYDANTIC_DISABLE_PLUGINS = "__all__" }, var.function.environment, {
      TASKMANAGER_TABLE_NAME     = var.task_manager.table_name
      TASKMANAGER_EVENT_BUS_NAME = var.task_manager.event_bus_name
      TASKMANAGER_EVENT_SOURCE   = var.task_manager.event_source
      # The source the SDK publishes TaskUpdated with: this processor's own.
      TASKMANAGER_PROCESSOR_SOURCE = local.event_source
      TASKMANAGER_TRACING          = var.function.tracing ? "true" : "false"
      POWERTOOLS_SERVICE_NAME      = var.name
      POWERTOOLS_LOG_LEVEL         = var.function.log_level
    })
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.this[0].name
    application_log_level = local.application_log_level
  }

  tracing_config {
    mode = var.function.tracing ? "Active" : "PassThrough"
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = local.powertools_layer_fits
      error_message = "powertools_layer_arn names a layer built for another runtime or architecture than ${var.lambda_package.runtime} on ${var.lambda_package.architecture}: use AWSLambdaPowertoolsPythonV3-${replace(var.lambda_package.runtime, ".", "")}-${var.lambda_package.architecture}."
    }
  }
}

# --- Alarms -----------------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "errors" {
  count = local.function ? 1 : 0

  alarm_name          = "${var.name}-errors"
  alarm_description   = "The ${var.task_type} processor ${var.name} raised errors; failed invocations go to its on-failure destination after retries."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.this[0].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "failures" {
  count = local.create_failure_queue ? 1 : 0

  alarm_name          = "${var.name}-failures-not-empty"
  alarm_description   = "TaskCreated events the ${var.task_type} processor failed on every retry wait in ${aws_sqs_queue.failures[0].name}."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.failures[0].name }
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

# --- Addresses of the resources from before `delivery` (then always one of each) ---------------

moved {
  from = aws_lambda_permission.events
  to   = aws_lambda_permission.events[0]
}
moved {
  from = aws_lambda_function_event_invoke_config.this
  to   = aws_lambda_function_event_invoke_config.this[0]
}
moved {
  from = aws_iam_role.this
  to   = aws_iam_role.this[0]
}
moved {
  from = aws_iam_role_policy.this
  to   = aws_iam_role_policy.this[0]
}
moved {
  from = aws_cloudwatch_log_group.this
  to   = aws_cloudwatch_log_group.this[0]
}
moved {
  from = aws_lambda_function.this
  to   = aws_lambda_function.this[0]
}
moved {
  from = aws_cloudwatch_metric_alarm.errors
  to   = aws_cloudwatch_metric_alarm.errors[0]
}
