# The module's variable values for every test file of processor/plan and processor/variables;
# a test file's or a run block's own `variables` override them. test_module_rules.py copies
# this file into the tests directory, and terraform test reads a terraform.tfvars there for
# all the directory's test files.

name      = "tm-test-wordcount"
task_type = "text.wordcount"
task_manager = {
  event_bus_name        = "tm-test"
  event_bus_arn         = "arn:aws:events:eu-west-1:123456789012:event-bus/tm-test"
  event_source          = "taskmanager"
  table_name            = "tm-test-tasks"
  processor_policy_json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
}
powertools_layer_arn = "arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python312-x86_64:7"
lambda_package       = { handler = "wordcount_processor.handler", path = "zips/wordcount-python3.12-x86_64.zip" }
