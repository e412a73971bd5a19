# task_types and settings.default_start_timeout_seconds reach the functions as the settings
# model reads them: the api function (only it) gets TASKMANAGER_TASK_TYPES as a JSON list;
# every function gets the default start timeout when one is set. Neither is set by default,
# which keeps the old behaviour: any type, no start timeout.

mock_provider "aws" {
  source = "./tests"
}

run "any_type_and_no_start_timeout_by_default" {
  command = plan
  assert {
    condition = alltrue([
      for f in aws_lambda_function.this : !contains(keys(f.environment[0].variables), "TASKMANAGER_TASK_TYPES")
      && !contains(keys(f.environment[0].variables), "TASKMANAGER_DEFAULT_START_TIMEOUT_SECONDS")
    ])
    error_message = "without task_types and a default start timeout no function is given either"
  }
}

run "the_api_function_gets_the_task_types_and_every_function_the_start_timeout" {
  command = plan
  variables {
    task_types = ["text.wordcount", "report.render", "text.wordcount"]
    settings   = { default_start_timeout_seconds = 300 }
  }
  assert {
    condition     = jsondecode(aws_lambda_function.this["api"].environment[0].variables.TASKMANAGER_TASK_TYPES) == ["report.render", "text.wordcount"]
    error_message = "the api function must get the task types as a sorted JSON list, each once"
  }
  assert {
    condition = alltrue([
      for name in ["stream", "sweeper", "updates"] : !contains(keys(aws_lambda_function.this[name].environment[0].variables), "TASKMANAGER_TASK_TYPES")
    ])
    error_message = "only the api function reads task_types"
  }
  assert {
    condition     = alltrue([for f in aws_lambda_function.this : f.environment[0].variables.TASKMANAGER_DEFAULT_START_TIMEOUT_SECONDS == "300"])
    error_message = "every function must get settings.default_start_timeout_seconds"
  }
}
