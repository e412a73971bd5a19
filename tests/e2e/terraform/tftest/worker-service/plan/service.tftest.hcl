# The whole module planned against the mock aws provider: what the container, the service and
# the scaling are given.

mock_provider "aws" {
  source = "./tests"
}

run "the_container_runs_the_worker_with_its_arguments_and_settings" {
  command = plan
  assert {
    condition = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].command == [
      "--queue-url", "https://sqs.eu-west-1.amazonaws.com/123456789012/tm-test-render",
      "--processor", "render_tasks:processor",
      "--concurrency", "1",
      "--grace-seconds", "30",
    ]
    error_message = "the image's entry point is taskmanager worker; the module passes its arguments"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].stopTimeout == 40
    error_message = "ECS waits the grace period and 10 s to release messages before SIGKILL"
  }
  assert {
    condition = {
      for e in jsondecode(aws_ecs_task_definition.this.container_definitions)[0].environment : e.name => e.value if startswith(e.name, "TASKMANAGER_")
      } == {
      TASKMANAGER_TABLE_NAME       = "tm-test-tasks"
      TASKMANAGER_EVENT_BUS_NAME   = "tm-test"
      TASKMANAGER_EVENT_SOURCE     = "taskmanager"
      TASKMANAGER_PROCESSOR_SOURCE = "taskmanager.processor.tm-test-render"
    }
    error_message = "the worker gets the task manager's settings and its own source"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].readonlyRootFilesystem
    error_message = "the root filesystem is read-only"
  }
  assert {
    condition     = aws_ecs_task_definition.this.cpu == "512" && aws_ecs_task_definition.this.memory == "1024" && aws_ecs_task_definition.this.requires_compatibilities == toset(["FARGATE"])
    error_message = "a Fargate task of the given size"
  }
  assert {
    condition     = aws_iam_role_policy.task.policy == var.worker_policy_json
    error_message = "the task role carries the worker policy as given, nothing more"
  }
}

run "a_longer_grace_period_waits_longer" {
  command = plan
  variables {
    grace_seconds = 90
    concurrency   = 16
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].stopTimeout == 100
    error_message = "stopTimeout follows grace_seconds"
  }
  assert {
    condition     = contains(jsondecode(aws_ecs_task_definition.this.container_definitions)[0].command, "16")
    error_message = "concurrency is passed"
  }
}

run "a_given_cluster_is_used" {
  command = plan
  variables {
    cluster_arn = "arn:aws:ecs:eu-west-1:123456789012:cluster/shared"
  }
  assert {
    condition     = length(aws_ecs_cluster.this) == 0 && aws_ecs_service.this.cluster == "arn:aws:ecs:eu-west-1:123456789012:cluster/shared"
    error_message = "no cluster is created when one is given"
  }
  assert {
    condition     = aws_appautoscaling_target.this.resource_id == "service/shared/tm-test-render"
    error_message = "the scaling target names the given cluster's service"
  }
}

run "scaling_tracks_the_backlog_per_running_worker" {
  command = plan
  variables {
    scaling = { min_tasks = 2, max_tasks = 20, backlog_per_task = 5 }
  }
  assert {
    condition     = aws_appautoscaling_target.this.min_capacity == 2 && aws_appautoscaling_target.this.max_capacity == 20
    error_message = "the bounds are the scaling's"
  }
  assert {
    condition     = aws_appautoscaling_policy.backlog.target_tracking_scaling_policy_configuration[0].target_value == 5
    error_message = "the target is the backlog per task"
  }
  assert {
    condition = [
      for m in aws_appautoscaling_policy.backlog.target_tracking_scaling_policy_configuration[0].customized_metric_specification[0].metrics : m.expression if m.return_data
    ] == ["visible / running"]
    error_message = "the tracked value is visible messages per running task"
  }
  assert {
    condition = [
      for m in aws_appautoscaling_policy.backlog.target_tracking_scaling_policy_configuration[0].customized_metric_specification[0].metrics : m.metric_stat[0].metric[0].metric_name if m.id == "visible"
    ] == ["ApproximateNumberOfMessagesVisible"]
    error_message = "the backlog is the queue's visible messages"
  }
}
