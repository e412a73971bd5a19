# Policies this module hands to others: processors and API callers.

# The processor module replaces this statement (same sid) by one that also names the
# processor's own source (events:source): a role given it as is may publish with any source.
data "aws_iam_policy_document" "processor_publish" {
  statement {
    sid       = "PublishTaskUpdated"
    actions   = ["events:PutEvents"]
    resources = [local.event_bus_arn]
    condition {
      test     = "StringEquals"
      variable = "events:detail-type"
      values   = ["TaskUpdated"]
    }
  }
}

data "aws_iam_policy_document" "processor" {
  source_policy_documents = [data.aws_iam_policy_document.processor_publish.json]

  statement {
    sid       = "ReadTaskStatus"
    actions   = ["dynamodb:GetItem"]
    resources = [aws_dynamodb_table.this.arn]
  }

  dynamic "statement" {
    for_each = var.table.kms_key_arn == null ? [] : [var.table.kms_key_arn]
    content {
      sid       = "TableKey"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["dynamodb.${data.aws_region.current.name}.amazonaws.com"]
      }
    }
  }
}

data "aws_iam_policy_document" "api_invoke" {
  statement {
    sid       = "CallTaskApi"
    actions   = ["execute-api:Invoke"]
    resources = [for r in local.routes : "${aws_apigatewayv2_api.this.execution_arn}/*/${replace(replace(r, " ", ""), "{id}", "*")}"]
  }
}
