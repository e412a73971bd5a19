# Every route of a JWT-authorized API requires the scopes of api.authorization_scopes.

mock_provider "aws" {
  source = "./tests"
}

run "every_jwt_route_requires_the_scopes" {
  command = plan
  variables {
    api = {
      authorization        = "JWT"
      jwt_issuer           = "https://issuer.example.com/"
      jwt_audience         = ["tasks"]
      authorization_scopes = ["tasks/read", "tasks/write"]
    }
  }
  assert {
    condition     = length(aws_apigatewayv2_route.this) == 5
    error_message = "the API has five routes"
  }
  assert {
    condition = alltrue([
      for route in aws_apigatewayv2_route.this :
      route.authorization_type == "JWT" && route.authorization_scopes == toset(["tasks/read", "tasks/write"])
    ])
    error_message = "every route must be JWT-authorized and require the given scopes"
  }
}

run "iam_routes_carry_no_scopes" {
  command = plan
  assert {
    condition = alltrue([
      for route in aws_apigatewayv2_route.this :
      route.authorization_type == "AWS_IAM" && route.authorization_scopes == null
    ])
    error_message = "AWS_IAM routes must carry no scopes"
  }
}
