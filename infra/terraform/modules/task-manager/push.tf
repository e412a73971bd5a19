# Push over WebSocket (docs/push.md, "On AWS"), when websocket.enabled: the WebSocket API ->
# the sockets function; the outbound events -> rule -> queue -> the notify function, which
# posts to the connections. Connections and subscriptions live in a table of their own
# (src/taskmanager/adapters/dynamodb/connections.py says why).

locals {
  push       = var.websocket.enabled
  push_count = local.push ? 1 : 0
  push_jwt   = local.push && var.api.authorization == "JWT"
  # Without a function of the deployer's, the module deploys taskmanager's own authorizer.
  push_jwt_own    = local.push_jwt && var.websocket.jwt_authorizer_function_arn == null
  push_jwt_invoke = local.push_jwt_own ? try(aws_lambda_function.this["authorizer"].invoke_arn, null) : "arn:${data.aws_partition.current.partition}:apigateway:${data.aws_region.current.name}:lambda:path/2015-03-31/functions/${coalesce(var.websocket.jwt_authorizer_function_arn, "-")}/invocations"
  push_jwt_target = local.push_jwt_own ? try(aws_lambda_function.this["authorizer"].function_name, null) : var.websocket.jwt_authorizer_function_arn
  push_stage      = var.websocket.stage_name
  connections     = "${var.name}-connections"
  notify_queue    = "${var.name}-notify"
  notify_dlq      = "${var.name}-notify-dlq"
  socket_routes   = ["subscribe", "unsubscribe", "submit", "$default"]
  websocket_arn   = local.push ? aws_apigatewayv2_api.websocket[0].execution_arn : null
  outbound_rule   = merge(jsondecode(file("${path.module}/patterns/task_outbound.json")), { source = [var.settings.event_source] })
  push_functions  = local.push ? ["sockets", "notify"] : []
}

# --- The connections table -------------------------------------------------------------------

resource "aws_dynamodb_table" "connections" {
  count = local.push_count
  # checkov:skip=CKV_AWS_28:Connections and subscriptions live two hours at most and a client re-subscribes on reconnect: a backup restores nothing worth having.
  # checkov:skip=CKV_AWS_119:As the task table: a customer managed key is var.table.kms_key_arn, else DynamoDB's free AWS owned key.
  name                        = local.connections
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = false

  attribute {
    name = "pk"
    type = "S"
  }
  attribute {
    name = "sk"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  server_side_encryption {
    enabled     = var.table.kms_key_arn != null
    kms_key_arn = var.table.kms_key_arn
  }

  tags = var.tags
}

# --- The WebSocket API -----------------------------------------------------------------------

resource "aws_apigatewayv2_api" "websocket" {
  count = local.push_count

  name                       = "${var.name}-push"
  description                = "Task manager push: subscribe to, submit and follow tasks over one WebSocket (docs/push.md)."
  protocol_type              = "WEBSOCKET"
  route_selection_expression = "$request.body.action"
  tags                       = var.tags
}

resource "aws_apigatewayv2_integration" "sockets" {
  count = local.push_count

  api_id                    = aws_apigatewayv2_api.websocket[0].id
  integration_type          = "AWS_PROXY"
  integration_method        = "POST"
  integration_uri           = aws_lambda_function.this["sockets"].invoke_arn
  content_handling_strategy = "CONVERT_TO_TEXT"
  timeout_milliseconds      = min(29000, (var.websocket.sockets_timeout + 1) * 1000)
}

resource "aws_apigatewayv2_authorizer" "push_jwt" {
  count = local.push_jwt ? 1 : 0

  api_id          = aws_apigatewayv2_api.websocket[0].id
  name            = "${var.name}-push-jwt"
  authorizer_type = "REQUEST"
  # Browsers cannot set headers on a WebSocket: the token comes in the query string.
  identity_sources = ["route.request.querystring.token"]
  authorizer_uri   = local.push_jwt_invoke
}

resource "aws_lambda_permission" "push_jwt" {
  count = local.push_jwt ? 1 : 0

  statement_id  = "AllowPushApiAuthorizer-${var.name}"
  action        = "lambda:InvokeFunction"
  function_name = local.push_jwt_target
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.websocket[0].execution_arn}/authorizers/${aws_apigatewayv2_authorizer.push_jwt[0].id}"
}

