"""The projector process's core: applies batches of events to every view, then records the position.

Each view module offers `COLLECTION` and `updates(events)`; its updates are idempotent (guarded
by the aggregate version), so a batch replayed after a crash changes nothing.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from types import ModuleType

from eventsourcing.persistence import Notification
from pymongo.database import Database

from projections import project_view, queue_view, task_log_view, task_view, worker_view
from projections.positions import PositionStore
from tasktrail.application import TaskTrail

log = logging.getLogger(__name__)

VIEWS: list[ModuleType] = [task_view, project_view, queue_view, worker_view, task_log_view]


class Projector:
    name = "views"

    def __init__(self, app: TaskTrail, database: Database) -> None:
        self.app = app
        self.database = database
        self.positions = PositionStore(database, self.name)

    def load_position(self) -> int:
        return self.positions.load()

    def apply(self, notifications: Sequence[Notification]) -> None:
        events = [self.app.mapper.to_domain_event(notification) for notification in notifications]
        for view in VIEWS:
            updates = view.updates(events)
            if updates:
                self.database[view.COLLECTION].bulk_write(updates, ordered=True)
        self.positions.save(notifications[-1].id)
