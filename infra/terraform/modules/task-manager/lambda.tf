locals {
  functions = merge({
    api = {
      handler     = "taskmanager.entrypoints.api.handler"
      timeout     = var.lambda.api_timeout
      description = "Task manager HTTP API (API Gateway HTTP API, payload 2.0)."
    }
    stream = {
      handler     = "taskmanager.entrypoints.stream.handler"
      timeout     = var.lambda.stream_timeout
      description = "Task table stream -> outbound task events on EventBridge."
    }
    updates = {
      handler     = "taskmanager.entrypoints.updates.handler"
      timeout     = var.lambda.updates_timeout
      description = "Processors' TaskUpdated reports (via SQS) -> guarded task updates."
    }
    sweeper = {
      handler     = "taskmanager.entrypoints.sweeper.handler"
      timeout     = var.lambda.sweeper_timeout
      description = "Fails tasks past their deadline, heartbeat or start timeout."
    }
    }, local.push ? {
    sockets = {
      handler     = "taskmanager.entrypoints.sockets.handler"
      timeout     = var.websocket.sockets_timeout
      description = "Task manager WebSocket API: connect, disconnect, subscribe, unsubscribe, submit."
    }
    notify = {
      handler     = "taskmanager.entrypoints.notify.handler"
      timeout     = var.websocket.notify_timeout
      description = "Outbound task events (via SQS) -> the WebSocket connections that follow them."
    }
    } : {}, local.push_jwt_own ? {
    authorizer = {
      handler     = "taskmanager.entrypoints.authorizer.handler"
      timeout     = var.websocket.sockets_timeout
      description = "Checks the JWT of a push WebSocket connect (?token=): issuer, audience, expiry, scopes."
    }
  } : {})

  # Settings only one function reads: the api function checks the task types a submit
  # names, the updates function who may report.
  function_environment = merge({
    api     = length(var.task_types) > 0 ? { TASKMANAGER_TASK_TYPES = jsonencode(sort(distinct(var.task_types))) } : {}
    stream  = {}
    sweeper = {}
    updates = length(var.processor_sources) > 0 ? { TASKMANAGER_PROCESSOR_SOURCES = jsonencode(var.processor_sources) } : {}
    }, local.push ? {
    sockets = { TASKMANAGER_CONNECTIONS_TABLE_NAME = aws_dynamodb_table.connections[0].name }
    notify = {
      TASKMANAGER_CONNECTIONS_TABLE_NAME = aws_dynamodb_table.connections[0].name
      # The management endpoint of the stage: https://{id}.execute-api.{region}.amazonaws.com/{stage}
      TASKMANAGER_WEBSOCKET_ENDPOINT = "${replace(aws_apigatewayv2_api.websocket[0].api_endpoint, "wss://", "https://")}/${local.push_stage}"
    }
    } : {}, local.push_jwt_own ? {
    authorizer = {
      TASKMANAGER_JWT_ISSUER   = var.api.jwt_issuer
      TASKMANAGER_JWT_AUDIENCE = jsonencode(var.api.jwt_audience)
      TASKMANAGER_JWT_SCOPES   = jsonencode(coalesce(var.api.authorization_scopes, []))
    }
  } : {})

  table_index_arn = { for name in ["by-owner", "by-deadline", "by-heartbeat"] : name => "${aws_dynamodb_table.this.arn}/index/${name}" }

  # The public Powertools layers are built per Python version and architecture and named for
  # them (AWSLambdaPowertoolsPythonV3-python312-x86_64); a layer named otherwise is the
  # deployer's own and is not checked.
  powertools_layer_name = split(":", var.powertools_layer_arn)[6]
  powertools_layer_fits = (
    !can(regex("-python3[0-9]+-(x86_64|arm64)$", local.powertools_layer_name)) ||
    endswith(local.powertools_layer_name, "-${replace(var.lambda_package.runtime, ".", "")}-${var.lambda_package.architecture}")
  )
}

# --- One role per function, each with only what that function calls --------------------------

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  for_each = local.functions

  name               = "${var.name}-${each.key}"
  description        = "Runs the ${var.name}-${each.key} function."
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = var.tags
}