resource "aws_apigatewayv2_route" "connect" {
  count = local.push_count
  # checkov:skip=CKV_AWS_309:The authorization type is set: AWS_IAM, or CUSTOM (the JWT authorizer) with api.authorization = JWT; checkov cannot evaluate the conditional.

  api_id             = aws_apigatewayv2_api.websocket[0].id
  route_key          = "$connect"
  target             = "integrations/${aws_apigatewayv2_integration.sockets[0].id}"
  authorization_type = local.push_jwt ? "CUSTOM" : "AWS_IAM"
  authorizer_id      = local.push_jwt ? aws_apigatewayv2_authorizer.push_jwt[0].id : null
}

resource "aws_apigatewayv2_route" "disconnect" {
  count = local.push_count
  # checkov:skip=CKV_AWS_309:A WebSocket API authorizes a connection once, at $connect; API Gateway accepts no authorization on any other route.

  api_id             = aws_apigatewayv2_api.websocket[0].id
  route_key          = "$disconnect"
  target             = "integrations/${aws_apigatewayv2_integration.sockets[0].id}"
  authorization_type = "NONE"
}

# The protocol's messages: answered on the same route (two-way), so each route has a response.
resource "aws_apigatewayv2_route" "messages" {
  for_each = toset(local.push ? local.socket_routes : [])
  # checkov:skip=CKV_AWS_309:A WebSocket API authorizes a connection once, at $connect; its messages ride on it, and the sockets function reads the owner recorded then.

  api_id                              = aws_apigatewayv2_api.websocket[0].id
  authorization_type                  = "NONE"
  route_key                           = each.value
  target                              = "integrations/${aws_apigatewayv2_integration.sockets[0].id}"
  route_response_selection_expression = "$default"
}

resource "aws_apigatewayv2_route_response" "messages" {
  for_each = aws_apigatewayv2_route.messages

  api_id             = aws_apigatewayv2_api.websocket[0].id
  route_id           = each.value.id
  route_response_key = "$default"
}

resource "aws_cloudwatch_log_group" "push_access" {
  count = local.push_count

  name              = "/aws/apigateway/${var.name}-push"
  retention_in_days = var.lambda.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_apigatewayv2_stage" "websocket" {
  count = local.push_count
  # checkov:skip=CKV2_AWS_51:Callers authenticate at $connect with SigV4 or a JWT; mutual TLS would need a custom domain name the deployer owns.

  api_id      = aws_apigatewayv2_api.websocket[0].id
  name        = local.push_stage
  auto_deploy = true
  tags        = var.tags

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.push_access[0].arn
    format = jsonencode({
      requestId        = "$context.requestId"
      requestTime      = "$context.requestTime"
      ip               = "$context.identity.sourceIp"
      caller           = "$context.identity.caller"
      user             = "$context.identity.user"
      principalId      = "$context.authorizer.principalId"
      connectionId     = "$context.connectionId"
      eventType        = "$context.eventType"
      routeKey         = "$context.routeKey"
      status           = "$context.status"
      integrationError = "$context.integrationErrorMessage"
      authorizerError  = "$context.authorizer.error"
    })
  }

  default_route_settings {
    throttling_burst_limit   = var.websocket.throttling_burst_limit
    throttling_rate_limit    = var.websocket.throttling_rate_limit
    detailed_metrics_enabled = true
  }
}

