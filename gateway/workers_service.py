"""The `workers.*` service: register, unregister, status_report, get_all.

Registration changes are events on the Worker aggregate (domain/worker.py); heartbeats are soft
state (gateway/worker_reports.py explains why). Unknown request fields are ignored, as
clearml-server's agents send more than TaskTrail reads.

A status report that names the task the worker runs also refreshes that task's
`last_worker_report` (and `last_update`): a `Task.WorkerReported` event, recorded at most once per
TASKTRAIL_TASK_REPORT_INTERVAL seconds (default 10) per task, as decided from the aggregate's
own `last_worker_report`; heartbeats in between record nothing.

TaskTrail extensions: `workers.status_report` answers that task's `last_worker`,
`last_worker_report` and `last_update` (`task`) and whether this report recorded an event
(`task_updated`); `workers.register` answers `owned_tasks`, the tasks still in progress
under this worker id (a worker that restarts fails or re-attaches to them); `workers.get_all`
shows for each worker the queued tasks it leaves to others (`passed_over`, with the
requirements its environment lacks) and its `state`.
"""
from __future__ import annotations

import asyncio
import fnmatch
import time
from datetime import datetime, timezone
from typing import Any

from pymongo.database import Database

from domain.errors import TaskTrailError
from domain.status import TaskStatus
from domain.worker import Worker, WorkerNotRegistered, worker_key
from gateway import queue_work
from gateway.call import Call, Endpoint, settings_key
from gateway.group_commit import UnitOfWork
from gateway.request import optional_int, optional_string, optional_string_list, required_string
from gateway.worker_reports import WorkerReports
from projections import queue_view, task_view

DEFAULT_LAST_SEEN = 3600


# -- commands (run in the writer thread) ---------------------------------------------------------
def register_worker(work: UnitOfWork, name: str, actor: str, queues: list[str], tags: list[str],
                    system_tags: list[str], check_queues: bool = True) -> dict[str, Any]:
    if check_queues:
        for queue_id in queues:
            queue_work.get_queue(work, queue_id)
    worker = queue_work.find(work, worker_key(name))
    if isinstance(worker, Worker):
        worker.register(actor, queues, tags, system_tags)
    else:
        worker = Worker.register_new(name, actor, queues, tags, system_tags)
        work.add(worker)
    return {"version": worker.version, "register_time": worker.register_time, "user": worker.user}


def unregister_worker(work: UnitOfWork, name: str, actor: str) -> int:
    worker = queue_work.find(work, worker_key(name))
    if not isinstance(worker, Worker) or worker.state == "unregistered":
        raise WorkerNotRegistered(f"Worker is not registered: worker={name}")
    worker.unregister(actor)
    return worker.version


def lose_worker(work: UnitOfWork, name: str, actor: str, reason: str, message: str,
                last_report_time: str | None, candidates: list[str]) -> tuple[int, list[str]] | None:
    """Declare an active worker lost: its running tasks fail (or go back to their queue by policy)."""
    worker = queue_work.find(work, worker_key(name))
    if not isinstance(worker, Worker) or not worker.is_active:
        return None
    ended = []
    for task_id in dict.fromkeys(candidates):
        task = queue_work.find_task(work, task_id)
        if task is None or task.status != TaskStatus.in_progress or task.doc.get("last_worker") != name:
            continue
        queue = queue_work.find_queue(work, task.queue)
        task.fail(actor, reason=reason, message=message)
        if queue_work.worker_lost_policy(queue) == "requeue" and queue is not None and task_id not in queue:
            queue_work.requeue_at_front(work, task, queue, actor, reason=f"{reason}; re-queued by queue policy")
        ended.append(task_id)
    worker.lose(actor, reason, last_report_time, ended)
    return worker.version, ended


REPORTED_TASK_FIELDS = ("status", "last_worker", "last_worker_report", "last_update")


def report_due(last_report: str | None, now: datetime, interval: float) -> bool:
    """Whether a report at `now` should be recorded, given the task's last recorded report."""
    if not last_report:
        return True
    try:
        return (now - datetime.fromisoformat(last_report)).total_seconds() >= interval
    except ValueError:
        return True


