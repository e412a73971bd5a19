variable "name" {
  description = "Prefix of every resource name (table, bus, queues, functions, roles, API). Lower case letters, digits and hyphens."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.name))
    error_message = "name must be 3-40 characters of a-z, 0-9 and '-', start with a letter and not end with '-'."
  }
}

variable "lambda_package" {
  description = "The Lambda code zip built by `python -m taskmanager.build_lambda --arch <architecture> --runtime <runtime>` (path on the machine running terraform; its name ends in -<runtime>-<architecture>.zip, and a zip built for another runtime or architecture is refused) and the runtime and architecture of the functions."
  type = object({
    path         = string
    runtime      = optional(string, "python3.12")
    architecture = optional(string, "x86_64")
  })

  validation {
    condition     = endswith(var.lambda_package.path, ".zip")
    error_message = "lambda_package.path must point to a .zip file."
  }
  validation {
    condition     = contains(["python3.11", "python3.12", "python3.13"], var.lambda_package.runtime)
    error_message = "lambda_package.runtime must be python3.11, python3.12 or python3.13 (the zip's .pyc files are compiled for one of them)."
  }
  validation {
    condition     = contains(["x86_64", "arm64"], var.lambda_package.architecture)
    error_message = "lambda_package.architecture must be x86_64 or arm64."
  }
  # pydantic-core in the zip is compiled for one Python version and one architecture: a
  # function of another one fails at its first import. taskmanager.build_lambda puts both in
  # the zip's name.
  validation {
    condition     = endswith(basename(var.lambda_package.path), "-${var.lambda_package.runtime}-${var.lambda_package.architecture}.zip")
    error_message = "lambda_package.path must name a zip built for lambda_package.runtime and lambda_package.architecture, ending in -${var.lambda_package.runtime}-${var.lambda_package.architecture}.zip as taskmanager.build_lambda names it: pydantic-core in the zip is compiled for one Python version and one architecture, and fails to import in any other."
  }
}

variable "powertools_layer_arn" {
  description = "ARN of the public Powertools for AWS Lambda (Python) v3 layer matching the runtime, architecture and region, e.g. arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python312-x86_64:7. The zip does not ship Powertools. A layer named for another runtime or architecture than lambda_package's stops the plan."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:layer:[A-Za-z0-9_-]+:[0-9]+$", var.powertools_layer_arn))
    error_message = "powertools_layer_arn must be a versioned Lambda layer ARN."
  }
}

variable "lambda" {
  description = "Settings shared by the four functions: memory, log level (Powertools' POWERTOOLS_LOG_LEVEL and Lambda's application log level filter, which drops JSON logs below it), X-Ray tracing, log retention and per-function timeouts in seconds."
  type = object({
    memory_size        = optional(number, 512)
    log_level          = optional(string, "INFO")
    tracing            = optional(bool, true)
    log_retention_days = optional(number, 30)
    api_timeout        = optional(number, 10)
    stream_timeout     = optional(number, 60)
    updates_timeout    = optional(number, 30)
    sweeper_timeout    = optional(number, 120)
  })
  default = {}

  validation {
    condition     = var.lambda.memory_size >= 128 && var.lambda.memory_size <= 10240
    error_message = "lambda.memory_size must be between 128 and 10240 MB."
  }
  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.lambda.log_level)
    error_message = "lambda.log_level must be DEBUG, INFO, WARNING or ERROR."
  }
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.lambda.log_retention_days)
    error_message = "lambda.log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ... 3653)."
  }
  validation {
    condition     = var.lambda.api_timeout >= 1 && var.lambda.api_timeout <= 29
    error_message = "lambda.api_timeout must be 1-29 s: API Gateway gives up after 29 s."
  }
  validation {
    condition = alltrue([
      for t in [var.lambda.stream_timeout, var.lambda.updates_timeout, var.lambda.sweeper_timeout] : t >= 1 && t <= 900
    ])
    error_message = "lambda stream/updates/sweeper timeouts must be 1-900 s."
  }
}

