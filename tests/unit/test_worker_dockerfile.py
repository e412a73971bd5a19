"""infra/worker/Dockerfile, checked without a container engine (none here) or a Dockerfile
linter (Debian has no hadolint): the rules a reviewer would check, read from the file.

- a slim official Python base of a version the project supports, never ``latest``;
- no ``ADD`` (remote or archive magic), pip without its cache;
- the final stage runs as a numeric, non-root user, and nothing after that switches back;
- the entry point is ``taskmanager worker`` in exec form (the worker is PID 1 and gets the
  SIGTERM itself), installed with the extra that holds the AWS adapters;
- no credentials baked into the image.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infra" / "worker" / "Dockerfile"
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, rest = stripped.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def stages(parsed: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, rest in parsed:
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, rest))
    return found


PARSED = instructions(DOCKERFILE.read_text())


def test_the_base_is_a_slim_official_python_of_a_supported_version() -> None:
    (default,) = [rest for keyword, rest in PARSED if keyword == "ARG" and "PYTHON_VERSION" in rest]
    assert default.split("=", 1)[1] in SUPPORTED_PYTHONS
    bases = [rest.split()[0] for keyword, rest in PARSED if keyword == "FROM"]
    assert len(bases) == 2  # build, run
    for base in bases:
        assert re.fullmatch(r"python:\$\{PYTHON_VERSION\}-slim-[a-z]+", base), base


def test_no_add_and_pip_keeps_no_cache() -> None:
    assert "ADD" not in [keyword for keyword, _ in PARSED]
    for keyword, rest in PARSED:
        if keyword == "RUN" and "pip install" in rest:
            for command in rest.split("&&"):
                if "pip install" in command:
                    assert "--no-cache-dir" in command, command


def test_the_final_stage_runs_as_a_numeric_user_that_is_not_root() -> None:
    final = stages(PARSED)[-1]
    users = [(index, rest) for index, (keyword, rest) in enumerate(final) if keyword == "USER"]
    assert users, "the final stage sets a user"
    index, user = users[-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert int(uid) > 0
    assert not gid or (gid.isdigit() and int(gid) > 0)
    # The user exists in the image with that id.
    created = " ".join(rest for keyword, rest in final[:index] if keyword == "RUN")
    assert f"--uid {uid}" in created
    # Nothing runs as root after the switch.
    assert [k for k, _ in final[index + 1 :]] == ["ENTRYPOINT", "CMD"]


def test_the_entry_point_is_the_taskmanager_worker_command_in_exec_form() -> None:
    final = stages(PARSED)[-1]
    (entrypoint,) = [rest for keyword, rest in final if keyword == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["taskmanager", "worker"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["taskmanager"] == "taskmanager.entrypoints.cli:main"


def test_taskmanager_is_installed_with_its_aws_extra_from_the_wheel() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    installs = [
        shlex.split(command)
        for keyword, rest in PARSED
        if keyword == "RUN"
        for command in rest.split("&&")
        if "pip install" in command
    ]
    wheels = [arg for words in installs for arg in words if "taskmanager-*.whl" in arg]
    assert wheels == ["$(ls /wheels/taskmanager-*.whl)[aws]"]
    assert "aws" in extras
    assert any(dep.startswith("botocore") for dep in extras["aws"])


def test_no_credentials_in_the_image() -> None:
    text = DOCKERFILE.read_text()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        assert name not in text


def test_the_guide_documents_the_image() -> None:
    guide = (ROOT / "docs" / "processors.md").read_text()
    section = guide[guide.index("### The container image and Fargate service") :]
    assert "infra/worker/Dockerfile" in section
    assert "modules/worker-service" in section
