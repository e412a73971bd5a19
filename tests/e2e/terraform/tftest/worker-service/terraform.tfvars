# The module's variable values for every test file of worker-service/plan and
# worker-service/variables (test_module_rules.py copies this file into the tests directory).

name      = "tm-test-render"
image     = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/render-worker:1.0"
processor = "render_tasks:processor"
queue = {
  url = "https://sqs.eu-west-1.amazonaws.com/123456789012/tm-test-render"
  arn = "arn:aws:sqs:eu-west-1:123456789012:tm-test-render"
}
worker_policy_json = "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"Receive\",\"Effect\":\"Allow\",\"Action\":\"sqs:ReceiveMessage\",\"Resource\":\"arn:aws:sqs:eu-west-1:123456789012:tm-test-render\"}]}"
task_manager = {
  table_name       = "tm-test-tasks"
  event_bus_name   = "tm-test"
  event_source     = "taskmanager"
  processor_source = "taskmanager.processor.tm-test-render"
}
network = {
  subnet_ids         = ["subnet-0123456789abcdef0"]
  security_group_ids = ["sg-0123456789abcdef0"]
}
