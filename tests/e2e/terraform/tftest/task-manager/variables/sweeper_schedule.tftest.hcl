# EventBridge schedule expressions: rate(value unit) with a singular unit only for 1 and a
# plural one otherwise, or cron(...) with six fields. AWS refuses the rest when the rule is
# created; moto accepts them.
# https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rate-expressions.html

run "one_minute" {
  command = plan
  variables {
    sweeper_schedule_expression = "rate(1 minute)"
  }
}

run "plural_units_above_one" {
  command = plan
  variables {
    sweeper_schedule_expression = "rate(5 minutes)"
  }
}

run "one_hour" {
  command = plan
  variables {
    sweeper_schedule_expression = "rate(1 hour)"
  }
}

run "twelve_days" {
  command = plan
  variables {
    sweeper_schedule_expression = "rate(12 days)"
  }
}

run "cron_with_six_fields" {
  command = plan
  variables {
    sweeper_schedule_expression = "cron(0/5 * * * ? *)"
  }
}

run "singular_unit_above_one_is_refused" {
  command = plan
  variables {
    sweeper_schedule_expression = "rate(5 minute)"
  }
  expect_failures = [var.sweeper_schedule_expression]
}

run "plural_unit_for_one_is_refused" {
  command = plan
  variables {
    sweeper_schedule_expression = "rate(1 minutes)"
  }
  expect_failures = [var.sweeper_schedule_expression]
}

run "zero_is_refused" {
  command = plan
  variables {
    sweeper_schedule_expression = "rate(0 minutes)"
  }
  expect_failures = [var.sweeper_schedule_expression]
}

run "leading_zero_is_refused" {
  command = plan
  variables {
    sweeper_schedule_expression = "rate(01 minute)"
  }
  expect_failures = [var.sweeper_schedule_expression]
}

run "seconds_are_refused" {
  command = plan
  variables {
    sweeper_schedule_expression = "rate(30 seconds)"
  }
  expect_failures = [var.sweeper_schedule_expression]
}

run "five_field_cron_is_refused" {
  command = plan
  variables {
    sweeper_schedule_expression = "cron(0 12 * * ?)"
  }
  expect_failures = [var.sweeper_schedule_expression]
}
