"""The `tasks` view: one MongoDB document per task, equal to the aggregate's document.

Each update is conditional on the view's `_version` (the aggregate version it reflects), so a
redelivered or replayed event changes nothing.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import mongoengine
from pymongo import UpdateOne

from domain.task import Task

VERSION_FIELD = "_version"
COLLECTION = "tasks"


class TaskView(mongoengine.DynamicDocument):
    """Schema and indexes of the tasks view; documents are written by the projector only."""

    id = mongoengine.StringField(primary_key=True)
    meta = {
        "collection": COLLECTION,
        "auto_create_index": False,
        # Single-field indexes on equality filters and (field, last_update) for the common sort.
        # Never an index on an array field: the embedded server then misses array members.
        "indexes": [
            "status",
            "project",
            "type",
            "user",
            "parent",
            "execution.queue",
            ("status", "-last_update"),
            ("project", "-last_update"),
            "-last_update",
        ],
    }


def task_view_update(event: Task.Event) -> UpdateOne:
    """The view update that records one task event, idempotent by aggregate version."""
    task_id = event.originator_id.hex
    version = event.originator_version
    changes: dict[str, Any] = {**event.changes(), VERSION_FIELD: version}
    if isinstance(event, Task.Created):
        return UpdateOne({"_id": task_id}, {"$setOnInsert": changes}, upsert=True)
    return UpdateOne({"_id": task_id, VERSION_FIELD: {"$lt": version}}, {"$set": changes})


def updates(events: Iterable[Any]) -> list[UpdateOne]:
    return [task_view_update(event) for event in events if isinstance(event, Task.Event)]
