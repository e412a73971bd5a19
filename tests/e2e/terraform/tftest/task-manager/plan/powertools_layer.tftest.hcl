# The public Powertools layer is built per Python version and architecture, and its name says
# which (AWSLambdaPowertoolsPythonV3-python312-x86_64): one named for another runtime or
# architecture than the functions' stops the plan. A layer named otherwise is not checked.

mock_provider "aws" {
  source = "./tests"
}

variables {
  name                 = "tm-test"
  powertools_layer_arn = "arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python312-arm64:7"
  lambda_package       = { path = "zips/taskmanager-python3.12-arm64.zip", architecture = "arm64" }
}

run "layer_for_the_functions_runtime_and_architecture" {
  command = plan
}

run "a_layer_of_your_own_naming" {
  command = plan
  variables {
    powertools_layer_arn = "arn:aws:lambda:eu-west-1:123456789012:layer:my-powertools:3"
  }
}

run "an_x86_64_layer_for_arm64_functions_is_refused" {
  command = plan
  variables {
    powertools_layer_arn = "arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python312-x86_64:7"
  }
  expect_failures = [aws_lambda_function.this]
}

run "a_python3_13_layer_for_python3_12_functions_is_refused" {
  command = plan
  variables {
    powertools_layer_arn = "arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:7"
  }
  expect_failures = [aws_lambda_function.this]
}
