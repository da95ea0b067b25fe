"""What runs report: worker heartbeats on a task, console lines and scalar metrics. Pure, in memory."""
from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest
from pymongo import DeleteMany, UpdateOne

from domain.document import apply_changes
from domain.errors import InvalidField, InvalidStatusChange, TaskNotFound
from domain.status import TaskStatus
from domain.task import Task, TaskIsPublished
from domain.task_reports import (
    MAX_LINE_CHARS,
    MAX_LINES_PER_EVENT,
    MAX_POINTS_PER_EVENT,
    chunked,
    log_line,
    metric_key,
    scalar_point,
)
from gateway.events_ingest import grouped, record_reports
from gateway.group_commit import UnitOfWork
from gateway.workers_service import report_due, report_task_alive
from projections import task_log_view, task_view
from tasktrail.application import TaskTrail

S = TaskStatus
NOW_MS = 1_700_000_000_000


def new_task(collect: bool = True) -> Task:
    task = Task.create(uuid4(), {"name": "train", "type": "training"}, "alice")
    if collect:
        task.collect_events()
    return task


def claimed(worker: str = "w1", collect: bool = True) -> Task:
    """A task claimed by `worker`; `collect=False` leaves its events pending (to be saved)."""
    task = new_task(collect=False)
    task.enqueue("q", "alice")
    task.claim(worker)
    if collect:
        task.collect_events()
    return task


def line(msg: str, timestamp: int = NOW_MS, level: str = "info", worker: str = "w1") -> dict[str, Any]:
    return {"timestamp": timestamp, "level": level, "worker": worker, "msg": msg}


def point(value: float, iteration: int | None, metric: str = "loss", variant: str = "train") -> dict[str, Any]:
    return {"metric": metric, "variant": variant, "value": value, "iter": iteration, "timestamp": NOW_MS}


def entry(task: Task, metric: str = "loss", variant: str = "train") -> dict[str, Any]:
    return task.doc["last_metrics"][metric_key(metric)][metric_key(variant)]


def replayed(events: list[Task.Event]) -> Task:
    task = None
    for event in events:
        task = event.mutate(task)
    assert task is not None
    return task


# -- a worker's heartbeat on its task --------------------------------------------------------------
def test_a_worker_report_refreshes_last_worker_report_and_last_update_but_not_last_change() -> None:
    task = claimed("w1")
    before = copy.deepcopy(task.doc)
    task.worker_reported("w1", "agent")
    [event] = task.collect_events()
    assert isinstance(event, Task.WorkerReported) and event.worker == "w1"
    assert task.doc["last_worker"] == "w1"
    assert task.doc["last_worker_report"] == task.doc["last_update"] == event.at > before["last_worker_report"]
    assert task.doc["last_change"] == before["last_change"]
    assert task.doc["status"] == "in_progress"


def task_in_setup(setup: str) -> Task:
    if setup == "another worker's":
        return claimed("w2")
    task = claimed("w1") if setup == "completed" else new_task()
    if setup == "started by a client":
        task.start("alice")
    elif setup == "completed":
        task.complete("w1")
    task.collect_events()
    return task


@pytest.mark.parametrize("setup", ["another worker's", "created", "started by a client", "completed"])
def test_a_report_is_refused_unless_the_worker_runs_the_task(setup: str) -> None:
    task = task_in_setup(setup)
    before = copy.deepcopy(task.doc)
    assert not task.is_run_by("w1")
    with pytest.raises(InvalidStatusChange):
        task.worker_reported("w1", "agent")
    assert task.collect_events() == [] and task.doc == before


def test_a_report_is_due_once_the_interval_has_passed_since_the_last_one() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert report_due(None, now, 10)
    assert report_due("not a time", now, 10)
    assert not report_due((now - timedelta(seconds=9.9)).isoformat(), now, 10)
    assert report_due((now - timedelta(seconds=10)).isoformat(), now, 10)
    assert report_due(now.isoformat(), now, 0)


