"""The Lambda zip: deterministic, only what the runtime and the Powertools layer lack, and
.pyc compiled by the runtime's own Python version."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import zipfile
from typing import TYPE_CHECKING

import pytest

from taskmanager.build_lambda import MANIFEST, BuildError, build, find_interpreter, main

if TYPE_CHECKING:
    from pathlib import Path

#: The magic number of Python 3.12 .pyc files (PEP 3147 header, first two bytes).
MAGIC_312 = 3531


def test_zip_ships_taskmanager_and_pydantic_for_the_platform_and_nothing_provided(
    lambda_zip: Path,
) -> None:
    names = zipfile.ZipFile(lambda_zip).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert {"taskmanager", "pydantic", "pydantic_core", "pydantic_settings", "msgspec"} <= tops
    assert "taskmanager/domain/events.py" in names
    (core,) = [n for n in names if n.startswith("pydantic_core/_pydantic_core.")]
    assert core.endswith(".cpython-312-x86_64-linux-gnu.so")
    # The JWT authorizer's verifier: PyJWT and cryptography's compiled part (abi3).
    assert {"jwt", "cryptography", "cffi"} <= tops
    assert "cryptography/hazmat/bindings/_rust.abi3.so" in names
    # boto3 is in the runtime, Powertools in its layer; dev tools never go in.
    for absent in ("boto3", "botocore", "aws_lambda_powertools", "pytest", "moto", "mypy"):
        assert absent not in tops
    assert not any(n.startswith("bin/") for n in names)


def test_every_module_has_a_pyc_for_the_runtime_version_only(lambda_zip: Path) -> None:
    archive = zipfile.ZipFile(lambda_zip)
    names = set(archive.namelist())
    sources = [n for n in names if n.endswith(".py")]
    assert sources
    for source in sources:
        head, _, tail = source.rpartition("/")
        pyc = f"{head}/__pycache__/{tail[:-3]}.cpython-312.pyc".lstrip("/")
        assert pyc in names, f"no .pyc for {source}"
    pycs = [n for n in names if n.endswith(".pyc")]
    assert all(".cpython-312." in n for n in pycs)
    header = archive.read("taskmanager/__pycache__/__init__.cpython-312.pyc")[:8]
    assert int.from_bytes(header[:2], "little") == MAGIC_312
    flags = int.from_bytes(header[4:8], "little")
    assert flags == 0b01, "hash-based, unchecked (PEP 552): no timestamps, no source re-read"


def test_zip_imports_under_the_runtime_python_from_a_read_only_folder(
    lambda_zip: Path, tmp_path: Path
) -> None:
    python = find_interpreter("python3.12")
    assert python is not None
    task = tmp_path / "task"
    zipfile.ZipFile(lambda_zip).extractall(task)
    for path in sorted(task.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    task.chmod(0o555)
    try:
        done = subprocess.run(
            [
                python,
                "-I",
                "-c",
                "import sys; sys.path.insert(0, sys.argv[1]);"
                "import taskmanager.domain.events as e, pydantic_settings;"
                "import taskmanager.entrypoints.authorizer, jwt.algorithms as a;"
                "print(e.__cached__, e.__spec__.cached, 'RS256' in a.get_default_algorithms())",
                str(task),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        for path in [task, *task.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert done.returncode == 0, done.stderr
    assert "events.cpython-312.pyc" in done.stdout
    assert done.stdout.split()[-1] == "True"  # PyJWT found cryptography: RS256 verifies


def test_arm64_gets_aarch64_wheels(tmp_path: Path) -> None:
    output = tmp_path / "arm-python3.12-arm64.zip"
    build(arch="arm64", output=output)
    names = zipfile.ZipFile(output).namelist()
    (core,) = [n for n in names if n.startswith("pydantic_core/_pydantic_core.")]
    assert core.endswith(".cpython-312-aarch64-linux-gnu.so")
    manifest = json.loads(zipfile.ZipFile(output).read(MANIFEST))
    assert (manifest["runtime"], manifest["architecture"]) == ("python3.12", "arm64")


def test_zip_records_the_runtime_and_architecture_its_compiled_parts_are_for(
    lambda_zip: Path,
) -> None:
    """pydantic-core is built for one Python version and one architecture: the zip's name
    says which (Terraform compares it with the function's runtime and architecture) and so
    does a manifest inside, with the pinned versions."""
    assert lambda_zip.name.endswith("-python3.12-x86_64.zip")
    archive = zipfile.ZipFile(lambda_zip)
    manifest = json.loads(archive.read(MANIFEST))
    assert manifest["runtime"] == "python3.12"
    assert manifest["architecture"] == "x86_64"
    assert manifest["platform"] == "manylinux2014_x86_64"
    assert manifest["pyc"] is True
    core_version = next(r for r in manifest["requirements"] if r.startswith("pydantic-core=="))
    assert core_version.split("==")[1] == importlib.metadata.version("pydantic-core")


def test_an_output_not_named_for_its_runtime_and_architecture_is_refused(tmp_path: Path) -> None:
    """Refused before anything is fetched: a zip that does not say what it was built for
    could be deployed to a function of another runtime or architecture."""
    for name in ("taskmanager.zip", "taskmanager-python3.12-x86_64.zip"):
        with pytest.raises(BuildError, match=r"must end with -python3\.13-arm64\.zip"):
            build(arch="arm64", runtime="python3.13", output=tmp_path / name, compile_pyc=False)
    assert list(tmp_path.iterdir()) == []


def test_the_cli_builds_the_same_zip_byte_for_byte_and_prints_its_path_and_size(
    lambda_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same inputs give the same zip (``lambda_zip`` was built by ``build()`` earlier in
    the session), and the command line says where it went and how large it is. One build
    serves both checks: each build takes 10-40 s of the suite."""
    output = tmp_path / "cli-python3.12-x86_64.zip"
    assert main(["--arch", "x86_64", "--output", str(output)]) == 0
    path, size, unit = capsys.readouterr().out.split()
    assert path == str(output)
    assert int(size) == output.stat().st_size
    assert unit == "bytes"
    assert output.read_bytes() == lambda_zip.read_bytes()


def test_a_wrong_interpreter_or_input_is_refused(tmp_path: Path) -> None:
    if sys.version_info[:2] != (3, 12):
        with pytest.raises(BuildError, match=r"no python3\.12 interpreter"):
            build(arch="x86_64", output=tmp_path / "x-python3.12-x86_64.zip", python=sys.executable)
    with pytest.raises(BuildError, match="unknown architecture"):
        build(arch="sparc", output=tmp_path / "x-python3.12-x86_64.zip")
    with pytest.raises(BuildError, match="no such file"):
        build(
            arch="x86_64",
            output=tmp_path / "x-python3.12-x86_64.zip",
            includes=(tmp_path / "missing.py",),
        )
    assert not (tmp_path / "x-python3.12-x86_64.zip").exists()
    assert importlib.util.find_spec("taskmanager.build_lambda") is not None
