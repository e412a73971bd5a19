# Each processor publishes TaskUpdated with a source of its own (TASKMANAGER_PROCESSOR_SOURCE
# for the SDK), taskmanager.processor.<name> unless given; the task manager's own source,
# the one TaskCreated comes with, is refused.

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

run "derived_from_the_name_by_default" {
  command = plan
  assert {
    condition     = output.event_source == "taskmanager.processor.tm-test-wordcount"
    error_message = "the default source must be taskmanager.processor.<name>"
  }
  assert {
    condition     = aws_lambda_function.this.environment[0].variables.TASKMANAGER_PROCESSOR_SOURCE == "taskmanager.processor.tm-test-wordcount"
    error_message = "the SDK must be told the processor's own source"
  }
  assert {
    condition     = aws_lambda_function.this.environment[0].variables.TASKMANAGER_EVENT_SOURCE == "taskmanager"
    error_message = "TASKMANAGER_EVENT_SOURCE stays the task manager's source"
  }
}

run "a_given_source" {
  command = plan
  variables {
    event_source = "acme.wordcount"
  }
  assert {
    condition     = output.event_source == "acme.wordcount" && aws_lambda_function.this.environment[0].variables.TASKMANAGER_PROCESSOR_SOURCE == "acme.wordcount"
    error_message = "event_source must be the source the function publishes with"
  }
}

run "the_task_managers_own_source_is_refused" {
  command = plan
  variables {
    event_source = "taskmanager"
  }
  expect_failures = [aws_iam_role_policy.this]
}

run "the_task_managers_bus_as_failure_destination_is_refused" {
  command = plan
  variables {
    async_invoke = { on_failure_destination_arn = "arn:aws:events:eu-west-1:123456789012:event-bus/tm-test" }
  }
  expect_failures = [aws_lambda_function_event_invoke_config.this]
}
