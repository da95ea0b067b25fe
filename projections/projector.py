"""The projector process: follows the event log and keeps the MongoDB views up to date."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from eventsourcing.persistence import Notification
from pymongo.database import Database

from projections.positions import PositionStore
from projections.task_view import TaskView, task_view_updates
from tasktrail.application import TaskTrail

log = logging.getLogger(__name__)


class Projector:
    """Applies batches of notifications to the views, then records the position reached."""

    name = "task_view"

    def __init__(self, app: TaskTrail, database: Database) -> None:
        self.app = app
        self.tasks = database[TaskView._get_collection_name()]
        self.positions = PositionStore(database, self.name)

    def load_position(self) -> int:
        return self.positions.load()

    def apply(self, notifications: Sequence[Notification]) -> None:
        events = [self.app.mapper.to_domain_event(notification) for notification in notifications]
        updates = task_view_updates(events)
        if updates:
            self.tasks.bulk_write(updates, ordered=True)
        self.positions.save(notifications[-1].id)
        log.debug("projected up to %s", notifications[-1].id)
