"""Authentication over HTTP, against a real gateway process: who may call, and who the events name."""
from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import jwt
import orjson
import pytest

from tasktrail.application import TaskTrail
from tasktrail.config import event_store_env
from tests.conftest import (
    TEST_AUTH_SECRET,
    TEST_CREDENTIALS,
    Stack,
    basic_auth,
    call_api,
    new_stack,
)
from workers.api_client import ApiCallError, ApiClient


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, nats_url: str, mongodb_uri: str) -> Iterator[Stack]:
    stack = new_stack(tmp_path_factory.mktemp("auth"), nats_url, mongodb_uri)
    stack.start_gateway()
    yield stack
    stack.stop_all()


def login(stack: Stack, auth=TEST_CREDENTIALS, **body) -> dict:
    return call_api(stack.api_url, "auth.login", body, auth=auth)


def result(answer: dict) -> tuple[int, int]:
    return answer["meta"]["result_code"], answer["meta"]["result_subcode"]


def test_login_with_the_key_pair_answers_a_token_the_sdk_can_read(gateway: Stack) -> None:
    answer = login(gateway)
    assert result(answer) == (200, 0)
    claims = jwt.decode(answer["data"]["token"], TEST_AUTH_SECRET, algorithms=["HS256"])
    assert claims["identity"]["user"] == "tasktrail" and claims["identity"]["role"] == "user"
    assert set(claims["identity"]) == {"user", "company", "role", "user_name", "company_name"}
    assert claims["api_version"] == "2.23" and claims["feature_set"] == "basic"
    assert claims["exp"] > claims["iat"] >= int(time.time()) - 5


def test_login_accepts_an_expiration_as_the_sdk_sends_it_in_the_query(gateway: Stack) -> None:
    request = urllib.request.Request(
        f"{gateway.api_url}/v2.23/auth.login?expiration_sec=120",
        headers={"Authorization": basic_auth(*TEST_CREDENTIALS)},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        token = orjson.loads(response.read())["data"]["token"]
    claims = jwt.decode(token, TEST_AUTH_SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 120


def test_a_bearer_token_opens_every_call_and_refreshes_itself(gateway: Stack) -> None:
    token = login(gateway)["data"]["token"]
    assert result(call_api(gateway.api_url, "tasks.get_all", {}, auth=f"Bearer {token}")) == (200, 0)
    refreshed = login(gateway, auth=f"Bearer {token}")
    assert result(refreshed) == (200, 0) and refreshed["data"]["token"]


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (None, (401, 20)),
        ("Digest abc", (401, 10)),
        ("Basic %%%", (401, 21)),
        (("TESTACCESSKEY0000000000", "wrong-secret"), (401, 22)),
        ("Bearer not-a-token", (401, 30)),
    ],
)
def test_calls_without_valid_credentials_are_refused_with_401(gateway: Stack, auth, expected) -> None:
    for endpoint in ("tasks.get_all", "auth.login", "tasks.create", "no_such.endpoint"):
        answer = call_api(gateway.api_url, endpoint, {"name": "x", "type": "training"}, auth=auth)
        assert result(answer) == expected, endpoint
        assert answer["meta"]["result_msg"].lower().startswith(("unauthorized", "invalid token"))


def test_an_expired_token_is_refused_with_invalid_token(gateway: Stack) -> None:
    now = int(time.time())
    claims = {"identity": {"user": "u", "company": "c", "role": "user", "user_name": "u", "company_name": "c"},
              "iat": now - 120, "exp": now - 60}
    expired = jwt.encode(claims, TEST_AUTH_SECRET, algorithm="HS256")
    answer = call_api(gateway.api_url, "tasks.get_all", {}, auth=f"Bearer {expired}")
    assert result(answer) == (401, 30) and "expired" in answer["meta"]["result_msg"]


def test_the_http_status_of_a_refusal_is_401_and_health_needs_no_credentials(gateway: Stack) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(f"{gateway.api_url}/tasks.get_all", data=b"{}"), timeout=5)
    assert refused.value.code == 401
    refused.value.close()
    with urllib.request.urlopen(f"{gateway.api_url}/health", timeout=5) as response:
        assert response.status == 200


def test_the_authenticated_user_is_the_actor_of_the_events_whatever_header_claims_otherwise(gateway: Stack) -> None:
    request = urllib.request.Request(
        f"{gateway.api_url}/tasks.create",
        data=b'{"name": "mine", "type": "training"}',
        headers={"Authorization": "Bearer " + login(gateway)["data"]["token"], "X-Tasktrail-Actor": "mallory"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        task_id = orjson.loads(response.read())["data"]["id"]
    task = call_api(gateway.api_url, "tasks.get_by_id", {"task": task_id})["data"]["task"]
    assert task["user"] == "tasktrail"
    app = TaskTrail(event_store_env(gateway.data_dir) | {"SQLITE_DBNAME": gateway.env["SQLITE_DBNAME"]})
    try:
        assert [event.actor for event in app.task_history(task_id)] == ["tasktrail"]
    finally:
        app.close()


async def test_the_worker_client_logs_in_and_logs_in_again_when_its_token_is_refused(gateway: Stack) -> None:
    async with ApiClient(gateway.api_url, "worker-1", TEST_CREDENTIALS) as api:
        assert "tasks" in await api.call("tasks.get_all", page_size=1)
        api.token = "expired-or-forged"
        assert "tasks" in await api.call("tasks.get_all", page_size=1)
    async with ApiClient(gateway.api_url, "worker-2", ("TESTACCESSKEY0000000000", "wrong")) as api:
        with pytest.raises(ApiCallError) as refused:
            await api.call("tasks.get_all")
        assert (refused.value.code, refused.value.subcode) == (401, 22)


def test_validate_token_tells_a_good_token_from_a_bad_one(gateway: Stack) -> None:
    token = login(gateway)["data"]["token"]
    good = call_api(gateway.api_url, "auth.validate_token", {"token": token})["data"]
    assert good == {"valid": True, "msg": "", "user_id": "tasktrail", "company_id": "tasktrail"}
    bad = call_api(gateway.api_url, "auth.validate_token", {"token": token[:-2]})["data"]
    assert bad["valid"] is False and bad["msg"].startswith("Invalid token")
    assert result(call_api(gateway.api_url, "auth.validate_token", {})) == (400, 11)
