"""The `workers` view: the worker registry as the log tells it (registrations, exits, losses).

Heartbeats are not here: they are soft state (gateway/worker_reports.py). This view answers
"which workers were there, which were lost, and which task runs ended with them", and like every
view it can be rebuilt from the log. Updates are guarded by the Worker aggregate's version.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import mongoengine
from pymongo import UpdateOne

from domain.worker import LOST, UNREGISTERED, Worker

VERSION_FIELD = "_version"
COLLECTION = "workers"


class WorkerView(mongoengine.DynamicDocument):
    id = mongoengine.StringField(primary_key=True)
    meta = {"collection": COLLECTION, "auto_create_index": False, "indexes": ["state"]}


def worker_view_update(event: Worker.Event) -> UpdateOne:
    version = event.originator_version
    key = event.originator_id.hex
    if isinstance(event, Worker.Registered):
        fields: dict[str, Any] = {
            "state": "active",
            "queues": list(event.queues),
            "tags": list(event.tags),
            "system_tags": list(event.system_tags),
            "register_time": event.at,
            "user": event.actor,
        }
    elif isinstance(event, Worker.Lost):
        fields = {"state": LOST, "lost": {"at": event.at, "reason": event.reason,
                                          "last_report_time": event.last_report_time, "tasks": list(event.tasks)}}
    else:
        fields = {"state": UNREGISTERED, "unregistered": event.at}
    fields[VERSION_FIELD] = version
    if isinstance(event, Worker.Created):
        return UpdateOne({"_id": key}, {"$setOnInsert": {**fields, "worker": event.worker}}, upsert=True)
    return UpdateOne({"_id": key, VERSION_FIELD: {"$lt": version}}, {"$set": fields})


def updates(events: Iterable[Any]) -> list[UpdateOne]:
    return [worker_view_update(event) for event in events if isinstance(event, Worker.Event)]