variable "settings" {
  description = "Task manager settings passed to every function as TASKMANAGER_* environment variables: outbound event source, default task timeout, retention of finished tasks, and default_start_timeout_seconds, the start timeout of a task submitted without one (a task still CREATED that long after submission fails with START_TIMEOUT; null: none), all in seconds."
  type = object({
    event_source                  = optional(string, "taskmanager")
    default_timeout_seconds       = optional(number, 3600)
    retention_seconds             = optional(number, 604800)
    default_start_timeout_seconds = optional(number)
  })
  default = {}

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$", var.settings.event_source)) && !startswith(var.settings.event_source, "aws.")
    error_message = "settings.event_source must be 1-256 characters of letters, digits, '.', '_' or '-' and must not start with 'aws.'."
  }
  validation {
    condition     = var.settings.default_timeout_seconds >= 1 && var.settings.default_timeout_seconds <= 604800
    error_message = "settings.default_timeout_seconds must be 1-604800 (docs/design.md §5)."
  }
  validation {
    condition     = var.settings.retention_seconds >= 60
    error_message = "settings.retention_seconds must be at least 60."
  }
  validation {
    condition = var.settings.default_start_timeout_seconds == null || (
      floor(coalesce(var.settings.default_start_timeout_seconds, 1)) == coalesce(var.settings.default_start_timeout_seconds, 1)
      && coalesce(var.settings.default_start_timeout_seconds, 1) >= 1
      && coalesce(var.settings.default_start_timeout_seconds, 1) <= 604800
    )
    error_message = "settings.default_start_timeout_seconds must be null (no start timeout) or a whole number of seconds, 1-604800 (docs/design.md §5)."
  }
}

variable "task_types" {
  description = "The task types a submit may name: those the deployment's processors take. A submit of any other type is refused with 422 UNKNOWN_TASK_TYPE, its details listing these (TASKMANAGER_TASK_TYPES, read by the api function). Empty: any type is accepted, as before, and a task nobody takes waits until its timeout (or its start timeout)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for t in var.task_types : can(regex("^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", t))])
    error_message = "task_types must be task types: ^[A-Za-z0-9][A-Za-z0-9._:-]*$, 1-64 characters (docs/design.md §2)."
  }
  # The list travels in the api function's environment, which Lambda limits to 4 KB in all.
  validation {
    condition     = length(var.task_types) <= 50 && length(jsonencode(var.task_types)) <= 2048
    error_message = "task_types may list at most 50 types, at most 2048 characters as JSON (it is passed in the api function's environment, 4 KB in all)."
  }
}

variable "table" {
  description = "DynamoDB table: name (default \"<name>-tasks\"), deletion protection, point-in-time recovery, an optional customer managed KMS key (null: DynamoDB's AWS owned key, no KMS charges; the AWS managed aws/dynamodb key is not used) and due_shards, the partitions of the sweeper's indexes (TASKMANAGER_DUE_SHARDS, 1-64; the sweeper makes two queries per shard). due_shards may be raised on a live table but never lowered: a task keeps the shard it was written with, and the sweeper would no longer see the open tasks in the shards dropped."
  type = object({
    name                   = optional(string)
    deletion_protection    = optional(bool, true)
    point_in_time_recovery = optional(bool, true)
    kms_key_arn            = optional(string)
    due_shards             = optional(number, 4)
  })
  default = {}

  validation {
    condition     = var.table.name == null || can(regex("^[A-Za-z0-9_.-]{3,255}$", coalesce(var.table.name, "xxx")))
    error_message = "table.name must be 3-255 characters of A-Z, a-z, 0-9, '_', '-' and '.'."
  }
  validation {
    condition     = var.table.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", coalesce(var.table.kms_key_arn, "-")))
    error_message = "table.kms_key_arn must be a KMS key ARN."
  }
  validation {
    condition     = var.table.due_shards >= 1 && var.table.due_shards <= 64 && floor(var.table.due_shards) == var.table.due_shards
    error_message = "table.due_shards must be a whole number from 1 to 64 (and never lowered on a live table: the sweeper would no longer see the open tasks in the shards dropped)."
  }
}

variable "event_bus" {
  description = "The EventBridge bus: create one named `name` (default \"<name>\") or, with create = false, use the existing bus of that name (\"default\" works). update_sources: the event sources the TaskUpdated rule accepts (empty: any), without a check of the task type; processor_sources, which also sets the rule's sources, supersedes it. Processors run in this account and region and attach the `processor_policy_json` output to their roles."
  type = object({
    create         = optional(bool, true)
    name           = optional(string)
    update_sources = optional(list(string), [])
  })
  default = {}

  validation {
    condition     = var.event_bus.create || var.event_bus.name != null
    error_message = "event_bus.name is required when event_bus.create is false."
  }
}

