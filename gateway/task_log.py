"""`events.get_task_log`: a task's console output, read from the task_logs view.

As clearml-server (API 2.9+): `task`, `batch_size` (default 500), `navigate_earlier` (default
true: the newest lines first, then earlier ones), `from_timestamp` (continue after this line
time, in milliseconds, exclusive; 0 is none) and `order` (`asc`/`desc`, to turn the page around). Lines
are ordered by their timestamp, then by the order they were recorded in. As clearml-server does,
every line with the same timestamp as the last one returned comes in the same page, so paging by
`from_timestamp` never skips a line. The answer is {events, returned, total}.
"""
from __future__ import annotations

import asyncio
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection
from pymongo.database import Database

from domain.task import parse_task_id
from gateway.call import Call, Endpoint
from gateway.errors import invalid_field
from gateway.request import optional_bool, optional_int, optional_string, required_string
from projections import task_log_view, task_view
from tasktrail.application import TaskTrail

DEFAULT_BATCH_SIZE = 500
MAX_BATCH_SIZE = 10_000


def read_lines(collection: Collection, task_id: str, batch_size: int, earlier: bool,
               from_timestamp: int | None) -> list[dict[str, Any]]:
    """One page of the task's lines, in navigation order (newest first when `earlier`).

    Batches are read in order of their newest (or oldest) line and reading stops once no further
    batch can hold a line of this page, so a page of a long log does not read all of it.
    """
    query: dict[str, Any] = {"task": task_id}
    if from_timestamp is not None:
        query["min_ts" if earlier else "max_ts"] = {"$lt" if earlier else "$gt": from_timestamp}
    bound, direction = ("max_ts", DESCENDING) if earlier else ("min_ts", ASCENDING)
    picked: list[tuple[int, int, int, dict[str, Any]]] = []
    for document in collection.find(query).sort(bound, direction):
        if len(picked) >= batch_size:
            picked.sort(key=lambda item: item[:3], reverse=earlier)
            cutoff = picked[batch_size - 1][0]
            if (document[bound] < cutoff) if earlier else (document[bound] > cutoff):
                break
        for index, line in enumerate(document.get("lines") or []):
            moment = line["timestamp"]
            if from_timestamp is None or (moment < from_timestamp if earlier else moment > from_timestamp):
                picked.append((moment, document["version"], index, line))
    picked.sort(key=lambda item: item[:3], reverse=earlier)
    end = min(batch_size, len(picked))
    while 0 < end < len(picked) and picked[end][0] == picked[end - 1][0]:
        end += 1
    return [line for *_, line in picked[:end]]


def total_lines(collection: Collection, task_id: str) -> int:
    return sum(document.get("count", 0) for document in collection.find({"task": task_id}, {"count": 1}))


def check_task(views: Database, app: TaskTrail, task_id: str) -> None:
    """The task must exist: the view knows it, or (just created) the event store does."""
    parse_task_id(task_id)
    if views[task_view.COLLECTION].find_one({"_id": task_id}, {"_id": 1}) is not None:
        return
    app.get_task(task_id).check_exists()


def log_event(task_id: str, line: dict[str, Any]) -> dict[str, Any]:
    return {"type": "log", "task": task_id, "timestamp": line["timestamp"], "level": line.get("level"),
            "worker": line.get("worker"), "msg": line.get("msg", "")}


def task_log(views: Database, app: TaskTrail, task_id: str, batch_size: int, earlier: bool,
             from_timestamp: int | None, order: str) -> dict[str, Any]:
    check_task(views, app, task_id)
    collection = views[task_log_view.COLLECTION]
    lines = read_lines(collection, task_id, batch_size, earlier, from_timestamp)
    if (earlier and order == "asc") or (not earlier and order == "desc"):
        lines.reverse()
    events = [log_event(task_id, line) for line in lines]
    return {"events": events, "returned": len(events), "total": total_lines(collection, task_id)}


async def get_task_log(call: Call) -> dict[str, Any]:
    task_id = required_string(call.body, "task")
    batch_size = optional_int(call.body, "batch_size", minimum=1)
    batch_size = min(batch_size or DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE)
    earlier = optional_bool(call.body, "navigate_earlier", default=True)
    from_timestamp = optional_int(call.body, "from_timestamp")
    order = optional_string(call.body, "order")
    if order not in ("", "asc", "desc"):
        raise invalid_field("order must be asc or desc")
    return await asyncio.to_thread(task_log, call.views, call.app, task_id, batch_size, earlier,
                                   from_timestamp or None, order)


ENDPOINTS: dict[str, Endpoint] = {
    "events.get_task_log": get_task_log,
}
