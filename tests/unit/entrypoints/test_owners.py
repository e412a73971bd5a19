"""Who owns a task on AWS: the owner rule applied to real API Gateway authorizer shapes.

An assumed role's session name changes per EC2 instance, ECS task and botocore process, and
every user of a Cognito identity pool arrives as the same role session; the owner must be
stable for the first and distinct for the second (docs/api.md, "Callers and isolation")."""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

import pytest

from taskmanager.adapters.memory import InMemoryTaskRepository, ManualClock, UuidIdFactory
from taskmanager.entrypoints.api import create_app
from taskmanager.entrypoints.bootstrap import Dependencies, Settings
from taskmanager.entrypoints.http.owners import (
    OWNER_RESOLVERS,
    WEBSOCKET_OWNER_RESOLVERS,
    iam_owner,
    iam_session_owner,
)
from tests.support import load_event

if TYPE_CHECKING:
    from taskmanager.entrypoints.http.route_table import TaskApi

ROLE = "arn:aws:sts::123456789012:assumed-role/report-service"
COGNITO_ROLE_SESSION = (
    "arn:aws:sts::123456789012:assumed-role/Cognito_AppAuth_Role/CognitoIdentityCredentials"
)


def iam_event(user_arn: str, cognito: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``POST /tasks`` event as API Gateway sends it for a SigV4-signed request."""
    event = load_event("api_submit.json")
    iam = event["requestContext"]["authorizer"]["iam"]
    iam["userArn"] = user_arn
    iam["cognitoIdentity"] = cognito
    return event


def cognito_identity(identity_id: str) -> dict[str, Any]:
    """``requestContext.authorizer.iam.cognitoIdentity`` of an identity-pool user."""
    return {
        "amr": [
            "authenticated",
            "cognito-idp.us-east-1.amazonaws.com/us-east-1_Example",
            "cognito-idp.us-east-1.amazonaws.com/us-east-1_Example:CognitoSignIn:0f1e2d3c",
        ],
        "identityId": identity_id,
        "identityPoolId": "us-east-1:11111111-2222-3333-4444-555555555555",
    }


def as_request(event: dict[str, Any], method: str, path: str, **headers: str) -> dict[str, Any]:
    request = copy.deepcopy(event)
    request["rawPath"] = request["requestContext"]["http"]["path"] = path
    request["requestContext"]["http"]["method"] = method
    request["headers"].update(headers)
    if method == "GET":
        request.pop("body", None)
        request["headers"].pop("content-type", None)
        request["headers"].pop("content-length", None)
    return request


class Api:
    def __init__(self, owner_claim: str = "iam") -> None:
        self.repo = InMemoryTaskRepository()
        deps = Dependencies(repo=self.repo, clock=ManualClock(), ids=UuidIdFactory())
        self.app: TaskApi = create_app(lambda: deps, owner=OWNER_RESOLVERS[owner_claim])

    def call(self, event: dict[str, Any]) -> tuple[int, Any]:
        response = self.app.resolve(event, None)  # type: ignore[arg-type]
        return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize(
    ("user_arn", "owner"),
    [
        ("arn:aws:sts::123456789012:assumed-role/report-service/i-0abc123", ROLE),
        ("arn:aws:sts::123456789012:assumed-role/report-service/botocore-session-1767", ROLE),
        (
            "arn:aws-us-gov:sts::123456789012:assumed-role/report-service/task-9",
            "arn:aws-us-gov:sts::123456789012:assumed-role/report-service",
        ),
        ("arn:aws:iam::123456789012:user/alice", "arn:aws:iam::123456789012:user/alice"),
        ("arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:root"),
        (
            "arn:aws:sts::123456789012:federated-user/alice",
            "arn:aws:sts::123456789012:federated-user/alice",
        ),
    ],
)
def test_an_assumed_role_is_owned_by_its_account_and_role(user_arn: str, owner: str) -> None:
    assert iam_owner(iam_event(user_arn)) == owner


def test_the_session_is_kept_when_the_setting_says_so() -> None:
    arn = "arn:aws:sts::123456789012:assumed-role/report-service/i-0abc123"
    assert iam_session_owner(iam_event(arn)) == arn
    settings = Settings.from_environ(
        {"TASKMANAGER_TABLE_NAME": "tasks", "TASKMANAGER_OWNER_CLAIM": "iam_session"}
    )
    assert OWNER_RESOLVERS[settings.owner_claim] is iam_session_owner


def test_a_cognito_identity_is_owned_by_its_identity_id() -> None:
    event = iam_event(COGNITO_ROLE_SESSION, cognito_identity("us-east-1:aaaa-1"))
    assert iam_owner(event) == "cognito-identity:us-east-1:aaaa-1"
    assert iam_session_owner(event) == "cognito-identity:us-east-1:aaaa-1"


def test_a_caller_keeps_its_tasks_and_keys_when_its_session_changes() -> None:
    api = Api()
    first = iam_event("arn:aws:sts::123456789012:assumed-role/report-service/i-replica-1")
    second = iam_event("arn:aws:sts::123456789012:assumed-role/report-service/i-replica-2")
    status, task = api.call(as_request(first, "POST", "/tasks", **{"idempotency-key": "k-1"}))
    assert status == 202
    status, again = api.call(as_request(second, "POST", "/tasks", **{"idempotency-key": "k-1"}))
    assert (status, again["id"]) == (202, task["id"])  # a retry from another replica
    status, seen = api.call(as_request(second, "GET", f"/tasks/{task['id']}"))
    assert (status, seen["id"]) == (200, task["id"])
    assert len(api.repo.pending(100)) == 1  # one task, one TaskCreated


def test_with_iam_session_another_session_is_another_owner() -> None:
    api = Api("iam_session")
    first = iam_event("arn:aws:sts::123456789012:assumed-role/report-service/i-replica-1")
    second = iam_event("arn:aws:sts::123456789012:assumed-role/report-service/i-replica-2")
    _, task = api.call(as_request(first, "POST", "/tasks"))
    status, body = api.call(as_request(second, "GET", f"/tasks/{task['id']}"))
    assert (status, body["error"]["code"]) == (404, "TASK_NOT_FOUND")


def test_cognito_users_of_one_role_session_do_not_see_each_others_tasks() -> None:
    api = Api()
    ann = iam_event(COGNITO_ROLE_SESSION, cognito_identity("us-east-1:aaaa-1"))
    ben = iam_event(COGNITO_ROLE_SESSION, cognito_identity("us-east-1:bbbb-2"))
    _, task = api.call(as_request(ann, "POST", "/tasks"))
    for method, path in (("GET", f"/tasks/{task['id']}"), ("POST", f"/tasks/{task['id']}/cancel")):
        status, body = api.call(as_request(ben, method, path))
        assert (status, body["error"]["code"]) == (404, "TASK_NOT_FOUND")
    status, own = api.call(as_request(ann, "GET", f"/tasks/{task['id']}"))
    assert (status, own["status"]) == (200, "CREATED")


# --- WebSocket $connect (REST-style request context) -------------------------------------------


def _connect(**identity: str) -> dict[str, Any]:
    return {"requestContext": {"routeKey": "$connect", "identity": identity}}


def test_a_websocket_caller_is_the_same_owner_as_on_http() -> None:
    iam, session = WEBSOCKET_OWNER_RESOLVERS["iam"], WEBSOCKET_OWNER_RESOLVERS["iam_session"]
    role = "arn:aws:sts::123456789012:assumed-role/reporter/i-0abc"
    assert iam(_connect(userArn=role)) == "arn:aws:sts::123456789012:assumed-role/reporter"
    assert session(_connect(userArn=role)) == role
    assert iam(_connect(userArn=role, cognitoIdentityId="eu-west-1:abc")) == (
        "cognito-identity:eu-west-1:abc"
    )
    http_event = {"requestContext": {"authorizer": {"iam": {"userArn": role}}}}
    assert iam(_connect(userArn=role)) == OWNER_RESOLVERS["iam"](http_event)
    assert iam(_connect()) is None


def test_a_websocket_jwt_caller_is_the_authorizers_principal() -> None:
    jwt = WEBSOCKET_OWNER_RESOLVERS["jwt_sub"]
    event = {"requestContext": {"authorizer": {"principalId": "user-7"}}}
    assert jwt(event) == "user-7"
    assert jwt({"requestContext": {"authorizer": {"principalId": ""}}}) is None
    assert jwt({"requestContext": {}}) is None
