"""The session's model loader answers as botocore's does, without listing every service."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import UnknownServiceError
from botocore.loaders import JSONFileLoader, Loader
from botocore.stub import Stubber

from taskmanager.adapters.aws_session import PlainJSONFileLoader, ScanFreeLoader, new_session
from taskmanager.entrypoints import bootstrap

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("type_name", ["service-2", "endpoint-rule-set-1", "waiters-2"])
def test_the_service_list_is_botocores_own(type_name: str) -> None:
    ours = ScanFreeLoader().list_available_services(type_name)
    assert list(ours) == Loader().list_available_services(type_name)
    assert len(ours) == len(list(ours))
    assert ours[0] == next(iter(ours))


def test_membership_looks_at_the_one_service_asked_about() -> None:
    loader = ScanFreeLoader()
    models = loader.list_available_services("service-2")
    assert "dynamodb" in models
    assert "events" in models
    # not a service, a file beside the services, a path, not a name
    for name in ("no-such-service", "_retry", "_retry.json", "..", "dynamodb/2012-08-10", 3):
        assert name not in models
    assert "dynamodb" in loader.list_available_services("waiters-2")
    assert "events" not in loader.list_available_services("waiters-2")  # has no waiters


@pytest.mark.parametrize(
    "name",
    ["endpoints", "partitions", "dynamodb/2012-08-10/service-2", "events/2015-10-07/service-2"],
)
def test_data_files_read_as_botocore_reads_them_in_plain_dicts(name: str) -> None:
    path = f"{Loader.BUILTIN_DATA_PATH}/{name}"  # plain .json and gzipped .json.gz alike
    ours = PlainJSONFileLoader().load_file(path)
    theirs = JSONFileLoader().load_file(path)
    assert ours == theirs
    assert json.dumps(ours) == json.dumps(theirs)  # the same order, not only the same items
    assert type(ours) is dict
    assert PlainJSONFileLoader().load_file(f"{path}-missing") is None


def test_clients_work_and_unknown_services_fail_as_in_botocore() -> None:
    session = new_session()
    assert isinstance(session.get_component("data_loader"), ScanFreeLoader)
    assert isinstance(session.get_component("data_loader").file_loader, PlainJSONFileLoader)
    client = session.create_client("dynamodb", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response("get_item", {"Item": {"status": {"S": "RUNNING"}}})
        assert client.get_item(TableName="tasks", Key={"task_id": {"S": "a"}})["Item"]
    with pytest.raises(UnknownServiceError, match=r"Valid service names are: .*dynamodb"):
        session.create_client("no-such-service", region_name="us-east-1")


def test_aws_data_path_models_are_found_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = {
        "version": "2.0",
        "metadata": {
            "apiVersion": "2020-01-01",
            "endpointPrefix": "custom",
            "protocol": "json",
            "serviceId": "Custom",
            "signatureVersion": "v4",
            "jsonVersion": "1.0",
            "targetPrefix": "Custom",
        },
        "operations": {},
        "shapes": {},
    }
    folder = tmp_path / "custom" / "2020-01-01"
    folder.mkdir(parents=True)
    (folder / "service-2.json").write_text(json.dumps(model))
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    loader = new_session().get_component("data_loader")
    assert "custom" in loader.list_available_services("service-2")
    assert loader.load_service_model("custom", "service-2")["metadata"]["serviceId"] == "Custom"
    assert "dynamodb" in loader.list_available_services("service-2")  # defaults still searched


def test_the_handlers_clients_come_from_that_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKMANAGER_TABLE_NAME", "tasks")
    bootstrap.reset()
    try:
        client = bootstrap.client("dynamodb")
        assert client.meta.service_model.service_name == "dynamodb"
        assert isinstance(bootstrap._session().get_component("data_loader"), ScanFreeLoader)
    finally:
        bootstrap.reset()
