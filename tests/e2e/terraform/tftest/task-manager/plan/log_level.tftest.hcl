# With JSON logs, Lambda drops application logs below the function's application log level
# (INFO unless set), whatever Powertools emits: lambda.log_level must set that filter too, or
# DEBUG never reaches CloudWatch. Lambda spells WARNING as WARN.
# https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-log-level.html

mock_provider "aws" {
  source = "./tests"
}

run "info_by_default" {
  command = plan
  assert {
    condition = alltrue([
      for f in aws_lambda_function.this :
      f.logging_config[0].log_format == "JSON" && f.logging_config[0].application_log_level == "INFO"
    ])
    error_message = "every function must log JSON at INFO by default"
  }
}

run "debug_reaches_cloudwatch" {
  command = plan
  variables {
    lambda = { log_level = "DEBUG" }
  }
  assert {
    condition = alltrue([
      for f in aws_lambda_function.this :
      f.logging_config[0].application_log_level == "DEBUG" && f.environment[0].variables.POWERTOOLS_LOG_LEVEL == "DEBUG"
    ])
    error_message = "lambda.log_level = DEBUG must set every function's application log level to DEBUG"
  }
}

run "warning_is_lambdas_warn" {
  command = plan
  variables {
    lambda = { log_level = "WARNING" }
  }
  assert {
    condition = alltrue([
      for f in aws_lambda_function.this : f.logging_config[0].application_log_level == "WARN"
    ])
    error_message = "lambda.log_level = WARNING must set Lambda's WARN"
  }
}
