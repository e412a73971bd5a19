# processor_sources says which processors' sources may report on each task type: the
# TaskUpdated rule admits those sources only, and the updates function (only it) is given
# the mapping to check each update's task type. Empty keeps the old behaviour: any source.

mock_provider "aws" {
  source = "./tests"
}

run "any_source_by_default" {
  command = plan
  assert {
    condition     = jsondecode(aws_cloudwatch_event_rule.task_updated.event_pattern) == { "detail-type" = ["TaskUpdated"] }
    error_message = "without processor_sources the rule admits TaskUpdated from any source"
  }
  assert {
    condition     = !contains(keys(aws_lambda_function.this["updates"].environment[0].variables), "TASKMANAGER_PROCESSOR_SOURCES")
    error_message = "without processor_sources the updates function checks no source"
  }
}

run "the_rule_admits_the_listed_sources_and_the_updates_function_gets_the_mapping" {
  command = plan
  variables {
    processor_sources = {
      "text.wordcount" = ["taskmanager.processor.tm-test-word-count"]
      "report.render"  = ["acme.render", "taskmanager.processor.tm-test-word-count"]
    }
  }
  assert {
    condition = jsondecode(aws_cloudwatch_event_rule.task_updated.event_pattern) == {
      "detail-type" = ["TaskUpdated"]
      source        = ["acme.render", "taskmanager.processor.tm-test-word-count"]
    }
    error_message = "the rule must admit each listed source once"
  }
  assert {
    condition = jsondecode(aws_lambda_function.this["updates"].environment[0].variables.TASKMANAGER_PROCESSOR_SOURCES) == {
      "text.wordcount" = ["taskmanager.processor.tm-test-word-count"]
      "report.render"  = ["acme.render", "taskmanager.processor.tm-test-word-count"]
    }
    error_message = "the updates function must get processor_sources as JSON"
  }
  assert {
    condition = alltrue([
      for f in ["api", "stream", "sweeper"] : !contains(keys(aws_lambda_function.this[f].environment[0].variables), "TASKMANAGER_PROCESSOR_SOURCES")
    ])
    error_message = "only the updates function reads processor_sources"
  }
}

run "update_sources_alone_still_narrows_the_rule" {
  command = plan
  variables {
    event_bus = { update_sources = ["acme.render"] }
  }
  assert {
    condition     = jsondecode(aws_cloudwatch_event_rule.task_updated.event_pattern).source == ["acme.render"]
    error_message = "event_bus.update_sources must keep narrowing the rule"
  }
}

run "the_task_managers_own_source_is_refused" {
  command = plan
  variables {
    processor_sources = { "text.wordcount" = ["taskmanager"] }
  }
  expect_failures = [aws_cloudwatch_event_rule.task_updated]
}

run "processor_sources_and_update_sources_together_are_refused" {
  command = plan
  variables {
    event_bus         = { update_sources = ["acme.render"] }
    processor_sources = { "report.render" = ["acme.render"] }
  }
  expect_failures = [aws_cloudwatch_event_rule.task_updated]
}
