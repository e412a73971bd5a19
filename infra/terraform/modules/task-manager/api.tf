locals {
  # docs/design.md §5: every route goes to the one api function, which routes by path itself.
  routes = toset([
    "POST /tasks",
    "GET /tasks",
    "GET /tasks/{id}",
    "POST /tasks/{id}/cancel",
    "GET /openapi.json",
  ])

  # Every route requires the same scopes (null: none, as with AWS_IAM or an explicit []).
  route_scopes = var.api.authorization == "JWT" && length(coalesce(var.api.authorization_scopes, [])) > 0 ? var.api.authorization_scopes : null
}

resource "aws_apigatewayv2_api" "this" {
  name          = var.name
  description   = "Task manager HTTP API: submit, get, list and cancel tasks."
  protocol_type = "HTTP"
  tags          = var.tags
}

resource "aws_apigatewayv2_integration" "api" {
  api_id                 = aws_apigatewayv2_api.this.id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = aws_lambda_function.this["api"].invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = min(30000, (var.lambda.api_timeout + 1) * 1000)
}

resource "aws_apigatewayv2_authorizer" "jwt" {
  count = var.api.authorization == "JWT" ? 1 : 0

  api_id           = aws_apigatewayv2_api.this.id
  name             = "${var.name}-jwt"
  authorizer_type  = "JWT"
  identity_sources = ["$request.header.Authorization"]

  jwt_configuration {
    issuer   = var.api.jwt_issuer
    audience = var.api.jwt_audience
  }
}

resource "aws_apigatewayv2_route" "this" {
  for_each = local.routes

  api_id               = aws_apigatewayv2_api.this.id
  route_key            = each.value
  target               = "integrations/${aws_apigatewayv2_integration.api.id}"
  authorization_type   = var.api.authorization
  authorizer_id        = var.api.authorization == "JWT" ? aws_apigatewayv2_authorizer.jwt[0].id : null
  authorization_scopes = local.route_scopes
}

resource "aws_cloudwatch_log_group" "api_access" {
  name              = "/aws/apigateway/${var.name}"
  retention_in_days = var.lambda.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_apigatewayv2_stage" "this" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = "$default"
  auto_deploy = true
  tags        = var.tags

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      requestTime        = "$context.requestTime"
      ip                 = "$context.identity.sourceIp"
      caller             = "$context.identity.caller"
      user               = "$context.identity.user"
      jwtSub             = "$context.authorizer.claims.sub"
      httpMethod         = "$context.httpMethod"
      routeKey           = "$context.routeKey"
      status             = "$context.status"
      responseLength     = "$context.responseLength"
      integrationLatency = "$context.integrationLatency"
      integrationError   = "$context.integrationErrorMessage"
      authorizerError    = "$context.authorizer.error"
    })
  }

  default_route_settings {
    throttling_burst_limit   = var.api.throttling_burst_limit
    throttling_rate_limit    = var.api.throttling_rate_limit
    detailed_metrics_enabled = true
  }
}

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowHttpApi"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["api"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/*"
}