variable "processor_sources" {
  description = "Who may report on which tasks: for each task type, the event sources of the processors whose TaskUpdated may change tasks of that type (each processor module's event_source; for a processor with sdk = false, that output is its function's ARN, which names the function in its invocation records). The TaskUpdated rule then admits these sources only, and the updates function rejects (counts and logs, reason SOURCE_NOT_ALLOWED) an update from a source not listed for the task's type. Empty: any source on the bus may report on any task, as before; not for production (docs/deploy.md, \"Who may report on a task\")."
  type        = map(list(string))
  default     = {}

  validation {
    condition     = alltrue([for t in keys(var.processor_sources) : can(regex("^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", t))])
    error_message = "processor_sources keys must be task types: ^[A-Za-z0-9][A-Za-z0-9._:-]*$, 1-64 characters (docs/design.md §2)."
  }
  validation {
    condition = alltrue([
      for s in flatten(values(var.processor_sources)) : (can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$", s)) && !startswith(s, "aws.")) || can(regex("^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:function:[A-Za-z0-9_-]{1,64}$", s))
    ])
    error_message = "processor_sources values must be event sources (1-256 characters of letters, digits, '.', '_' or '-', not starting with 'aws.') or, for a processor with sdk = false, its function's ARN without version or alias."
  }
  validation {
    condition     = alltrue([for sources in values(var.processor_sources) : length(sources) > 0])
    error_message = "processor_sources lists at least one source for each task type it names."
  }
  # The mapping travels in the updates function's environment, which Lambda limits to 4 KB
  # in all; and DynamoDB checks a source's types with IN, which takes at most 100 values.
  validation {
    condition     = length(jsonencode(var.processor_sources)) <= 3072
    error_message = "processor_sources must be at most 3072 characters as JSON (it is passed in the updates function's environment, 4 KB in all)."
  }
  validation {
    condition = alltrue([
      for s in distinct(flatten(values(var.processor_sources))) : length([for t, sources in var.processor_sources : t if contains(sources, s)]) <= 100
    ])
    error_message = "processor_sources may list one source under at most 100 task types."
  }
}

variable "updates_queue" {
  description = "The SQS queue between the TaskUpdated rule and the updates function: receives before a message moves to the DLQ, batch size, batching window, maximum concurrency of the function and DLQ retention."
  type = object({
    max_receive_count                  = optional(number, 5)
    batch_size                         = optional(number, 10)
    maximum_batching_window_in_seconds = optional(number, 0)
    maximum_concurrency                = optional(number, 10)
    dlq_retention_seconds              = optional(number, 1209600)
  })
  default = {}

  validation {
    condition     = var.updates_queue.max_receive_count >= 1 && var.updates_queue.max_receive_count <= 1000
    error_message = "updates_queue.max_receive_count must be 1-1000."
  }
  validation {
    condition     = var.updates_queue.batch_size >= 1 && var.updates_queue.batch_size <= 10000 && (var.updates_queue.batch_size <= 10 || var.updates_queue.maximum_batching_window_in_seconds >= 1)
    error_message = "updates_queue.batch_size must be 1-10000; above 10 Lambda requires maximum_batching_window_in_seconds >= 1."
  }
  validation {
    condition     = var.updates_queue.maximum_batching_window_in_seconds >= 0 && var.updates_queue.maximum_batching_window_in_seconds <= 300
    error_message = "updates_queue.maximum_batching_window_in_seconds must be 0-300."
  }
  validation {
    condition     = var.updates_queue.maximum_concurrency >= 2 && var.updates_queue.maximum_concurrency <= 1000
    error_message = "updates_queue.maximum_concurrency must be 2-1000 (the Lambda SQS scaling limit)."
  }
  validation {
    condition     = var.updates_queue.dlq_retention_seconds >= 60 && var.updates_queue.dlq_retention_seconds <= 1209600
    error_message = "updates_queue.dlq_retention_seconds must be 60-1209600 (14 days)."
  }
}

variable "stream_processing" {
  description = "The DynamoDB stream -> stream function mapping: batch size, batching window, parallelization, and how long a failing record is retried (attempts and age) before it goes to the stream failure queue."
  type = object({
    batch_size                         = optional(number, 100)
    maximum_batching_window_in_seconds = optional(number, 1)
    parallelization_factor             = optional(number, 1)
    maximum_retry_attempts             = optional(number, 10)
    maximum_record_age_in_seconds      = optional(number, 3600)
  })
  default = {}

  validation {
    condition     = var.stream_processing.batch_size >= 1 && var.stream_processing.batch_size <= 10000
    error_message = "stream_processing.batch_size must be 1-10000."
  }
  validation {
    condition     = var.stream_processing.maximum_batching_window_in_seconds >= 0 && var.stream_processing.maximum_batching_window_in_seconds <= 300
    error_message = "stream_processing.maximum_batching_window_in_seconds must be 0-300."
  }
  validation {
    condition     = var.stream_processing.parallelization_factor >= 1 && var.stream_processing.parallelization_factor <= 10
    error_message = "stream_processing.parallelization_factor must be 1-10."
  }
  validation {
    condition     = var.stream_processing.maximum_retry_attempts >= 0 && var.stream_processing.maximum_retry_attempts <= 10000
    error_message = "stream_processing.maximum_retry_attempts must be 0-10000 (bounded: -1, infinite, is not allowed)."
  }
  validation {
    condition     = var.stream_processing.maximum_record_age_in_seconds >= 60 && var.stream_processing.maximum_record_age_in_seconds <= 604800
    error_message = "stream_processing.maximum_record_age_in_seconds must be 60-604800 (bounded: -1, infinite, is not allowed)."
  }
}

variable "api" {
  description = "The HTTP API: authorization AWS_IAM (owner = the caller's IAM principal) or JWT (owner = the token's sub; needs jwt_issuer, jwt_audience and authorization_scopes: the scopes every route requires, a token needing at least one of them, or [] to accept any token for the audience, OpenID Connect ID tokens included), and stage throttling. With AWS_IAM an assumed role owns its tasks as account and role, all its sessions together; iam_owner_keeps_session = true makes each session an owner of its own (docs/api.md, \"Callers and isolation\")."
  type = object({
    authorization           = optional(string, "AWS_IAM")
    iam_owner_keeps_session = optional(bool, false)
    jwt_issuer              = optional(string)
    jwt_audience            = optional(list(string), [])
    authorization_scopes    = optional(list(string))
    throttling_burst_limit  = optional(number, 100)
    throttling_rate_limit   = optional(number, 50)
  })
  default = {}

  validation {
    condition     = contains(["AWS_IAM", "JWT"], var.api.authorization)
    error_message = "api.authorization must be AWS_IAM or JWT."
  }
  validation {
    condition     = var.api.authorization != "JWT" || (var.api.jwt_issuer != null && length(var.api.jwt_audience) > 0)
    error_message = "api.authorization = JWT needs api.jwt_issuer and at least one api.jwt_audience."
  }
  validation {
    condition     = var.api.jwt_issuer == null || startswith(coalesce(var.api.jwt_issuer, "-"), "https://")
    error_message = "api.jwt_issuer must be an https:// URL."
  }
  # Without scopes API Gateway accepts any valid token for the audience, ID tokens included
  # (nothing tells them from access tokens), so JWT asks for an explicit choice.
  validation {
    condition     = var.api.authorization != "JWT" || var.api.authorization_scopes != null
    error_message = "api.authorization = JWT needs api.authorization_scopes: the scopes every route requires (a token must carry at least one), or [] to accept any token for the audience, OpenID Connect ID tokens included."
  }
  validation {
    condition     = var.api.authorization == "JWT" || length(coalesce(var.api.authorization_scopes, [])) == 0
    error_message = "api.authorization_scopes apply to JWT authorization only."
  }
  validation {
    condition     = alltrue([for s in coalesce(var.api.authorization_scopes, []) : can(regex("^[!#-\\[\\]-~]+$", s))])
    error_message = "api.authorization_scopes must be single OAuth scopes: printable ASCII without spaces, quotes or backslashes (RFC 6749 section 3.3)."
  }
  validation {
    condition     = var.api.authorization == "AWS_IAM" || !var.api.iam_owner_keeps_session
    error_message = "api.iam_owner_keeps_session applies to AWS_IAM authorization only."
  }
  validation {
    condition     = var.api.throttling_burst_limit >= 1 && var.api.throttling_rate_limit > 0
    error_message = "api throttling limits must be positive."
  }
}

variable "sweeper_schedule_expression" {
  description = "How often the sweeper looks for tasks past their deadline, heartbeat or start timeout: an EventBridge rate() or cron() expression, e.g. rate(1 minute), rate(5 minutes), cron(0/5 * * * ? *)."
  type        = string
  default     = "rate(1 minute)"

  # EventBridge refuses a singular unit with a value above 1 and a plural one with 1
  # (rate(5 minute), rate(1 minutes)); a cron expression has six fields.
  validation {
    condition     = can(regex("^(rate\\((1 (minute|hour|day)|([2-9]|[1-9][0-9]+) (minutes|hours|days))\\)|cron\\([^ ()]+( [^ ()]+){5}\\))$", var.sweeper_schedule_expression))
    error_message = "sweeper_schedule_expression must be rate(1 minute|hour|day), rate(N minutes|hours|days) with N > 1, or cron(...) with six fields: EventBridge refuses the rest."
  }
}

variable "alarms" {
  description = "CloudWatch alarms on DLQ depth (> 0), Lambda errors (>= lambda_errors_threshold per 5 minutes, each function) and stream iterator age (ms). actions: SNS topic ARNs notified on ALARM and OK."
  type = object({
    enabled                    = optional(bool, true)
    actions                    = optional(list(string), [])
    lambda_errors_threshold    = optional(number, 1)
    stream_iterator_age_max_ms = optional(number, 60000)
  })
  default = {}

  validation {
    condition     = alltrue([for a in var.alarms.actions : can(regex("^arn:aws[a-z-]*:sns:", a))])
    error_message = "alarms.actions must be SNS topic ARNs."
  }
  validation {
    condition     = var.alarms.lambda_errors_threshold >= 1 && var.alarms.stream_iterator_age_max_ms >= 1000
    error_message = "alarms.lambda_errors_threshold must be >= 1 and alarms.stream_iterator_age_max_ms >= 1000."
  }
}

variable "kms_key_arn" {
  description = "Optional customer managed KMS key for the SQS queues, CloudWatch log groups and Lambda environment variables (null: each service's default encryption: SQS managed SSE, CloudWatch Logs' own encryption, Lambda's default key). The key policy must allow SQS, CloudWatch Logs and EventBridge to use it. The table has its own key setting, table.kms_key_arn."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", coalesce(var.kms_key_arn, "-")))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}

variable "websocket" {
  description = "Push over WebSocket (docs/push.md): an API Gateway WebSocket API with the sockets function, the connections table, and the notify function fed by the outbound events through an SQS queue (with a DLQ). Off by default. $connect is authorized with AWS_IAM when api.authorization is AWS_IAM; with JWT, by a REQUEST authorizer reading the token from the query string (?token=...): the module's own function (taskmanager.entrypoints.authorizer, checking api.jwt_issuer, api.jwt_audience and api.authorization_scopes), or jwt_authorizer_function_arn, a function of yours that returns the token's sub as principalId. Throttling of the stage, timeouts of the two functions, and the notify queue's receives before the DLQ."
  type = object({
    enabled                     = optional(bool, false)
    stage_name                  = optional(string, "live")
    jwt_authorizer_function_arn = optional(string)
    throttling_burst_limit      = optional(number, 100)
    throttling_rate_limit       = optional(number, 50)
    sockets_timeout             = optional(number, 10)
    notify_timeout              = optional(number, 30)
    notify_max_receive_count    = optional(number, 5)
    notify_maximum_concurrency  = optional(number, 10)
  })
  default = {}

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,128}$", var.websocket.stage_name)) && !startswith(var.websocket.stage_name, "$")
    error_message = "websocket.stage_name must be 1-128 letters, digits, _ or -."
  }
  validation {
    condition     = var.websocket.throttling_burst_limit >= 1 && var.websocket.throttling_rate_limit > 0
    error_message = "websocket throttling limits must be positive."
  }
  validation {
    condition     = var.websocket.sockets_timeout >= 1 && var.websocket.sockets_timeout <= 29 && var.websocket.notify_timeout >= 1 && var.websocket.notify_timeout <= 900
    error_message = "websocket.sockets_timeout must be 1-29 (API Gateway waits 29 s at most) and websocket.notify_timeout 1-900."
  }
  validation {
    condition     = var.websocket.notify_max_receive_count >= 1 && var.websocket.notify_max_receive_count <= 1000
    error_message = "websocket.notify_max_receive_count must be 1-1000."
  }
  validation {
    condition     = var.websocket.notify_maximum_concurrency >= 2 && var.websocket.notify_maximum_concurrency <= 1000
    error_message = "websocket.notify_maximum_concurrency must be 2-1000 (the Lambda SQS scaling limit)."
  }
  validation {
    condition     = var.websocket.jwt_authorizer_function_arn == null || can(regex("^arn:aws[a-zA-Z-]*:lambda:", coalesce(var.websocket.jwt_authorizer_function_arn, "-")))
    error_message = "websocket.jwt_authorizer_function_arn must be a Lambda function ARN."
  }
}
