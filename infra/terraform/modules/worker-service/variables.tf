variable "name" {
  description = "Name of the service, its task definition family, roles, log group and (when created) cluster."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,51}$", var.name))
    error_message = "name must be 1-52 characters of letters, digits, '_' and '-'."
  }
}

variable "image" {
  description = "The worker image (built from infra/worker/Dockerfile): registry/repository:tag or @digest. Its entry point is `taskmanager worker`; the module passes the arguments."
  type        = string

  validation {
    condition     = length(var.image) > 0 && !endswith(var.image, ":latest")
    error_message = "image must name a tag or digest other than latest, so that a deployment says what it runs."
  }
}

variable "image_repository_arn" {
  description = "ARN of the ECR repository holding the image, so that the execution role may pull from it (null: a public image, pulled without credentials)."
  type        = string
  default     = null

  validation {
    condition     = var.image_repository_arn == null || can(regex("^arn:aws[a-z-]*:ecr:[a-z0-9-]+:[0-9]{12}:repository/.+$", coalesce(var.image_repository_arn, "-")))
    error_message = "image_repository_arn must be an ECR repository ARN."
  }
}

variable "processor" {
  description = "The processor, MODULE:ATTR (a taskmanager.processor.Processor in the image), passed as `--processor`."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$", var.processor))
    error_message = "processor must be MODULE:ATTR, e.g. my_tasks.render:processor."
  }
}

variable "queue" {
  description = "The queue the worker reads (the processor module's queue outputs with delivery = \"queue\"): its URL and ARN."
  type = object({
    url = string
    arn = string
  })

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:sqs:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,80}$", var.queue.arn)) && startswith(var.queue.url, "https://")
    error_message = "queue.arn must be an SQS queue ARN and queue.url its https URL."
  }
}

variable "worker_policy_json" {
  description = "IAM policy document JSON of the worker's task role: the queue's ready-made worker policy (receive, delete and change visibility on the queue; PutEvents of TaskUpdated; GetItem of a task's status). The module adds nothing to it."
  type        = string

  validation {
    condition     = can(jsondecode(var.worker_policy_json).Statement)
    error_message = "worker_policy_json must be an IAM policy document (JSON with a Statement)."
  }
}

variable "task_manager" {
  description = "What the worker reports to: the task table, the bus, the task manager's event source, and the processor's own source (TASKMANAGER_PROCESSOR_SOURCE, the only one its policy may publish with)."
  type = object({
    table_name       = string
    event_bus_name   = string
    event_source     = string
    processor_source = string
  })
}

variable "concurrency" {
  description = "Tasks one worker runs at once (--concurrency)."
  type        = number
  default     = 1

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 256 && floor(var.concurrency) == var.concurrency
    error_message = "concurrency must be a whole number 1-256."
  }
}

variable "grace_seconds" {
  description = "How long a stopping worker lets running tasks finish before it releases their messages (--grace-seconds). ECS waits grace_seconds + 10 s after SIGTERM before SIGKILL; Fargate allows at most 120 s in all."
  type        = number
  default     = 30

  validation {
    condition     = var.grace_seconds >= 1 && var.grace_seconds <= 110 && floor(var.grace_seconds) == var.grace_seconds
    error_message = "grace_seconds must be a whole number 1-110 (Fargate stops a container at most 120 s after SIGTERM)."
  }
}

variable "task" {
  description = "Fargate task size (cpu units, memory MiB, a pair Fargate offers), CPU architecture, and log retention in days."
  type = object({
    cpu                = optional(number, 512)
    memory             = optional(number, 1024)
    architecture       = optional(string, "X86_64")
    log_retention_days = optional(number, 30)
  })
  default = {}

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.task.cpu)
    error_message = "task.cpu must be 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
  validation {
    condition     = var.task.memory >= 512 && var.task.memory <= 122880 && var.task.memory >= var.task.cpu && var.task.memory <= var.task.cpu * 8
    error_message = "task.memory must be 512-122880 MiB, between 1x and 8x task.cpu (Fargate's pairs)."
  }
  validation {
    condition     = contains(["X86_64", "ARM64"], var.task.architecture)
    error_message = "task.architecture must be X86_64 or ARM64."
  }
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.task.log_retention_days)
    error_message = "task.log_retention_days must be a retention CloudWatch Logs accepts."
  }
}

variable "scaling" {
  description = "Application Auto Scaling of the service on the queue's backlog: the fewest and most workers, and the visible messages per running worker to aim at (target tracking on ApproximateNumberOfMessagesVisible / RunningTaskCount)."
  type = object({
    min_tasks          = optional(number, 1)
    max_tasks          = optional(number, 10)
    backlog_per_task   = optional(number, 10)
    scale_in_cooldown  = optional(number, 300)
    scale_out_cooldown = optional(number, 60)
  })
  default = {}

  # Backlog per running task is undefined with none running: the service keeps one.
  validation {
    condition     = var.scaling.min_tasks >= 1 && var.scaling.min_tasks <= var.scaling.max_tasks && var.scaling.max_tasks <= 1000
    error_message = "scaling needs 1 <= min_tasks <= max_tasks <= 1000."
  }
  validation {
    condition     = var.scaling.backlog_per_task > 0
    error_message = "scaling.backlog_per_task must be positive."
  }
}

variable "network" {
  description = "Where the tasks run: subnets, security groups (outbound HTTPS to SQS, EventBridge, DynamoDB, the registry and CloudWatch Logs), and whether they get a public IP (for public subnets without a NAT)."
  type = object({
    subnet_ids         = list(string)
    security_group_ids = list(string)
    assign_public_ip   = optional(bool, false)
  })

  validation {
    condition     = length(var.network.subnet_ids) > 0 && length(var.network.security_group_ids) > 0
    error_message = "network needs at least one subnet and one security group."
  }
}

variable "cluster_arn" {
  description = "ECS cluster to run in (null: the module creates one, with Container Insights, whose RunningTaskCount the scaling reads). A given cluster must have Container Insights on."
  type        = string
  default     = null
}

variable "environment" {
  description = "Extra environment variables of the worker (TASKMANAGER_* come from task_manager)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.environment) : !startswith(k, "TASKMANAGER_")])
    error_message = "environment must not set TASKMANAGER_* variables: they come from task_manager."
  }
}

variable "kms_key_arn" {
  description = "Optional customer managed KMS key for the log group."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}
