# settings.default_start_timeout_seconds: the start timeout of a task submitted without one
# (TASKMANAGER_DEFAULT_START_TIMEOUT_SECONDS); null (the default) for none, else a whole
# number of seconds within the task timeout's bounds, 1-604800.

run "none_by_default" {
  command = plan
}

run "the_bounds_are_accepted" {
  command = plan
  variables {
    settings = { default_start_timeout_seconds = 1 }
  }
}

run "a_week_is_accepted" {
  command = plan
  variables {
    settings = { default_start_timeout_seconds = 604800 }
  }
}

run "zero_is_refused" {
  command = plan
  variables {
    settings = { default_start_timeout_seconds = 0 }
  }
  expect_failures = [var.settings]
}

run "more_than_a_week_is_refused" {
  command = plan
  variables {
    settings = { default_start_timeout_seconds = 604801 }
  }
  expect_failures = [var.settings]
}

run "a_fraction_is_refused" {
  command = plan
  variables {
    settings = { default_start_timeout_seconds = 1.5 }
  }
  expect_failures = [var.settings]
}
