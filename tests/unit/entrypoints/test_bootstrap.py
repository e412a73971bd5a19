"""Settings come from the TASKMANAGER_* environment variables Terraform sets."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from taskmanager.adapters.memory import InMemoryTaskRepository, ManualClock, UuidIdFactory
from taskmanager.entrypoints import bootstrap
from taskmanager.entrypoints.bootstrap import Settings


def test_settings_read_the_terraform_names_and_default_the_rest() -> None:
    settings = Settings.from_environ(
        {
            "TASKMANAGER_TABLE_NAME": "tasks",
            "TASKMANAGER_EVENT_BUS_NAME": "bus",
            "TASKMANAGER_DEFAULT_TIMEOUT_SECONDS": "60",
            "TASKMANAGER_OWNER_CLAIM": "jwt_sub",
            "OTHER": "ignored",
        }
    )
    assert (settings.table_name, settings.event_bus_name, settings.event_source) == (
        "tasks",
        "bus",
        "taskmanager",
    )
    assert (settings.owner_claim, settings.retention_seconds) == ("jwt_sub", 604800)
    assert settings.policy.default_timeout_seconds == 60


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"TASKMANAGER_TABLE_NAME": "t"},
        {"TASKMANAGER_TABLE_NAME": "tasks", "TASKMANAGER_OWNER_CLAIM": "cookie"},
        {"TASKMANAGER_TABLE_NAME": "tasks", "TASKMANAGER_DEFAULT_TIMEOUT_SECONDS": "604801"},
        {"TASKMANAGER_TABLE_NAME": "tasks", "TASKMANAGER_RETENTION_SECONDS": "0"},
        {"TASKMANAGER_TABLE_NAME": "tasks", "TASKMANAGER_DUE_SHARDS": "0"},
        {"TASKMANAGER_TABLE_NAME": "tasks", "TASKMANAGER_DUE_SHARDS": "65"},
    ],
)
def test_missing_or_invalid_settings_are_refused(environ: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Settings.from_environ(environ)


def test_settings_are_read_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKMANAGER_TABLE_NAME", "first")
    bootstrap.reset()
    assert bootstrap.settings().table_name == "first"
    monkeypatch.setenv("TASKMANAGER_TABLE_NAME", "second")
    assert bootstrap.settings().table_name == "first"
    bootstrap.reset()
    assert bootstrap.settings().table_name == "second"
    bootstrap.reset()


def test_the_due_shard_setting_has_the_adapters_default_and_bounds() -> None:
    from taskmanager.adapters.dynamodb import DEFAULT_DUE_SHARDS, MAX_DUE_SHARDS

    assert Settings(table_name="tasks").due_shards == DEFAULT_DUE_SHARDS
    widest = Settings.from_environ(
        {"TASKMANAGER_TABLE_NAME": "tasks", "TASKMANAGER_DUE_SHARDS": str(MAX_DUE_SHARDS)}
    )
    assert widest.due_shards == MAX_DUE_SHARDS
    with pytest.raises(ValidationError):
        Settings(table_name="tasks", due_shards=MAX_DUE_SHARDS + 1)


def test_the_repository_spreads_the_due_indexes_over_the_configured_shards(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("TASKMANAGER_TABLE_NAME", "tasks")
    monkeypatch.setenv("TASKMANAGER_DUE_SHARDS", "16")
    bootstrap.reset()
    try:
        repo = bootstrap.repository()
        assert getattr(repo, "due_shards", None) == 16
    finally:
        bootstrap.reset()


def test_processor_sources_say_which_task_types_each_source_may_report_on() -> None:
    settings = Settings.from_environ(
        {
            "TASKMANAGER_TABLE_NAME": "tasks",
            "TASKMANAGER_PROCESSOR_SOURCES": (
                '{"report.render": ["acme.render", "acme.any"],'
                ' "text.wordcount": ["acme.count", "acme.any"]}'
            ),
        }
    )
    assert settings.types_by_source == {
        "acme.render": frozenset({"report.render"}),
        "acme.count": frozenset({"text.wordcount"}),
        "acme.any": frozenset({"report.render", "text.wordcount"}),
    }
    deps = bootstrap.Dependencies(
        repo=InMemoryTaskRepository(),
        clock=ManualClock(),
        ids=UuidIdFactory(),
        types_by_source=settings.types_by_source,
    )
    assert deps.types_for("acme.render") == frozenset({"report.render"})
    assert deps.types_for("taskmanager") == frozenset()


@pytest.mark.parametrize("value", [None, "{}"])
def test_without_processor_sources_any_source_may_report_on_anything(value: str | None) -> None:
    environ = {"TASKMANAGER_TABLE_NAME": "tasks"}
    if value is not None:
        environ["TASKMANAGER_PROCESSOR_SOURCES"] = value
    settings = Settings.from_environ(environ)
    assert settings.types_by_source is None
    deps = bootstrap.Dependencies(
        repo=InMemoryTaskRepository(), clock=ManualClock(), ids=UuidIdFactory()
    )
    assert deps.types_for("anyone") is None


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        '["acme.render"]',
        '{"report render": ["acme.render"]}',  # not a task type
        '{"report.render": [""]}',  # not a source
        '{"report.render": "acme.render"}',
    ],
)
def test_malformed_processor_sources_are_refused(value: str) -> None:
    with pytest.raises(ValidationError):
        Settings.from_environ(
            {"TASKMANAGER_TABLE_NAME": "tasks", "TASKMANAGER_PROCESSOR_SOURCES": value}
        )


def test_task_types_and_the_default_start_timeout_reach_the_policy() -> None:
    settings = Settings.from_environ(
        {
            "TASKMANAGER_TABLE_NAME": "tasks",
            "TASKMANAGER_TASK_TYPES": '["report.render", "text.wordcount"]',
            "TASKMANAGER_DEFAULT_START_TIMEOUT_SECONDS": "600",
        }
    )
    assert settings.policy.task_types == frozenset({"report.render", "text.wordcount"})
    assert settings.policy.default_start_timeout_seconds == 600
    plain = Settings.from_environ({"TASKMANAGER_TABLE_NAME": "tasks"}).policy
    assert (plain.task_types, plain.default_start_timeout_seconds) == (None, None)
    fifty = json.dumps([f"type.{n}" for n in range(bootstrap.MAX_TASK_TYPES)])
    assert Settings.from_environ(
        {"TASKMANAGER_TABLE_NAME": "tasks", "TASKMANAGER_TASK_TYPES": fifty}
    ).task_types == [f"type.{n}" for n in range(50)]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TASKMANAGER_TASK_TYPES", "report.render"),  # not JSON
        ("TASKMANAGER_TASK_TYPES", '["report render"]'),  # not a task type
        ("TASKMANAGER_TASK_TYPES", '{"report.render": 1}'),
        ("TASKMANAGER_TASK_TYPES", json.dumps([f"type.{n}" for n in range(51)])),
        ("TASKMANAGER_DEFAULT_START_TIMEOUT_SECONDS", "0"),
        ("TASKMANAGER_DEFAULT_START_TIMEOUT_SECONDS", "604801"),
    ],
)
def test_malformed_task_types_or_start_timeouts_are_refused(name: str, value: str) -> None:
    with pytest.raises(ValidationError):
        Settings.from_environ({"TASKMANAGER_TABLE_NAME": "tasks", name: value})
