"""Behaviour of the Task aggregate and of task field validation: pure, in memory."""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest

from domain.document import iso_time
from domain.errors import (
    InvalidField,
    InvalidStatusChange,
    MissingRequiredField,
    TaskAlreadyClaimed,
    TaskTrailError,
)
from domain.status import TaskStatus
from domain.task import Task, task_id_to_uuid
from domain.task_fields import validated_task_fields

S = TaskStatus


# -- helpers -----------------------------------------------------------------------------------
def new_task(actor: str = "alice", **fields: Any) -> Task:
    return Task.create(uuid4(), {"name": "train", "type": "training", **fields}, actor)


def queued_task(queue: str = "gpu") -> Task:
    task = new_task()
    task.enqueue(queue, "alice")
    return task


def claimed_task(worker: str = "worker-1") -> Task:
    task = queued_task()
    task.claim(worker)
    return task


def started_task() -> Task:
    """Started by a client, not claimed by a worker."""
    task = new_task()
    task.start("alice")
    return task


# Statuses some command moves a task to (none moves it to publishing or unknown).
REACHABLE = [s for s in TaskStatus if s not in (S.publishing, S.unknown)]


def task_in(status: TaskStatus) -> Task:
    """A task brought to `status` (by force where needed), its events already collected."""
    task = new_task()
    commands: dict[TaskStatus, Callable[[], None]] = {
        S.created: lambda: None,
        S.queued: lambda: task.enqueue("gpu", "setup"),
        S.in_progress: lambda: task.start("setup"),
        S.stopped: lambda: task.stopped("setup", force=True),
        S.failed: lambda: task.fail("setup", force=True),
        S.completed: lambda: task.complete("setup", force=True),
        S.closed: lambda: task.close("setup", force=True),
        S.published: lambda: task.publish("setup", force=True),
    }
    commands[status]()
    task.collect_events()
    assert task.status == status
    return task


def last_event(task: Task) -> Task.Event:
    events = task.collect_events()
    assert events, "no event was recorded"
    return events[-1]


def replay(events: list) -> Task:
    aggregate = None
    for event in events:
        aggregate = event.mutate(aggregate)
    assert aggregate is not None
    return aggregate


# -- create ------------------------------------------------------------------------------------
def test_a_new_task_has_status_created_its_creation_time_and_its_user():
    before = datetime.now(timezone.utc)
    task = new_task(actor="alice", comment="first try", tags=["a"])
    created = last_event(task)

    assert isinstance(created, Task.Created)
    assert task.version == 1
    assert task.status == S.created
    assert task.doc["status"] == "created"
    assert task.doc["user"] == "alice"
    assert task.doc["name"] == "train"
    assert task.doc["type"] == "training"
    assert task.doc["comment"] == "first try"
    assert task.doc["tags"] == ["a"]
    assert task.doc["created"] == created.at == task.doc["status_changed"]
    created_time = datetime.fromisoformat(task.doc["created"])
    assert before - timedelta(seconds=1) <= created_time <= datetime.now(timezone.utc)
    for unset in ("started", "completed", "published", "last_worker", "enqueue_status"):
        assert task.doc[unset] is None, unset
    assert task.queue is None


def test_a_task_id_is_32_hex_digits():
    task = new_task()
    assert len(task.task_id) == 32
    assert task_id_to_uuid(task.task_id) == task.id
    for bad in ("", "xyz", task.task_id[:-1], None):
        with pytest.raises(ValueError):
            task_id_to_uuid(bad)


def test_event_times_are_utc_iso_text_with_microseconds():
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert iso_time(moment) == "2024-01-02T01:04:05.000000+00:00"


# -- enqueue -----------------------------------------------------------------------------------
def test_enqueueing_records_the_queue_and_the_status_the_task_had_before():
    task = new_task()
    task.enqueue("gpu", "bob", reason="go", message="please")
    event = last_event(task)

    assert isinstance(event, Task.Enqueued)
    assert task.status == S.queued
    assert task.doc["execution"]["queue"] == "gpu"
    assert task.queue == "gpu"
    assert task.doc["enqueue_status"] == "created"
    assert task.doc["status_reason"] == "go"
    assert task.doc["status_message"] == "please"
    assert task.doc["status_changed"] == event.at


