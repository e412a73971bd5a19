# table.due_shards: the partitions of the sweeper's indexes, 1-64 as the settings model
# (TASKMANAGER_DUE_SHARDS) accepts; a whole number, since it becomes an environment variable.

run "one_shard" {
  command = plan
  variables {
    table = { due_shards = 1 }
  }
}

run "sixty_four_shards" {
  command = plan
  variables {
    table = { due_shards = 64 }
  }
}

run "zero_is_refused" {
  command = plan
  variables {
    table = { due_shards = 0 }
  }
  expect_failures = [var.table]
}

run "more_than_sixty_four_is_refused" {
  command = plan
  variables {
    table = { due_shards = 65 }
  }
  expect_failures = [var.table]
}

run "a_fraction_is_refused" {
  command = plan
  variables {
    table = { due_shards = 4.5 }
  }
  expect_failures = [var.table]
}
