"""Dispatch on the embedded default: enqueue->started latency with an idle worker, and tasks/s.

    .venv/bin/python bench/dispatch_latency.py [--latency-tasks 200] [--tasks 1000] [--workers 4]

Starts nats-server, nx-27017, the gateway, relay, projector and workers as processes in a
temporary folder (as `tasktrail up` does). Tasks are no-ops (`script.binary = "true"`).

- Latency: one task at a time on an idle worker; measured in the log, from the `Task.Enqueued`
  event to the `Task.Started` event (both stamped by the gateway's clock), and as the client
  sees it, from sending `tasks.enqueue` to receiving the `Task.Started` event on NATS.
- Throughput: `--tasks` tasks enqueued by 8 clients while `--workers` workers run them; from the
  first `Task.Enqueued` to the last `Task.Completed` in the log.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nats
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.task import Task  # noqa: E402
from tasktrail.application import TaskTrail  # noqa: E402
from tasktrail.config import Subjects, event_store_env  # noqa: E402
from tasktrail.credentials import generate_credentials  # noqa: E402
from tasktrail.embedded_servers import free_port, start_mongo_server, start_nats_server, stop_process  # noqa: E402

NO_OP = {"binary": "true"}


class Stack:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.servers: list[subprocess.Popen] = []
        self.components: list[subprocess.Popen] = []
        nats_process, nats_url = start_nats_server(folder)
        mongo_process, mongo_uri = start_mongo_server(folder)
        self.servers = [nats_process, mongo_process]
        credentials = generate_credentials()
        self.port = free_port()
        self.nats_url = nats_url
        self.env = {
            **os.environ, "TASKTRAIL_DATA_DIR": str(folder), "NATS_URL": nats_url, "MONGODB_URI": mongo_uri,
            "TASKTRAIL_NAMESPACE": "bench", "TASKTRAIL_MONGODB_DB": "bench",
            "SQLITE_DBNAME": str(folder / "events.sqlite"), "TASKTRAIL_API_URL": f"http://127.0.0.1:{self.port}",
            "TASKTRAIL_ACCESS_KEY": credentials.access_key, "TASKTRAIL_SECRET_KEY": credentials.secret_key,
            "TASKTRAIL_AUTH_SECRET": credentials.auth_secret,
        }
        self.env.pop("PERSISTENCE_MODULE", None)
        self.auth = "Basic " + base64.b64encode(f"{credentials.access_key}:{credentials.secret_key}".encode()).decode()

    def start(self, *arguments: str) -> subprocess.Popen:
        log = open(self.folder / f"{arguments[0]}-{len(self.components)}.log", "ab")
        process = subprocess.Popen([sys.executable, "-m", "tasktrail", *arguments], env=self.env,
                                   stdout=log, stderr=subprocess.STDOUT)
        self.components.append(process)
        return process

    def call(self, endpoint: str, **body) -> dict:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/{endpoint}", data=orjson.dumps(body),
                                         headers={"Content-Type": "application/json", "Authorization": self.auth})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = orjson.loads(response.read())
        if answer["meta"]["result_code"] != 200:
            raise RuntimeError(answer["meta"])
        return answer["data"]

    def wait_for_gateway(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.call("queues.get_all")
                return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("gateway did not answer")

    def close(self) -> None:
        for process in reversed(self.components):
            stop_process(process)
        for process in reversed(self.servers):
            stop_process(process)


def log_events(stack: Stack) -> list:
    app = TaskTrail(event_store_env(stack.folder) | {"SQLITE_DBNAME": stack.env["SQLITE_DBNAME"]})
    try:
        notifications = app.recorder.select_notifications(0, 10_000_000, inclusive_of_start=False)
        return [app.mapper.to_domain_event(notification) for notification in notifications]
    finally:
        app.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


async def measure_latency(stack: Stack, count: int) -> tuple[list[float], list[float]]:
    """Per task: (log latency, client latency) in milliseconds."""
    nc = await nats.connect(stack.nats_url)
    started: dict[str, float] = {}
    completed: dict[str, asyncio.Event] = {}

    async def on_started(message) -> None:
        started[orjson.loads(message.data)["id"]] = time.perf_counter()

    async def on_completed(message) -> None:
        task_id = orjson.loads(message.data)["id"]
        if task_id in completed:
            completed[task_id].set()

    subjects = Subjects("bench")
    await nc.subscribe(subjects.event("Task", "Started", "*"), cb=on_started)
    await nc.subscribe(subjects.event("Task", "Completed", "*"), cb=on_completed)
    client_ms = []
    task_ids = []
    for index in range(count):
        task_id = (await asyncio.to_thread(stack.call, "tasks.create", name=f"l{index}", type="training",
                                           script=NO_OP))["id"]
        completed[task_id] = asyncio.Event()
        await asyncio.sleep(0.02)  # the worker is asleep on NATS again
        sent = time.perf_counter()
        await asyncio.to_thread(stack.call, "tasks.enqueue", task=task_id, queue_name="latency")
        await asyncio.wait_for(completed[task_id].wait(), 10)
        client_ms.append((started[task_id] - sent) * 1000)
        task_ids.append(task_id)
    await nc.close()
    events = log_events(stack)
    enqueued = {e.originator_id.hex: e.timestamp for e in events if isinstance(e, Task.Enqueued)}
    first_start = {}
    for event in events:
        if isinstance(event, Task.Started):
            first_start.setdefault(event.originator_id.hex, event.timestamp)
    log_ms = [(first_start[t] - enqueued[t]).total_seconds() * 1000 for t in task_ids]
    return log_ms, client_ms


def measure_throughput(stack: Stack, count: int) -> tuple[float, float]:
    with ThreadPoolExecutor(8) as pool:
        tasks = list(pool.map(lambda i: stack.call("tasks.create", name=f"t{i}", type="training",
                                                   script=NO_OP)["id"], range(count)))
        enqueue_started = time.perf_counter()
        list(pool.map(lambda task: stack.call("tasks.enqueue", task=task, queue_name="throughput"), tasks))
        enqueue_seconds = time.perf_counter() - enqueue_started
    wanted = set(tasks)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        done = stack.call("tasks.get_all", status=["completed"], only_fields=["id"], page_size=500,
                          **{"execution.queue": stack.call("queues.get_all", name="^throughput$")["queues"][0]["id"]})
        if len(done["tasks"]) >= min(len(wanted), 500) and stack.call(
                "queues.get_num_entries", queue=stack.call("queues.get_all", name="^throughput$")["queues"][0]["id"]
        )["num"] == 0 and not stack.call("tasks.get_all", status=["in_progress"], only_fields=["id"])["tasks"]:
            break
        time.sleep(0.2)
    events = log_events(stack)
    enqueued = [e.timestamp for e in events if isinstance(e, Task.Enqueued) and e.originator_id.hex in wanted]
    finished = [e.timestamp for e in events if isinstance(e, Task.Completed) and e.originator_id.hex in wanted]
    assert len(finished) == count, f"{len(finished)} of {count} completed"
    seconds = (max(finished) - min(enqueued)).total_seconds()
    return count / seconds, count / enqueue_seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-tasks", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        stack = Stack(Path(folder))
        try:
            stack.start("migrate").wait()
            stack.env["CREATE_TABLE"] = "n"
            for component in (["gateway", "--port", str(stack.port)], ["relay"], ["projector"]):
                stack.start(*component)
            stack.wait_for_gateway()
            stack.start("worker", "--name", "bench-0", "--queue", "latency", "--queue", "throughput")
            time.sleep(2)
            log_ms, client_ms = asyncio.run(measure_latency(stack, arguments.latency_tasks))
            print(f"enqueue->started, idle worker, {len(log_ms)} tasks: "
                  f"log p50 {statistics.median(log_ms):.1f} ms, p99 {percentile(log_ms, 0.99):.1f} ms; "
                  f"client p50 {statistics.median(client_ms):.1f} ms, p99 {percentile(client_ms, 0.99):.1f} ms")
            for number in range(1, arguments.workers):
                stack.start("worker", "--name", f"bench-{number}", "--queue", "throughput")
            time.sleep(2)
            tasks_per_second, enqueues_per_second = measure_throughput(stack, arguments.tasks)
            print(f"throughput, {arguments.workers} workers, {arguments.tasks} no-op tasks: "
                  f"{tasks_per_second:.0f} tasks/s enqueued to completed (enqueue alone {enqueues_per_second:.0f}/s)")
        finally:
            stack.close()


if __name__ == "__main__":
    main()
