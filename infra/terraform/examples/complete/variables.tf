variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "eu-west-1"
}

variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "taskmanager-example"
}

variable "lambda_zip" {
  description = "Task manager zip from `python -m taskmanager.build_lambda --arch <architecture>` (named ...-python3.12-<architecture>.zip)."
  type        = string
}

variable "processor_zip" {
  description = "Processor zip from `python -m taskmanager.build_lambda --arch <architecture> --output dist/lambda/wordcount-python3.12-<architecture>.zip --include docs/examples/wordcount_processor.py`."
  type        = string
}

variable "architecture" {
  description = "Lambda architecture of every function: x86_64 or arm64. Both zips must be built for it (their names say so; the modules refuse a mismatch at plan)."
  type        = string
  default     = "x86_64"
}

variable "powertools_layer_arn" {
  description = "Public Powertools for AWS Lambda (Python) v3 layer for python3.12, the architecture and the region (see the Powertools docs for the current version)."
  type        = string
}

variable "alarm_topic_arns" {
  description = "SNS topics notified by the alarms."
  type        = list(string)
  default     = []
}

variable "export_workers" {
  description = "Run the export processor's workers on ECS Fargate (modules/worker-service), scaled on the export queue's backlog: the worker image (built from infra/worker/Dockerfile with docs/examples/export_processor.py), its ECR repository ARN (null for a public image), and the private subnets and security groups of your VPC (outbound HTTPS). null: no service; run `taskmanager worker` wherever you like with the export_worker_* outputs."
  type = object({
    image                = string
    image_repository_arn = optional(string)
    subnet_ids           = list(string)
    security_group_ids   = list(string)
  })
  default = null
}