def test_enqueueing_a_stopped_task_remembers_that_it_was_stopped():
    task = task_in(S.stopped)
    task.enqueue("cpu", "bob")
    assert task.status == S.queued
    assert task.doc["enqueue_status"] == "stopped"
    assert task.doc["execution"]["queue"] == "cpu"


def test_enqueueing_keeps_the_other_execution_fields():
    task = new_task(execution={"parameters": {"lr": "0.1"}})
    task.enqueue("gpu", "bob")
    assert task.doc["execution"] == {"parameters": {"lr": "0.1"}, "queue": "gpu"}


def test_a_published_task_cannot_be_enqueued_without_force():
    task = task_in(S.published)
    with pytest.raises(InvalidStatusChange):
        task.enqueue("gpu", "bob")
    task.enqueue("gpu", "bob", force=True)
    assert task.status == S.queued
    assert task.doc["enqueue_status"] == "published"


# -- claim -------------------------------------------------------------------------------------
def test_a_worker_claiming_a_queued_task_runs_it():
    task = queued_task()
    task.claim("worker-1")
    event = last_event(task)

    assert isinstance(event, Task.Started)
    assert task.status == S.in_progress
    assert task.doc["last_worker"] == "worker-1"
    assert task.doc["last_worker_report"] == event.at
    assert task.doc["started"] == event.at
    assert event.actor == "worker-1"


def test_a_claimed_task_cannot_be_claimed_by_a_second_worker():
    task = claimed_task("worker-1")
    task.collect_events()
    with pytest.raises(TaskAlreadyClaimed) as refused:
        task.claim("worker-2")
    assert task.doc["last_worker"] == "worker-1"
    assert task.collect_events() == []
    assert "worker-2" in str(refused.value)


def test_an_already_claimed_error_is_an_invalid_status_change():
    assert issubclass(TaskAlreadyClaimed, InvalidStatusChange)
    task = claimed_task()
    with pytest.raises(InvalidStatusChange):
        task.claim("worker-2")


@pytest.mark.parametrize(
    "status", [s for s in REACHABLE if s != S.queued], ids=lambda s: s.value
)
def test_only_a_queued_task_can_be_claimed(status):
    task = task_in(status)
    with pytest.raises(TaskAlreadyClaimed):
        task.claim("worker-1")
    assert task.status == status
    assert task.doc["last_worker"] is None


# -- start -------------------------------------------------------------------------------------
def test_the_start_time_is_set_only_on_the_first_start():
    task = new_task()
    task.start("alice")
    first = last_event(task)
    assert task.doc["started"] == first.at
    assert first.first_start is True

    task.stop("alice")  # no worker runs it: stops at once
    assert task.status == S.stopped
    task.start("alice")
    second = last_event(task)

    assert isinstance(second, Task.Started)
    assert second.first_start is False
    assert "started" not in second.changes()
    assert task.status == S.in_progress
    assert task.doc["started"] == first.at
    assert task.doc["status_changed"] == second.at


def test_starting_without_a_worker_leaves_last_worker_alone():
    task = started_task()
    assert task.status == S.in_progress
    assert task.doc["last_worker"] is None


def test_a_published_task_cannot_be_started_without_force():
    task = task_in(S.published)
    with pytest.raises(InvalidStatusChange):
        task.start("alice")
    task.start("alice", force=True)
    assert task.status == S.in_progress


# -- stop --------------------------------------------------------------------------------------
def test_stopping_a_task_a_worker_runs_asks_the_worker_to_stop_and_keeps_it_in_progress():
    task = claimed_task()
    task.collect_events()
    task.stop("bob", reason="enough", message="ignored")
    events = task.collect_events()

    assert [type(event) for event in events] == [Task.StopRequested]
    assert task.status == S.in_progress
    assert task.doc["status_message"] == "stopping"
    assert task.doc["status_reason"] == "enough"
    assert task.doc["completed"] is None


