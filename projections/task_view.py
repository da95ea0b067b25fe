"""The `tasks` view: one MongoDB document per task, equal to the aggregate's document.

Each update is conditional on the view's `_version` (the aggregate version it reflects), so a
redelivered or replayed event changes nothing. A deleted task's document is dropped (its history
stays in the event log); nothing follows a `Deleted` event of the same task.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import mongoengine
from pymongo import DeleteOne, UpdateOne

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


def task_view_update(event: Task.Event) -> UpdateOne | DeleteOne:
    """The view update that records one task event, idempotent by aggregate version."""
    task_id = event.originator_id.hex
    version = event.originator_version
    if isinstance(event, Task.Deleted):
        return DeleteOne({"_id": task_id})
    changes: dict[str, Any] = {**event.document_changes(), VERSION_FIELD: version}
    if isinstance(event, Task.Created):
        return UpdateOne({"_id": task_id}, {"$setOnInsert": changes}, upsert=True)
    return UpdateOne({"_id": task_id, VERSION_FIELD: {"$lt": version}}, {"$set": changes})


def updates(events: Iterable[Any]) -> list[UpdateOne | DeleteOne]:
    return [task_view_update(event) for event in events if isinstance(event, Task.Event)]
