"""The deployment docs stay true: every module input and output is documented, and the
build commands docs/deploy.md gives run and produce the zips the example deploys."""

from __future__ import annotations

import re
import shlex
import zipfile
from typing import TYPE_CHECKING

import pytest

from taskmanager.build_lambda import main
from tests.e2e.terraform.conftest import INFRA, REPO

if TYPE_CHECKING:
    from pathlib import Path


def _declared(module: Path, kind: str) -> set[str]:
    text = "".join(p.read_text() for p in module.glob("*.tf"))
    return set(re.findall(rf'^{kind} "([A-Za-z0-9_-]+)"', text, flags=re.MULTILINE))


@pytest.mark.parametrize("module", ["task-manager", "processor", "worker-service"])
def test_module_readme_lists_every_input_and_output(module: str) -> None:
    root = INFRA / "modules" / module
    readme = (root / "README.md").read_text()
    inputs = readme.split("## Inputs", 1)[1].split("## Outputs", 1)[0]
    outputs = readme.split("## Outputs", 1)[1]
    documented_inputs = set(re.findall(r"^\| `([a-z_]+)` \|", inputs, flags=re.MULTILINE))
    documented_outputs = set(re.findall(r"^\| `([a-z_]+)` \|", outputs, flags=re.MULTILINE))
    assert documented_inputs == _declared(root, "variable")
    assert documented_outputs == _declared(root, "output")


def test_every_variable_and_output_has_a_description() -> None:
    for path in INFRA.rglob("*.tf"):
        blocks = re.split(r'^(?=variable "|output ")', path.read_text(), flags=re.MULTILINE)
        for block in blocks[1:]:
            assert "description" in block.split("\n}", 1)[0], f"{path}: {block[:60]}"


def test_build_commands_in_deploy_doc_run(tmp_path: Path, lambda_zip: Path) -> None:
    """The doc builds both zips for the example's architecture variable and gives terraform
    that same variable, so a reader who switches ARCH switches both."""
    doc = (REPO / "docs" / "deploy.md").read_text()
    (arch,) = re.findall(r"^ARCH=([a-z0-9_]+)\b", doc, flags=re.MULTILINE)
    assert arch == "x86_64"
    assert "-var architecture=$ARCH" in doc
    commands = [
        shlex.split(line.replace("$ARCH", arch))[3:]
        for line in doc.splitlines()
        if line.startswith("python -m taskmanager.build_lambda ")
    ]
    assert len(commands) == 2
    for args in commands:
        assert args[args.index("--arch") + 1] == arch
        output = args.index("--output") + 1
        assert args[output].endswith(f"-python3.12-{arch}.zip")
        args[output] = str(tmp_path / args[output])
        include = [i + 1 for i, a in enumerate(args) if a == "--include"]
        for i in include:
            args[i] = str(REPO / args[i])
        assert main(args) == 0
    plain, processor = (
        tmp_path / "dist" / "lambda" / f"{n}-python3.12-{arch}.zip"
        for n in ("taskmanager", "wordcount")
    )
    assert plain.read_bytes() == lambda_zip.read_bytes()
    assert "wordcount_processor.py" in zipfile.ZipFile(processor).namelist()
    assert (
        "__pycache__/wordcount_processor.cpython-312.pyc" in zipfile.ZipFile(processor).namelist()
    )
