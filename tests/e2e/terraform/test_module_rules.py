"""The modules' rules, checked by ``terraform test`` without an AWS account.

moto checks no IAM and accepts much that AWS refuses, so the rules AWS would enforce at
apply time (schedule expressions, the zip's runtime and architecture, authorization scopes,
log levels, table encryption) are checked here, at plan, by the ``*.tftest.hcl`` files under
``tftest/<module>/``:

- ``tftest/<module>/variables/``: the module's ``variables.tf`` alone, so each validation
  block runs against good and bad values in a fraction of a second (no provider);
- ``tftest/<module>/plan/``: the whole module planned against Terraform's mock aws provider,
  asserting what the resources are given (a route's scopes, a function's log level).

What a module's files share lies next to its folders, in ``tftest/<module>/``, and is copied
into the tests directory with them: ``terraform.tfvars`` (the variables' values, which
``terraform test`` reads there for every test file) and ``aws.tfmock.hcl`` (the mock data
that ``mock_provider "aws" { source = "./tests" }`` loads).

Each ``*.tftest.hcl`` file is one test here; a failed run shows Terraform's diagnostics.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from taskmanager.build_lambda import ARCHITECTURES, RUNTIMES
from tests.e2e.terraform.conftest import INFRA

if TYPE_CHECKING:
    from tests.e2e.terraform.conftest import Terraform

TFTEST = Path(__file__).resolve().parent / "tftest"
SUITES = sorted(TFTEST.glob("*/*/*.tftest.hcl"))
#: Stand-ins for the built zips: only their names matter to the rules checked here.
ZIP_STEMS = ("taskmanager", "wordcount")


@dataclass
class Outcome:
    """What ``terraform test -json`` reported for one test file."""

    runs: dict[str, str] = field(default_factory=dict)
    diagnostics: list[str] = field(default_factory=list)


def _stand_in_zips(folder: Path) -> None:
    folder.mkdir()
    names = [f"{stem}.zip" for stem in ZIP_STEMS] + [
        f"{stem}-{runtime}-{arch}.zip"
        for stem in ZIP_STEMS
        for runtime in RUNTIMES
        for arch in ARCHITECTURES
    ]
    for name in names:
        with zipfile.ZipFile(folder / name, "w"):
            pass


def _parse(stdout: str) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    for line in stdout.splitlines():
        message = json.loads(line)
        testfile = message.get("@testfile")
        if testfile is None:
            continue
        outcome = outcomes.setdefault(Path(testfile).name, Outcome())
        run = message.get("test_run", {})
        if run.get("progress") == "complete":
            outcome.runs[run["run"]] = run["status"]
        if message.get("type") == "diagnostic":
            diagnostic = message["diagnostic"]
            where = message.get("@testrun", "(file)")
            outcome.diagnostics.append(
                f"[{where}] {diagnostic['summary']}: {diagnostic.get('detail', '')}"
            )
    return outcomes


class Suites:
    """Runs each ``tftest/<module>/<kind>`` folder once, in a scratch copy of the module: all
    of them from the start, two at a time (``terraform test`` keeps a core busy), in
    threads of their own while other tests go on."""

    def __init__(self, terraform: Terraform, scratch: Path) -> None:
        self.terraform = terraform
        self.scratch = scratch
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="terraform-test")
        self._runs = {
            suite: self._pool.submit(self._run, suite)
            for suite in sorted({test_file.parent for test_file in SUITES})
        }

    def outcome(self, test_file: Path) -> Outcome:
        return self._runs[test_file.parent].result().get(test_file.name, Outcome())

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self, suite: Path) -> dict[str, Outcome]:
        module, kind = suite.parent.name, suite.name
        source = INFRA / "modules" / module
        workdir = self.scratch / module / kind
        if kind == "plan":
            shutil.copytree(
                source, workdir, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*")
            )
            self.terraform.init(workdir, backend=False)
        else:
            workdir.mkdir(parents=True)
            shutil.copyfile(source / "variables.tf", workdir / "variables.tf")
        shutil.copytree(suite, workdir / "tests")
        for shared in suite.parent.iterdir():
            if shared.is_file():
                shutil.copy(shared, workdir / "tests")
        _stand_in_zips(workdir / "zips")
        done = subprocess.run(
            [self.terraform.binary, "test", "-json"],
            cwd=workdir,
            env=self.terraform.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if not done.stdout.strip():
            pytest.fail(f"terraform test in {workdir} printed nothing:\n{done.stderr[-4000:]}")
        return _parse(done.stdout)


@pytest.mark.parametrize(
    "test_file",
    SUITES,
    ids=[str(p.relative_to(TFTEST)).removesuffix(".tftest.hcl") for p in SUITES],
)
def test_module_rule(suites: Suites, test_file: Path) -> None:
    outcome = suites.outcome(test_file)
    assert outcome.runs, f"no run of {test_file.name} completed:\n" + "\n".join(outcome.diagnostics)
    failed = {run: status for run, status in outcome.runs.items() if status != "pass"}
    assert failed == {}, "\n".join(outcome.diagnostics)


def test_tftest_files_are_formatted(terraform: Terraform) -> None:
    out = terraform.run(TFTEST, "fmt", "-check", "-recursive", "-list=true")
    assert out.strip() == ""
