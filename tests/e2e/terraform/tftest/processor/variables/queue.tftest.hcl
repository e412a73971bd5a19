# delivery and the task queue's settings are checked at plan, before anything is made.

run "queue_delivery_with_defaults" {
  command = plan
  variables {
    delivery = "queue"
  }
}

run "an_unknown_delivery_is_refused" {
  command = plan
  variables {
    delivery = "fargate"
  }
  expect_failures = [var.delivery]
}

run "a_visibility_timeout_under_2_s_is_refused" {
  command = plan
  variables {
    queue = { visibility_timeout_seconds = 1 }
  }
  expect_failures = [var.queue]
}

run "a_visibility_timeout_over_12_hours_is_refused" {
  command = plan
  variables {
    queue = { visibility_timeout_seconds = 43201 }
  }
  expect_failures = [var.queue]
}

run "a_max_receive_count_of_0_is_refused" {
  command = plan
  variables {
    queue = { max_receive_count = 0 }
  }
  expect_failures = [var.queue]
}

run "a_retention_over_14_days_is_refused" {
  command = plan
  variables {
    queue = { message_retention_seconds = 1209601 }
  }
  expect_failures = [var.queue]
}
