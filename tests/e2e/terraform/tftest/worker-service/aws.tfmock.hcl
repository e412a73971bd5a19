# Mock data of the aws provider for worker-service/plan (see processor/aws.tfmock.hcl).

mock_data "aws_iam_policy_document" {
  defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
}
mock_data "aws_region" {
  defaults = { name = "eu-west-1" }
}
mock_resource "aws_ecs_cluster" {
  defaults = { arn = "arn:aws:ecs:eu-west-1:123456789012:cluster/tm-test-render" }
}
