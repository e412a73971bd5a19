"""The Lambda zip: deterministic, only what the runtime and the Powertools layer lack, and
.pyc compiled by the runtime's own Python version."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from typing import TYPE_CHECKING

import pytest

from taskmanager.build_lambda import BuildError, build, find_interpreter, main

if TYPE_CHECKING:
    from pathlib import Path

#: The magic number of Python 3.12 .pyc files (PEP 3147 header, first two bytes).
MAGIC_312 = 3531


def test_same_inputs_give_a_byte_identical_zip(lambda_zip: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.zip"
    build(arch="x86_64", output=again)
    assert again.read_bytes() == lambda_zip.read_bytes()


def test_zip_ships_taskmanager_and_pydantic_for_the_platform_and_nothing_provided(
    lambda_zip: Path,
) -> None:
    names = zipfile.ZipFile(lambda_zip).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert {"taskmanager", "pydantic", "pydantic_core", "pydantic_settings"} <= tops
    assert "taskmanager/domain/events.py" in names
    (core,) = [n for n in names if n.startswith("pydantic_core/_pydantic_core.")]
    assert core.endswith(".cpython-312-x86_64-linux-gnu.so")
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
                "print(e.__cached__, e.__spec__.cached)",
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


def test_arm64_gets_aarch64_wheels(tmp_path: Path) -> None:
    output = tmp_path / "arm.zip"
    build(arch="arm64", output=output)
    names = zipfile.ZipFile(output).namelist()
    (core,) = [n for n in names if n.startswith("pydantic_core/_pydantic_core.")]
    assert core.endswith(".cpython-312-aarch64-linux-gnu.so")


def test_cli_prints_path_and_size(
    lambda_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "cli.zip"
    assert main(["--arch", "x86_64", "--output", str(output)]) == 0
    path, size, unit = capsys.readouterr().out.split()
    assert path == str(output)
    assert int(size) == output.stat().st_size
    assert unit == "bytes"
    assert output.read_bytes() == lambda_zip.read_bytes()


def test_a_wrong_interpreter_or_input_is_refused(tmp_path: Path) -> None:
    if sys.version_info[:2] != (3, 12):
        with pytest.raises(BuildError, match=r"no python3\.12 interpreter"):
            build(arch="x86_64", output=tmp_path / "x.zip", python=sys.executable)
    with pytest.raises(BuildError, match="unknown architecture"):
        build(arch="sparc", output=tmp_path / "x.zip")
    with pytest.raises(BuildError, match="no such file"):
        build(arch="x86_64", output=tmp_path / "x.zip", includes=(tmp_path / "missing.py",))
    assert not (tmp_path / "x.zip").exists()
    assert importlib.util.find_spec("taskmanager.build_lambda") is not None
