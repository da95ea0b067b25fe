"""The TaskTrail application on a real event store: the same tests on SQLite and PostgreSQL."""
from __future__ import annotations

from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError

from domain.errors import TaskNotFound
from domain.status import TaskStatus
from domain.task import Task
from tasktrail.application import TaskTrail


def new_task(app: TaskTrail, name: str = "train") -> Task:
    task = Task.create(uuid4(), {"name": name, "type": "training"}, actor="alice")
    app.save(task)
    return task


def run_to_completion(app: TaskTrail, task_id: str) -> None:
    """enqueue, claim and complete, each loaded from and saved to the store (versions 2, 3, 4)."""
    task = app.get_task(task_id)
    task.enqueue("default", actor="alice")
    app.save(task)
    task = app.get_task(task_id)
    task.claim("worker-1")
    app.save(task)
    task = app.get_task(task_id)
    task.complete("worker-1", reason="done")
    app.save(task)


def test_round_trip_through_enqueue_claim_complete(app: TaskTrail) -> None:
    created = new_task(app)

    loaded = app.get_task(created.task_id)
    assert loaded.id == created.id
    assert loaded.version == 1
    assert loaded.status is TaskStatus.created
    assert loaded.doc["name"] == "train"
    assert loaded.doc["type"] == "training"
    assert loaded.doc["user"] == "alice"

    loaded.enqueue("gpu", actor="alice")
    app.save(loaded)
    queued = app.get_task(created.task_id)
    assert queued.status is TaskStatus.queued
    assert queued.queue == "gpu"
    assert queued.doc["enqueue_status"] == "created"

    queued.claim("worker-1")
    app.save(queued)
    running = app.get_task(created.task_id)
    assert running.status is TaskStatus.in_progress
    assert running.doc["last_worker"] == "worker-1"
    assert running.doc["started"] is not None

    running.complete("worker-1", reason="done")
    app.save(running)
    done = app.get_task(created.task_id)
    assert done.status is TaskStatus.completed
    assert done.version == 4
    assert done.doc["status_reason"] == "done"
    assert done.doc["completed"] is not None
    assert done.doc == running.doc


def test_round_trip_without_cache(event_store_env: dict[str, str]) -> None:
    """A second application on the same store (empty cache) rebuilds the task from stored events."""
    writer = TaskTrail(event_store_env)
    try:
        task = new_task(writer)
        run_to_completion(writer, task.task_id)
        expected = writer.get_task(task.task_id).doc
    finally:
        writer.close()
    reader = TaskTrail({**event_store_env, "AGGREGATE_CACHE_MAXSIZE": "0"})
    try:
        loaded = reader.get_task(task.task_id)
        assert loaded.version == 4
        assert loaded.status is TaskStatus.completed
        assert loaded.doc == expected
    finally:
        reader.close()


@pytest.mark.parametrize(
    "task_id",
    [
        uuid4().hex,  # well formed, never created
        "not-a-task-id",
        "",
        "z" * 32,
        uuid4().hex + "0",
        str(uuid4()),  # the dashed form is 36 characters: not a ClearML task id
    ],
)
def test_get_task_of_unknown_or_malformed_id_raises_task_not_found(app: TaskTrail, task_id: str) -> None:
    new_task(app)  # the store is not empty
    with pytest.raises(TaskNotFound):
        app.get_task(task_id)


def test_optimistic_concurrency_refuses_the_second_save(app: TaskTrail) -> None:
    task = new_task(app)
    first = app.get_task(task.task_id)
    second = app.get_task(task.task_id)
    assert first is not second

    first.enqueue("queue-a", actor="alice")
    second.enqueue("queue-b", actor="bob")
    app.save(first)
    with pytest.raises(IntegrityError):
        app.save(second)

    stored = app.get_task(task.task_id)
    assert stored.version == 2
    assert stored.queue == "queue-a"
    assert [event.actor for event in app.task_history(task.task_id)] == ["alice", "alice"]
    # A fresh application (no cache) sees the same.
    fresh = TaskTrail({**app.env, "AGGREGATE_CACHE_MAXSIZE": "0"})
    try:
        assert fresh.get_task(task.task_id).queue == "queue-a"
    finally:
        fresh.close()


def test_task_history_lists_events_in_version_order(app: TaskTrail) -> None:
    task = new_task(app)
    other = new_task(app, name="other")  # interleaved events of another task are not listed
    run_to_completion(app, task.task_id)
    run_to_completion(app, other.task_id)

    history = app.task_history(task.task_id)
    assert [type(event) for event in history] == [Task.Created, Task.Enqueued, Task.Started, Task.Completed]
    assert [event.originator_version for event in history] == [1, 2, 3, 4]
    assert {event.originator_id for event in history} == {task.id}
    timestamps = [event.timestamp for event in history]
    assert timestamps == sorted(timestamps)


def test_notification_log_lists_all_events_with_increasing_ids(app: TaskTrail) -> None:
    first = new_task(app, name="first")
    second = new_task(app, name="second")
    run_to_completion(app, first.task_id)
    second_loaded = app.get_task(second.task_id)
    second_loaded.enqueue("default", actor="bob")
    app.save(second_loaded)

    notifications = app.recorder.select_notifications(0, 100, inclusive_of_start=False)

    assert len(notifications) == 6
    ids = [notification.id for notification in notifications]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(notification_id > 0 for notification_id in ids)
    assert [(n.originator_id, n.originator_version) for n in notifications] == [
        (first.id, 1),
        (second.id, 1),
        (first.id, 2),
        (first.id, 3),
        (first.id, 4),
        (second.id, 2),
    ]
    assert app.recorder.max_notification_id() == ids[-1]
    # Reading on from a position returns only what comes after it.
    rest = app.recorder.select_notifications(ids[2], 100, inclusive_of_start=False)
    assert [n.id for n in rest] == ids[3:]


def test_time_travel_gives_the_task_as_it_was(app: TaskTrail) -> None:
    task = new_task(app)
    run_to_completion(app, task.task_id)

    as_queued = app.repository.get(task.id, version=2)
    assert isinstance(as_queued, Task)
    assert as_queued.version == 2
    assert as_queued.status is TaskStatus.queued
    assert as_queued.queue == "default"
    assert as_queued.doc["started"] is None

    as_created = app.repository.get(task.id, version=1)
    assert as_created.status is TaskStatus.created

    assert app.get_task(task.task_id).status is TaskStatus.completed
