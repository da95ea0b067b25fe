"""`tasks.get_by_id` (from the aggregate: read your own write) and `tasks.get_all` (from the view).

Every filter value is checked to be a string (or list of strings) before it reaches MongoDB, so no
value can smuggle in an operator, and name patterns are checked before they are run.
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from pymongo.collection import Collection

from domain.document import get_path, set_path
from gateway.call import Call
from gateway.errors import invalid_field
from gateway.request import optional_int, optional_string, optional_string_list, required_string
from domain.task import parse_task_id
from projections import task_view

MAX_PAGE_SIZE = 500
MAX_PATTERN_LENGTH = 200
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
# A quantified group that itself holds a quantifier ("(a+)+", "(a*)*") can backtrack without end.
NESTED_QUANTIFIER = re.compile(r"\([^()]*[+*}][^()]*\)\s*[+*{]")


@dataclass
class TaskQuery:
    filter: dict[str, Any]
    sort: list[tuple[str, int]]
    skip: int
    limit: int
    only_fields: list[str] | None


def checked_pattern(pattern: str) -> str:
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise invalid_field(f"pattern longer than {MAX_PATTERN_LENGTH} characters")
    if NESTED_QUANTIFIER.search(pattern):
        raise invalid_field(f"pattern {pattern!r} has nested quantifiers and could run away")
    try:
        re.compile(pattern)
    except re.error as error:
        raise invalid_field(f"invalid pattern {pattern!r}: {error}") from None
    return pattern


def checked_field_name(name: str) -> str:
    if not FIELD_NAME.match(name):
        raise invalid_field(f"invalid field name {name!r}")
    return name


def membership(values: list[str]) -> Any:
    """Equality for one value, `$in` for several (the embedded server is faster with equality)."""
    return values[0] if len(values) == 1 else {"$in": values}


def list_field_filter(values: list[str]) -> dict[str, Any] | str:
    """ClearML tag semantics: any of the plain values, none of the `-`-prefixed ones."""
    include = [value for value in values if not value.startswith("-")]
    exclude = [value[1:] for value in values if value.startswith("-")]
    condition: dict[str, Any] = {}
    if include:
        condition["$in"] = include
    if exclude:
        condition["$nin"] = exclude
    if list(condition) == ["$in"] and len(include) == 1:
        return include[0]
    return condition


def build_task_query(body: dict[str, Any]) -> TaskQuery:
    query: dict[str, Any] = {}
    ids = optional_string_list(body, "id")
    if ids:
        query["_id"] = membership(ids)
    for field in ("status", "project", "type", "user"):
        values = optional_string_list(body, field)
        if values:
            query[field] = membership(values)
    queue = optional_string(body, "execution.queue")
    if queue:
        query["execution.queue"] = queue
    parent = optional_string(body, "parent")
    if parent:
        query["parent"] = parent
    name = optional_string(body, "name")
    if name:
        query["name"] = {"$regex": "(?i)" + checked_pattern(name)}
    for field in ("tags", "system_tags"):
        values = optional_string_list(body, field)
        if values:
            query[field] = list_field_filter(values)

    order_by = optional_string_list(body, "order_by") or []
    sort = []
    for key in order_by:
        descending = key.startswith("-")
        field = checked_field_name(key.lstrip("-"))
        sort.append(("_id" if field == "id" else field, -1 if descending else 1))

    page = optional_int(body, "page", minimum=0) or 0
    page_size = optional_int(body, "page_size", minimum=1) or MAX_PAGE_SIZE
    if page_size > MAX_PAGE_SIZE:
        raise invalid_field(f"page_size must be at most {MAX_PAGE_SIZE}")
    only_fields = optional_string_list(body, "only_fields")
    if only_fields:
        only_fields = [checked_field_name(field) for field in only_fields]
    return TaskQuery(query, sort, page * page_size, page_size, only_fields)


def task_from_view(document: dict[str, Any], only_fields: list[str] | None) -> dict[str, Any]:
    task = {"id": document["_id"]}
    task.update((key, value) for key, value in document.items() if not key.startswith("_"))
    if not only_fields:
        return task
    picked: dict[str, Any] = {"id": task["id"]}
    for path in only_fields:
        value = get_path(task, path, default=_MISSING)
        if value is not _MISSING:
            set_path(picked, path, value)
    return picked


_MISSING = object()


def find_tasks(collection: Collection, query: TaskQuery) -> list[dict[str, Any]]:
    cursor = collection.find(query.filter)
    if query.sort:
        cursor = cursor.sort(query.sort)
    cursor = cursor.skip(query.skip).limit(query.limit)
    return [task_from_view(document, query.only_fields) for document in cursor]


async def get_all(call: Call) -> dict[str, Any]:
    query = build_task_query(call.body)
    collection = call.views[task_view.COLLECTION]
    tasks = await asyncio.to_thread(find_tasks, collection, query)
    return {"tasks": tasks}


async def get_by_id(call: Call) -> dict[str, Any]:
    task_id = parse_task_id(required_string(call.body, "task")).hex
    task = await asyncio.to_thread(call.app.get_task, task_id)
    return {"task": {"id": task.task_id, **task.doc}}