# What every function needs: its own log group, X-Ray when tracing, the KMS keys in use.
data "aws_iam_policy_document" "common" {
  for_each = local.functions

  statement {
    sid       = "OwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this[each.key].arn}:*"]
  }

  dynamic "statement" {
    for_each = var.lambda.tracing ? [1] : []
    content {
      # X-Ray has no resource-level permissions: "*" is the only resource it accepts.
      sid       = "XRayTraces"
      actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = var.table.kms_key_arn == null ? [] : [var.table.kms_key_arn]
    content {
      sid       = "TableKey"
      actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["dynamodb.${data.aws_region.current.name}.amazonaws.com"]
      }
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

data "aws_iam_policy_document" "api" {
  source_policy_documents = [data.aws_iam_policy_document.common["api"].json]

  statement {
    sid       = "TaskRecords"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchGetItem"]
    resources = [aws_dynamodb_table.this.arn]
  }
  statement {
    sid       = "ListOwnTasks"
    actions   = ["dynamodb:Query"]
    resources = [local.table_index_arn["by-owner"]]
  }
}

data "aws_iam_policy_document" "stream" {
  source_policy_documents = [data.aws_iam_policy_document.common["stream"].json]

  statement {
    sid       = "ReadTableStream"
    actions   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
    resources = [aws_dynamodb_table.this.stream_arn]
  }
  statement {
    sid       = "ListTableStreams"
    actions   = ["dynamodb:ListStreams"]
    resources = ["${aws_dynamodb_table.this.arn}/stream/*"]
  }
  statement {
    sid       = "PublishTaskEvents"
    actions   = ["events:PutEvents"]
    resources = [local.event_bus_arn]
  }
  statement {
    sid       = "StreamFailureDestination"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.stream_failures.arn]
  }
}

data "aws_iam_policy_document" "updates" {
  source_policy_documents = [data.aws_iam_policy_document.common["updates"].json]

  statement {
    sid       = "ConsumeUpdatesQueue"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.updates.arn]
  }
  statement {
    sid       = "ApplyUpdates"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.this.arn]
  }
}

data "aws_iam_policy_document" "sweeper" {
  source_policy_documents = [data.aws_iam_policy_document.common["sweeper"].json]

  statement {
    sid       = "FindOverdueTasks"
    actions   = ["dynamodb:Query"]
    resources = [local.table_index_arn["by-deadline"], local.table_index_arn["by-heartbeat"]]
  }
  statement {
    sid       = "ExpireTasks"
    actions   = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.this.arn]
  }
}

locals {
  function_policies = merge({
    api     = data.aws_iam_policy_document.api.json
    stream  = data.aws_iam_policy_document.stream.json
    updates = data.aws_iam_policy_document.updates.json
    sweeper = data.aws_iam_policy_document.sweeper.json
    }, local.push ? {
    sockets = data.aws_iam_policy_document.sockets[0].json
    notify  = data.aws_iam_policy_document.notify[0].json
    } : {}, local.push_jwt_own ? {
    authorizer = data.aws_iam_policy_document.authorizer[0].json
  } : {})
}

resource "aws_iam_role_policy" "this" {
  for_each = local.functions

  name   = "${var.name}-${each.key}"
  role   = aws_iam_role.this[each.key].id
  policy = local.function_policies[each.key]
}

