"""Fixtures for the Terraform tests: the provider mirror, a scratch copy of infra/terraform,
the Lambda zip, a helper that runs terraform, and the applies against moto server.

The aws provider comes from a local filesystem mirror whose root (the folder holding
``registry.terraform.io``) is read from ``TASKMANAGER_TF_MIRROR``; ``.ci/run`` finds and
exports it. Without it (or without terraform) these tests skip locally and fail under CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from taskmanager.build_lambda import BuildError, build
from tests.conftest import IN_CI, require_tool

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.e2e.terraform.test_module_rules import Suites

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


@dataclass(frozen=True)
class Applies:
    """The applies against moto server, each running or done in a thread of its own."""

    futures: dict[str, Future[Any]]

    def result(self, name: str) -> Any:
        """What the apply ``name`` returned, once it has finished (its failure, raised)."""
        return self.futures[name].result()


@pytest.fixture(scope="session")
def applies(
    request: pytest.FixtureRequest,
    terraform: Terraform,
    infra_copy: Path,
    moto_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Applies]:
    """The three applies of the suite, started together the first time a test needs one:
    examples/complete (test_apply_moto.py), the worker-service module and a processor with
    Lambda destinations. Each spends most of its time waiting (the provider waits about
    25 s on each SQS queue it creates), so together they take about as long as the longest
    alone instead of the sum of the three (about 120 s against 220 s). Only the applies
    whose test modules were collected run (``pytest -k``, a single file)."""
    from tests.e2e.terraform import (
        test_apply_destinations,
        test_apply_moto,
        test_apply_worker_service,
    )

    collected = {item.module for item in request.session.items if isinstance(item, pytest.Function)}
    # Scratch folders are made here: tmp_path_factory is not meant for several threads.
    wanted: dict[str, tuple[Any, ...]] = {}
    if test_apply_moto in collected:
        wanted["complete"] = (
            test_apply_moto.apply_complete,
            terraform,
            infra_copy,
            request.getfixturevalue("lambda_zip"),
            moto_server,
            tmp_path_factory.mktemp("complete"),
        )
    if test_apply_worker_service in collected:
        wanted["worker-service"] = (
            test_apply_worker_service.apply_worker_service,
            terraform,
            infra_copy,
            moto_server,
            tmp_path_factory.mktemp("worker-service"),
        )
    if test_apply_destinations in collected:
        wanted["destinations"] = (
            test_apply_destinations.apply_destinations,
            terraform,
            infra_copy,
            moto_server,
            tmp_path_factory.mktemp("destinations"),
        )
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="terraform-apply") as pool:
        yield Applies({name: pool.submit(*call) for name, call in wanted.items()})


@pytest.fixture(scope="session")
def suites(terraform: Terraform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suites]:
    """The ``terraform test`` suites of test_module_rules.py, all started at once."""
    from tests.e2e.terraform import test_module_rules

    running = test_module_rules.Suites(terraform, tmp_path_factory.mktemp("tftest"))
    yield running
    running.close()


FOLDER = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """This folder's apply tests go after its other tests, in the same places of the run: the
    applies start with the folder's first test (``_terraform_work_starts_early``) and the
    other tests run while they wait on the provider."""
    places = [i for i, item in enumerate(items) if FOLDER in item.path.parents]
    ours = sorted((items[i] for i in places), key=lambda item: "test_apply_" in item.path.name)
    for place, item in zip(places, ours, strict=True):
        items[place] = item


@pytest.fixture(scope="session", autouse=True)
def _terraform_work_starts_early(request: pytest.FixtureRequest) -> None:
    """At the first test of this folder, start the applies and the ``terraform test``
    suites that this session's tests will read: the applies mostly wait on the provider and
    the suites mostly compute, so they overlap each other and the tests run meanwhile
    (the folder took 467 s before, 263 s since). Without terraform nothing starts here: the tests
    that need it skip (or fail under CI) where they ask for it."""
    if shutil.which("terraform") is None or not os.environ.get(MIRROR_VARIABLE):
        return
    modules = {
        item.module.__name__ for item in request.session.items if isinstance(item, pytest.Function)
    }
    if any(name.startswith("tests.e2e.terraform.test_apply_") for name in modules):
        request.getfixturevalue("applies")
    if "tests.e2e.terraform.test_module_rules" in modules:
        request.getfixturevalue("suites")
