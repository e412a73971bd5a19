variable "name" {
  description = "Name of the processor's function, role, rule and failure queue."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,51}$", var.name))
    error_message = "name must be 1-52 characters of letters, digits, '_' and '-'."
  }
}

variable "task_type" {
  description = "The task type this processor handles: its rule matches TaskCreated events whose detail.type equals it."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", var.task_type))
    error_message = "task_type must match ^[A-Za-z0-9][A-Za-z0-9._:-]*$ and be 1-64 characters (docs/design.md §2)."
  }
}

variable "event_source" {
  description = "The source of this processor's TaskUpdated events: its role may publish with this source only, and the task manager accepts it only for the task types its processor_sources lists it under. null: \"taskmanager.processor.<name>\". It must differ from the task manager's own source."
  type        = string
  default     = null

  # PutEvents takes 1-256 characters; sources starting with "aws." are AWS's own.
  validation {
    condition     = var.event_source == null || (can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$", coalesce(var.event_source, "-"))) && !startswith(coalesce(var.event_source, "-"), "aws."))
    error_message = "event_source must be 1-256 characters of letters, digits, '.', '_' or '-' and must not start with 'aws.'."
  }
}

variable "task_manager" {
  description = "Outputs of the task-manager module this processor works for, deployed in the same account and region (the plan stops otherwise)."
  type = object({
    event_bus_name        = string
    event_bus_arn         = string
    event_source          = string
    table_name            = string
    processor_policy_json = string
    # Where invocation records go (the task-manager module's updates_queue_arn); needed by
    # sdk = false, and the on-failure destination of SDK processors when given.
    updates_queue_arn = optional(string)
  })
}

variable "delivery" {
  description = "How the task type's TaskCreated events reach the processor: \"lambda\" (the rule invokes this module's function; lambda_package and powertools_layer_arn are required) or \"queue\" (the rule feeds an SQS queue with a dead-letter queue, read by `taskmanager worker` processes on any host or container, for tasks of any duration; see the queue_url and worker_policy_json outputs)."
  type        = string
  default     = "lambda"

  validation {
    condition     = contains(["lambda", "queue"], var.delivery)
    error_message = "delivery must be \"lambda\" or \"queue\"."
  }
}

variable "queue" {
  description = "With delivery = \"queue\": the task queue's visibility timeout (s; 2-43200: how soon another worker takes over the task of a worker that died; a running worker extends it), how many receives a message gets before it moves to the dead-letter queue (1-1000), and how long an untaken TaskCreated waits (s; 60-1209600). The dead-letter queue keeps messages 14 days."
  type = object({
    visibility_timeout_seconds = optional(number, 60)
    max_receive_count          = optional(number, 5)
    message_retention_seconds  = optional(number, 345600)
  })
  default = {}

  validation {
    condition     = var.queue.visibility_timeout_seconds >= 2 && var.queue.visibility_timeout_seconds <= 43200 && floor(var.queue.visibility_timeout_seconds) == var.queue.visibility_timeout_seconds
    error_message = "queue.visibility_timeout_seconds must be a whole number of seconds from 2 to 43200."
  }
  validation {
    condition     = var.queue.max_receive_count >= 1 && var.queue.max_receive_count <= 1000 && floor(var.queue.max_receive_count) == var.queue.max_receive_count
    error_message = "queue.max_receive_count must be a whole number from 1 to 1000."
  }
  validation {
    condition     = var.queue.message_retention_seconds >= 60 && var.queue.message_retention_seconds <= 1209600 && floor(var.queue.message_retention_seconds) == var.queue.message_retention_seconds
    error_message = "queue.message_retention_seconds must be a whole number of seconds from 60 to 1209600 (14 days)."
  }
}

variable "sdk" {
  description = "Whether the function reports through taskmanager.processor (true) or is any function whose asynchronous-invocation records report for it (false): its return value becomes the task's result and its error the task's error, through on-success and on-failure destinations on the task manager's updates queue (task_manager.updates_queue_arn, required then). With false the role may not publish or read tasks, only send to that queue. docs/processors.md, \"Any function, no SDK\"."
  type        = bool
  default     = true
}

variable "lambda_package" {
  description = "With delivery = \"lambda\": zip with the processor code (and taskmanager, as built by `python -m taskmanager.build_lambda --arch <architecture> --runtime <runtime> --output <name>-<runtime>-<architecture>.zip --include ...`; a zip whose name says another runtime or architecture is refused), the function's runtime, architecture and handler, e.g. \"my_processor.handler\" where handler = Processor(...).lambda_handler."
  type = object({
    path         = string
    handler      = string
    runtime      = optional(string, "python3.12")
    architecture = optional(string, "x86_64")
  })
  default = null

  validation {
    condition     = var.lambda_package == null || endswith(try(var.lambda_package.path, ""), ".zip")
    error_message = "lambda_package.path must point to a .zip file."
  }
  validation {
    condition     = var.lambda_package == null || contains(["python3.11", "python3.12", "python3.13"], try(var.lambda_package.runtime, ""))
    error_message = "lambda_package.runtime must be python3.11, python3.12 or python3.13."
  }
  validation {
    condition     = var.lambda_package == null || contains(["x86_64", "arm64"], try(var.lambda_package.architecture, ""))
    error_message = "lambda_package.architecture must be x86_64 or arm64."
  }
  # pydantic-core in the zip is compiled for one Python version and one architecture: a
  # function of another one fails at its first import. taskmanager.build_lambda puts both in
  # the zip's name.
  validation {
    condition     = var.lambda_package == null || endswith(basename(try(var.lambda_package.path, "")), "-${try(var.lambda_package.runtime, "")}-${try(var.lambda_package.architecture, "")}.zip")
    error_message = "lambda_package.path must name a zip built for lambda_package.runtime and lambda_package.architecture, ending in -<runtime>-<architecture>.zip as taskmanager.build_lambda names it: pydantic-core in the zip is compiled for one Python version and one architecture, and fails to import in any other."
  }
}

variable "powertools_layer_arn" {
  description = "With delivery = \"lambda\": ARN of the public Powertools for AWS Lambda (Python) v3 layer for the runtime, architecture and region. A layer named for another runtime or architecture than lambda_package's stops the plan."
  type        = string
  default     = null

  validation {
    condition     = var.powertools_layer_arn == null || can(regex("^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:layer:[A-Za-z0-9_-]+:[0-9]+$", coalesce(var.powertools_layer_arn, "-")))
    error_message = "powertools_layer_arn must be a versioned Lambda layer ARN."
  }
}

variable "function" {
  description = "Function settings: memory (MB), timeout (s, the longest a task's work may take in one invocation), log level (POWERTOOLS_LOG_LEVEL and Lambda's application log level filter, which drops JSON logs below it), log retention (days), X-Ray tracing and extra environment variables."
  type = object({
    memory_size        = optional(number, 512)
    timeout            = optional(number, 900)
    log_level          = optional(string, "INFO")
    log_retention_days = optional(number, 30)
    tracing            = optional(bool, true)
    environment        = optional(map(string), {})
  })
  default = {}

  validation {
    condition     = var.function.memory_size >= 128 && var.function.memory_size <= 10240
    error_message = "function.memory_size must be 128-10240 MB."
  }
  validation {
    condition     = var.function.timeout >= 1 && var.function.timeout <= 900
    error_message = "function.timeout must be 1-900 s."
  }
  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.function.log_level)
    error_message = "function.log_level must be DEBUG, INFO, WARNING or ERROR."
  }
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.function.log_retention_days)
    error_message = "function.log_retention_days must be a retention CloudWatch Logs accepts."
  }
  validation {
    condition     = alltrue([for k in keys(var.function.environment) : !startswith(k, "TASKMANAGER_")])
    error_message = "function.environment must not set TASKMANAGER_* variables: they come from task_manager."
  }
}

