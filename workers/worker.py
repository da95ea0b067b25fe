"""`tasktrail worker --queue A [--queue B ...]`: sleeps on NATS, claims a task, runs it, reports back.

- Needs only the gateway URL and credentials: the NATS address and namespace come from the
  gateway's /health (NATS_URL overrides the address).
- Queues are served in priority order: after every wake-up and every finished task the worker
  asks `queues.get_next_task` of each queue in turn, with its name (so the pop and the claim
  are one transaction) and the names of its environment variables (so it is never handed a
  task whose requirements it does not meet). Idle, it waits on NATS for a `Queue.TaskAdded`
  event of one of its queues; there is no polling loop.
- It registers, and heartbeats with `workers.status_report`; a worker that stops reporting is
  declared lost by the liveness monitor (tasktrail/liveness.py), which fails its task.
- The task's output is read line by line: sent as `log` events (`events.add_batch`) and its
  tail kept for the status message of a failed run.
- `tasks.stop` reaches it as a `Task.StopRequested` event: the child's process group is
  terminated at once and the task reported stopped. The heartbeat also checks the task, so a
  run taken away (failed by the monitor, reset) is stopped too, and a missed stop is caught.
- SIGTERM drains: no new task is claimed; the running one may finish within the drain time
  (TASKTRAIL_WORKER_DRAIN_SECONDS), else it is stopped and put back at the front of its queue.
- On start, tasks the gateway still shows in progress under this worker's name (a previous
  process crashed) are failed, and a process group that process left behind is killed.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import nats
import orjson

from domain.requirements import VARIABLE_NAME
from tasktrail.config import Subjects
from workers.api_client import ApiCallError, ApiClient
from workers.job_process import JobProcess, kill_leftover_group

log = logging.getLogger(__name__)

DEFAULT_WORKER_TIMEOUT = 30.0
QUEUE_ID = re.compile(r"^[0-9a-f]{32}$")
LOG_FLUSH_SECONDS = 0.5
LOG_BATCH_LINES = 500
TAIL_LINES = 20
TAIL_CHARS = 500
CONFLICT_SUBCODE = 110  # the queue or task changed under another request: ask again
CONFLICT_RETRIES = 10
REPORT_PATIENCE_SECONDS = 120.0
MAX_PENDING_LINES = 10_000
QUEUE_GONE_SUBCODE = 701


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_timeout() -> float:
    return float(os.environ.get("TASKTRAIL_WORKER_TIMEOUT") or DEFAULT_WORKER_TIMEOUT)


def heartbeat_interval() -> float:
    """Several reports per liveness timeout, so one slow report does not make a worker look lost."""
    configured = os.environ.get("TASKTRAIL_WORKER_HEARTBEAT")
    return float(configured) if configured else max(0.2, min(worker_timeout() / 4, 10.0))


def drain_seconds() -> float:
    return float(os.environ.get("TASKTRAIL_WORKER_DRAIN_SECONDS") or 5.0)


def environment_names() -> list[str]:
    """The variables a task may require of this worker (only names that a requirement can name)."""
    return sorted(name for name in os.environ if VARIABLE_NAME.match(name))


def machine_stats() -> dict[str, Any]:
    stats: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError, IndexError):
        load = float(Path("/proc/loadavg").read_text().split()[0])
        stats["cpu_usage"] = [round(100.0 * load / (os.cpu_count() or 1), 1)]
    with contextlib.suppress(OSError, ValueError):
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        total = int(info["MemTotal"].split()[0]) // 1024
        free = int(info["MemAvailable"].split()[0]) // 1024
        stats.update(memory_used=total - free, memory_free=free)
    return stats


class StateFile:
    """Where a worker notes the process group of its running task, for its next start to clean up."""

    def __init__(self, name: str) -> None:
        folder = Path(os.environ.get("TASKTRAIL_WORKER_STATE_DIR")
                      or Path(os.environ.get("TASKTRAIL_DATA_DIR", ".tasktrail")) / "workers")
        self.path = folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".json")

    def save(self, task_id: str, pgid: int) -> None:
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(orjson.dumps({"task": task_id, "pgid": pgid}))

    def clear(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()

    def leftover(self) -> dict[str, Any] | None:
        try:
            return orjson.loads(self.path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None


async def post_batch(api: ApiClient, endpoint: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """A call whose body is a JSON list (events.add_batch), with the client's token handling."""
    if api.token is None:
        await api.login()
    try:
        return await api._post(endpoint, items, api._bearer())  # type: ignore[arg-type]
    except ApiCallError as error:
        if error.code != 401:
            raise
    await api.login()
    return await api._post(endpoint, items, api._bearer())  # type: ignore[arg-type]


