# The zip carries pydantic-core compiled for one Python version and one architecture; a
# function of another runtime or architecture fails at its first import. taskmanager.build_lambda
# names the zip <name>-<runtime>-<architecture>.zip and the module compares that name with
# lambda_package.runtime and lambda_package.architecture at plan.

run "default_runtime_and_architecture_match_the_name" {
  command = plan
}

run "arm64_zip_for_an_arm64_function" {
  command = plan
  variables {
    lambda_package = { path = "zips/taskmanager-python3.13-arm64.zip", runtime = "python3.13", architecture = "arm64" }
  }
}

run "x86_64_zip_for_an_arm64_function_is_refused" {
  command = plan
  variables {
    lambda_package = { path = "zips/taskmanager-python3.12-x86_64.zip", architecture = "arm64" }
  }
  expect_failures = [var.lambda_package]
}

run "python3_12_zip_for_a_python3_13_function_is_refused" {
  command = plan
  variables {
    lambda_package = { path = "zips/taskmanager-python3.12-x86_64.zip", runtime = "python3.13" }
  }
  expect_failures = [var.lambda_package]
}

run "a_zip_whose_name_does_not_say_is_refused" {
  command = plan
  variables {
    lambda_package = { path = "zips/taskmanager.zip" }
  }
  expect_failures = [var.lambda_package]
}
