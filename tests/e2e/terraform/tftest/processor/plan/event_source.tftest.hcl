# Each processor publishes TaskUpdated with a source of its own (TASKMANAGER_PROCESSOR_SOURCE
# for the SDK), taskmanager.processor.<name> unless given; the task manager's own source,
# the one TaskCreated comes with, is refused.

mock_provider "aws" {
  source = "./tests"
}

run "derived_from_the_name_by_default" {
  command = plan
  assert {
    condition     = output.event_source == "taskmanager.processor.tm-test-wordcount"
    error_message = "the default source must be taskmanager.processor.<name>"
  }
  assert {
    condition     = aws_lambda_function.this[0].environment[0].variables.TASKMANAGER_PROCESSOR_SOURCE == "taskmanager.processor.tm-test-wordcount"
    error_message = "the SDK must be told the processor's own source"
  }
  assert {
    condition     = aws_lambda_function.this[0].environment[0].variables.TASKMANAGER_EVENT_SOURCE == "taskmanager"
    error_message = "TASKMANAGER_EVENT_SOURCE stays the task manager's source"
  }
}

run "a_given_source" {
  command = plan
  variables {
    event_source = "acme.wordcount"
  }
  assert {
    condition     = output.event_source == "acme.wordcount" && aws_lambda_function.this[0].environment[0].variables.TASKMANAGER_PROCESSOR_SOURCE == "acme.wordcount"
    error_message = "event_source must be the source the function publishes with"
  }
}

run "the_task_managers_own_source_is_refused" {
  command = plan
  variables {
    event_source = "taskmanager"
  }
  expect_failures = [aws_cloudwatch_event_rule.this]
}

run "the_task_managers_bus_as_failure_destination_is_refused" {
  command = plan
  variables {
    async_invoke = { on_failure_destination_arn = "arn:aws:events:eu-west-1:123456789012:event-bus/tm-test" }
  }
  expect_failures = [aws_lambda_function_event_invoke_config.this[0]]
}
