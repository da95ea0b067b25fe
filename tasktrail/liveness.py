"""`tasktrail monitor`: declares workers that stopped reporting lost, and ends their runs, as events.

Every few seconds it looks at the workers' heartbeats (gateway/worker_reports.py). A worker
whose last `workers.status_report` is older than the timeout (TASKTRAIL_WORKER_TIMEOUT seconds,
default 30) is declared lost in one transaction: the Worker aggregate records `Lost`, and each
task still in progress under it fails with a reason naming the worker (or, when its queue's
metadata says `on_worker_lost: requeue`, goes back to the front of that queue).

The monitor writes to the event store itself, through its own group-commit writer (as the
gateway does), and announces its commits on NATS so the relay and the projector follow at once.
Nothing breaks if two monitors run: the second finds the worker already lost and does nothing.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import nats
from pymongo.database import Database

from gateway.group_commit import GroupCommitWriter
from gateway.worker_reports import WorkerReports, iso_epoch
from gateway.workers_service import lose_worker, owned_tasks
from projections import mongo
from tasktrail.application import TaskTrail
from tasktrail.config import Settings

log = logging.getLogger(__name__)

ACTOR = "tasktrail-monitor"
DEFAULT_TIMEOUT = 30.0


def worker_timeout() -> float:
    return float(os.environ.get("TASKTRAIL_WORKER_TIMEOUT") or DEFAULT_TIMEOUT)


class LivenessMonitor:
    def __init__(self, writer: GroupCommitWriter, views: Database, timeout: float, clock=time.time) -> None:
        self.writer = writer
        self.views = views
        self.reports = WorkerReports(views, clock)
        self.timeout = timeout
        self.clock = clock

    @property
    def interval(self) -> float:
        return max(0.1, min(self.timeout / 4, 5.0))

    async def sweep(self) -> list[str]:
        """Declare every silent worker lost; answer their names."""
        cutoff = self.clock() - self.timeout
        silent = await asyncio.to_thread(self.reports.silent_since, cutoff)
        lost = []
        for report in silent:
            if await self.declare_lost(report):
                lost.append(report["_id"])
        return lost

    async def declare_lost(self, report: dict[str, Any]) -> bool:
        name = report["_id"]
        last_seen = report.get("last_report_epoch")
        silence = self.clock() - last_seen if last_seen else self.timeout
        reason = f"worker {name} vanished"
        last_time = iso_epoch(last_seen) if last_seen else None
        message = f"no status report from worker {name} for {silence:.1f}s (timeout {self.timeout:g}s)"
        candidates = await asyncio.to_thread(owned_tasks, self.views, name)
        if report.get("task"):
            candidates.append(report["task"])

        def command(work):
            return lose_worker(work, name, ACTOR, reason, message, last_time, candidates)

        outcome = await self.writer.execute(command)
        if outcome.result is None:
            return False
        version, ended = outcome.result
        await asyncio.to_thread(self.reports.lost, name, version, message)
        log.warning("%s: %s; runs ended: %s", reason, message, ", ".join(ended) or "none")
        return True

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.sweep()
            except Exception:  # a failed sweep (store or Mongo unreachable) is retried next time
                log.exception("liveness sweep failed")
            try:
                await asyncio.wait_for(stopping.wait(), self.interval)
            except asyncio.TimeoutError:
                pass


async def run_monitor(settings: Settings, stopping: asyncio.Event) -> None:
    app = await asyncio.to_thread(TaskTrail, settings.event_store_env)
    views = await asyncio.to_thread(mongo.connect, settings.mongodb_uri, settings.mongodb_database)
    nc = await nats.connect(settings.nats_url, name="tasktrail-monitor", max_reconnect_attempts=-1)
    loop = asyncio.get_running_loop()

    def announce_commit() -> None:
        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(nc.publish(settings.subjects.log_appended, b"")))

    writer = GroupCommitWriter(app, on_commit=announce_commit)
    writer.start()
    monitor = LivenessMonitor(writer, views, worker_timeout())
    log.info("liveness monitor: workers silent for %gs are lost (checked every %.1fs)",
             monitor.timeout, monitor.interval)
    try:
        await monitor.run(stopping)
    finally:
        await asyncio.to_thread(writer.close)
        await nc.drain()
        mongo.disconnect()
        app.close()