def test_force_stopping_a_task_a_worker_runs_stops_it_at_once():
    task = claimed_task()
    task.collect_events()
    task.stop("bob", force=True)
    event = last_event(task)
    assert isinstance(event, Task.Stopped)
    assert task.status == S.stopped
    assert task.doc["completed"] == event.at


def test_stopping_a_queued_task_stops_it_at_once():
    task = queued_task()
    task.collect_events()
    task.stop("bob", message="not now")
    event = last_event(task)

    assert isinstance(event, Task.Stopped)
    assert task.status == S.stopped
    assert task.doc["status_message"] == "not now"
    assert task.doc["completed"] == event.at


def test_stopping_a_task_started_without_a_worker_stops_it_at_once():
    task = started_task()
    task.stop("bob")
    assert isinstance(last_event(task), Task.Stopped)
    assert task.status == S.stopped


def test_a_created_task_cannot_be_stopped_without_force():
    task = new_task()
    with pytest.raises(InvalidStatusChange):
        task.stop("bob")
    assert task.status == S.created


# -- ending and publishing ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "event_class", "status"),
    [
        ("complete", Task.Completed, S.completed),
        ("fail", Task.Failed, S.failed),
        ("stopped", Task.Stopped, S.stopped),
    ],
)
def test_ending_a_run_sets_the_end_time(command, event_class, status):
    task = claimed_task()
    task.collect_events()
    getattr(task, command)("worker-1", reason="done")
    event = last_event(task)

    assert isinstance(event, event_class)
    assert task.status == status
    assert task.doc["completed"] == event.at
    assert task.doc["status_reason"] == "done"
    assert task.doc["started"] is not None


def test_a_created_task_cannot_be_completed_without_force():
    task = new_task()
    with pytest.raises(InvalidStatusChange):
        task.complete("alice")
    task.complete("alice", force=True)
    assert task.status == S.completed


def test_publishing_sets_the_publish_time():
    task = claimed_task()
    task.complete("worker-1")
    task.collect_events()
    task.publish("alice")
    event = last_event(task)

    assert isinstance(event, Task.Published)
    assert task.status == S.published
    assert task.doc["published"] == event.at


def test_a_published_task_is_final_without_force():
    task = task_in(S.published)
    for command in (task.reset, task.close, task.fail, task.complete, task.stopped):
        with pytest.raises(InvalidStatusChange):
            command("alice")
    assert task.status == S.published


def test_closing_a_stopped_task():
    task = task_in(S.stopped)
    task.close("alice")
    assert isinstance(last_event(task), Task.Closed)
    assert task.status == S.closed


# -- reset -------------------------------------------------------------------------------------
def test_reset_clears_the_run_fields_and_the_queue():
    task = claimed_task("worker-1")
    task.complete("worker-1")
    task.collect_events()
    assert task.doc["execution"]["queue"] == "gpu"

    task.reset("alice")
    event = last_event(task)

    assert isinstance(event, Task.Reset)
    assert task.status == S.created
    cleared = ("started", "completed", "published", "last_worker", "last_worker_report", "enqueue_status")
    assert {field: task.doc[field] for field in cleared} == dict.fromkeys(cleared)
    assert task.doc["execution"]["queue"] is None
    assert task.doc["last_iteration"] == 0


def test_resetting_a_queued_task_takes_it_off_its_queue():
    task = queued_task()
    task.reset("alice")
    assert task.status == S.created
    assert task.queue is None
    assert task.doc["enqueue_status"] is None


def test_after_a_reset_the_next_start_sets_the_start_time_again():
    task = claimed_task()
    task.stopped("worker-1")
    task.reset("alice")
    task.collect_events()
    task.start("alice")
    event = last_event(task)
    assert event.first_start is True
    assert task.doc["started"] == event.at


# -- dequeue -----------------------------------------------------------------------------------
def test_dequeueing_returns_a_task_to_the_status_it_had_before_it_was_enqueued():
    task = task_in(S.stopped)
    task.enqueue("gpu", "alice")
    task.dequeue("alice", reason="oops")
    event = last_event(task)

    assert isinstance(event, Task.Dequeued)
    assert task.status == S.stopped
    assert task.queue is None
    assert task.doc["enqueue_status"] is None
    assert task.doc["status_reason"] == "oops"


