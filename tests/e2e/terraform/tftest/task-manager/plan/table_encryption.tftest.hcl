# DynamoDB encrypts every table. SSE enabled without a key means the AWS managed key
# (aws/dynamodb, KMS charges); disabled means the AWS owned key (free). table.kms_key_arn = null
# promises the AWS owned key, a key ARN the customer managed key.
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-dynamodb-table-ssespecification.html

mock_provider "aws" {
  source = "./tests"
}

run "no_key_means_the_aws_owned_key" {
  command = plan
  assert {
    condition     = aws_dynamodb_table.this.server_side_encryption[0].enabled == false
    error_message = "without table.kms_key_arn the table must use the AWS owned key (SSE enabled = false), not the AWS managed one"
  }
}

run "a_key_means_that_customer_managed_key" {
  command = plan
  variables {
    table = { kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab" }
  }
  assert {
    condition     = aws_dynamodb_table.this.server_side_encryption[0].enabled == true
    error_message = "with table.kms_key_arn, SSE must be enabled"
  }
  assert {
    condition     = aws_dynamodb_table.this.server_side_encryption[0].kms_key_arn == "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    error_message = "with table.kms_key_arn, SSE must use that key"
  }
}
