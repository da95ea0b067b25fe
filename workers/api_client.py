"""The worker's view of the gateway: ClearML-style calls answered in the envelope.

The client logs in with its key pair (`auth.login`, HTTP Basic) and sends the token as a Bearer
header; a 401 (expired token, a gateway with a new secret) makes it log in again once and retry.
"""
from __future__ import annotations

import os
from typing import Any

import aiohttp
import orjson

WORKER_HEADER = "X-ClearML-Worker"


class ApiCallError(Exception):
    def __init__(self, endpoint: str, code: int, subcode: int, message: str) -> None:
        super().__init__(f"{endpoint}: {code}/{subcode} {message}")
        self.code = code
        self.subcode = subcode


def credentials_from_environment() -> tuple[str, str]:
    """The key pair the launcher (or the deployment) gives its workers."""
    return os.environ.get("TASKTRAIL_ACCESS_KEY", ""), os.environ.get("TASKTRAIL_SECRET_KEY", "")


class ApiClient:
    def __init__(self, base_url: str, actor: str, credentials: tuple[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.actor = actor
        self.access_key, self.secret_key = credentials or credentials_from_environment()
        self.token: str | None = None
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiClient:
        self.session = aiohttp.ClientSession(headers={WORKER_HEADER: self.actor})
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def login(self) -> None:
        auth = aiohttp.BasicAuth(self.access_key, self.secret_key)
        self.token = (await self._post("auth.login", {}, {"Authorization": auth.encode()}))["token"]

    async def call(self, endpoint: str, **body: Any) -> dict[str, Any]:
        if self.token is None:
            await self.login()
        try:
            return await self._post(endpoint, body, self._bearer())
        except ApiCallError as error:
            if error.code != 401:
                raise
        await self.login()
        return await self._post(endpoint, body, self._bearer())

    def _bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def _post(self, endpoint: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        assert self.session is not None
        async with self.session.post(f"{self.base_url}/{endpoint}", data=orjson.dumps(body),
                                     headers={"Content-Type": "application/json", **headers}) as response:
            answer = orjson.loads(await response.read())
        meta = answer["meta"]
        if meta["result_code"] != 200:
            raise ApiCallError(endpoint, meta["result_code"], meta["result_subcode"], meta["result_msg"])
        return answer["data"]

    async def health(self) -> dict[str, Any]:
        assert self.session is not None
        async with self.session.get(f"{self.base_url}/health") as response:
            return orjson.loads(await response.read())["data"]