def test_dequeueing_a_task_enqueued_from_created_makes_it_created_again():
    task = queued_task()
    task.dequeue("alice")
    assert task.status == S.created
    assert task.queue is None


def test_dequeueing_to_a_given_status():
    task = queued_task()
    task.dequeue("alice", new_status="failed")
    assert task.status == S.failed
    assert task.queue is None


def test_dequeueing_to_an_unknown_status_is_refused():
    task = queued_task()
    task.collect_events()
    with pytest.raises(InvalidField):
        task.dequeue("alice", new_status="sleeping")
    assert task.status == S.queued
    assert task.collect_events() == []


@pytest.mark.parametrize(
    "status", [s for s in REACHABLE if s != S.queued], ids=lambda s: s.value
)
def test_only_a_queued_task_can_be_dequeued(status):
    task = task_in(status)
    with pytest.raises(InvalidStatusChange):
        task.dequeue("alice")
    assert task.status == status


def test_dequeueing_a_task_enqueued_twice_takes_it_off_the_queues():
    task = queued_task("gpu")
    with contextlib.suppress(InvalidStatusChange):
        task.enqueue("cpu", "alice")
    task.dequeue("alice")
    assert task.status == S.created
    assert task.queue is None


# -- refused commands --------------------------------------------------------------------------
REFUSED_COMMANDS: list[tuple[str, TaskStatus, Callable[[Task], None], type[TaskTrailError]]] = [
    ("enqueue a published task", S.published, lambda t: t.enqueue("gpu", "a"), InvalidStatusChange),
    ("dequeue a created task", S.created, lambda t: t.dequeue("a"), InvalidStatusChange),
    ("dequeue to a bad status", S.queued, lambda t: t.dequeue("a", new_status="x"), InvalidField),
    ("claim a created task", S.created, lambda t: t.claim("w"), TaskAlreadyClaimed),
    ("claim a running task", S.in_progress, lambda t: t.claim("w"), TaskAlreadyClaimed),
    ("start a published task", S.published, lambda t: t.start("a"), InvalidStatusChange),
    ("stop a created task", S.created, lambda t: t.stop("a"), InvalidStatusChange),
    ("stopped a completed task", S.completed, lambda t: t.stopped("a"), InvalidStatusChange),
    ("fail a queued task", S.queued, lambda t: t.fail("a"), InvalidStatusChange),
    ("complete a created task", S.created, lambda t: t.complete("a"), InvalidStatusChange),
    ("close a running task", S.in_progress, lambda t: t.close("a"), InvalidStatusChange),
    ("publish a queued task", S.queued, lambda t: t.publish("a"), InvalidStatusChange),
    ("reset a published task", S.published, lambda t: t.reset("a"), InvalidStatusChange),
]


@pytest.mark.parametrize(
    ("status", "command", "error"),
    [case[1:] for case in REFUSED_COMMANDS],
    ids=[case[0] for case in REFUSED_COMMANDS],
)
def test_a_refused_command_records_no_event_and_leaves_the_document_unchanged(status, command, error):
    task = task_in(status)
    before = copy.deepcopy(task.doc)
    version = task.version

    with pytest.raises(error):
        command(task)

    assert task.collect_events() == []
    assert task.version == version
    assert task.doc == before


# -- replay ------------------------------------------------------------------------------------
def test_replaying_the_collected_events_rebuilds_an_equal_task():
    task = new_task(tags=["x"], execution={"parameters": {"lr": "0.1"}})
    task.enqueue("gpu", "alice")
    task.claim("worker-1")
    task.stop("bob")
    task.stopped("worker-1")
    task.enqueue("cpu", "alice")
    task.dequeue("alice")
    task.close("alice")
    task.reset("alice", force=True)
    task.start("alice")
    task.complete("alice")
    task.publish("alice")
    events = task.collect_events()

    rebuilt = replay(events)

    assert len(events) == 13  # publish records PublishingStarted and Published
    assert rebuilt.id == task.id
    assert rebuilt.version == task.version == 13
    assert rebuilt.doc == task.doc
    assert rebuilt.status == S.published


