"""What runs report, over HTTP on the real stack: status reports, console lines and metrics.

A worker's status report refreshes its task's last_worker_report at most once per interval; a
batch of reported events becomes one LogReported and one MetricsReported event per task; a
running script's output can be read back with events.get_task_log; views rebuilt from the log
equal the live ones.
"""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from domain.task import Task
from domain.task_reports import metric_key
from projections.positions import POSITIONS_COLLECTION
from projections.projector import Projector
from tasktrail.application import TaskTrail
from tasktrail.config import event_store_env
from tests.conftest import TEST_CREDENTIALS, Stack, basic_auth, new_stack, wait_until

REPORT_INTERVAL = 0.5


def ok(answer: dict) -> dict:
    assert answer["meta"]["result_code"] == 200, answer["meta"]
    return answer["data"]


def refused(answer: dict) -> tuple[int, int]:
    assert answer["meta"]["result_code"] != 200, answer
    return answer["meta"]["result_code"], answer["meta"]["result_subcode"]


def add_batch(stack: Stack, events: list[dict], ndjson: bool = False) -> dict:
    raw = b"\n".join(orjson.dumps(event) for event in events) if ndjson else orjson.dumps(events)
    request = urllib.request.Request(f"{stack.api_url}/events.add_batch", data=raw, method="POST",
                                     headers={"Authorization": basic_auth(*TEST_CREDENTIALS)})
    with urllib.request.urlopen(request, timeout=10) as response:
        return orjson.loads(response.read())


def create_task(stack: Stack, name: str = "job", **fields) -> str:
    return ok(stack.call("tasks.create", name=name, type="training", **fields))["id"]


def view_task(stack: Stack, task_id: str) -> dict:
    return ok(stack.call("tasks.get_by_id", task=task_id))["task"]


def log_messages(stack: Stack, task_id: str, **request) -> list[str]:
    return [event["msg"] for event in ok(stack.call("events.get_task_log", task=task_id, **request))["events"]]


def store(stack: Stack) -> TaskTrail:
    return TaskTrail(event_store_env(stack.data_dir) | {"SQLITE_DBNAME": stack.env["SQLITE_DBNAME"]})


def task_events(stack: Stack, task_id: str) -> list:
    app = store(stack)
    try:
        return app.task_history(task_id)
    finally:
        app.close()


def wait_for_projector(stack: Stack, mongo_client) -> None:
    app = store(stack)
    try:
        last = app.recorder.max_notification_id()
    finally:
        app.close()
    positions = mongo_client[stack.env["TASKTRAIL_MONGODB_DB"]][POSITIONS_COLLECTION]
    wait_until(lambda: (positions.find_one({"_id": Projector.name}) or {}).get("position") == last,
               message="projector caught up")


@pytest.fixture(scope="module")
def api(tmp_path_factory, nats_url: str, mongodb_uri: str) -> Iterator[Stack]:
    """One stack for the module (each test uses its own tasks, queue and worker names)."""
    stack = new_stack(tmp_path_factory.mktemp("reports"), nats_url, mongodb_uri)
    stack.env["TASKTRAIL_TASK_REPORT_INTERVAL"] = str(REPORT_INTERVAL)
    stack.env["TASKTRAIL_WORKER_STATE_DIR"] = str(stack.data_dir / "worker-state")
    stack.start_gateway()
    stack.start("relay")
    stack.start("projector")
    yield stack
    stack.stop_all()


# -- status reports --------------------------------------------------------------------------------
def test_a_status_report_refreshes_its_running_task_at_most_once_per_interval(api: Stack) -> None:
    task_id = create_task(api)
    ok(api.call("tasks.enqueue", task=task_id, queue_name="reports"))
    claim = ok(api.call("tasks.started", task=task_id, worker="w-http"))
    claimed_at = claim["fields"]["last_worker_report"]

    def report(worker: str = "w-http") -> dict:
        return ok(api.call("workers.status_report", worker=worker, task=task_id, timestamp=int(time.time())))

    first = report()
    if first["task_updated"]:  # the claim was more than an interval ago already (a slow machine)
        claimed_at = first["task"]["last_worker_report"]
        first = report()
    assert first["task_updated"] == 0 and first["task"]["last_worker_report"] == claimed_at
    time.sleep(REPORT_INTERVAL + 0.05)
    second = report()
    assert second["task_updated"] == 1
    assert second["task"]["last_worker"] == "w-http" and second["task"]["status"] == "in_progress"
    refreshed = second["task"]["last_worker_report"]
    assert refreshed > claimed_at and second["task"]["last_update"] == refreshed
    assert report()["task"]["last_worker_report"] == refreshed
    time.sleep(REPORT_INTERVAL + 0.05)
    other = report("w-other")
    assert other["task_updated"] == 0 and other["task"]["last_worker_report"] == refreshed
    assert ok(api.call("workers.status_report", worker="w-http")) == {}
    assert ok(api.call("workers.status_report", worker="w-http", task=uuid.uuid4().hex)) == {}

    wait_until(lambda: view_task(api, task_id)["last_worker_report"] == refreshed, message="view refreshed")
    assert view_task(api, task_id)["last_update"] >= refreshed
    reported = [event for event in task_events(api, task_id) if isinstance(event, Task.WorkerReported)]
    assert [event.at for event in reported] == [refreshed]


