"""The `task_logs` view: a task's console output, one MongoDB document per `Task.LogReported` event.

Each document is keyed by (task id, aggregate version), so a redelivered or replayed event
inserts nothing new (`$setOnInsert` on that id). It holds the event's lines in order and the
range of their timestamps (`min_ts`, `max_ts`, milliseconds), which lets `events.get_task_log`
page through a long log newest first without reading all of it. As clearml-server drops a
task's events when the task is reset or deleted, a `Reset` removes the task's earlier batches
and a `Deleted` all of them; both are guarded by version, so replays give the same view.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import mongoengine
from pymongo import DeleteMany, UpdateOne

from domain.task import Task

COLLECTION = "task_logs"


class TaskLogView(mongoengine.DynamicDocument):
    """Schema and indexes of the task_logs view; documents are written by the projector only."""

    id = mongoengine.StringField(primary_key=True)
    meta = {
        "collection": COLLECTION,
        "auto_create_index": False,
        "indexes": ["task", ("task", "-max_ts"), ("task", "min_ts")],
    }


def batch_id(task_id: str, version: int) -> str:
    """The document id of one log batch: sortable by version within a task."""
    return f"{task_id}:{version:012d}"


def log_batch_document(event: Task.LogReported) -> dict[str, Any]:
    timestamps = [line["timestamp"] for line in event.lines]
    return {
        "task": event.originator_id.hex,
        "version": event.originator_version,
        "reported": event.at,
        "lines": [dict(line) for line in event.lines],
        "count": len(event.lines),
        "min_ts": min(timestamps),
        "max_ts": max(timestamps),
    }


def task_log_update(event: Task.Event) -> UpdateOne | DeleteMany | None:
    task_id = event.originator_id.hex
    if isinstance(event, Task.LogReported):
        if not event.lines:
            return None
        document = log_batch_document(event)
        return UpdateOne({"_id": batch_id(task_id, event.originator_version)}, {"$setOnInsert": document}, upsert=True)
    if isinstance(event, Task.Reset):
        return DeleteMany({"task": task_id, "version": {"$lt": event.originator_version}})
    if isinstance(event, Task.Deleted):
        return DeleteMany({"task": task_id})
    return None


def updates(events: Iterable[Any]) -> list[UpdateOne | DeleteMany]:
    found = (task_log_update(event) for event in events if isinstance(event, Task.Event))
    return [update for update in found if update is not None]
