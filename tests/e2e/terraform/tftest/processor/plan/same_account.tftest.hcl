# Processors live in the task manager's account and region: the rule is made on the bus by
# name with the processor's own provider, and the SDK reads the table by name with the
# function's own credentials. A bus ARN of another account or region stops the plan.

mock_provider "aws" {
  source = "./tests"
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
