# Mock data of the aws provider for processor/plan: each test file mocks the provider with
# mock_provider "aws" { source = "./tests" }, the directory test_module_rules.py copies this
# file into (Terraform >= 1.7 reads the *.tfmock.hcl files of a mock_provider's source).

mock_data "aws_iam_policy_document" {
  defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
}
mock_data "aws_caller_identity" {
  defaults = { account_id = "123456789012" }
}
mock_data "aws_region" {
  defaults = { name = "eu-west-1" }
}
