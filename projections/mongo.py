"""The MongoDB connection (mongoengine), shared by the projector and the gateway's queries."""
from __future__ import annotations

import mongoengine
from pymongo.database import Database

from projections.project_view import ProjectView
from projections.queue_view import QueueView
from projections.task_log_view import TaskLogView
from projections.task_view import TaskView
from projections.worker_view import WorkerView


def connect(uri: str, database: str) -> Database:
    """Connect mongoengine's default alias and make sure the views' indexes exist."""
    mongoengine.disconnect()
    mongoengine.connect(db=database, host=uri, tz_aware=True, uuidRepresentation="standard")
    TaskView.ensure_indexes()
    ProjectView.ensure_indexes()
    QueueView.ensure_indexes()
    WorkerView.ensure_indexes()
    TaskLogView.ensure_indexes()
    return mongoengine.get_db()


def disconnect() -> None:
    mongoengine.disconnect()
