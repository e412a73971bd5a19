# The API's owner rule follows api: AWS_IAM owns tasks by account and role (iam), or by role
# session when asked (iam_session); JWT by the token's sub (jwt_sub). docs/api.md.

mock_provider "aws" {
  source = "./tests"
}

run "iam_owns_by_role" {
  command = plan
  assert {
    condition     = aws_lambda_function.this["api"].environment[0].variables.TASKMANAGER_OWNER_CLAIM == "iam"
    error_message = "AWS_IAM must own tasks by account and role by default"
  }
}

run "iam_keeps_the_session_when_asked" {
  command = plan
  variables {
    api = { iam_owner_keeps_session = true }
  }
  assert {
    condition     = aws_lambda_function.this["api"].environment[0].variables.TASKMANAGER_OWNER_CLAIM == "iam_session"
    error_message = "iam_owner_keeps_session must set TASKMANAGER_OWNER_CLAIM=iam_session"
  }
}

run "jwt_refuses_the_session_setting" {
  command = plan
  variables {
    api = {
      authorization           = "JWT"
      jwt_issuer              = "https://issuer.example.com"
      jwt_audience            = ["tasks"]
      authorization_scopes    = []
      iam_owner_keeps_session = true
    }
  }
  expect_failures = [var.api]
}