def test_replaying_part_of_the_events_gives_the_task_as_it_was_then():
    task = queued_task()
    halfway = copy.deepcopy(task.doc)
    task.claim("worker-1")
    task.complete("worker-1")
    events = task.collect_events()

    assert replay(events[:2]).doc == halfway
    assert replay(events).doc == task.doc


def test_events_state_their_effect_as_dotted_path_changes():
    task = queued_task("gpu")
    enqueued = task.collect_events()[-1]
    changes = enqueued.changes()
    assert changes["execution.queue"] == "gpu"
    assert changes["status"] == "queued"
    assert changes["enqueue_status"] == "created"
    assert changes["last_update"] == changes["last_change"] == enqueued.at


# -- task fields -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "missing"),
    [
        ({"type": "training"}, "name"),
        ({"name": "", "type": "training"}, "name"),
        ({"name": "x"}, "type"),
        ({"name": "x", "type": None}, "type"),
    ],
)
def test_a_task_without_name_or_type_is_refused(fields, missing):
    with pytest.raises(MissingRequiredField) as refused:
        validated_task_fields(fields, require_name_and_type=True)
    assert missing in str(refused.value)


def test_a_task_missing_both_name_and_type_names_both():
    with pytest.raises(MissingRequiredField) as refused:
        validated_task_fields({}, require_name_and_type=True)
    assert "name" in str(refused.value) and "type" in str(refused.value)


def test_name_and_type_are_not_required_for_an_edit():
    assert validated_task_fields({"comment": "c"}, require_name_and_type=False) == {"comment": "c"}


@pytest.mark.parametrize("bad_type", ["train", "", 3, None, "Training"])
def test_an_unknown_task_type_is_refused(bad_type):
    with pytest.raises(InvalidField) as refused:
        validated_task_fields({"name": "x", "type": bad_type}, require_name_and_type=False)
    assert "type" in str(refused.value)


@pytest.mark.parametrize("bad_tags", ["a,b", ["a", 1], [None], {"a": 1}, 5])
@pytest.mark.parametrize("field", ["tags", "system_tags"])
def test_tags_that_are_not_a_list_of_strings_are_refused(field, bad_tags):
    with pytest.raises(InvalidField) as refused:
        validated_task_fields({"name": "x", "type": "training", field: bad_tags}, require_name_and_type=True)
    assert field in str(refused.value)


@pytest.mark.parametrize(
    "fields",
    [
        {"comment": 3},
        {"project": ["p"]},
        {"script": "run.py"},
        {"execution": []},
        {"script": {"entry_point": 1}},
        {"script": {"requirements": "numpy"}},
    ],
)
def test_fields_of_the_wrong_type_are_refused(fields):
    with pytest.raises(InvalidField):
        validated_task_fields({"name": "x", "type": "training", **fields}, require_name_and_type=True)


def test_unknown_keys_are_dropped_and_known_ones_kept():
    fields = {
        "name": "x",
        "type": "testing",
        "comment": "c",
        "tags": ["a", "b"],
        "script": {"entry_point": "run.py", "requirements": {"pip": "numpy"}},
        "execution": {"queue": "q"},
        "output_dest": "s3://b",
        "status": "published",
        "id": "0" * 32,
        "whatever": 1,
    }
    known = validated_task_fields(fields, require_name_and_type=True)
    assert known == {
        "name": "x",
        "type": "testing",
        "comment": "c",
        "tags": ["a", "b"],
        "script": {"entry_point": "run.py", "requirements": {"pip": "numpy"}},
        "execution": {"queue": "q"},
        "output_dest": "s3://b",
    }
    known["tags"].append("c")
    assert fields["tags"] == ["a", "b"]  # a copy, not the caller's list


def test_validated_fields_make_the_initial_document():
    known = validated_task_fields(
        {"name": "x", "type": "qc", "output_dest": "s3://b", "status": "published"},
        require_name_and_type=True,
    )
    task = Task.create(uuid4(), known, "carol")
    assert task.status == S.created
    assert task.doc["output"] == {"destination": "s3://b"}
    assert task.doc["type"] == "qc"
