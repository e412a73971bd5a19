# The module's variable values for every test file of task-manager/plan and task-manager/variables;
# a test file's or a run block's own `variables` override them. test_module_rules.py copies
# this file into the tests directory, and terraform test reads a terraform.tfvars there for
# all the directory's test files.

name                 = "tm-test"
powertools_layer_arn = "arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python312-x86_64:7"
lambda_package       = { path = "zips/taskmanager-python3.12-x86_64.zip" }
