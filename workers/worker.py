"""`tasktrail worker --queue NAME`: waits on NATS for work, claims a task, runs it, reports back.

Idle, the worker sleeps on a NATS subscription (no polling): an `Enqueued` event for one of its
queues wakes it. It claims with `tasks.started` + `worker`, which only one worker can win. On
start, and after each task, it looks for tasks that were queued while it was busy or away.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import aiohttp
import nats
import orjson

from tasktrail.config import Subjects
from workers.api_client import ApiCallError, ApiClient
from workers.job_process import JobProcess

log = logging.getLogger(__name__)

def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    def __init__(self, api: ApiClient, queues: list[str], name: str, subjects: Subjects) -> None:
        self.api = api
        self.subjects = subjects
        self.queues = queues
        self.name = name
        self.wakeups: asyncio.Queue[str] = asyncio.Queue()
        self.current_task: str | None = None
        self.current_job: JobProcess | None = None

    # -- NATS subscriptions ------------------------------------------------------------------
    async def on_enqueued(self, message) -> None:
        event = orjson.loads(message.data)
        if event["data"].get("queue") in self.queues:
            self.wakeups.put_nowait(event["id"])

    async def on_stop_requested(self, message) -> None:
        event = orjson.loads(message.data)
        if event["id"] == self.current_task and self.current_job is not None:
            log.info("stop requested for task %s", event["id"])
            await self.current_job.stop()

    async def subscribe(self, nc: nats.NATS) -> None:
        await nc.subscribe(self.subjects.event("Task", "Enqueued", "*"), cb=self.on_enqueued)
        await nc.subscribe(self.subjects.event("Task", "StopRequested", "*"), cb=self.on_stop_requested)

    # -- the work loop ---------------------------------------------------------------------------
    async def run(self, stopping: asyncio.Event) -> None:
        await self.run_waiting_tasks(stopping)
        while not stopping.is_set():
            task_id = await self.next_wakeup(stopping)
            if task_id is None:
                return
            if await self.try_run(task_id, stopping):
                await self.run_waiting_tasks(stopping)

    async def next_wakeup(self, stopping: asyncio.Event) -> str | None:
        getter = asyncio.ensure_future(self.wakeups.get())
        stopper = asyncio.ensure_future(stopping.wait())
        await asyncio.wait([getter, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if getter.done():
            return getter.result()
        getter.cancel()
        return None

    async def run_waiting_tasks(self, stopping: asyncio.Event) -> None:
        """Run queued tasks the view knows of, oldest enqueue first, in queue priority order."""
        while not stopping.is_set():
            ran_one = False
            for queue in self.queues:
                data = await self.api.call(
                    "tasks.get_all", status=["queued"], **{"execution.queue": queue},
                    order_by=["status_changed"], page_size=20, only_fields=["id"],
                )
                for task in data["tasks"]:
                    if await self.try_run(task["id"], stopping):
                        ran_one = True
                        break
                if ran_one:
                    break
            if not ran_one:
                return

    async def try_run(self, task_id: str, stopping: asyncio.Event) -> bool:
        """Claim and run one task; False when someone else had it first."""
        try:
            await self.api.call("tasks.started", task=task_id, worker=self.name)
        except ApiCallError as error:
            if error.code == 400:
                return False
            raise
        await self.run_claimed(task_id, stopping)
        return True

    async def run_claimed(self, task_id: str, stopping: asyncio.Event) -> None:
        task = (await self.api.call("tasks.get_by_id", task=task_id))["task"]
        try:
            job = await JobProcess.start(task.get("script") or {})
        except (ValueError, OSError) as error:
            await self.report("tasks.failed", task_id, "cannot start script", str(error))
            return
        self.current_task, self.current_job = task_id, job
        log.info("running task %s (pid %s)", task_id, job.process.pid)
        stop_watch = asyncio.ensure_future(self._stop_on_shutdown(job, stopping))
        exit_code = await job.wait()
        stop_watch.cancel()
        self.current_task, self.current_job = None, None
        await self.report_exit(task_id, job, exit_code, stopping)

    async def _stop_on_shutdown(self, job: JobProcess, stopping: asyncio.Event) -> None:
        await stopping.wait()
        await job.stop()

    async def report_exit(self, task_id: str, job: JobProcess, exit_code: int, stopping: asyncio.Event) -> None:
        message = f"exit code {exit_code}"
        if job.stop_requested and stopping.is_set():
            await self.report("tasks.failed", task_id, f"worker {self.name} shut down", message)
        elif job.stop_requested:
            await self.report("tasks.stopped", task_id, "stopped on request", message)
        elif exit_code == 0:
            await self.report("tasks.completed", task_id, "script finished", message)
        else:
            await self.report("tasks.failed", task_id, "script failed", message)

    async def report(self, endpoint: str, task_id: str, reason: str, message: str) -> None:
        try:
            await self.api.call(endpoint, task=task_id, status_reason=reason, status_message=message)
        except ApiCallError as error:
            log.warning("could not report %s for %s: %s", endpoint, task_id, error)


async def wait_for_gateway(api: ApiClient, stopping: asyncio.Event) -> dict | None:
    """The gateway's /health answer, retried until it answers (a worker may start first)."""
    delay = 0.1
    while not stopping.is_set():
        try:
            return await api.health()
        except aiohttp.ClientError as error:
            log.info("gateway not reachable yet (%s); retrying in %.1fs", error, delay)
        try:
            await asyncio.wait_for(stopping.wait(), delay)
        except asyncio.TimeoutError:
            delay = min(delay * 2, 5.0)
    return None


async def run_worker(api_url: str, queues: list[str], name: str | None, stopping: asyncio.Event) -> None:
    name = name or default_worker_name()
    async with ApiClient(api_url, actor=name) as api:
        health = await wait_for_gateway(api, stopping)
        if health is None:
            return
        nats_url = os.environ.get("NATS_URL") or health["nats_url"]
        nc = await nats.connect(nats_url, name=f"tasktrail-worker-{name}", max_reconnect_attempts=-1)
        worker = Worker(api, queues, name, Subjects(health["nats_namespace"]))
        await worker.subscribe(nc)
        log.info("worker %s waiting on queues %s", name, ", ".join(queues))
        try:
            await worker.run(stopping)
        finally:
            await nc.drain()

