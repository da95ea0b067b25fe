"""Worker heartbeats: soft state kept in MongoDB beside the views, deliberately not in the log.

`workers.status_report` arrives every few seconds from every worker. Recording each as an event
would make heartbeats most of the log while telling an audit nothing but "still alive"; so a
report only updates this collection (one conditional update, no event), and what matters is
recorded as events on the Worker aggregate: registered, unregistered, and lost (written by the
liveness monitor when reports stop). Losing this collection loses nothing that must be kept:
a worker whose next report finds no active entry is registered again (an event), and the
monitor only judges workers it has entries for. The one trace a report leaves in the log is on
the task it runs: its `last_worker_report`, refreshed by a `Task.WorkerReported` event at most
once per TASKTRAIL_TASK_REPORT_INTERVAL (gateway/workers_service.py).

Each document: the worker id, its state (mirroring the aggregate, guarded by its `version`),
queues, tags, the time of the last report (ISO text for the API, epoch seconds for the
monitor), the task and queue it reports, and its machine stats.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from domain.worker import ACTIVE, LOST, UNREGISTERED

COLLECTION = "worker_reports"


def iso_epoch(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="microseconds")


class WorkerReports:
    def __init__(self, database: Database, clock=time.time) -> None:
        self.collection = database[COLLECTION]
        self.clock = clock

    # -- state changes that follow the Worker aggregate's events -----------------------------------
    def registered(self, worker: str, version: int, queues: list[str], tags: list[str],
                   system_tags: list[str], register_time: str, user: str, ip: str = "") -> None:
        now = self.clock()
        self._change_state(worker, version, {
            "state": ACTIVE,
            "queues": list(queues),
            "tags": list(tags),
            "system_tags": list(system_tags),
            "register_time": register_time,
            "user": user,
            "ip": ip,
            "last_activity_time": iso_epoch(now),
            "last_report_time": iso_epoch(now),
            "last_report_epoch": now,
            "task": None,
            "queue": None,
        })

    def unregistered(self, worker: str, version: int) -> None:
        self._change_state(worker, version, {"state": UNREGISTERED, "task": None})

    def lost(self, worker: str, version: int, reason: str) -> None:
        self._change_state(worker, version, {"state": LOST, "lost_reason": reason, "task": None})

    def _change_state(self, worker: str, version: int, fields: dict[str, Any]) -> None:
        """Apply a state change unless a later one (higher aggregate version) is already there."""
        fields = {**fields, "worker": worker, "version": version}
        if self.collection.find_one({"_id": worker}, {"version": 1}) is None:
            try:
                self.collection.insert_one({"_id": worker, **fields})
                return
            except DuplicateKeyError:
                pass
        self.collection.update_one({"_id": worker, "version": {"$lt": version}}, {"$set": fields})

    # -- heartbeats ----------------------------------------------------------------------------
    def report(self, worker: str, task: str | None, queue: str | None, queues: list[str] | None = None,
               machine_stats: dict[str, Any] | None = None, tags: list[str] | None = None,
               system_tags: list[str] | None = None, ip: str = "") -> bool:
        """Record a heartbeat of an active worker; False when the worker has no active entry."""
        now = self.clock()
        fields: dict[str, Any] = {
            "last_activity_time": iso_epoch(now),
            "last_report_time": iso_epoch(now),
            "last_report_epoch": now,
            "task": task,
            "queue": queue,
            "machine_stats": machine_stats or {},
        }
        if ip:
            fields["ip"] = ip
        for key, value in (("queues", queues), ("tags", tags), ("system_tags", system_tags)):
            if value is not None:
                fields[key] = list(value)
        result = self.collection.update_one({"_id": worker, "state": ACTIVE}, {"$set": fields})
        return result.matched_count > 0

    # -- reading -------------------------------------------------------------------------------
    def active(self) -> list[dict[str, Any]]:
        return list(self.collection.find({"state": ACTIVE}))

    def get(self, worker: str) -> dict[str, Any] | None:
        return self.collection.find_one({"_id": worker})

    def silent_since(self, cutoff: float) -> list[dict[str, Any]]:
        """Active workers whose last report is older than `cutoff` (epoch seconds)."""
        return [document for document in self.active() if document.get("last_report_epoch", 0) < cutoff]
