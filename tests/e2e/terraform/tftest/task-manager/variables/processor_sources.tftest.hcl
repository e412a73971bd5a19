# processor_sources maps task types (docs/design.md §2) to EventBridge sources (1-256 characters, not
# AWS's own "aws."), small enough for the updates function's environment (4 KB in all).

run "types_to_sources" {
  command = plan
  variables {
    processor_sources = {
      "text.wordcount"     = ["taskmanager.processor.tm-word-count"]
      "report:render.v2-x" = ["acme.render", "acme_render-2"]
    }
  }
}

run "a_key_that_is_no_task_type_is_refused" {
  command = plan
  variables {
    processor_sources = { "text wordcount" = ["acme.count"] }
  }
  expect_failures = [var.processor_sources]
}

run "an_aws_source_is_refused" {
  command = plan
  variables {
    processor_sources = { "text.wordcount" = ["aws.lambda"] }
  }
  expect_failures = [var.processor_sources]
}

run "an_empty_source_is_refused" {
  command = plan
  variables {
    processor_sources = { "text.wordcount" = [""] }
  }
  expect_failures = [var.processor_sources]
}

run "a_type_without_sources_is_refused" {
  command = plan
  variables {
    processor_sources = { "text.wordcount" = [] }
  }
  expect_failures = [var.processor_sources]
}

run "a_mapping_too_large_for_the_environment_is_refused" {
  command = plan
  variables {
    processor_sources = { for n in range(60) : "type.number-${n}" => ["taskmanager.processor.a-rather-long-processor-name-${n}"] }
  }
  expect_failures = [var.processor_sources]
}

run "a_source_under_more_than_100_types_is_refused" {
  command = plan
  variables {
    processor_sources = { for n in range(101) : "t${n}" => ["s"] }
  }
  expect_failures = [var.processor_sources]
}

# A processor without the SDK reports through its invocation records, which name the function.
run "a_function_arn_names_a_processor_without_the_sdk" {
  command = plan
  variables {
    processor_sources = {
      "text.wordcount" = ["arn:aws:lambda:eu-west-1:123456789012:function:tm-word-count"]
    }
  }
}

run "a_qualified_function_arn_is_refused" {
  command = plan
  variables {
    processor_sources = {
      "text.wordcount" = ["arn:aws:lambda:eu-west-1:123456789012:function:tm-word-count:$LATEST"]
    }
  }
  expect_failures = [var.processor_sources]
}

run "another_arn_is_refused" {
  command = plan
  variables {
    processor_sources = { "text.wordcount" = ["arn:aws:sqs:eu-west-1:123456789012:queue"] }
  }
  expect_failures = [var.processor_sources]
}
