# Push over WebSocket (websocket variable): off by default; $connect authorized as the HTTP
# API is (AWS_IAM, or with JWT a request authorizer reading ?token=: the module's own, or the
# deployer's); every other route unauthorized, since API Gateway authorizes a connection at
# $connect only.

mock_provider "aws" {
  source = "./tests"
}

run "off_by_default" {
  command = plan
  assert {
    condition     = length(aws_apigatewayv2_api.websocket) == 0 && length(aws_dynamodb_table.connections) == 0 && length(aws_sqs_queue.notify) == 0
    error_message = "nothing of push exists unless websocket.enabled"
  }
  assert {
    condition     = toset(keys(aws_lambda_function.this)) == toset(["api", "stream", "updates", "sweeper"])
    error_message = "without push there are the four functions"
  }
}

run "iam_connect_and_two_way_routes" {
  command = plan
  variables {
    websocket = { enabled = true }
  }
  assert {
    condition     = toset(keys(aws_lambda_function.this)) == toset(["api", "stream", "updates", "sweeper", "sockets", "notify"])
    error_message = "push adds the sockets and notify functions"
  }
  assert {
    condition     = aws_apigatewayv2_api.websocket[0].route_selection_expression == "$request.body.action"
    error_message = "routes are selected by the message's action"
  }
  assert {
    condition     = aws_apigatewayv2_route.connect[0].authorization_type == "AWS_IAM"
    error_message = "$connect is IAM-authorized with api.authorization = AWS_IAM"
  }
  assert {
    condition     = toset(keys(aws_apigatewayv2_route.messages)) == toset(["subscribe", "unsubscribe", "submit", "$default"])
    error_message = "one route per action, and $default for anything else"
  }
  assert {
    condition = alltrue([
      for route in aws_apigatewayv2_route.messages :
      route.authorization_type == "NONE" && route.route_response_selection_expression == "$default"
    ])
    error_message = "messages ride on the authorized connection and are answered on their route"
  }
  assert {
    condition     = length(aws_apigatewayv2_route_response.messages) == 4
    error_message = "each message route has its $default response (two-way)"
  }
  assert {
    condition     = aws_apigatewayv2_stage.websocket[0].default_route_settings[0].throttling_rate_limit == 50
    error_message = "the stage is throttled"
  }
  assert {
    condition     = aws_dynamodb_table.connections[0].ttl[0].attribute_name == "expires_at" && aws_dynamodb_table.connections[0].stream_enabled != true
    error_message = "the connections table expires its items and has no stream"
  }
  assert {
    condition     = aws_sqs_queue.notify[0].message_retention_seconds == 7200
    error_message = "a change older than the longest connection is dropped"
  }
}

run "jwt_deploys_its_own_query_string_authorizer" {
  command = plan
  variables {
    api = {
      authorization        = "JWT"
      jwt_issuer           = "https://issuer.example.com/"
      jwt_audience         = ["tasks"]
      authorization_scopes = ["tasks/read"]
    }
    websocket = { enabled = true }
  }
  assert {
    condition     = aws_lambda_function.this["authorizer"].handler == "taskmanager.entrypoints.authorizer.handler"
    error_message = "with JWT and no authorizer of the deployer's, the module deploys its own"
  }
  assert {
    condition     = aws_lambda_function.this["authorizer"].environment[0].variables["TASKMANAGER_JWT_ISSUER"] == "https://issuer.example.com/" && jsondecode(aws_lambda_function.this["authorizer"].environment[0].variables["TASKMANAGER_JWT_AUDIENCE"]) == ["tasks"] && jsondecode(aws_lambda_function.this["authorizer"].environment[0].variables["TASKMANAGER_JWT_SCOPES"]) == ["tasks/read"]
    error_message = "the authorizer checks the HTTP API's issuer, audience and scopes"
  }
  assert {
    condition     = aws_apigatewayv2_route.connect[0].authorization_type == "CUSTOM" && aws_apigatewayv2_authorizer.push_jwt[0].identity_sources == toset(["route.request.querystring.token"])
    error_message = "$connect goes through the authorizer, which reads the token from the query string"
  }
}

run "jwt_connect_uses_the_query_string_authorizer" {
  command = plan
  variables {
    api = {
      authorization        = "JWT"
      jwt_issuer           = "https://issuer.example.com/"
      jwt_audience         = ["tasks"]
      authorization_scopes = []
    }
    websocket = {
      enabled                     = true
      jwt_authorizer_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:jwt-authorizer"
    }
  }
  assert {
    condition     = aws_apigatewayv2_route.connect[0].authorization_type == "CUSTOM"
    error_message = "$connect goes through the request authorizer with JWT"
  }
  assert {
    condition     = !contains(keys(aws_lambda_function.this), "authorizer")
    error_message = "the deployer's authorizer replaces the module's own"
  }
  assert {
    condition     = aws_apigatewayv2_authorizer.push_jwt[0].identity_sources == toset(["route.request.querystring.token"])
    error_message = "the authorizer reads the token from the query string"
  }
}
