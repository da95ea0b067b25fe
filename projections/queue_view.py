"""The `queues` view: one MongoDB document per queue, its entries in order.

The document keeps the order as an array of task ids (`order`) and the entries' details in maps
keyed by task id (`added`, `waiting`): array operators on plain strings ($push with $position,
$pull) behave the same on MongoDB and on the embedded nx-27017, which mangles sub-documents pushed
into arrays. Every update is conditional on the view's `_version` (the queue's version), so a
replayed event changes nothing; a move is a $pull then a $push (MongoDB refuses both on one field
in one update), both guarded, so a crash between the two is repaired by the replay.
A deleted queue stays as a tombstone (`active: false`).
"""
from __future__ import annotations

from collections.abc import Iterable
from functools import singledispatch
from typing import Any

import mongoengine
from pymongo import UpdateOne

from domain.queue import Queue

VERSION_FIELD = "_version"
ACTIVE_FIELD = "active"
COLLECTION = "queues"


class QueueView(mongoengine.DynamicDocument):
    """Schema and indexes of the queues view; documents are written by the projector only."""

    id = mongoengine.StringField(primary_key=True)
    meta = {
        "collection": COLLECTION,
        "auto_create_index": False,
        "indexes": ["name", ACTIVE_FIELD],  # never an index on an array field (see nx-27017 notes)
    }


def field_key(text: str) -> str:
    """A worker id as a MongoDB field name (no '.', no leading '$')."""
    return text.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def from_field_key(key: str) -> str:
    return key.replace("%24", "$").replace("%2E", ".").replace("%25", "%")


def _guarded(event: Queue.Event, update: dict[str, Any], set_version: bool = True) -> UpdateOne:
    version = event.originator_version
    update = {key: dict(value) for key, value in update.items()}
    fields = update.setdefault("$set", {})
    fields["last_update"] = event.at
    if set_version:
        fields[VERSION_FIELD] = version
    else:
        del update["$set"]
    return UpdateOne({"_id": event.originator_id.hex, VERSION_FIELD: {"$lt": version}}, update)


def _leaving(event: Queue.TaskTaken | Queue.TaskRemoved) -> list[UpdateOne]:
    return [_guarded(event, {
        "$pull": {"order": event.task},
        "$unset": {f"added.{event.task}": "", f"waiting.{event.task}": ""},
    })]


@singledispatch
def view_updates(event: Any) -> list[UpdateOne]:
    return []


@view_updates.register
def _(event: Queue.Created) -> list[UpdateOne]:
    document = {
        "name": event.name,
        "user": event.actor,
        "created": event.at,
        "last_update": event.at,
        "tags": list(event.tags),
        "system_tags": list(event.system_tags),
        "metadata": dict(event.metadata),
        "order": [],
        "added": {},
        "waiting": {},
        ACTIVE_FIELD: True,
        VERSION_FIELD: event.originator_version,
    }
    return [UpdateOne({"_id": event.originator_id.hex}, {"$setOnInsert": document}, upsert=True)]


@view_updates.register
def _(event: Queue.Updated) -> list[UpdateOne]:
    return [_guarded(event, {"$set": dict(event.fields)})]


@view_updates.register
def _(event: Queue.TaskAdded) -> list[UpdateOne]:
    push: Any = event.task if event.position is None else {"$each": [event.task], "$position": event.position}
    return [_guarded(event, {"$push": {"order": push}, "$set": {f"added.{event.task}": event.at}})]


view_updates.register(Queue.TaskTaken, _leaving)
view_updates.register(Queue.TaskRemoved, _leaving)


@view_updates.register
def _(event: Queue.TaskMoved) -> list[UpdateOne]:
    return [
        _guarded(event, {"$pull": {"order": event.task}}, set_version=False),
        _guarded(event, {"$push": {"order": {"$each": [event.task], "$position": event.position}}}),
    ]


@view_updates.register
def _(event: Queue.TaskPassedOver) -> list[UpdateOne]:
    path = f"waiting.{event.task}.{field_key(event.worker)}"
    return [_guarded(event, {"$set": {path: list(event.missing)}})]


@view_updates.register
def _(event: Queue.Cleared) -> list[UpdateOne]:
    return [_guarded(event, {"$set": {"order": [], "added": {}, "waiting": {}}})]


@view_updates.register
def _(event: Queue.Deleted) -> list[UpdateOne]:
    return [_guarded(event, {"$set": {"order": [], "added": {}, "waiting": {}, ACTIVE_FIELD: False}})]


def updates(events: Iterable[Any]) -> list[UpdateOne]:
    return [update for event in events if isinstance(event, Queue.Event) for update in view_updates(event)]


def api_document(document: dict[str, Any], max_entries: int | None = None) -> dict[str, Any]:
    """A view document as `queues.get_all` answers it: entries in order, with why a task waits."""
    order = document.get("order") or []
    added = document.get("added") or {}
    waiting = document.get("waiting") or {}
    entries = []
    for task in order if max_entries is None else order[:max_entries]:
        entry: dict[str, Any] = {"task": task, "added": added.get(task)}
        if waiting.get(task):
            entry["waiting"] = [{"worker": from_field_key(key), "missing": missing}
                                for key, missing in waiting[task].items()]
        entries.append(entry)
    return {
        "id": document["_id"],
        "name": document.get("name"),
        "user": document.get("user"),
        "created": document.get("created"),
        "last_update": document.get("last_update"),
        "tags": document.get("tags") or [],
        "system_tags": document.get("system_tags") or [],
        "metadata": document.get("metadata") or {},
        "entries": entries,
        "num_entries": len(order),
    }
