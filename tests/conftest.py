"""Session-wide real servers: one nats-server (JetStream) and one nx-27017, on free ports.

Tests that run TaskTrail components get their own namespace (NATS stream and subjects), their
own MongoDB database and their own event store file, so they never see each other's data.
"""
from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pymongo
import pytest
import urllib.request

from tasktrail.embedded_servers import free_port, start_mongo_server, start_nats_server, stop_process


@pytest.fixture(scope="session")
def servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def nats_url(servers_dir: Path) -> Iterator[str]:
    process, url = start_nats_server(servers_dir)
    yield url
    stop_process(process)


@pytest.fixture(scope="session")
def mongodb_uri(servers_dir: Path) -> Iterator[str]:
    process, uri = start_mongo_server(servers_dir)
    yield uri
    stop_process(process)


# The key pair and token secret every test stack is configured with.
TEST_ACCESS_KEY = "TESTACCESSKEY0000000000"
TEST_SECRET_KEY = "test-secret-key-0000000000000000000000000000"
TEST_AUTH_SECRET = "test-auth-secret-000000000000000000000000000000000000"
TEST_CREDENTIALS = (TEST_ACCESS_KEY, TEST_SECRET_KEY)


def basic_auth(access_key: str, secret_key: str) -> str:
    return "Basic " + base64.b64encode(f"{access_key}:{secret_key}".encode()).decode()


def call_api(base_url: str, endpoint: str, body: dict | None = None, timeout: float = 10.0,
             auth: tuple[str, str] | str | None = TEST_CREDENTIALS) -> dict:
    """POST a ClearML-style call and return the whole envelope (meta and data).

    `auth` is a key pair (sent as HTTP Basic), a whole Authorization header value
    ("Bearer <jwt>"), or None to send no credentials at all.
    """
    headers = {"Content-Type": "application/json"}
    if isinstance(auth, tuple):
        headers["Authorization"] = basic_auth(*auth)
    elif auth is not None:
        headers["Authorization"] = auth
    request = urllib.request.Request(
        f"{base_url}/{endpoint}",
        data=orjson.dumps(body or {}),
        headers=headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return orjson.loads(error.read())


def wait_until(condition, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"{message} not reached within {timeout}s")


@dataclass
class Stack:
    """TaskTrail components as real processes against the session's servers."""

    data_dir: Path
    env: dict[str, str]
    port: int
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, component: str, *arguments: str, name: str | None = None) -> subprocess.Popen:
        name = name or component
        with open(self.data_dir / f"{name}.log", "ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "tasktrail", component, *arguments],
                env=self.env, stdout=log_file, stderr=subprocess.STDOUT,
            )
        self.processes[name] = process
        return process

    def start_gateway(self) -> None:
        self.start("gateway", "--port", str(self.port))
        wait_until(self.gateway_answers, message="gateway answering")

    def gateway_answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=1):
                return True
        except OSError:
            return False

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.kill()
        process.wait()

    def call(self, endpoint: str, **body) -> dict:
        return call_api(self.api_url, endpoint, body)

    def stop_all(self) -> None:
        for process in reversed(list(self.processes.values())):
            stop_process(process)
        self.processes.clear()

    def log(self, name: str) -> str:
        return (self.data_dir / f"{name}.log").read_text(errors="replace")


@pytest.fixture
def mongo_client(mongodb_uri: str) -> Iterator[pymongo.MongoClient]:
    client = pymongo.MongoClient(mongodb_uri)
    yield client
    client.close()


@pytest.fixture
def stack(tmp_path: Path, nats_url: str, mongodb_uri: str) -> Iterator[Stack]:
    stack = new_stack(tmp_path, nats_url, mongodb_uri)
    yield stack
    stack.stop_all()


def new_stack(data_dir: Path, nats_url: str, mongodb_uri: str) -> Stack:
    """A stack (nothing started yet) with its own namespace, database, event store and the test key pair."""
    namespace = f"test{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "TASKTRAIL_DATA_DIR": str(data_dir),
        "NATS_URL": nats_url,
        "MONGODB_URI": mongodb_uri,
        "TASKTRAIL_MONGODB_DB": namespace,
        "TASKTRAIL_NAMESPACE": namespace,
        "SQLITE_DBNAME": str(data_dir / "events.sqlite"),
        "PYTHONUNBUFFERED": "1",
        "TASKTRAIL_ACCESS_KEY": TEST_ACCESS_KEY,
        "TASKTRAIL_SECRET_KEY": TEST_SECRET_KEY,
        "TASKTRAIL_AUTH_SECRET": TEST_AUTH_SECRET,
    }
    env.pop("PERSISTENCE_MODULE", None)
    port = free_port()
    env["TASKTRAIL_API_URL"] = f"http://127.0.0.1:{port}"
    return Stack(data_dir, env, port)