# -- reported batches ------------------------------------------------------------------------------
def test_a_batch_records_one_log_and_one_metrics_event_per_task_and_counts_unknown_tasks(api: Stack) -> None:
    first, second = create_task(api, "first"), create_task(api, "second")
    ok(api.call("tasks.started", task=first))
    unknown = uuid.uuid4().hex
    now = int(time.time() * 1000)
    events = []
    for i in range(5):
        for task_id in (first, second, unknown):
            events.append({"type": "log", "task": task_id, "level": "info", "msg": f"{task_id[:4]} line {i}",
                           "timestamp": now + i})
            events.append({"type": "training_stats_scalar", "task": task_id, "metric": "loss",
                           "variant": "train", "value": 1.0 - i / 10, "iter": i * 10, "timestamp": now + i})
    events.append({"type": "training_stats_scalar", "task": first, "metric": "loss", "variant": "train",
                   "value": "NaN?", "iter": 99})
    events.append({"type": "plot", "task": first, "metric": "p", "variant": "v", "plot_str": "{}"})
    answer = ok(add_batch(api, events, ndjson=True))
    assert answer["added"] == 21 and answer["errors"] == 11
    assert answer["errors_info"]["Invalid task id"] == 10 and sum(answer["errors_info"].values()) == 11

    for task_id in (first, second):
        kinds = Counter(type(event).__name__ for event in task_events(api, task_id))
        assert kinds["LogReported"] == 1 and kinds["MetricsReported"] == 1
    task = wait_until(lambda: (doc := view_task(api, first))["last_iteration"] == 40 and doc, message="view")
    loss = task["last_metrics"][metric_key("loss")][metric_key("train")]
    assert loss["metric"] == "loss" and loss["variant"] == "train"
    assert loss["value"] == pytest.approx(0.6) and loss["min_value"] == pytest.approx(0.6)
    assert loss["max_value"] == 1.0 and loss["max_value_iteration"] == 0 and loss["min_value_iteration"] == 40
    assert loss["count"] == 5 and loss["first_value"] == 1.0
    assert task["status"] == "in_progress"

    # A later batch: min and max continue from the earlier one.
    ok(add_batch(api, [{"type": "training_stats_scalar", "task": first, "metric": "loss", "variant": "train",
                        "value": 2.5, "iter": 41}]))
    loss = wait_until(lambda: (entry := view_task(api, first)["last_metrics"][metric_key("loss")][metric_key("train")])
                      ["count"] == 6 and entry, message="second batch in the view")
    assert loss["value"] == 2.5 and loss["max_value"] == 2.5 and loss["min_value"] == pytest.approx(0.6)

    assert wait_until(lambda: log_messages(api, first, order="asc"), message="log view") == \
        [f"{first[:4]} line {i}" for i in range(5)]
    single = ok(api.call("events.add", task=second, type="log", msg="one more"))
    assert single == {"added": 1, "errors": 0, "errors_info": {}}
    assert ok(api.call("events.add", task=unknown, type="log", msg="lost"))["errors"] == 1


def test_a_published_task_takes_no_more_reports(api: Stack) -> None:
    task_id = create_task(api)
    ok(api.call("tasks.started", task=task_id))
    ok(api.call("tasks.completed", task=task_id, publish=True))
    answer = ok(add_batch(api, [{"type": "log", "task": task_id, "msg": "late"}]))
    assert answer == {"added": 0, "errors": 1, "errors_info": {"Task is published": 1}}