def report_task_alive(work: UnitOfWork, task_id: str, worker: str, actor: str, interval: float,
                      now: datetime) -> dict[str, Any] | None:
    """A status report names `task_id`: if `worker` runs it and its last report is `interval`
    seconds old, record `WorkerReported`. Answers the task's report fields (None: no such task)."""
    task = queue_work.find_task(work, task_id)
    if task is None or task.is_deleted:
        return None
    if task.is_run_by(worker) and report_due(task.doc.get("last_worker_report"), now, interval):
        task.worker_reported(worker, actor)
    return {"id": task.task_id, **{key: task.doc.get(key) for key in REPORTED_TASK_FIELDS}}


# -- reading the views ---------------------------------------------------------------------------
def owned_tasks(views: Database, worker: str) -> list[str]:
    """Tasks the view shows in progress under this worker (its runs that never reported an end)."""
    query = {"status": TaskStatus.in_progress.value, "last_worker": worker}
    return [document["_id"] for document in views[task_view.COLLECTION].find(query, {"_id": 1})]


def tag_match(values: list[str], wanted: list[str] | None) -> bool:
    if not wanted:
        return True
    include = [tag for tag in wanted if not tag.startswith("-")]
    exclude = [tag[1:] for tag in wanted if tag.startswith("-")]
    return (not include or any(tag in values for tag in include)) and not any(tag in values for tag in exclude)


def running_time_ms(started: str | None) -> int | None:
    if not started:
        return None
    try:
        return max(0, int((time.time() - datetime.fromisoformat(started).timestamp()) * 1000))
    except ValueError:
        return None


def worker_entries(views: Database, reports: WorkerReports, body: dict[str, Any]) -> list[dict[str, Any]]:
    last_seen = optional_int(body, "last_seen")
    last_seen = DEFAULT_LAST_SEEN if last_seen is None else last_seen
    tags = optional_string_list(body, "tags")
    system_tags = optional_string_list(body, "system_tags")
    pattern = optional_string(body, "worker_pattern")
    cutoff = time.time() - last_seen if last_seen else None
    documents = [
        document for document in reports.active()
        if (cutoff is None or document.get("last_report_epoch", 0) >= cutoff)
        and tag_match(document.get("tags") or [], tags)
        and tag_match(document.get("system_tags") or [], system_tags)
        and (not pattern or fnmatch.fnmatchcase(document["_id"], pattern))
    ]
    queue_ids = {queue for document in documents for queue in (document.get("queues") or [])}
    queue_ids.update(document["queue"] for document in documents if document.get("queue"))
    queues = {queue_id: queue_view.api_document(document)
              for queue_id, document in by_id(views[queue_view.COLLECTION], queue_ids).items()}
    task_ids = {document["task"] for document in documents if document.get("task")}
    task_ids.update(queue["entries"][0]["task"] for queue in queues.values() if queue["entries"])
    tasks = by_id(views[task_view.COLLECTION], task_ids)
    return [worker_entry(document, queues, tasks) for document in documents]


def by_id(collection, ids: set[str]) -> dict[str, dict[str, Any]]:
    """Documents by id, one indexed lookup each (`$in` is slow on the embedded server)."""
    found = (collection.find_one({"_id": key}) for key in sorted(ids))
    return {document["_id"]: document for document in found if document is not None}


def worker_entry(document: dict[str, Any], queues: dict[str, dict], tasks: dict[str, dict]) -> dict[str, Any]:
    name = document["_id"]

    def queue_entry(queue_id: str) -> dict[str, Any]:
        queue = queues.get(queue_id) or {}
        entry: dict[str, Any] = {"id": queue_id, "name": queue.get("name"), "num_tasks": queue.get("num_entries", 0)}
        if queue.get("entries"):
            head = queue["entries"][0]["task"]
            entry["next_task"] = {"id": head, "name": (tasks.get(head) or {}).get("name")}
        return entry

    task = None
    if document.get("task"):
        known = tasks.get(document["task"]) or {}
        task = {"id": document["task"], "name": known.get("name"),
                "running_time": running_time_ms(known.get("started")), "last_iteration": known.get("last_iteration")}
    passed_over = [
        {"task": entry["task"], "queue": queue_id, "missing": waiting["missing"]}
        for queue_id in document.get("queues") or []
        for entry in (queues.get(queue_id) or {}).get("entries", [])
        for waiting in entry.get("waiting", []) if waiting["worker"] == name
    ]
    user = document.get("user") or ""
    return {
        "id": name,
        "key": f"worker_{user}_{name}",
        "user": {"id": user, "name": user},
        "company": {"id": "", "name": ""},
        "ip": document.get("ip", ""),
        "state": document.get("state"),
        "register_time": document.get("register_time"),
        "last_activity_time": document.get("last_activity_time"),
        "last_report_time": document.get("last_report_time"),
        "task": task,
        "queue": queue_entry(document["queue"]) if document.get("queue") else None,
        "queues": [queue_entry(queue_id) for queue_id in document.get("queues") or []],
        "tags": document.get("tags") or [],
        "system_tags": document.get("system_tags") or [],
        "machine_stats": document.get("machine_stats") or {},
        "passed_over": passed_over,
    }


