"""The handlers refuse a Powertools older than they need, and the floor is written once."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from taskmanager.entrypoints.observability import (
    MIN_POWERTOOLS,
    PowertoolsTooOldError,
    installed_powertools,
    require_powertools,
)

ROOT = Path(__file__).resolve().parents[3]


def test_the_documented_layer_of_3_5_0_is_refused_with_the_fix_in_the_message() -> None:
    with pytest.raises(PowertoolsTooOldError, match=r">= 3\.28\.0, found 3\.5\.0.*layer"):
        require_powertools("3.5.0")


@pytest.mark.parametrize("version", ["3.27.0", "3.27.9", "2.43.1", "3.9.0"])
def test_releases_below_the_floor_are_refused(version: str) -> None:
    with pytest.raises(PowertoolsTooOldError):
        require_powertools(version)


@pytest.mark.parametrize("version", ["3.28.0", "3.28.1", "3.37.0", "4.0.0", "3.30.0.dev1"])
def test_releases_at_or_above_the_floor_are_accepted(version: str) -> None:
    require_powertools(version)


def test_the_installed_powertools_passes() -> None:
    require_powertools(installed_powertools())


def test_pyproject_and_the_minimum_versions_file_name_the_same_floor() -> None:
    floor = ".".join(map(str, MIN_POWERTOOLS))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    for extra in ("aws", "server"):
        assert f"aws-lambda-powertools>={floor}" in extras[extra]
    pins = dict(
        re.findall(r"^([a-z0-9-]+)==(\S+)$", (ROOT / ".ci/minimum-versions.txt").read_text(), re.M)
    )
    assert pins["aws-lambda-powertools"] == floor
    declared = [*project["dependencies"], *extras["aws"]]
    for name in ("pydantic", "msgspec", "boto3", "botocore", "pyjwt"):
        lower = next(d for d in declared if re.match(rf"{name}(\[\w+\])?>=", d, re.I))
        assert pins[name] == lower.split(">=")[1].split(",")[0], name
