# websocket: the stage name, the limits and the authorizer's ARN are checked before any plan.

run "defaults" {
  command = plan
  variables {
    websocket = { enabled = true }
  }
}

run "a_stage_name_with_a_slash_is_refused" {
  command = plan
  variables {
    websocket = { enabled = true, stage_name = "live/v1" }
  }
  expect_failures = [var.websocket]
}

run "a_sockets_timeout_over_api_gateways_limit_is_refused" {
  command = plan
  variables {
    websocket = { enabled = true, sockets_timeout = 30 }
  }
  expect_failures = [var.websocket]
}

run "an_authorizer_that_is_not_a_function_is_refused" {
  command = plan
  variables {
    websocket = { enabled = true, jwt_authorizer_function_arn = "jwt-authorizer" }
  }
  expect_failures = [var.websocket]
}
