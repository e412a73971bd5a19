# The processor's publish statement, rendered by the real aws provider (offline: no API is
# called at plan): TaskUpdated with the processor's own source only. It overrides the task
# manager's unconditioned statement by its sid, which would otherwise let the processor
# publish as any source. (The merged role policy names the log group, so it is rendered
# only at apply: test_apply_moto reads it back from the role.)

provider "aws" {
  region                      = "eu-west-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}

override_data {
  target = data.aws_caller_identity.current
  values = { account_id = "123456789012" }
}

run "publishes_taskupdated_with_its_own_source_only" {
  command = plan
  assert {
    condition = jsondecode(data.aws_iam_policy_document.publish.json).Statement == [{
      Sid      = "PublishTaskUpdated"
      Effect   = "Allow"
      Action   = "events:PutEvents"
      Resource = "arn:aws:events:eu-west-1:123456789012:event-bus/tm-test"
      Condition = {
        StringEquals = {
          "events:detail-type" = "TaskUpdated"
          "events:source"      = "taskmanager.processor.tm-test-wordcount"
        }
      }
    }]
    error_message = "one statement: PutEvents of TaskUpdated from the processor's own source, on the bus"
  }
  assert {
    condition     = contains(data.aws_iam_policy_document.this[0].override_policy_documents, data.aws_iam_policy_document.publish.json)
    error_message = "the publish statement must override the task manager's (same sid)"
  }
}

run "a_given_source_is_the_one_allowed" {
  command = plan
  variables {
    event_source = "acme.wordcount"
  }
  assert {
    condition     = jsondecode(data.aws_iam_policy_document.publish.json).Statement[0].Condition.StringEquals["events:source"] == "acme.wordcount"
    error_message = "the role may publish with the given source only"
  }
}
