"""Static checks of infra/terraform: formatting, validation, provider versions and checkov."""

from __future__ import annotations

import json
import re
import subprocess
from typing import TYPE_CHECKING, Any

import hcl2
import pytest

from taskmanager.build_lambda import RUNTIMES
from tests.conftest import require_tool
from tests.e2e.terraform.conftest import INFRA, REPO, Terraform

if TYPE_CHECKING:
    from pathlib import Path

ROOTS = (
    "modules/task-manager",
    "modules/processor",
    "modules/worker-service",
    "examples/complete",
)
MODULES = ("task-manager", "processor")

#: The first aws provider release that accepts what the modules use, from the provider's
#: CHANGELOG: 5.32.0 added aws_lambda_function.logging_config and the python3.12 runtime
#: (python3.11 was already in its runtime list); python3.13 came with 5.76.0 (5.75.1 refuses
#: it, hashicorp/terraform-provider-aws#40107). A runtime added to the modules needs its entry.
PROVIDER_FLOOR_FOR = {
    "logging_config": (5, 32, 0),
    "python3.11": (5, 32, 0),
    "python3.12": (5, 32, 0),
    "python3.13": (5, 76, 0),
}


def test_terraform_is_formatted(terraform: Terraform) -> None:
    out = terraform.run(INFRA, "fmt", "-check", "-recursive", "-list=true")
    assert out.strip() == ""


@pytest.mark.parametrize("root", ROOTS)
def test_terraform_validates(terraform: Terraform, infra_copy: Path, root: str) -> None:
    terraform.init(infra_copy / root, backend=False)
    out = terraform.run(infra_copy / root, "validate", "-json")
    result = json.loads(out)
    assert result["valid"] is True, result["diagnostics"]
    assert result["error_count"] == 0


def _refused_plan(terraform: Terraform, infra_copy: Path, *variables: str) -> str:
    """Plan the example with these variables; it must fail. Returns its error output."""
    example = infra_copy / "examples" / "complete"
    terraform.init(example, backend=False)
    done = subprocess.run(
        [
            terraform.binary,
            "plan",
            "-no-color",
            "-input=false",
            "-refresh=false",
            "-var=powertools_layer_arn=arn:aws:lambda:eu-west-1:017000801446:layer:P:1",
            *(f"-var={v}" for v in variables),
        ],
        cwd=example,
        env=terraform.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode != 0
    return done.stderr


def test_a_bad_variable_is_refused_by_validation(terraform: Terraform, infra_copy: Path) -> None:
    """The variables' validation blocks run: an unknown architecture is refused at plan."""
    errors = _refused_plan(
        terraform, infra_copy, "lambda_zip=x.zip", "processor_zip=y.zip", "architecture=sparc"
    )
    assert "lambda_package.architecture must be x86_64 or arm64" in errors


def test_zips_built_for_another_architecture_are_refused_at_plan(
    terraform: Terraform, infra_copy: Path
) -> None:
    """x86_64 zips for the example's arm64 functions: pydantic-core would fail to import in
    every function, so the plan stops, for the task manager's zip and the processor's."""
    errors = _refused_plan(
        terraform,
        infra_copy,
        "lambda_zip=dist/lambda/taskmanager-python3.12-x86_64.zip",
        "processor_zip=dist/lambda/wordcount-python3.12-x86_64.zip",
        "architecture=arm64",
    )
    assert errors.count("must name a zip built for lambda_package.runtime") == 2
    assert "-python3.12-arm64.zip" in errors


def test_checkov_passes_with_every_skip_explained() -> None:
    checkov = require_tool("checkov")
    done = subprocess.run(
        # --skip-download: no calls to the vendor's platform (loopback only here).
        [checkov, "-d", str(INFRA), "--framework", "terraform", "-o", "json", "--skip-download"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for report in reports
        for c in report.get("results", {}).get("failed_checks", [])
    ]
    assert failed == []
    skipped = [c for r in reports for c in r.get("results", {}).get("skipped_checks", [])]
    for check in skipped:
        reason = check.get("check_result", {}).get("suppress_comment", "")
        assert len(reason) > 20, (
            f"{check['check_id']} on {check['resource']} skipped without a reason"
        )
    passed = sum(len(r.get("results", {}).get("passed_checks", [])) for r in reports)
    assert passed > 50


def _hcl(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        parsed: dict[str, Any] = hcl2.load(handle)
    return parsed


def _version(text: str) -> tuple[int, int, int]:
    major, minor, patch = [*text.split("."), "0", "0"][:3]
    return int(major), int(minor), int(patch)


def _aws_constraint(root: Path) -> str:
    (terraform,) = _hcl(root / "versions.tf")["terraform"]
    (providers,) = terraform["required_providers"]
    constraint: str = providers["aws"]["version"]
    return constraint.strip('"')


def _accepted_runtimes(module: Path) -> list[str]:
    for variable in _hcl(module / "variables.tf")["variable"]:
        if '"lambda_package"' in variable:
            for validation in variable['"lambda_package"']["validation"]:
                # `contains([...], var.lambda_package.runtime)`, or guarded for a module
                # where the package is optional: `... || contains([...], try(var...runtime, ""))`
                found = re.search(
                    r"contains\(\[([^]]*)\], (?:try\()?var\.lambda_package\.runtime",
                    validation["condition"],
                )
                if found:
                    return re.findall(r'"([^"]+)"', found.group(1))
    raise AssertionError(f"{module}: no runtime validation")


def _uses_logging_config(module: Path) -> bool:
    return any(
        "logging_config" in function
        for path in module.glob("*.tf")
        for resource in _hcl(path).get("resource", [])
        for function in resource.get('"aws_lambda_function"', {}).values()
    )


@pytest.mark.parametrize("module", MODULES)
def test_provider_floor_admits_nothing_the_module_cannot_use(module: str) -> None:
    """A floor below what the module uses lets an old provider fail at plan on
    logging_config, or refuse a runtime the module's validation accepts."""
    root = INFRA / "modules" / module
    constraint = _aws_constraint(root)
    found = re.fullmatch(r">= ?([0-9]+\.[0-9]+(?:\.[0-9]+)?)", constraint)
    assert found, f"{module}: the aws provider constraint {constraint!r} is not a plain floor"
    floor = _version(found.group(1))
    runtimes = _accepted_runtimes(root)
    assert runtimes == list(RUNTIMES), "the module accepts the runtimes the builder builds for"
    needs = [PROVIDER_FLOOR_FOR[runtime] for runtime in runtimes]
    if _uses_logging_config(root):
        needs.append(PROVIDER_FLOOR_FOR["logging_config"])
    assert floor >= max(needs)
    (pin,) = re.findall(r"[0-9.]+", _aws_constraint(INFRA / "examples" / "complete"))
    assert _version(pin) >= floor, "the example pins a provider within the modules' floor"
