terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.32: the floor of the other modules; target tracking with metric math (metrics
      # blocks of customized_metric_specification) came with 4.66.
      version = ">= 5.76"
    }
  }
}