@pytest.fixture
def app():
    application = TaskTrail({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield application
    application.close()


def saved(app: TaskTrail, task: Task) -> str:
    app.save(task)
    return task.task_id


def run_command(app: TaskTrail, command):
    """Run a gateway command as the group-commit writer does: one unit of work, then save."""
    work = UnitOfWork(app)
    counts = work.pending_counts()
    result = command(work)
    events = work.events_since(counts)
    work.save()
    return result, events


def test_status_reports_record_at_most_one_event_per_interval_and_only_for_the_running_worker(app) -> None:
    task = claimed("w1", collect=False)
    task_id = saved(app, task)
    claimed_at = datetime.fromisoformat(task.doc["last_worker_report"])

    def report(worker: str, seconds_later: float):
        return run_command(app, lambda work: report_task_alive(
            work, task_id, worker, "agent", 10, claimed_at + timedelta(seconds=seconds_later)))

    answer, events = report("w1", 3)
    assert events == [] and answer["last_worker_report"] == task.doc["last_worker_report"]
    answer, events = report("w1", 10)
    assert [type(event) for event in events] == [Task.WorkerReported]
    assert answer == {"id": task_id, "status": "in_progress", "last_worker": "w1",
                      "last_worker_report": events[0].at, "last_update": events[0].at}
    # The next report's decision is taken from the recorded time (the event's own clock).
    recorded = datetime.fromisoformat(events[0].at)
    _, events = run_command(app, lambda work: report_task_alive(
        work, task_id, "w1", "agent", 10, recorded + timedelta(seconds=9)))
    assert events == []
    _, events = run_command(app, lambda work: report_task_alive(
        work, task_id, "w2", "agent", 10, recorded + timedelta(seconds=60)))
    assert events == []
    assert run_command(app, lambda work: report_task_alive(
        work, uuid4().hex, "w1", "agent", 10, recorded))[0] is None
    assert run_command(app, lambda work: report_task_alive(
        work, "not-a-task-id", "w1", "agent", 10, recorded))[0] is None


# -- console lines ---------------------------------------------------------------------------------
def test_a_batch_of_lines_is_one_event_that_keeps_their_order_and_moves_only_last_update() -> None:
    task = claimed()
    before = copy.deepcopy(task.doc)
    lines = [line(f"step {i}", NOW_MS + i) for i in range(MAX_LINES_PER_EVENT)]
    task.report_log(lines, "agent")
    [event] = task.collect_events()
    assert isinstance(event, Task.LogReported) and event.lines == lines
    changed = {key for key in task.doc if task.doc[key] != before.get(key)}
    assert changed == {"last_update", "_times"} and task.doc["last_change"] == before["last_change"]


def test_a_batch_beyond_the_cap_is_split_and_long_lines_are_truncated() -> None:
    task = claimed()
    long_message = "x" * (MAX_LINE_CHARS + 100)
    lines = [line(long_message)] + [line(f"l{i}") for i in range(MAX_LINES_PER_EVENT + 10)]
    task.report_log(lines, "agent")
    events = task.collect_events()
    assert len(events) == 2 and all(isinstance(event, Task.LogReported) for event in events)
    stored = [stored_line["msg"] for event in events for stored_line in event.lines]
    assert stored[1:] == [f"l{i}" for i in range(MAX_LINES_PER_EVENT + 10)]
    assert stored[0].startswith("x" * MAX_LINE_CHARS) and stored[0].endswith("[100 characters truncated]")
    assert max(len(event.lines) for event in events) <= MAX_LINES_PER_EVENT


def test_chunks_are_bounded_by_count_and_by_size_and_keep_order() -> None:
    items = ["a" * 100] * 25
    chunks = chunked(items, max_items=10, max_size=500, size=len)
    assert [len(chunk) for chunk in chunks] == [5, 5, 5, 5, 5]
    assert [len(chunk) for chunk in chunked(items, max_items=10, max_size=10_000, size=len)] == [10, 10, 5]
    assert chunked(["a" * 900], max_items=10, max_size=500, size=len) == [["a" * 900]]
    assert chunked([], 10) == []


def test_a_published_task_takes_no_reports_and_a_deleted_one_is_not_found() -> None:
    published = claimed()
    published.complete("w1", publish=True)
    published.collect_events()
    with pytest.raises(TaskIsPublished):
        published.report_log([line("late")], "agent")
    with pytest.raises(TaskIsPublished):
        published.report_metrics([point(1.0, 1)], "agent")
    deleted = new_task()
    deleted.delete("alice")
    deleted.collect_events()
    with pytest.raises(TaskNotFound):
        deleted.report_log([line("late")], "agent")
    assert published.collect_events() == [] and deleted.collect_events() == []


def test_a_completed_or_failed_task_still_takes_its_late_output() -> None:
    for end in ("complete", "fail"):
        task = claimed()
        getattr(task, end)("w1")
        task.collect_events()
        task.report_log([line("flushed after the end")], "agent")
        assert [type(event) for event in task.collect_events()] == [Task.LogReported]


# -- metrics ------------------------------------------------------------------------------------
def test_metrics_set_last_iteration_and_last_metrics_in_clearml_shape() -> None:
    task = claimed()
    task.report_metrics([point(0.9, 1), point(0.5, 2), point(0.7, 3), point(10.0, 3, variant="val")], "agent")
    [event] = task.collect_events()
    assert isinstance(event, Task.MetricsReported) and len(event.points) == 4
    assert task.doc["last_iteration"] == 3 == event.last_iteration
    loss = entry(task)
    assert loss == {
        "metric": "loss", "variant": "train", "value": 0.7, "iter": 3,
        "min_value": 0.5, "min_value_iteration": 2, "max_value": 0.9, "max_value_iteration": 1,
        "first_value": 0.9, "first_value_iteration": 1, "count": 3, "mean_value": pytest.approx(0.7),
    }
    assert entry(task, variant="val")["value"] == 10.0
    assert set(task.doc["last_metrics"]) == {metric_key("loss")}


def test_min_and_max_come_from_earlier_batches_and_are_recorded_in_the_event() -> None:
    task = claimed()
    task.report_metrics([point(0.4, 1), point(0.8, 2)], "agent")
    task.report_metrics([point(0.6, 5)], "agent")
    first, second = task.collect_events()
    recorded = second.last_metrics[metric_key("loss")][metric_key("train")]
    assert recorded["min_value"] == 0.4 and recorded["max_value"] == 0.8 and recorded["value"] == 0.6
    assert recorded["count"] == 3 and recorded["mean_value"] == pytest.approx(0.6)
    assert recorded["first_value"] == 0.4 and recorded["min_value_iteration"] == 1
    assert second.last_iteration == 5
    # The view applies the event's own changes: no earlier state is needed to get the same document.
    assert entry(task) == recorded


def test_a_late_point_of_an_earlier_iteration_keeps_the_last_value_but_counts_for_min_max() -> None:
    task = claimed()
    task.report_metrics([point(0.5, 10)], "agent")
    task.report_metrics([point(0.1, 4)], "agent")
    events = task.collect_events()
    assert events[1].last_iteration is None and task.doc["last_iteration"] == 10
    assert entry(task)["value"] == 0.5 and entry(task)["min_value"] == 0.1
    assert entry(task)["min_value_iteration"] == 4
    assert "last_iteration" not in events[1].changes()


def test_points_without_metric_or_variant_only_move_the_iteration() -> None:
    task = claimed()
    task.report_metrics([point(1.0, 7, metric="", variant="")], "agent")
    assert task.doc["last_iteration"] == 7 and task.doc["last_metrics"] == {}


def test_a_big_metrics_batch_is_split_and_each_part_continues_from_the_one_before() -> None:
    task = claimed()
    points = [point(float(i), i) for i in range(MAX_POINTS_PER_EVENT + 5)]
    task.report_metrics(points, "agent")
    events = task.collect_events()
    assert len(events) == 2
    last = events[1].last_metrics[metric_key("loss")][metric_key("train")]
    assert last["count"] == MAX_POINTS_PER_EVENT + 5 and last["min_value"] == 0.0
    assert last["value"] == float(MAX_POINTS_PER_EVENT + 4)


def test_replaying_the_reports_rebuilds_the_same_task_and_the_view_changes_give_the_same_document() -> None:
    task = Task.create(uuid4(), {"name": "train", "type": "training"}, "alice")
    task.enqueue("q", "alice")
    task.claim("w1")
    task.worker_reported("w1", "agent")
    task.report_log([line("hello"), line("world")], "agent")
    task.report_metrics([point(0.3, 1), point(0.2, 2)], "agent")
    task.report_metrics([point(0.9, 3)], "agent")
    task.reset("alice", force=True)
    task.report_metrics([point(5.0, 1)], "agent")
    events = task.collect_events()
    assert replayed(events).doc == task.doc
    view: dict[str, Any] = {}
    for event in events:
        apply_changes(view, event.document_changes())
    assert view == task.doc
    assert entry(task)["count"] == 1 and entry(task)["min_value"] == 5.0


# -- reading reported events ---------------------------------------------------------------------
def test_reported_events_are_read_into_lines_and_points_with_defaults() -> None:
    assert log_line({"msg": "hi"}, "w9", NOW_MS) == {"timestamp": NOW_MS, "level": "info", "worker": "w9",
                                                     "msg": "hi"}
    assert log_line({"msg": "x", "level": "error", "worker": "w1", "timestamp": 5.7}, "w9", NOW_MS)["timestamp"] == 5
    assert scalar_point({"metric": "m", "variant": "v", "value": 1, "iter": 3.0}, NOW_MS) == {
        "metric": "m", "variant": "v", "value": 1, "iter": 3, "timestamp": NOW_MS}
    assert scalar_point({"value": 0.5}, NOW_MS)["iter"] is None


@pytest.mark.parametrize("event", [
    {"value": "1"}, {"value": True}, {"value": float("nan")}, {"value": 1, "iter": 1.5},
    {"value": 1, "iter": 2**64}, {"value": 1, "metric": "m" * 300}, {"value": 1, "timestamp": "now"},
])
def test_an_invalid_point_is_refused(event: dict) -> None:
    with pytest.raises(InvalidField):
        scalar_point(event, NOW_MS)


def test_a_batch_is_grouped_by_task_and_its_invalid_events_counted() -> None:
    a, b = uuid4().hex, uuid4().hex
    events = [
        {"type": "log", "task": a, "msg": "one"},
        {"type": "training_stats_scalar", "task": b, "metric": "m", "variant": "v", "value": 1, "iter": 1},
        {"type": "log", "task": b, "msg": "two"},
        {"type": "log", "task": a, "msg": "three", "level": 7},
        {"type": "training_stats_scalar", "task": a, "value": "bad"},
        {"type": "plot", "task": a, "plot_str": "{}"},
    ]
    reports, errors = grouped(events, "w1", NOW_MS)
    assert [stored["msg"] for stored in reports[a].lines] == ["one"] and reports[a].points == []
    assert reports[a].events == 2  # the log line and the plot (counted, not stored)
    assert [stored["msg"] for stored in reports[b].lines] == ["two"] and len(reports[b].points) == 1
    assert sum(errors.values()) == 2


def test_a_batch_records_one_log_and_one_metrics_event_per_task_and_counts_unknown_tasks(app) -> None:
    first, second, published = claimed(collect=False), claimed("w2", collect=False), claimed(collect=False)
    published.complete("w1", publish=True)
    for task in (first, second, published):
        saved(app, task)
    unknown = uuid4().hex
    events = []
    for i in range(3):
        for task_id in (first.task_id, second.task_id, unknown, published.task_id):
            events.append({"type": "log", "task": task_id, "msg": f"line {i}", "timestamp": NOW_MS + i})
            events.append({"type": "training_stats_scalar", "task": task_id, "metric": "loss",
                           "variant": "train", "value": 1.0 / (i + 1), "iter": i})
    reports, errors = grouped(events, "w1", NOW_MS)
    (added, refused), recorded = run_command(app, lambda work: record_reports(work, reports, "agent"))
    assert added == 12 and dict(refused) == {"Invalid task id": 6, "Task is published": 6} and not errors
    kinds = sorted((event.originator_id.hex, type(event).__name__) for event in recorded)
    assert kinds == sorted((task.task_id, kind) for task in (first, second)
                           for kind in ("LogReported", "MetricsReported"))
    stored = app.get_task(first.task_id)
    assert stored.doc["last_iteration"] == 2
    assert entry(stored)["value"] == pytest.approx(1 / 3) and entry(stored)["max_value"] == 1.0
    log_event = next(event for event in recorded if isinstance(event, Task.LogReported))
    assert [stored_line["msg"] for stored_line in log_event.lines] == ["line 0", "line 1", "line 2"]


# -- the task_logs view -------------------------------------------------------------------------
def test_the_log_view_keeps_one_document_per_batch_keyed_by_task_and_version() -> None:
    task = claimed()
    task.report_log([line("b", NOW_MS + 5), line("a", NOW_MS + 1)], "agent")
    task.reset("alice", force=True)
    task.delete("alice")
    log_event, reset, deleted = task.collect_events()
    [insert] = task_log_view.updates([log_event])
    assert isinstance(insert, UpdateOne)
    document = insert._doc["$setOnInsert"]
    assert insert._filter == {"_id": task_log_view.batch_id(task.task_id, log_event.originator_version)}
    assert document["task"] == task.task_id and document["version"] == log_event.originator_version
    assert [stored["msg"] for stored in document["lines"]] == ["b", "a"]
    assert (document["min_ts"], document["max_ts"], document["count"]) == (NOW_MS + 1, NOW_MS + 5, 2)
    [clear] = task_log_view.updates([reset])
    assert isinstance(clear, DeleteMany)
    assert clear._filter == {"task": task.task_id, "version": {"$lt": reset.originator_version}}
    [drop] = task_log_view.updates([deleted])
    assert drop._filter == {"task": task.task_id}
    created = Task.create(uuid4(), {"name": "n", "type": "training"}, "a").collect_events()
    assert task_log_view.updates(created) == []


def test_the_task_view_takes_the_reports_as_version_guarded_sets() -> None:
    task = claimed()
    task.report_metrics([point(1.0, 2)], "agent")
    [event] = task.collect_events()
    update = task_view.task_view_update(event)
    assert update._filter == {"_id": task.task_id, "_version": {"$lt": event.originator_version}}
    fields = update._doc["$set"]
    assert fields["last_iteration"] == 2
    assert fields[f"last_metrics.{metric_key('loss')}.{metric_key('train')}"]["value"] == 1.0
    assert "last_change" not in fields