# --- Functions -------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "this" {
  for_each = local.functions

  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.lambda.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  for_each = local.functions
  # checkov:skip=CKV_AWS_117:The functions call only AWS APIs (DynamoDB, EventBridge, SQS); a VPC adds NAT cost and cold-start time without isolating anything.
  # checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile the deployer owns; the zip is built reproducibly by taskmanager.build_lambda instead.
  # checkov:skip=CKV_AWS_116:api is invoked synchronously and stream/updates by event source mappings (their failures go to the stream failure queue and the updates DLQ); the sweeper is re-run every schedule tick. A function DLQ would never receive anything.
  # checkov:skip=CKV_AWS_50:Tracing is var.lambda.tracing, Active by default; checkov cannot evaluate optional() defaults of an object variable.
  # checkov:skip=CKV_AWS_115:Concurrency is bounded where it matters (updates: SQS maximum_concurrency; stream: shards x parallelization_factor; api: stage throttling); reserving it would take it away from the rest of the account.

  function_name    = "${var.name}-${each.key}"
  description      = each.value.description
  role             = aws_iam_role.this[each.key].arn
  handler          = each.value.handler
  runtime          = var.lambda_package.runtime
  architectures    = [var.lambda_package.architecture]
  filename         = var.lambda_package.path
  source_code_hash = filebase64sha256(var.lambda_package.path)
  memory_size      = var.lambda.memory_size
  timeout          = each.value.timeout
  layers           = [var.powertools_layer_arn]
  kms_key_arn      = var.kms_key_arn

  environment {
    variables = merge(local.environment, {
      POWERTOOLS_SERVICE_NAME = "${var.name}-${each.key}"
      # No pydantic plugins are used: skip pydantic's scan of every installed package's entry
      # points on the first schema build of each cold start (docs/deploy.md).
      PYDANTIC_DISABLE_PLUGINS = "__all__"
    }, local.function_environment[each.key])
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.this[each.key].name
    application_log_level = local.application_log_level
  }

  tracing_config {
    mode = var.lambda.tracing ? "Active" : "PassThrough"
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = local.powertools_layer_fits
      error_message = "powertools_layer_arn names a layer built for another runtime or architecture than ${var.lambda_package.runtime} on ${var.lambda_package.architecture}: use AWSLambdaPowertoolsPythonV3-${replace(var.lambda_package.runtime, ".", "")}-${var.lambda_package.architecture}."
    }
  }
}

# --- Event sources ---------------------------------------------------------------------------

resource "aws_lambda_event_source_mapping" "stream" {
  event_source_arn                   = aws_dynamodb_table.this.stream_arn
  function_name                      = aws_lambda_function.this["stream"].arn
  starting_position                  = "TRIM_HORIZON"
  batch_size                         = var.stream_processing.batch_size
  maximum_batching_window_in_seconds = var.stream_processing.maximum_batching_window_in_seconds
  parallelization_factor             = var.stream_processing.parallelization_factor
  bisect_batch_on_function_error     = true
  maximum_retry_attempts             = var.stream_processing.maximum_retry_attempts
  maximum_record_age_in_seconds      = var.stream_processing.maximum_record_age_in_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  # Lambda checks that the role can read the source when the mapping is created.
  depends_on = [aws_iam_role_policy.this]

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.stream_failures.arn
    }
  }
}

resource "aws_lambda_event_source_mapping" "updates" {
  event_source_arn                   = aws_sqs_queue.updates.arn
  function_name                      = aws_lambda_function.this["updates"].arn
  batch_size                         = var.updates_queue.batch_size
  maximum_batching_window_in_seconds = var.updates_queue.maximum_batching_window_in_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.updates_queue.maximum_concurrency
  }

  # Lambda checks that the role can read the source when the mapping is created.
  depends_on = [aws_iam_role_policy.this]
}

# --- Sweeper schedule (scheduled rules live on the default bus) ------------------------------

resource "aws_cloudwatch_event_rule" "sweeper" {
  name                = "${var.name}-sweeper"
  description         = "Runs the ${var.name} sweeper: tasks past their deadline, heartbeat or start timeout fail."
  schedule_expression = var.sweeper_schedule_expression
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "sweeper" {
  rule      = aws_cloudwatch_event_rule.sweeper.name
  target_id = "sweeper"
  arn       = aws_lambda_function.this["sweeper"].arn

  # A missed tick is covered by the next one.
  retry_policy {
    maximum_event_age_in_seconds = 60
    maximum_retry_attempts       = 0
  }
}

resource "aws_lambda_permission" "sweeper" {
  statement_id  = "AllowSweeperSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["sweeper"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.sweeper.arn
}

resource "aws_lambda_function_event_invoke_config" "sweeper" {
  function_name                = aws_lambda_function.this["sweeper"].function_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 60
}
