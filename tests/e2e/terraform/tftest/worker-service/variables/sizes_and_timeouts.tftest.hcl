# The module's variables alone: Fargate's limits, the worker's arguments, scaling bounds.

run "defaults" {
  command = plan
}

run "grace_at_fargates_limit" {
  command = plan
  variables {
    grace_seconds = 110
  }
}

run "grace_beyond_fargates_stop_timeout" {
  command = plan
  variables {
    grace_seconds = 111
  }
  expect_failures = [var.grace_seconds]
}

run "memory_fargate_does_not_pair_with_the_cpu" {
  command = plan
  variables {
    task = { cpu = 256, memory = 4096 }
  }
  expect_failures = [var.task]
}

run "cpu_fargate_does_not_offer" {
  command = plan
  variables {
    task = { cpu = 300, memory = 1024 }
  }
  expect_failures = [var.task]
}

run "no_concurrency" {
  command = plan
  variables {
    concurrency = 0
  }
  expect_failures = [var.concurrency]
}

run "processor_without_attribute" {
  command = plan
  variables {
    processor = "render_tasks"
  }
  expect_failures = [var.processor]
}

run "latest_is_not_a_version" {
  command = plan
  variables {
    image = "render-worker:latest"
  }
  expect_failures = [var.image]
}

run "scaling_to_zero_has_no_backlog_per_task" {
  command = plan
  variables {
    scaling = { min_tasks = 0 }
  }
  expect_failures = [var.scaling]
}

run "policy_that_is_not_a_document" {
  command = plan
  variables {
    worker_policy_json = "[]"
  }
  expect_failures = [var.worker_policy_json]
}

run "taskmanager_settings_come_from_task_manager" {
  command = plan
  variables {
    environment = { TASKMANAGER_TABLE_NAME = "other" }
  }
  expect_failures = [var.environment]
}

run "no_subnet" {
  command = plan
  variables {
    network = { subnet_ids = [], security_group_ids = ["sg-0123456789abcdef0"] }
  }
  expect_failures = [var.network]
}
