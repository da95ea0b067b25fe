"""Reading a call's body and fields, with ClearML's errors for bad input."""
from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.errors import invalid_field, malformed_json, missing_field


async def read_body(request: web.Request, batch: bool = False) -> dict[str, Any]:
    """The JSON body of a POST (or GET) call; query parameters when there is no body.

    A batch endpoint (events.add_batch) takes newline-delimited JSON objects or a JSON list,
    answered as {"requests": [...]}.
    """
    raw = await request.read()
    if not raw.strip():
        return {"requests": []} if batch else dict(request.query)
    if batch:
        return {"requests": read_batch(raw)}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise malformed_json(str(error)) from None
    if not isinstance(body, dict):
        raise malformed_json("the body must be a JSON object")
    return body


def required_string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None or value == "":
        raise missing_field(key)
    if not isinstance(value, str):
        raise invalid_field(f"{key} must be a string")
    return value


def optional_string(body: dict[str, Any], key: str, default: str = "") -> str:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise invalid_field(f"{key} must be a string")
    return value


def optional_bool(body: dict[str, Any], key: str, default: bool = False) -> bool:
    value = body.get(key, default)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    if not isinstance(value, bool):
        raise invalid_field(f"{key} must be a boolean")
    return value


def optional_string_list(body: dict[str, Any], key: str) -> list[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid_field(f"{key} must be a list of strings")
    return value


def optional_int(body: dict[str, Any], key: str, minimum: int = 0) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise invalid_field(f"{key} must be an integer >= {minimum}")
    return value


def read_batch(raw: bytes) -> list[Any]:
    """The items of a batch body: a JSON list, or one JSON value per line."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return [_batch_line(number, line) for number, line in enumerate(raw.splitlines(), 1) if line.strip()]
    return parsed if isinstance(parsed, list) else [parsed]


def _batch_line(number: int, line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise malformed_json(f"line {number}: {error}") from None
