"""The worker's view of the gateway: ClearML-style calls answered in the envelope."""
from __future__ import annotations

from typing import Any

import aiohttp
import orjson


class ApiCallError(Exception):
    def __init__(self, endpoint: str, code: int, subcode: int, message: str) -> None:
        super().__init__(f"{endpoint}: {code}/{subcode} {message}")
        self.code = code
        self.subcode = subcode


class ApiClient:
    def __init__(self, base_url: str, actor: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.actor = actor
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiClient:
        self.session = aiohttp.ClientSession(headers={"X-Tasktrail-Actor": self.actor})
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def call(self, endpoint: str, **body: Any) -> dict[str, Any]:
        assert self.session is not None
        async with self.session.post(f"{self.base_url}/{endpoint}", data=orjson.dumps(body),
                                     headers={"Content-Type": "application/json"}) as response:
            answer = orjson.loads(await response.read())
        meta = answer["meta"]
        if meta["result_code"] != 200:
            raise ApiCallError(endpoint, meta["result_code"], meta["result_subcode"], meta["result_msg"])
        return answer["data"]

    async def health(self) -> dict[str, Any]:
        assert self.session is not None
        async with self.session.get(f"{self.base_url}/health") as response:
            return orjson.loads(await response.read())["data"]