class TaskOutput:
    """A running task's output: shipped as `log` events in batches, its tail kept."""

    def __init__(self, api: ApiClient, task_id: str, worker: str, enabled: bool) -> None:
        self.api = api
        self.task_id = task_id
        self.worker = worker
        self.enabled = enabled
        self.pending: list[dict[str, Any]] = []
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)

    def add(self, stream: str, line: str) -> None:
        self.tail.append(line)
        if self.enabled:
            if len(self.pending) >= MAX_PENDING_LINES:  # the gateway is not taking them: keep the newest
                del self.pending[: MAX_PENDING_LINES // 10]
            self.pending.append({"type": "log", "task": self.task_id, "timestamp": int(time.time() * 1000),
                                 "level": "error" if stream == "stderr" else "info", "worker": self.worker,
                                 "msg": line})

    async def flush(self) -> bool:
        """Send what is pending; False when the gateway has no events service (stop sending)."""
        while self.pending and self.enabled:
            batch, self.pending = self.pending[:LOG_BATCH_LINES], self.pending[LOG_BATCH_LINES:]
            try:
                await post_batch(self.api, "events.add_batch", batch)
            except ApiCallError as error:
                if error.code == 404:
                    self.enabled = False
                    self.pending.clear()
                    return False
                log.warning("could not send the output of %s: %s", self.task_id, error)
            except aiohttp.ClientError as error:
                log.warning("could not send the output of %s: %s", self.task_id, error)
        return self.enabled

    async def keep_flushing(self) -> None:
        while True:
            await asyncio.sleep(LOG_FLUSH_SECONDS)
            await self.flush()

    def tail_text(self) -> str:
        text = "\n".join(self.tail)
        return text[-TAIL_CHARS:]


@dataclass
class Running:
    task_id: str
    queue_id: str
    job: JobProcess
    stop_reason: str | None = None  # "requested", "shutdown", or "taken" (the task is no longer ours)

    async def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        await self.job.stop()


class Worker:
    def __init__(self, api: ApiClient, queue_refs: list[str], name: str, subjects: Subjects) -> None:
        self.api = api
        self.queue_refs = queue_refs
        self.name = name
        self.subjects = subjects
        self.queues: list[tuple[str, str]] = []  # (id, name), in priority order
        self.environment = environment_names()
        self.wakeup = asyncio.Event()
        self.running: Running | None = None
        self.stops_requested: set[str] = set()
        self.state = StateFile(name)
        self.send_output = True
        self.heartbeat_seconds = heartbeat_interval()
        self.drain_seconds = drain_seconds()

    # -- start ----------------------------------------------------------------------------------
    async def resolve_queues(self) -> None:
        """Queue ids as given, or names (a queue is created for a name that has none)."""
        for ref in self.queue_refs:
            if QUEUE_ID.match(ref):
                queue = (await self.api.call("queues.get_by_id", queue=ref))["queue"]
                self.queues.append((queue["id"], queue["name"]))
            else:
                answer = await self.api.call("queues.get_or_create", name=ref)
                self.queues.append((answer["id"], ref))

    async def register(self) -> list[str]:
        answer = await self.api.call("workers.register", worker=self.name,
                                     queues=[queue_id for queue_id, _ in self.queues])
        return answer.get("owned_tasks") or []

    async def recover(self, owned: list[str]) -> None:
        """A previous process under this name crashed: its runs cannot be re-attached, so they fail."""
        leftover = self.state.leftover()
        if leftover and kill_leftover_group(int(leftover.get("pgid", 0) or 0)):
            log.info("killed the process group left by a previous run of task %s", leftover.get("task"))
        self.state.clear()
        for task_id in owned:
            log.warning("task %s was running under this worker's name before a restart: failing it", task_id)
            await self.report("tasks.failed", task_id, f"worker {self.name} restarted",
                              f"the run was interrupted: worker {self.name} stopped while running it")

    async def subscribe(self, nc: nats.NATS) -> None:
        for queue_id, _ in self.queues:
            await nc.subscribe(self.subjects.event("Queue", "TaskAdded", queue_id), cb=self.on_task_added)
        await nc.subscribe(self.subjects.event("Task", "StopRequested", "*"), cb=self.on_stop_requested)

    # -- NATS ------------------------------------------------------------------------------------
    async def on_task_added(self, message) -> None:
        self.wakeup.set()

    async def on_stop_requested(self, message) -> None:
        task_id = orjson.loads(message.data)["id"]
        if self.running is not None and self.running.task_id == task_id:
            log.info("stop requested for task %s", task_id)
            await self.running.stop("requested")
        else:  # it may be the task this worker is about to start: remember it for a moment
            if len(self.stops_requested) > 1000:
                self.stops_requested.clear()
            self.stops_requested.add(task_id)

    # -- the work loop ---------------------------------------------------------------------------
    async def run(self, stopping: asyncio.Event) -> None:
        heartbeat = asyncio.ensure_future(self.heartbeat(stopping))
        try:
            while not stopping.is_set():
                self.wakeup.clear()
                try:
                    claimed = await self.claim_next()
                except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                    log.warning("gateway unreachable (%s); trying again", error)
                    await wait_first(stopping, timeout=1.0)
                    continue
                if claimed is not None:
                    await self.run_task(*claimed, stopping)
                    continue
                await wait_first(stopping, self.wakeup)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(Exception):
                await self.api.call("workers.unregister", worker=self.name)

    async def claim_next(self) -> tuple[dict[str, Any], str] | None:
        """The first task any of my queues gives me, in queue priority order; None when all are empty."""
        for queue_id, queue_name in self.queues:
            for attempt in range(CONFLICT_RETRIES):
                try:
                    answer = await self.api.call("queues.get_next_task", queue=queue_id, worker=self.name,
                                                 environment=self.environment)
                except ApiCallError as error:
                    if error.code == 400 and error.subcode == CONFLICT_SUBCODE and attempt + 1 < CONFLICT_RETRIES:
                        continue  # another gateway changed the queue at the same moment
                    log.warning("queue %s (%s): %s", queue_name, queue_id, error)
                    break
                if answer.get("entry"):
                    return answer["task"], queue_id
                break
        return None

    async def run_task(self, task: dict[str, Any], queue_id: str, stopping: asyncio.Event) -> None:
        task_id = task["id"]
        output = TaskOutput(self.api, task_id, self.name, self.send_output)
        env = dict(os.environ, TASKTRAIL_TASK_ID=task_id, CLEARML_TASK_ID=task_id, TASKTRAIL_WORKER=self.name)
        try:
            job = await JobProcess.start(task.get("script") or {}, env, output.add)
        except (ValueError, OSError) as error:
            await self.report("tasks.failed", task_id, "cannot start script", str(error))
            return
        running = self.running = Running(task_id, queue_id, job)
        self.state.save(task_id, job.pid)
        log.info("running task %s (pid %s)", task_id, job.pid)
        if task_id in self.stops_requested:
            await running.stop("requested")
        flusher = asyncio.ensure_future(output.keep_flushing())
        drainer = asyncio.ensure_future(self.stop_on_shutdown(running, stopping))
        try:
            exit_code = await job.wait()
        finally:
            flusher.cancel()
            drainer.cancel()
            self.running = None
            self.stops_requested.discard(task_id)
        self.send_output = await output.flush()
        await self.report_exit(running, exit_code, output)
        self.state.clear()

    async def stop_on_shutdown(self, running: Running, stopping: asyncio.Event) -> None:
        """On SIGTERM the run may finish within the drain time; else it stops and is re-queued."""
        await stopping.wait()
        log.info("shutting down: task %s has %.1fs to finish", running.task_id, self.drain_seconds)
        await asyncio.sleep(self.drain_seconds)
        await running.stop("shutdown")

    async def report_exit(self, running: Running, exit_code: int, output: TaskOutput) -> None:
        task_id = running.task_id
        message = f"exit code {exit_code}"
        if running.stop_reason == "taken":
            log.info("task %s was taken away from this worker; not reporting", task_id)
        elif running.stop_reason == "requested":
            await self.report("tasks.stopped", task_id, "stopped on request", message)
        elif running.stop_reason == "shutdown":
            await self.report("tasks.stopped", task_id, f"worker {self.name} shut down", message)
            with contextlib.suppress(ApiCallError):
                await self.api.call("tasks.enqueue", task=task_id, queue=running.queue_id, front=True,
                                    status_reason=f"re-queued: worker {self.name} shut down")
        elif exit_code == 0:
            await self.report("tasks.completed", task_id, "script finished", message)
        else:
            tail = output.tail_text()
            await self.report("tasks.failed", task_id, "script failed",
                              f"{message}; last output:\n{tail}" if tail else message)

    async def report(self, endpoint: str, task_id: str, reason: str, message: str) -> None:
        """Report how a run ended; an unreachable gateway is retried (a restart must not lose it)."""
        delay = 0.2
        deadline = time.monotonic() + REPORT_PATIENCE_SECONDS
        while True:
            try:
                await self.api.call(endpoint, task=task_id, status_reason=reason, status_message=message)
                return
            except ApiCallError as error:
                log.warning("could not report %s for %s: %s", endpoint, task_id, error)
                return
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                if time.monotonic() > deadline:
                    log.error("gave up reporting %s for %s: %s", endpoint, task_id, error)
                    return
                log.warning("gateway unreachable reporting %s for %s (%s); retrying", endpoint, task_id, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # -- heartbeats ------------------------------------------------------------------------------
    async def heartbeat(self, stopping: asyncio.Event) -> None:
        while True:
            running = self.running
            try:
                await self.api.call("workers.status_report", worker=self.name, timestamp=int(time.time()),
                                    task=running.task_id if running else None,
                                    queue=running.queue_id if running else None,
                                    queues=[queue_id for queue_id, _ in self.queues], machine_stats=machine_stats())
                if running is not None:
                    await self.check_task(running)
            except (ApiCallError, aiohttp.ClientError, asyncio.TimeoutError) as error:
                log.warning("status report failed: %s", error)
            await asyncio.sleep(self.heartbeat_seconds)

    async def check_task(self, running: Running) -> None:
        """Stop a run that is no longer ours (failed by the monitor, reset) or whose stop we missed."""
        task = (await self.api.call("tasks.get_by_id", task=running.task_id))["task"]
        if running is not self.running:
            return
        if task.get("status") != "in_progress" or task.get("last_worker") != self.name:
            log.warning("task %s is %s (last worker %s): stopping its run", running.task_id,
                        task.get("status"), task.get("last_worker"))
            await running.stop("taken")
        elif task.get("status_message") == "stopping":
            await running.stop("requested")


async def wait_first(*events: asyncio.Event, timeout: float | None = None) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def wait_for_gateway(api: ApiClient, stopping: asyncio.Event) -> dict | None:
    """The gateway's /health answer, retried until it answers (a worker may start first)."""
    delay = 0.1
    while not stopping.is_set():
        try:
            return await api.health()
        except aiohttp.ClientError as error:
            log.info("gateway not reachable yet (%s); retrying in %.1fs", error, delay)
        await wait_first(stopping, timeout=delay)
        delay = min(delay * 2, 5.0)
    return None


async def run_worker(api_url: str, queues: list[str], name: str | None, stopping: asyncio.Event) -> None:
    name = name or default_worker_name()
    async with ApiClient(api_url, actor=name) as api:
        health = await wait_for_gateway(api, stopping)
        if health is None:
            return
        worker = Worker(api, queues, name, Subjects(health["nats_namespace"]))
        await worker.resolve_queues()

        async def reconnected() -> None:
            worker.wakeup.set()  # wake-ups may have been missed while disconnected

        nats_url = os.environ.get("NATS_URL") or health["nats_url"]
        nc = await nats.connect(nats_url, name=f"tasktrail-worker-{name}", max_reconnect_attempts=-1,
                                reconnected_cb=reconnected)
        try:
            await worker.subscribe(nc)
            await worker.recover(await worker.register())
            log.info("worker %s waiting on queues %s", name, ", ".join(queue for _, queue in worker.queues))
            await worker.run(stopping)
        finally:
            await nc.drain()
