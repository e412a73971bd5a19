# function.log_level sets both Powertools' level and Lambda's application log level filter,
# which otherwise drops DEBUG from JSON logs.

mock_provider "aws" {
  source = "./tests"
}

run "info_by_default" {
  command = plan
  assert {
    condition     = aws_lambda_function.this[0].logging_config[0].application_log_level == "INFO"
    error_message = "the processor must log at INFO by default"
  }
}

run "debug_reaches_cloudwatch" {
  command = plan
  variables {
    function = { log_level = "DEBUG" }
  }
  assert {
    condition     = aws_lambda_function.this[0].logging_config[0].application_log_level == "DEBUG"
    error_message = "function.log_level = DEBUG must set the application log level to DEBUG"
  }
  assert {
    condition     = aws_lambda_function.this[0].environment[0].variables.POWERTOOLS_LOG_LEVEL == "DEBUG"
    error_message = "function.log_level = DEBUG must set POWERTOOLS_LOG_LEVEL"
  }
}
