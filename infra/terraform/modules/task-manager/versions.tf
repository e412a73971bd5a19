terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.32: aws_lambda_function.logging_config and the python3.12 runtime; 5.76: python3.13.
      version = ">= 5.76"
    }
  }
}