# -- reading the log -----------------------------------------------------------------------------
def test_the_log_is_paged_by_timestamp_in_either_direction_without_losing_lines(api: Stack) -> None:
    task_id = create_task(api)
    base = 1_700_000_000_000
    # Two batches whose times interleave, with equal times inside and across batches.
    batches = [[(base + t, f"a{t}-{n}") for t, n in [(1, 0), (3, 0), (3, 1), (5, 0), (9, 0)]],
               [(base + t, f"b{t}-{n}") for t, n in [(2, 0), (3, 0), (6, 0), (6, 1), (7, 0)]]]
    for batch in batches:
        ok(add_batch(api, [{"type": "log", "task": task_id, "msg": msg, "timestamp": moment}
                           for moment, msg in batch]))
    expected = [msg for _, _, _, msg in sorted(
        (moment, number, index, msg) for number, batch in enumerate(batches)
        for index, (moment, msg) in enumerate(batch))]
    wait_until(lambda: ok(api.call("events.get_task_log", task=task_id))["total"] == 10, message="log view")

    newest_first = ok(api.call("events.get_task_log", task=task_id))
    assert [event["msg"] for event in newest_first["events"]] == expected[::-1]
    assert newest_first["returned"] == 10 and newest_first["total"] == 10
    assert {event["task"] for event in newest_first["events"]} == {task_id}
    assert log_messages(api, task_id, order="asc") == expected
    assert log_messages(api, task_id, navigate_earlier=False) == expected
    assert log_messages(api, task_id, navigate_earlier=False, order="desc") == expected[::-1]

    def pages(earlier: bool) -> list[list[str]]:
        found, since = [], None
        while True:
            request = {"task": task_id, "batch_size": 2, "navigate_earlier": earlier}
            if since is not None:
                request["from_timestamp"] = since
            events = ok(api.call("events.get_task_log", **request))["events"]
            if not events:
                return found
            found.append([event["msg"] for event in events])
            since = events[-1]["timestamp"]

    earlier_pages = pages(True)
    assert sum(earlier_pages, []) == expected[::-1]
    assert any(set(page) >= {"a3-0", "a3-1", "b3-0"} for page in earlier_pages), "lines of one time come together"
    assert sum(pages(False), []) == expected

    assert refused(api.call("events.get_task_log", task=uuid.uuid4().hex)) == (400, 101)
    assert refused(api.call("events.get_task_log")) == (400, 11)
    assert refused(api.call("events.get_task_log", task=task_id, order="up")) == (400, 12)
    assert ok(api.call("events.get_task_log", task=create_task(api)))["events"] == []

    ok(api.call("tasks.reset", task=task_id))
    wait_until(lambda: ok(api.call("events.get_task_log", task=task_id))["total"] == 0,
               message="a reset task's log is cleared")


# -- a worker's output, end to end ---------------------------------------------------------------
def test_a_running_scripts_output_can_be_read_back_and_its_worker_refreshes_it(
        api: Stack, tmp_path: Path, mongo_client) -> None:
    stack = api
    stack.env["TASKTRAIL_WORKER_HEARTBEAT"] = "0.1"
    try:
        stack.start("worker", "--name", "printer", "--queue", "printing", name="printer")
    finally:
        del stack.env["TASKTRAIL_WORKER_HEARTBEAT"]
    script = tmp_path / "printer.py"
    script.write_text(
        "import sys, time\n"
        "for i in range(40):\n"
        "    print(f'line {i}', flush=True)\n"
        "    time.sleep(0.05)\n"
        "print('x' * 20000, flush=True)\n"
        "print('to stderr', file=sys.stderr, flush=True)\n"
        "print('done', flush=True)\n")
    task_id = create_task(stack, "printer", script={"binary": sys.executable, "entry_point": str(script)})
    ok(stack.call("tasks.enqueue", task=task_id, queue_name="printing"))
    wait_until(lambda: view_task(stack, task_id)["status"] == "completed", timeout=30, message="task completed")

    events = wait_until(lambda: (found := ok(stack.call("events.get_task_log", task=task_id, order="asc",
                                                         batch_size=1000))["events"])
                        and found[-1]["msg"] in ("done", "to stderr") and len(found) == 43 and found,
                        message="the whole output in the log view")
    stdout = [event["msg"] for event in events if event["level"] == "info"]
    assert stdout[:40] == [f"line {i}" for i in range(40)] and stdout[-1] == "done"
    assert stdout[40].startswith("x" * 8192) and stdout[40].endswith("characters truncated]")
    assert [event["msg"] for event in events if event["level"] == "error"] == ["to stderr"]
    assert {event["worker"] for event in events} == {"printer"}

    history = task_events(stack, task_id)
    logged = [event for event in history if isinstance(event, Task.LogReported)]
    assert sum(len(event.lines) for event in logged) == 43
    assert len(logged) < 43, "lines are recorded in batches, not one event each"
    reports = [datetime.fromisoformat(event.at) for event in history if isinstance(event, Task.WorkerReported)]
    started = next(datetime.fromisoformat(event.at) for event in history if isinstance(event, Task.Started))
    assert reports, "the worker's status reports refreshed the running task"
    gaps = [(later - earlier).total_seconds() for earlier, later in zip([started, *reports], reports)]
    assert min(gaps) >= REPORT_INTERVAL, gaps
    assert view_task(stack, task_id)["last_worker_report"] == reports[-1].isoformat(timespec="microseconds")

    wait_for_projector(stack, mongo_client)
    verified = subprocess.run([sys.executable, "-m", "tasktrail", "verify"], env=stack.env,
                              capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0, verified.stdout + verified.stderr
