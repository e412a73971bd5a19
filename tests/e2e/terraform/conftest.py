"""Fixtures for the Terraform tests: the provider mirror, a scratch copy of infra/terraform,
the Lambda zip, and a helper that runs terraform.

The aws provider comes from a local filesystem mirror whose root (the folder holding
``registry.terraform.io``) is read from ``TASKMANAGER_TF_MIRROR``; ``.ci/run`` finds and
exports it. Without it (or without terraform) these tests skip locally and fail under CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from taskmanager.build_lambda import BuildError, build
from tests.conftest import IN_CI, require_tool

REPO = Path(__file__).resolve().parents[3]
INFRA = REPO / "infra" / "terraform"
MIRROR_VARIABLE = "TASKMANAGER_TF_MIRROR"


@dataclass(frozen=True)
class Terraform:
    """terraform with an offline provider mirror, run in scratch directories."""

    binary: str
    env: dict[str, str]

    def run(self, cwd: Path, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [self.binary, *args, "-no-color"] if args[0] != "fmt" else [self.binary, *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(
                f"terraform {' '.join(args)} failed in {cwd}:\n{done.stdout[-4000:]}\n"
                f"{done.stderr[-4000:]}",
                pytrace=False,
            )
        return done.stdout

    def init(self, cwd: Path, *, backend: bool = True) -> None:
        args = ["init", "-input=false"] + ([] if backend else ["-backend=false"])
        self.run(cwd, *args)


def _need(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message}; .ci/run must provide it", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def terraform(tmp_path_factory: pytest.TempPathFactory) -> Terraform:
    binary = require_tool("terraform")
    mirror = os.environ.get(MIRROR_VARIABLE, "")
    if not mirror or not Path(mirror, "registry.terraform.io").is_dir():
        _need(f"{MIRROR_VARIABLE} does not name a provider mirror root ({mirror!r})")
    home = tmp_path_factory.mktemp("terraform-home")
    config = home / "cli.tfrc"
    config.write_text(
        f'provider_installation {{\n  filesystem_mirror {{\n    path = "{mirror}"\n  }}\n}}\n'
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "TF_CLI_CONFIG_FILE": str(config),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
    }
    return Terraform(binary, env)


@pytest.fixture(scope="session")
def infra_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch copy of infra/terraform, so init never writes into the repository."""
    target = tmp_path_factory.mktemp("infra") / "terraform"
    shutil.copytree(
        INFRA,
        target,
        ignore=shutil.ignore_patterns(
            ".terraform", ".terraform.lock.hcl", "*.tfstate*", "__pycache__"
        ),
    )
    return target


@pytest.fixture(scope="session")
def lambda_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Lambda zip (taskmanager + pydantic wheels, .pyc for python3.12)."""
    output = tmp_path_factory.mktemp("lambda") / "taskmanager-python3.12-x86_64.zip"
    try:
        build(arch="x86_64", output=output)
    except BuildError as exc:
        _need(f"the Lambda zip cannot be built here: {exc}")
    return output
