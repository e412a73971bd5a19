# Asynchronous-invocation destinations, planned with the real aws provider (offline: no API
# is called at plan). With sdk = false a function's invocation records, on success and on
# failure, go to the task manager's updates queue and its role neither publishes nor reads
# tasks; an SDK processor sends its failures there too once the queue is known.

provider "aws" {
  region                      = "eu-west-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}

override_data {
  target = data.aws_caller_identity.current
  values = { account_id = "123456789012" }
}

run "without_the_sdk_both_records_go_to_the_updates_queue" {
  command = plan
  variables {
    sdk = false
    task_manager = {
      event_bus_name        = "tm-test"
      event_bus_arn         = "arn:aws:events:eu-west-1:123456789012:event-bus/tm-test"
      event_source          = "taskmanager"
      table_name            = "tm-test-tasks"
      processor_policy_json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
      updates_queue_arn     = "arn:aws:sqs:eu-west-1:123456789012:tm-test-updates"
    }
  }
  assert {
    condition     = aws_lambda_function_event_invoke_config.this[0].destination_config[0].on_failure[0].destination == "arn:aws:sqs:eu-west-1:123456789012:tm-test-updates"
    error_message = "failures go to the updates queue"
  }
  assert {
    condition     = aws_lambda_function_event_invoke_config.this[0].destination_config[0].on_success[0].destination == "arn:aws:sqs:eu-west-1:123456789012:tm-test-updates"
    error_message = "successes go to the updates queue"
  }
  assert {
    condition     = data.aws_iam_policy_document.this[0].source_policy_documents == null || length(coalesce(data.aws_iam_policy_document.this[0].source_policy_documents, [])) == 0
    error_message = "without the SDK the role gets no publish or GetItem statement"
  }
  assert {
    condition     = data.aws_iam_policy_document.this[0].override_policy_documents == null || length(coalesce(data.aws_iam_policy_document.this[0].override_policy_documents, [])) == 0
    error_message = "without the SDK the role gets no publish statement"
  }
}

run "an_sdk_processor_sends_its_failures_to_the_updates_queue" {
  command = plan
  variables {
    task_manager = {
      event_bus_name        = "tm-test"
      event_bus_arn         = "arn:aws:events:eu-west-1:123456789012:event-bus/tm-test"
      event_source          = "taskmanager"
      table_name            = "tm-test-tasks"
      processor_policy_json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
      updates_queue_arn     = "arn:aws:sqs:eu-west-1:123456789012:tm-test-updates"
    }
  }
  assert {
    condition     = aws_lambda_function_event_invoke_config.this[0].destination_config[0].on_failure[0].destination == "arn:aws:sqs:eu-west-1:123456789012:tm-test-updates"
    error_message = "an SDK processor killed by its timeout or memory must end its task through the updates queue"
  }
  assert {
    condition     = length(aws_lambda_function_event_invoke_config.this[0].destination_config[0].on_success) == 0
    error_message = "an SDK processor reports its successes itself"
  }
  assert {
    condition     = length(aws_sqs_queue.failures) == 1 && length(aws_cloudwatch_event_target.this.dead_letter_config) == 1
    error_message = "the failure queue stays the rule's dead-letter queue"
  }
  assert {
    condition     = length(data.aws_iam_policy_document.this[0].source_policy_documents) == 1
    error_message = "an SDK processor keeps the task manager's processor policy"
  }
}

run "without_the_sdk_the_updates_queue_is_required" {
  command = plan
  variables {
    sdk = false
  }
  expect_failures = [aws_lambda_function_event_invoke_config.this[0]]
}

run "without_the_sdk_another_failure_destination_is_refused" {
  command = plan
  variables {
    sdk = false
    task_manager = {
      event_bus_name        = "tm-test"
      event_bus_arn         = "arn:aws:events:eu-west-1:123456789012:event-bus/tm-test"
      event_source          = "taskmanager"
      table_name            = "tm-test-tasks"
      processor_policy_json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
      updates_queue_arn     = "arn:aws:sqs:eu-west-1:123456789012:tm-test-updates"
    }
    async_invoke = { on_failure_destination_arn = "arn:aws:sqs:eu-west-1:123456789012:elsewhere" }
  }
  expect_failures = [aws_lambda_function_event_invoke_config.this[0]]
}
