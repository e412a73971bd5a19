# Processors live in the task manager's account and region: the rule is made on the bus by
# name with the processor's own provider, and the SDK reads the table by name with the
# function's own credentials. A bus ARN of another account or region stops the plan.

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

run "same_account_and_region" {
  command = plan
}

run "a_bus_of_another_account_is_refused" {
  command = plan
  variables {
    task_manager = {
      event_bus_name        = "tm-test"
      event_bus_arn         = "arn:aws:events:eu-west-1:210987654321:event-bus/tm-test"
      event_source          = "taskmanager"
      table_name            = "tm-test-tasks"
      processor_policy_json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
  expect_failures = [aws_cloudwatch_event_rule.this]
}

run "a_bus_of_another_region_is_refused" {
  command = plan
  variables {
    task_manager = {
      event_bus_name        = "tm-test"
      event_bus_arn         = "arn:aws:events:us-east-1:123456789012:event-bus/tm-test"
      event_source          = "taskmanager"
      table_name            = "tm-test-tasks"
      processor_policy_json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
  expect_failures = [aws_cloudwatch_event_rule.this]
}
