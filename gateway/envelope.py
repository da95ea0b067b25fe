"""The ClearML response envelope and the API errors that fill it."""
from __future__ import annotations

from typing import Any
from uuid import uuid4

import orjson
from aiohttp import web

SERVED_API_VERSION = "2.23"


class ApiError(Exception):
    """An error answered in the envelope with its own result_code and result_subcode."""

    def __init__(self, code: int, subcode: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.subcode = subcode
        self.message = message


def envelope_response(
    endpoint: str,
    requested_version: str | None,
    data: dict[str, Any] | None,
    code: int = 200,
    subcode: int = 0,
    message: str = "OK",
) -> web.Response:
    call_id = uuid4().hex
    body = {
        "meta": {
            "id": call_id,
            "trx": call_id,
            "endpoint": {
                "name": endpoint,
                "requested_version": requested_version or SERVED_API_VERSION,
                "actual_version": SERVED_API_VERSION,
            },
            "result_code": code,
            "result_subcode": subcode,
            "result_msg": message,
            "error_stack": None,
            "error_data": {},
        },
        "data": data if data is not None else {},
    }
    return web.Response(
        body=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        status=code,
        content_type="application/json",
    )
