# Each index projects only what its query reads: DynamoDB rewrites an index entry whenever a
# projected attribute changes, so projecting ALL copies the whole item (up to 400 KB) into
# every index on each progress report. The functions spread the sweeper's indexes over
# table.due_shards shards (TASKMANAGER_DUE_SHARDS), all of them the same count.
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.ThroughputConsiderations.Writes

mock_provider "aws" {
  source = "./tests"
}

run "indexes_project_what_their_queries_read" {
  command = plan
  assert {
    condition     = toset([for i in aws_dynamodb_table.this.global_secondary_index : i.name]) == toset(["by-deadline", "by-heartbeat", "by-owner"])
    error_message = "the table must have the indexes by-owner, by-deadline and by-heartbeat"
  }
  assert {
    condition = alltrue([
      for i in aws_dynamodb_table.this.global_secondary_index :
      i.projection_type == "INCLUDE" && toset(i.non_key_attributes) == toset(["expires_time", "status", "type"])
      if i.name == "by-owner"
    ])
    error_message = "by-owner must project the attributes a list's filter reads: INCLUDE expires_time, status, type"
  }
  assert {
    condition = alltrue([
      for i in aws_dynamodb_table.this.global_secondary_index :
      i.projection_type == "KEYS_ONLY" && try(length(i.non_key_attributes), 0) == 0
      if i.name != "by-owner"
    ])
    error_message = "by-deadline and by-heartbeat must project KEYS_ONLY"
  }
}

run "four_due_shards_by_default" {
  command = plan
  assert {
    condition = alltrue([
      for f in aws_lambda_function.this : f.environment[0].variables.TASKMANAGER_DUE_SHARDS == "4"
    ])
    error_message = "every function must use 4 due shards by default"
  }
}

run "every_function_uses_the_configured_due_shards" {
  command = plan
  variables {
    table = { due_shards = 16 }
  }
  assert {
    condition = alltrue([
      for f in aws_lambda_function.this : f.environment[0].variables.TASKMANAGER_DUE_SHARDS == "16"
    ])
    error_message = "table.due_shards must reach every function as TASKMANAGER_DUE_SHARDS"
  }
}
