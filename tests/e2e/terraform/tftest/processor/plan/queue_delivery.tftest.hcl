# delivery = "queue": the TaskCreated rule feeds an SQS queue with a dead-letter queue, read
# by `taskmanager worker` processes; no function, role or log group is made. Applied against
# Terraform's mock aws provider (nothing is called), so computed ARNs are known to compare.

mock_provider "aws" {
  source = "./tests"
}

# The mock provider's made-up ARNs would fail the event target's ARN check.
override_resource {
  target = aws_sqs_queue.tasks
  values = {
    arn = "arn:aws:sqs:eu-west-1:123456789012:tm-test-wordcount-tasks"
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/tm-test-wordcount-tasks"
  }
}
override_resource {
  target = aws_sqs_queue.dead_letters
  values = {
    arn = "arn:aws:sqs:eu-west-1:123456789012:tm-test-wordcount-tasks-dlq"
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/tm-test-wordcount-tasks-dlq"
  }
}
override_resource {
  target = aws_cloudwatch_event_rule.this
  values = { arn = "arn:aws:events:eu-west-1:123456789012:rule/tm-test/tm-test-wordcount" }
}

variables {
  delivery             = "queue"
  lambda_package       = null
  powertools_layer_arn = null
  queue = {
    visibility_timeout_seconds = 120
    max_receive_count          = 4
  }
}

run "the_rule_feeds_a_queue_with_a_dead_letter_queue" {
  command = apply
  assert {
    condition     = aws_cloudwatch_event_target.this.arn == aws_sqs_queue.tasks[0].arn
    error_message = "the TaskCreated rule must target the task queue"
  }
  assert {
    condition     = aws_cloudwatch_event_target.this.dead_letter_config[0].arn == aws_sqs_queue.dead_letters[0].arn
    error_message = "events EventBridge cannot deliver go to the dead-letter queue"
  }
  assert {
    condition = jsondecode(aws_sqs_queue.tasks[0].redrive_policy) == {
      deadLetterTargetArn = aws_sqs_queue.dead_letters[0].arn
      maxReceiveCount     = 4
    }
    error_message = "after max_receive_count receives a message moves to the dead-letter queue"
  }
  assert {
    condition     = aws_sqs_queue.tasks[0].visibility_timeout_seconds == 120 && aws_sqs_queue.tasks[0].message_retention_seconds == 345600
    error_message = "the queue's visibility timeout and retention come from var.queue"
  }
  assert {
    condition     = aws_sqs_queue.tasks[0].name == "tm-test-wordcount-tasks" && aws_sqs_queue.dead_letters[0].message_retention_seconds == 1209600
    error_message = "the queues are named for the processor; dead letters are kept 14 days"
  }
  assert {
    condition     = length(aws_lambda_function.this) == 0 && length(aws_iam_role.this) == 0 && length(aws_cloudwatch_log_group.this) == 0 && length(aws_lambda_permission.events) == 0 && length(aws_sqs_queue.failures) == 0
    error_message = "a queue-delivered processor has no function, role, log group, permission or failure queue"
  }
  assert {
    condition     = output.queue_url == aws_sqs_queue.tasks[0].url && output.queue_arn == aws_sqs_queue.tasks[0].arn && output.function_name == null
    error_message = "the queue's URL and ARN are outputs; the function outputs are null"
  }
  assert {
    condition     = output.worker_environment.TASKMANAGER_QUEUE_URL == aws_sqs_queue.tasks[0].url && output.worker_environment.TASKMANAGER_VISIBILITY_TIMEOUT == "120" && output.worker_environment.TASKMANAGER_PROCESSOR_SOURCE == "taskmanager.processor.tm-test-wordcount"
    error_message = "worker_environment holds what `taskmanager worker` reads"
  }
  assert {
    condition     = length(aws_cloudwatch_metric_alarm.dead_letters) == 1
    error_message = "an alarm watches the dead-letter queue"
  }
}

run "lambda_delivery_makes_no_queue" {
  command = plan
  variables {
    delivery             = "lambda"
    powertools_layer_arn = "arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python312-x86_64:7"
    lambda_package       = { handler = "wordcount_processor.handler", path = "zips/wordcount-python3.12-x86_64.zip" }
  }
  assert {
    condition     = length(aws_sqs_queue.tasks) == 0 && length(aws_lambda_function.this) == 1 && output.queue_url == null && output.worker_policy_json == null
    error_message = "the default delivery is a function, with no task queue"
  }
}

run "lambda_delivery_needs_a_package" {
  command = plan
  variables {
    delivery = "lambda"
  }
  expect_failures = [aws_cloudwatch_event_rule.this]
}
