# With JWT authorization, API Gateway accepts any valid token for the audience unless the
# route names scopes; OpenID Connect ID tokens carry none, access tokens do. So JWT needs
# api.authorization_scopes: the scopes to require, or [] to accept any token deliberately.
# https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html

run "iam_needs_no_scopes" {
  command = plan
}

run "jwt_with_scopes" {
  command = plan
  variables {
    api = {
      authorization        = "JWT"
      jwt_issuer           = "https://issuer.example.com/"
      jwt_audience         = ["tasks"]
      authorization_scopes = ["tasks/read", "tasks:write", "https://api.example.com/tasks"]
    }
  }
}

run "jwt_accepting_any_token_when_asked_to" {
  command = plan
  variables {
    api = {
      authorization        = "JWT"
      jwt_issuer           = "https://issuer.example.com/"
      jwt_audience         = ["tasks"]
      authorization_scopes = []
    }
  }
}

run "jwt_without_a_choice_of_scopes_is_refused" {
  command = plan
  variables {
    api = {
      authorization = "JWT"
      jwt_issuer    = "https://issuer.example.com/"
      jwt_audience  = ["tasks"]
    }
  }
  expect_failures = [var.api]
}

run "scopes_with_iam_authorization_are_refused" {
  command = plan
  variables {
    api = {
      authorization        = "AWS_IAM"
      authorization_scopes = ["tasks/read"]
    }
  }
  expect_failures = [var.api]
}

run "a_scope_with_a_space_is_refused" {
  command = plan
  variables {
    api = {
      authorization        = "JWT"
      jwt_issuer           = "https://issuer.example.com/"
      jwt_audience         = ["tasks"]
      authorization_scopes = ["tasks/read tasks/write"]
    }
  }
  expect_failures = [var.api]
}