# -- endpoints -----------------------------------------------------------------------------------
def reports_of(call: Call) -> WorkerReports:
    return WorkerReports(call.views)


def client_ip(call: Call) -> str:
    return call.request.remote or ""


async def register_and_record(call: Call, name: str, queues: list[str], tags: list[str],
                              system_tags: list[str], check_queues: bool = True) -> None:
    outcome = await call.writer.execute(
        lambda work: register_worker(work, name, call.actor, queues, tags, system_tags, check_queues))
    state = outcome.result
    await asyncio.to_thread(reports_of(call).registered, name, state["version"], queues, tags, system_tags,
                            state["register_time"], state["user"], client_ip(call))


async def register(call: Call) -> dict[str, Any]:
    name = required_string(call.body, "worker")
    queues = optional_string_list(call.body, "queues") or []
    tags = optional_string_list(call.body, "tags") or []
    system_tags = optional_string_list(call.body, "system_tags") or []
    optional_int(call.body, "timeout")  # accepted; TaskTrail's timeout is the monitor's (TASKTRAIL_WORKER_TIMEOUT)
    await register_and_record(call, name, queues, tags, system_tags)
    return {"owned_tasks": await asyncio.to_thread(owned_tasks, call.views, name)}


async def unregister(call: Call) -> dict[str, Any]:
    name = required_string(call.body, "worker")
    version = (await call.writer.execute(lambda work: unregister_worker(work, name, call.actor))).result
    await asyncio.to_thread(reports_of(call).unregistered, name, version)
    return {}


async def status_report(call: Call) -> dict[str, Any]:
    """A heartbeat: no Worker event (a worker without an active entry is registered again first);
    its running task's last_worker_report is refreshed at most once per interval."""
    name = required_string(call.body, "worker")
    optional_int(call.body, "timestamp")
    task = optional_string(call.body, "task") or None
    queue = optional_string(call.body, "queue") or None
    queues = optional_string_list(call.body, "queues")
    tags = optional_string_list(call.body, "tags")
    system_tags = optional_string_list(call.body, "system_tags")
    machine_stats = call.body.get("machine_stats") if isinstance(call.body.get("machine_stats"), dict) else None
    reports = reports_of(call)

    def report() -> bool:
        return reports.report(name, task, queue, queues, machine_stats, tags, system_tags, client_ip(call))

    if not await asyncio.to_thread(report):
        known = await asyncio.to_thread(reports.get, name) or {}
        await register_and_record(call, name, queues if queues is not None else known.get("queues") or [],
                                  tags if tags is not None else known.get("tags") or [],
                                  system_tags if system_tags is not None else known.get("system_tags") or [],
                                  check_queues=False)
        await asyncio.to_thread(report)
    return await refresh_running_task(call, name, task) if task else {}


async def refresh_running_task(call: Call, worker: str, task_id: str) -> dict[str, Any]:
    interval = call.request.app[settings_key].task_report_interval

    def command(work: UnitOfWork) -> dict[str, Any] | None:
        return report_task_alive(work, task_id, worker, call.actor, interval, datetime.now(timezone.utc))

    try:
        outcome = await call.writer.execute(command)
    except TaskTrailError:  # the task changed under another request at that moment: the next report tries again
        return {}
    if outcome.result is None:
        return {}
    return {"task": outcome.result, "task_updated": outcome.updated}


async def get_all(call: Call) -> dict[str, Any]:
    return {"workers": await asyncio.to_thread(worker_entries, call.views, reports_of(call), call.body)}


async def get_count(call: Call) -> dict[str, Any]:
    return {"count": len(await asyncio.to_thread(worker_entries, call.views, reports_of(call), call.body))}


WORKERS: dict[str, Endpoint] = {
    "workers.register": register,
    "workers.unregister": unregister,
    "workers.status_report": status_report,
    "workers.get_all": get_all,
    "workers.get_count": get_count,
}
