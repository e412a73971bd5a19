# The Powertools layer named for another runtime or architecture than the function's stops
# the plan (see the task-manager module's test of the same rule).

mock_provider "aws" {
  source = "./tests"
}

run "layer_for_the_functions_runtime_and_architecture" {
  command = plan
}

run "an_arm64_layer_for_an_x86_64_function_is_refused" {
  command = plan
  variables {
    powertools_layer_arn = "arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python312-arm64:7"
  }
  expect_failures = [aws_lambda_function.this[0]]
}
