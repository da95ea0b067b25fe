"""The `projects` view: one MongoDB document per project, equal to the aggregate's document.

Updates are conditional on the view's `_version`, so a redelivered or replayed event changes
nothing (as in the tasks view). Name reservations are not shown here.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import mongoengine
from pymongo import UpdateOne

from domain.project import Project

VERSION_FIELD = "_version"
COLLECTION = "projects"


class ProjectView(mongoengine.DynamicDocument):
    """Schema and indexes of the projects view; documents are written by the projector only."""

    id = mongoengine.StringField(primary_key=True)
    meta = {
        "collection": COLLECTION,
        "auto_create_index": False,
        "indexes": ["name", "user", "-last_update"],
    }


def project_view_update(event: Project.Event) -> UpdateOne:
    project_id = event.originator_id.hex
    version = event.originator_version
    changes: dict[str, Any] = {**event.changes(), VERSION_FIELD: version}
    if isinstance(event, Project.Created):
        return UpdateOne({"_id": project_id}, {"$setOnInsert": changes}, upsert=True)
    return UpdateOne({"_id": project_id, VERSION_FIELD: {"$lt": version}}, {"$set": changes})


def updates(events: Iterable[Any]) -> list[UpdateOne]:
    return [project_view_update(event) for event in events if isinstance(event, Project.Event)]
