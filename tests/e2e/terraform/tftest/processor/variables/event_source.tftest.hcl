# A processor's source is an EventBridge source of a PutEvents entry: 1-256 characters, and
# not one of AWS's own ("aws." ...).

run "a_dotted_source" {
  command = plan
  variables {
    event_source = "com.example.tasks.wordcount"
  }
}

run "an_aws_source_is_refused" {
  command = plan
  variables {
    event_source = "aws.lambda"
  }
  expect_failures = [var.event_source]
}

run "an_empty_source_is_refused" {
  command = plan
  variables {
    event_source = ""
  }
  expect_failures = [var.event_source]
}

run "spaces_are_refused" {
  command = plan
  variables {
    event_source = "word count"
  }
  expect_failures = [var.event_source]
}
