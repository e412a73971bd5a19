data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  create_cluster = var.cluster_arn == null
  cluster_arn    = local.create_cluster ? aws_ecs_cluster.this[0].arn : var.cluster_arn
  cluster_name   = split("/", local.cluster_arn)[1]
  queue_name     = split(":", var.queue.arn)[5]

  # ECS sends SIGTERM, waits stopTimeout, then SIGKILL: the worker's grace period plus time
  # to release the unfinished messages (visibility 0) and exit.
  stop_timeout = var.grace_seconds + 10

  environment = merge(var.environment, {
    TASKMANAGER_TABLE_NAME       = var.task_manager.table_name
    TASKMANAGER_EVENT_BUS_NAME   = var.task_manager.event_bus_name
    TASKMANAGER_EVENT_SOURCE     = var.task_manager.event_source
    TASKMANAGER_PROCESSOR_SOURCE = var.task_manager.processor_source
    AWS_REGION                   = data.aws_region.current.name
  })

  container = {
    name      = "worker"
    image     = var.image
    essential = true
    # The image's entry point is `taskmanager worker` (infra/worker/Dockerfile).
    command = [
      "--queue-url", var.queue.url,
      "--processor", var.processor,
      "--concurrency", tostring(var.concurrency),
      "--grace-seconds", tostring(var.grace_seconds),
    ]
    environment            = [for k in sort(keys(local.environment)) : { name = k, value = local.environment[k] }]
    stopTimeout            = local.stop_timeout
    readonlyRootFilesystem = true
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = "worker"
      }
    }
  }
}

# --- Cluster -----------------------------------------------------------------------------------

resource "aws_ecs_cluster" "this" {
  count = local.create_cluster ? 1 : 0

  name = var.name
  # The scaling divides the backlog by the service's RunningTaskCount, a Container Insights
  # metric.
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
  tags = var.tags
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.task.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

# --- Roles: the task's (the worker policy, nothing more) and ECS's to start it ----------------

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  description        = "The ${var.processor} worker ${var.name}: its queue, its reports."
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "task" {
  name   = "${var.name}-worker"
  role   = aws_iam_role.task.id
  policy = var.worker_policy_json
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  description        = "ECS starts ${var.name}'s tasks: pulls the image, writes the log group."
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }
  dynamic "statement" {
    for_each = var.image_repository_arn == null ? [] : [var.image_repository_arn]
    content {
      sid       = "PullImage"
      actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
      resources = [statement.value]
    }
  }
  dynamic "statement" {
    for_each = var.image_repository_arn == null ? [] : [1]
    content {
      # ECR's token is account-wide: "*" is the only resource it accepts.
      sid       = "RegistryToken"
      actions   = ["ecr:GetAuthorizationToken"]
      resources = ["*"]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "${var.name}-execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# --- Task definition and service -------------------------------------------------------------

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.task.cpu)
  memory                   = tostring(var.task.memory)
  task_role_arn            = aws_iam_role.task.arn
  execution_role_arn       = aws_iam_role.execution.arn
  container_definitions    = jsonencode([local.container])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.task.architecture
  }
  tags = var.tags
}

resource "aws_ecs_service" "this" {
  name            = var.name
  cluster         = local.cluster_arn
  task_definition = aws_ecs_task_definition.this.arn
  launch_type     = "FARGATE"
  desired_count   = var.scaling.min_tasks
  propagate_tags  = "SERVICE"

  network_configuration {
    subnets          = var.network.subnet_ids
    security_groups  = var.network.security_group_ids
    assign_public_ip = var.network.assign_public_ip
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  tags = var.tags

  lifecycle {
    # Application Auto Scaling owns the count once the service exists.
    ignore_changes = [desired_count]
  }
}

# --- Scaling on the queue's backlog ------------------------------------------------------------

resource "aws_appautoscaling_target" "this" {
  service_namespace  = "ecs"
  resource_id        = "service/${local.cluster_name}/${aws_ecs_service.this.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.scaling.min_tasks
  max_capacity       = var.scaling.max_tasks
}

# Target tracking on the backlog per running worker (AWS's recommendation for queue-fed
# workers): visible messages divided by running tasks, held near scaling.backlog_per_task.
resource "aws_appautoscaling_policy" "backlog" {
  name               = "${var.name}-backlog"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.scaling.backlog_per_task
    scale_in_cooldown  = var.scaling.scale_in_cooldown
    scale_out_cooldown = var.scaling.scale_out_cooldown

    customized_metric_specification {
      metrics {
        id          = "visible"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesVisible"
            dimensions {
              name  = "QueueName"
              value = local.queue_name
            }
          }
        }
      }
      metrics {
        id          = "running"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"
            dimensions {
              name  = "ClusterName"
              value = local.cluster_name
            }
            dimensions {
              name  = "ServiceName"
              value = aws_ecs_service.this.name
            }
          }
        }
      }
      metrics {
        id          = "backlog_per_task"
        label       = "Visible messages per running worker"
        expression  = "visible / running"
        return_data = true
      }
    }
  }
}