resource "aws_lambda_permission" "sockets" {
  count = local.push_count

  statement_id  = "AllowWebSocketApi"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["sockets"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.websocket[0].execution_arn}/*"
}

# --- The outbound events -> the notify queue -> the notify function ---------------------------

resource "aws_cloudwatch_event_rule" "notify" {
  count = local.push_count

  name           = "${var.name}-notify"
  description    = "Outbound task events -> the notify queue (WebSocket followers)."
  event_bus_name = local.event_bus_name
  event_pattern  = jsonencode(local.outbound_rule)
  tags           = var.tags

  depends_on = [aws_cloudwatch_event_bus.this]
}

resource "aws_cloudwatch_event_target" "notify" {
  count = local.push_count

  rule           = aws_cloudwatch_event_rule.notify[0].name
  event_bus_name = local.event_bus_name
  target_id      = "notify-queue"
  arn            = aws_sqs_queue.notify[0].arn

  # A push is worth little late: an hour of retries, then the DLQ.
  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 20
  }
  dead_letter_config {
    arn = aws_sqs_queue.notify_dlq[0].arn
  }
}

data "aws_iam_policy_document" "notify_send" {
  for_each = local.push ? {
    notify     = "${local.queue_arn_prefix}:${local.notify_queue}"
    notify_dlq = "${local.queue_arn_prefix}:${local.notify_dlq}"
  } : {}

  statement {
    sid       = "NotifyRuleSends"
    actions   = ["sqs:SendMessage"]
    resources = [each.value]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.notify[0].arn]
    }
  }
}

resource "aws_sqs_queue" "notify_dlq" {
  count = local.push_count

  name                      = local.notify_dlq
  message_retention_seconds = var.updates_queue.dlq_retention_seconds
  policy                    = data.aws_iam_policy_document.notify_send["notify_dlq"].json
  sqs_managed_sse_enabled   = var.kms_key_arn == null ? true : null
  kms_master_key_id         = var.kms_key_arn
  tags                      = var.tags
}

resource "aws_sqs_queue" "notify" {
  count = local.push_count

  name   = local.notify_queue
  policy = data.aws_iam_policy_document.notify_send["notify"].json
  # Six times the function timeout, as Lambda recommends for SQS event sources.
  visibility_timeout_seconds = 6 * var.websocket.notify_timeout
  # A change older than the longest connection (2 h) reaches nobody who could still use it.
  message_retention_seconds = 7200
  sqs_managed_sse_enabled   = var.kms_key_arn == null ? true : null
  kms_master_key_id         = var.kms_key_arn
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.notify_dlq[0].arn
    maxReceiveCount     = var.websocket.notify_max_receive_count
  })
  tags = var.tags
}

resource "aws_lambda_event_source_mapping" "notify" {
  count = local.push_count

  event_source_arn        = aws_sqs_queue.notify[0].arn
  function_name           = aws_lambda_function.this["notify"].arn
  batch_size              = 10
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.websocket.notify_maximum_concurrency
  }

  # Lambda checks that the role can read the source when the mapping is created.
  depends_on = [aws_iam_role_policy.this]
}

# --- The two functions' permissions ------------------------------------------------------------

data "aws_iam_policy_document" "sockets" {
  count                   = local.push_count
  source_policy_documents = [data.aws_iam_policy_document.common["sockets"].json]

  statement {
    sid       = "Connections"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:BatchWriteItem"]
    resources = [aws_dynamodb_table.connections[0].arn]
  }
  statement {
    sid       = "SubmitAndReadTasks"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem"]
    resources = [aws_dynamodb_table.this.arn]
  }
}

data "aws_iam_policy_document" "notify" {
  count                   = local.push_count
  source_policy_documents = [data.aws_iam_policy_document.common["notify"].json]

  statement {
    sid       = "ConsumeNotifyQueue"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.notify[0].arn]
  }
  statement {
    sid       = "ReadTasks"
    actions   = ["dynamodb:GetItem"]
    resources = [aws_dynamodb_table.this.arn]
  }
  statement {
    sid       = "FindAndForgetConnections"
    actions   = ["dynamodb:Query", "dynamodb:BatchWriteItem"]
    resources = [aws_dynamodb_table.connections[0].arn]
  }
  statement {
    # Only this API's connections, on its own stage.
    sid       = "PostToConnections"
    actions   = ["execute-api:ManageConnections"]
    resources = ["${aws_apigatewayv2_api.websocket[0].execution_arn}/${local.push_stage}/POST/@connections/*"]
  }
}

# The module's own authorizer calls no AWS API: its log group, X-Ray and keys only (common);
# it reads the issuer's public keys over HTTPS.
data "aws_iam_policy_document" "authorizer" {
  count                   = local.push_jwt_own ? 1 : 0
  source_policy_documents = [data.aws_iam_policy_document.common["authorizer"].json]
}

# Callers with AWS_IAM: connecting is execute-api:Invoke on $connect of the stage.
data "aws_iam_policy_document" "websocket_connect" {
  count = local.push_count

  statement {
    sid       = "ConnectToPush"
    actions   = ["execute-api:Invoke"]
    resources = ["${aws_apigatewayv2_api.websocket[0].execution_arn}/${local.push_stage}/$connect"]
  }
}
