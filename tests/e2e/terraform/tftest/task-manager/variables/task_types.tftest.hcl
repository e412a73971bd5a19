# task_types: the task types a submit may name (TASKMANAGER_TASK_TYPES); each a task type of
# docs/design.md §2, at most 50 and 2048 characters as JSON (the api function's environment).

run "none_by_default" {
  command = plan
}

run "task_types_are_accepted" {
  command = plan
  variables {
    task_types = ["text.wordcount", "report:render-v2", "A1"]
  }
}

run "a_type_with_a_space_is_refused" {
  command = plan
  variables {
    task_types = ["text.wordcount", "bad type"]
  }
  expect_failures = [var.task_types]
}

run "a_type_of_65_characters_is_refused" {
  command = plan
  variables {
    task_types = [join("", [for i in range(65) : "t"])]
  }
  expect_failures = [var.task_types]
}

run "fifty_types_are_accepted" {
  command = plan
  variables {
    task_types = [for i in range(50) : "type.${i}"]
  }
}

run "fifty_one_types_are_refused" {
  command = plan
  variables {
    task_types = [for i in range(51) : "type.${i}"]
  }
  expect_failures = [var.task_types]
}

run "more_than_2048_characters_are_refused" {
  command = plan
  variables {
    task_types = [for i in range(40) : "${join("", [for j in range(50) : "t"])}.${i}"]
  }
  expect_failures = [var.task_types]
}
