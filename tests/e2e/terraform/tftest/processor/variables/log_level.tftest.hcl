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

run "debug" {
  command = plan
  variables {
    function = { log_level = "DEBUG" }
  }
}

run "lambdas_spelling_is_not_a_python_level" {
  command = plan
  variables {
    function = { log_level = "WARN" }
  }
  expect_failures = [var.function]
}