variable "async_invoke" {
  description = "Lambda's handling of failed asynchronous invocations: retries (0-2), maximum event age (60-21600 s), and the on-failure destination ARN (null: task_manager.updates_queue_arn, so a function killed by its timeout or memory ends its task FAILED; without it, an SQS queue the module creates)."
  type = object({
    maximum_retry_attempts       = optional(number, 2)
    maximum_event_age_in_seconds = optional(number, 3600)
    on_failure_destination_arn   = optional(string)
  })
  default = {}

  validation {
    condition     = var.async_invoke.maximum_retry_attempts >= 0 && var.async_invoke.maximum_retry_attempts <= 2
    error_message = "async_invoke.maximum_retry_attempts must be 0-2."
  }
  validation {
    condition     = var.async_invoke.maximum_event_age_in_seconds >= 60 && var.async_invoke.maximum_event_age_in_seconds <= 21600
    error_message = "async_invoke.maximum_event_age_in_seconds must be 60-21600."
  }
  validation {
    condition     = var.async_invoke.on_failure_destination_arn == null || can(regex("^arn:aws[a-z-]*:(sqs|sns|lambda|events):", coalesce(var.async_invoke.on_failure_destination_arn, "-")))
    error_message = "async_invoke.on_failure_destination_arn must be an SQS queue, SNS topic, Lambda function or EventBridge bus ARN."
  }
}

variable "alarm_actions" {
  description = "SNS topic ARNs notified when the function errors or its failure queue is not empty (delivery = \"lambda\"), or when the task queue's dead-letter queue is not empty (delivery = \"queue\")."
  type        = list(string)
  default     = []
}

variable "kms_key_arn" {
  description = "Optional customer managed KMS key for the queues, log group and environment variables (the worker policy then allows kms:Decrypt and kms:GenerateDataKey with it)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}
