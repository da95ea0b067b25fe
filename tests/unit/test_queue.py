"""The Queue aggregate, the requirements check, and queue commands on tasks: pure, in memory."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest

from domain.errors import InvalidField, InvalidStatusChange
from domain.queue import (
    DefaultQueueExists,
    Queue,
    QueueNameTaken,
    QueueNotEmpty,
    QueueNotFound,
    TaskAlreadyInQueue,
    TaskNotInQueue,
    timeline,
)
from domain.requirements import checked_requirements, unmet_requirements
from domain.status import TaskStatus
from domain.task import Task
from gateway import queue_work
from gateway.group_commit import UnitOfWork
from gateway.workers_service import lose_worker, register_worker
from tasktrail.application import TaskTrail

S = TaskStatus


# -- the aggregate -------------------------------------------------------------------------------
def new_queue(*tasks: str) -> Queue:
    queue = Queue.create(uuid4(), "gpu", "alice")
    for task in tasks:
        queue.add(task, "alice")
    return queue


def test_entries_keep_the_order_they_were_added_in() -> None:
    queue = new_queue("a", "b", "c")
    assert queue.order == ["a", "b", "c"]
    assert [entry["task"] for entry in queue.entries()] == ["a", "b", "c"]


def test_a_task_cannot_be_added_twice() -> None:
    queue = new_queue("a")
    with pytest.raises(TaskAlreadyInQueue):
        queue.add("a", "alice")


def test_moves_are_clamped_to_the_ends_of_the_queue() -> None:
    queue = new_queue("a", "b", "c", "d")
    assert queue.move("c", "alice", queue.position_of("c") - 1) == 1
    assert queue.order == ["a", "c", "b", "d"]
    assert queue.move("a", "alice", 99) == 3
    assert queue.order == ["c", "b", "d", "a"]
    assert queue.move("a", "alice", -5) == 0
    assert queue.order == ["a", "c", "b", "d"]


def test_moving_a_task_to_where_it_is_records_nothing() -> None:
    queue = new_queue("a", "b")
    before = len(queue.collect_events())
    queue.move("a", "alice", 0)
    assert before and not queue.collect_events()


def test_commands_on_a_task_not_in_the_queue_are_refused() -> None:
    queue = new_queue("a")
    for command in (lambda: queue.remove("x", "alice", "r"), lambda: queue.move("x", "alice", 0),
                    lambda: queue.take("x", "alice")):
        with pytest.raises(TaskNotInQueue):
            command()


def test_a_queue_with_tasks_is_deleted_only_with_force() -> None:
    queue = new_queue("a")
    with pytest.raises(QueueNotEmpty):
        queue.delete("alice")
    assert queue.delete("alice", force=True) == ["a"]
    with pytest.raises(QueueNotFound):
        queue.add("b", "alice")


def test_a_worker_passing_a_task_over_is_recorded_once_per_reason() -> None:
    queue = new_queue("a")
    queue.collect_events()
    queue.pass_over("a", "w1", ["DATA_URL"], "w1")
    queue.pass_over("a", "w1", ["DATA_URL"], "w1")
    queue.pass_over("a", "w2", ["DATA_URL"], "w2")
    assert len(queue.collect_events()) == 2
    assert queue.waiting["a"] == [{"worker": "w1", "missing": ["DATA_URL"]},
                                  {"worker": "w2", "missing": ["DATA_URL"]}]
    queue.take("a", "w3", "w3")
    assert "a" not in queue.waiting


def test_replaying_the_events_rebuilds_the_same_queue() -> None:
    queue = new_queue("a", "b", "c")
    queue.move("c", "alice", 0)
    queue.take("c", "w1", "w1")
    queue.remove("a", "alice", "removed")
    events = queue.collect_events()
    replayed = None
    for event in events:
        replayed = event.mutate(replayed)
    assert replayed.order == queue.order == ["b"]
    assert replayed.added == queue.added


def test_the_timeline_gives_length_and_waiting_time_after_each_event() -> None:
    queue = new_queue("a", "b")
    queue.take("a", "w", "w")
    samples = timeline(queue.collect_events())
    assert [length for _, length, _ in samples] == [0, 1, 2, 1]
    assert all(wait >= 0 for _, _, wait in samples)


# -- requirements --------------------------------------------------------------------------------
def env_requirements(*names: str, relations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "requirements": [{"id": i, "requirement": {"type": "environmentVariable", "name": name, "target": "URL"}}
                         for i, name in enumerate(names)],
        "relations": relations if relations is not None else [{"type": "all", "requirements": list(range(len(names)))}],
    }


def test_all_relations_need_every_variable_and_any_relations_one() -> None:
    spec = env_requirements("DATA_URL", "TOKEN", "CACHE_DIR", relations=[
        {"type": "all", "requirements": [0]}, {"type": "any", "requirements": [1, 2]}])
    assert unmet_requirements(spec, {"DATA_URL", "CACHE_DIR"}) == []
    assert unmet_requirements(spec, {"TOKEN"}) == ["DATA_URL"]
    assert unmet_requirements(spec, set()) == ["DATA_URL", "one of TOKEN, CACHE_DIR"]


def test_a_requirement_in_no_relation_is_needed_on_its_own() -> None:
    assert unmet_requirements(env_requirements("DATA_URL", relations=[]), set()) == ["DATA_URL"]


@pytest.mark.parametrize("name", ["data_url", "DATA__URL", "_DATA", "DATA1", ""])
def test_variable_names_must_be_upper_case_words_joined_by_underscores(name: str) -> None:
    with pytest.raises(InvalidField):
        checked_requirements(env_requirements(name))


@pytest.mark.parametrize("spec", [
    {"requirements": [{"id": 0, "requirement": {"type": "gpu", "name": "A"}}]},
    {"requirements": [], "relations": [{"type": "all", "requirements": [3]}]},
    {"requirements": [], "relations": [{"type": "some", "requirements": [0]}]},
    "all",
])
def test_malformed_requirements_are_refused(spec: Any) -> None:
    with pytest.raises(InvalidField):
        checked_requirements(spec)


# -- queue commands on tasks, in one unit of work --------------------------------------------------
@pytest.fixture
def app() -> Iterator[TaskTrail]:
    application = TaskTrail({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield application
    application.close()


def run(app: TaskTrail, command) -> Any:
    """Run a command as the group commit does: one unit of work, saved when the command succeeds."""
    work = UnitOfWork(app)
    result = command(work)
    work.save()
    return result


def create_task(app: TaskTrail, **fields: Any) -> str:
    task = Task.create(uuid4(), {"name": "job", "type": "training", **fields}, "alice")
    app.save(task)
    return task.task_id


def create_queue(app: TaskTrail, name: str = "gpu", **kwargs: Any) -> str:
    return run(app, lambda work: queue_work.create_queue(work, name, "alice", **kwargs).queue_id)


def enqueue(app: TaskTrail, task_id: str, queue_id: str | None = None, name: str | None = None) -> str:
    def command(work: UnitOfWork) -> str:
        queue = queue_work.resolve_queue(work, queue_id, name, "alice")
        queue_work.enqueue_task(work, work.get_task(task_id), queue, "alice")
        return queue.queue_id

    return run(app, command)


def take(app: TaskTrail, queue_id: str, worker: str | None = "w1", environment=None) -> str | None:
    def command(work: UnitOfWork) -> str | None:
        taken = queue_work.take_next(work, queue_work.get_queue(work, queue_id), worker or "alice", worker, environment)
        return taken[0].task_id if taken else None

    return run(app, command)


def queue_of(app: TaskTrail, queue_id: str) -> Queue:
    return app.repository.get(queue_work.parse_queue_id(queue_id))


def test_queue_names_are_unique_until_the_queue_is_deleted(app: TaskTrail) -> None:
    queue_id = create_queue(app, "gpu")
    with pytest.raises(QueueNameTaken):
        create_queue(app, "gpu")
    run(app, lambda work: queue_work.delete_queue(work, queue_work.get_queue(work, queue_id), "alice", False))
    assert create_queue(app, "gpu") != queue_id


def test_only_one_queue_carries_the_default_tag(app: TaskTrail) -> None:
    create_queue(app, "main", system_tags=["default"])
    with pytest.raises(DefaultQueueExists):
        create_queue(app, "other", system_tags=["default"])


def test_enqueue_without_a_queue_creates_the_default_queue_once(app: TaskTrail) -> None:
    first = enqueue(app, create_task(app))
    second = enqueue(app, create_task(app))
    assert first == second
    assert queue_of(app, first).system_tags == ["default"]
    assert queue_of(app, first).name == "default"


def test_enqueue_by_name_creates_the_queue_on_demand(app: TaskTrail) -> None:
    first = enqueue(app, create_task(app), name="cpu")
    assert enqueue(app, create_task(app), name="cpu") == first
    assert queue_of(app, first).name == "cpu"


def test_task_and_queue_change_in_one_transaction(app: TaskTrail) -> None:
    queue_id = create_queue(app)
    task_id = create_task(app)
    position = app.recorder.max_notification_id()
    enqueue(app, task_id, queue_id)
    notifications = app.recorder.select_notifications(position, 10, inclusive_of_start=False)
    assert sorted(n.topic.split(":")[-1] for n in notifications) == ["Queue.TaskAdded", "Task.Enqueued"]
    assert app.get_task(task_id).queue == queue_id
    assert queue_of(app, queue_id).order == [task_id]


def test_enqueueing_into_another_queue_moves_the_task_and_keeps_its_status_before(app: TaskTrail) -> None:
    first, second = create_queue(app, "a"), create_queue(app, "b")
    task_id = create_task(app)
    enqueue(app, task_id, first)
    enqueue(app, task_id, second)
    assert queue_of(app, first).order == []
    assert queue_of(app, second).order == [task_id]
    task = app.get_task(task_id)
    assert task.queue == second and task.doc["enqueue_status"] == "created"


def test_enqueueing_twice_into_the_same_queue_is_refused(app: TaskTrail) -> None:
    queue_id = create_queue(app)
    task_id = create_task(app)
    enqueue(app, task_id, queue_id)
    with pytest.raises(TaskAlreadyInQueue):
        enqueue(app, task_id, queue_id)


def test_dequeue_restores_the_status_and_removes_the_entry(app: TaskTrail) -> None:
    queue_id = create_queue(app)
    task_id = create_task(app)
    enqueue(app, task_id, queue_id)
    run(app, lambda work: queue_work.dequeue_task(work, work.get_task(task_id), "alice"))
    assert app.get_task(task_id).status == S.created
    assert queue_of(app, queue_id).order == []


def test_get_next_task_pops_the_head_and_claims_it(app: TaskTrail) -> None:
    queue_id = create_queue(app)
    tasks = [create_task(app) for _ in range(3)]
    for task_id in tasks:
        enqueue(app, task_id, queue_id)
    assert take(app, queue_id, "w1") == tasks[0]
    task = app.get_task(tasks[0])
    assert task.status == S.in_progress and task.doc["last_worker"] == "w1"
    assert queue_of(app, queue_id).order == tasks[1:]


def test_get_next_task_on_an_empty_queue_answers_nothing(app: TaskTrail) -> None:
    assert take(app, create_queue(app)) is None


def test_a_stale_entry_is_dropped_and_never_handed_out(app: TaskTrail) -> None:
    queue_id = create_queue(app)
    stale, fresh = create_task(app), create_task(app)
    enqueue(app, stale, queue_id)
    enqueue(app, fresh, queue_id)
    task = app.get_task(stale)
    task.dequeue("alice")  # a command that forgot remove_from_queue
    app.save(task)
    assert take(app, queue_id) == fresh
    assert queue_of(app, queue_id).order == []


def test_a_worker_skips_tasks_whose_requirements_it_lacks_and_says_why(app: TaskTrail) -> None:
    queue_id = create_queue(app)
    needy = create_task(app, script={"requirements": {"environment": env_requirements("DATA_URL")}})
    plain = create_task(app)
    enqueue(app, needy, queue_id)
    enqueue(app, plain, queue_id)
    assert take(app, queue_id, "w1", environment=["HOME"]) == plain
    queue = queue_of(app, queue_id)
    assert queue.order == [needy]
    assert queue.waiting[needy] == [{"worker": "w1", "missing": ["DATA_URL"]}]
    assert take(app, queue_id, "w1", environment=["HOME"]) is None
    assert take(app, queue_id, "w2", environment=["DATA_URL"]) == needy


def test_malformed_requirements_are_refused_at_enqueue(app: TaskTrail) -> None:
    task_id = create_task(app, script={"requirements": {"environment": env_requirements("lower")}})
    with pytest.raises(InvalidField):
        enqueue(app, task_id, create_queue(app))
    assert app.get_task(task_id).status == S.created


def test_enqueueing_a_running_task_is_refused_and_changes_nothing(app: TaskTrail) -> None:
    queue_id = create_queue(app)
    task_id = create_task(app)
    enqueue(app, task_id, queue_id)
    take(app, queue_id)
    with pytest.raises(InvalidStatusChange):
        enqueue(app, task_id, queue_id)
    assert queue_of(app, queue_id).order == []


def test_force_deleting_a_queue_returns_its_tasks_to_their_status(app: TaskTrail) -> None:
    queue_id = create_queue(app)
    task_id = create_task(app)
    enqueue(app, task_id, queue_id)
    run(app, lambda work: queue_work.delete_queue(work, queue_work.get_queue(work, queue_id), "alice", True))
    assert app.get_task(task_id).status == S.created
    with pytest.raises(QueueNotFound):
        run(app, lambda work: queue_work.get_queue(work, queue_id))


def test_a_lost_worker_fails_its_running_task_naming_the_worker(app: TaskTrail) -> None:
    queue_id = create_queue(app)
    task_id = create_task(app)
    enqueue(app, task_id, queue_id)
    run(app, lambda work: register_worker(work, "w1", "w1", [queue_id], [], []))
    take(app, queue_id, "w1")
    result = run(app, lambda work: lose_worker(work, "w1", "monitor", "worker w1 vanished", "no report", None,
                                               [task_id]))
    assert result[1] == [task_id]
    task = app.get_task(task_id)
    assert task.status == S.failed and "w1" in task.doc["status_reason"]
    assert run(app, lambda work: lose_worker(work, "w1", "monitor", "again", "", None, [task_id])) is None


def test_a_queue_may_ask_for_tasks_of_lost_workers_to_be_requeued(app: TaskTrail) -> None:
    queue_id = create_queue(app, metadata={"on_worker_lost": {"key": "on_worker_lost", "value": "requeue"}})
    first, second = create_task(app), create_task(app)
    enqueue(app, first, queue_id)
    enqueue(app, second, queue_id)
    run(app, lambda work: register_worker(work, "w1", "w1", [queue_id], [], []))
    take(app, queue_id, "w1")
    run(app, lambda work: lose_worker(work, "w1", "monitor", "worker w1 vanished", "", None, [first]))
    assert app.get_task(first).status == S.queued
    assert queue_of(app, queue_id).order == [first, second]
