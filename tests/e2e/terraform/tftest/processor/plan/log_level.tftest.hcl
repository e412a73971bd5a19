# function.log_level sets both Powertools' level and Lambda's application log level filter,
# which otherwise drops DEBUG from JSON logs.

mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
}

variables {
  name      = "tm-test-wordcount"
  task_type = "text.wordcount"
  task_manager = {
    event_bus_name        = "tm-test"
    event_bus_arn         = "arn:aws:events:eu-west-1:123456789012:event-bus/tm-test"
    event_source          = "taskmanager"
    table_name            = "tm-test-tasks"
    processor_policy_json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
  }
  powertools_layer_arn = "arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python312-x86_64:7"
  lambda_package       = { handler = "wordcount_processor.handler", path = "zips/wordcount-python3.12-x86_64.zip" }
}

run "info_by_default" {
  command = plan
  assert {
    condition     = aws_lambda_function.this.logging_config[0].application_log_level == "INFO"
    error_message = "the processor must log at INFO by default"
  }
}

run "debug_reaches_cloudwatch" {
  command = plan
  variables {
    function = { log_level = "DEBUG" }
  }
  assert {
    condition     = aws_lambda_function.this.logging_config[0].application_log_level == "DEBUG"
    error_message = "function.log_level = DEBUG must set the application log level to DEBUG"
  }
  assert {
    condition     = aws_lambda_function.this.environment[0].variables.POWERTOOLS_LOG_LEVEL == "DEBUG"
    error_message = "function.log_level = DEBUG must set POWERTOOLS_LOG_LEVEL"
  }
}
