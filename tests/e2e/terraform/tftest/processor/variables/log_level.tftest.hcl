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
