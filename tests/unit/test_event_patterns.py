"""The EventBridge patterns next to the Terraform modules match only what the contracts send.

Every detail-type a pattern names must be a contract, and every ``detail`` field it filters
on must be a field of that contract's model (with allowed values where the model fixes them).
A renamed field would otherwise leave a rule that silently matches nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from taskmanager.domain.events import (
    INBOUND_DETAIL_TYPES,
    OUTBOUND_DETAIL_TYPES,
    TaskCreated,
    TaskFailed,
    TaskRunning,
    TaskSuccessful,
    TaskUpdated,
)

INFRA = Path(__file__).resolve().parents[2] / "infra" / "terraform"
PATTERNS = sorted(INFRA.glob("modules/*/patterns/*.json"))
MODELS: dict[str, type[BaseModel]] = {
    m.DETAIL_TYPE: m for m in (TaskCreated, TaskRunning, TaskSuccessful, TaskFailed, TaskUpdated)
}
#: Envelope keys EventBridge itself fills; a pattern may filter on them freely.
ENVELOPE_KEYS = {"source", "detail-type", "detail", "account", "region", "resources", "time"}


def _detail_paths(detail: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    paths: list[tuple[str, Any]] = []
    for key, value in detail.items():
        if isinstance(value, dict):
            paths += _detail_paths(value, f"{prefix}{key}.")
        else:
            paths.append((f"{prefix}{key}", value))
    return paths


def _field_allows(model: type[BaseModel], path: str, values: list[Any]) -> None:
    name, _, rest = path.partition(".")
    assert name in model.model_fields, f"{model.__name__} has no field {name!r}"
    annotation = model.model_fields[name].annotation
    if rest:
        nested = [a for a in (annotation, *get_args(annotation)) if isinstance(a, type)]
        models = [a for a in nested if issubclass(a, BaseModel)]
        assert models, f"{model.__name__}.{name} has no field {rest!r}"
        _field_allows(models[0], rest, values)
        return
    literals = [v for arg in (annotation, *get_args(annotation)) for v in get_args(arg)]
    plain = [v for v in values if not isinstance(v, dict)]
    if literals and all(isinstance(v, str) for v in literals):
        assert set(plain) <= {str(v) for v in literals}, f"{path}: {plain} not in {literals}"


def test_there_are_patterns_to_check() -> None:
    names = {p.relative_to(INFRA).as_posix() for p in PATTERNS}
    assert names == {
        "modules/task-manager/patterns/task_updated.json",
        "modules/task-manager/patterns/task_outbound.json",
        "modules/processor/patterns/task_created.json",
    }


@pytest.mark.parametrize("path", PATTERNS, ids=lambda p: p.name)
def test_pattern_names_only_contract_detail_types_and_fields(path: Path) -> None:
    pattern = json.loads(path.read_text())
    assert set(pattern) <= ENVELOPE_KEYS
    detail_types = pattern["detail-type"]
    assert detail_types, "a pattern must name its detail-type"
    for detail_type in detail_types:
        assert detail_type in (*OUTBOUND_DETAIL_TYPES, *INBOUND_DETAIL_TYPES)
        for field, values in _detail_paths(pattern.get("detail", {})):
            _field_allows(MODELS[detail_type], field, values)


def test_a_pattern_naming_a_missing_field_is_caught() -> None:
    with pytest.raises(AssertionError, match="no field 'kind'"):
        _field_allows(TaskCreated, "kind", ["x"])
    with pytest.raises(AssertionError, match="not in"):
        _field_allows(TaskUpdated, "status", ["CREATED"])
    _field_allows(TaskUpdated, "status", ["RUNNING", "FAILED"])
    _field_allows(TaskFailed, "error.code", ["TIMEOUT"])
