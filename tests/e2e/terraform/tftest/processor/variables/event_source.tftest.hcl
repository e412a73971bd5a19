# A processor's source is an EventBridge source of a PutEvents entry: 1-256 characters, and
# not one of AWS's own ("aws." ...).

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

run "a_dotted_source" {
  command = plan
  variables {
    event_source = "com.example.tasks.wordcount"
  }
}

run "an_aws_source_is_refused" {
  command = plan
  variables {
    event_source = "aws.lambda"
  }
  expect_failures = [var.event_source]
}

run "an_empty_source_is_refused" {
  command = plan
  variables {
    event_source = ""
  }
  expect_failures = [var.event_source]
}

run "spaces_are_refused" {
  command = plan
  variables {
    event_source = "word count"
  }
  expect_failures = [var.event_source]
}
