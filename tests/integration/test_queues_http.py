"""The queues and workers services over HTTP, against a real gateway, event store, projector and views."""
from __future__ import annotations

import time

import pytest

from projections.positions import POSITIONS_COLLECTION
from projections.projector import Projector
from tasktrail.application import TaskTrail
from tasktrail.config import event_store_env
from tests.conftest import Stack, wait_until


@pytest.fixture
def api(stack: Stack) -> Stack:
    stack.start_gateway()
    stack.start("projector")
    return stack


def ok(answer: dict) -> dict:
    assert answer["meta"]["result_code"] == 200, answer["meta"]
    return answer["data"]


def refused(answer: dict) -> tuple[int, int]:
    meta = answer["meta"]
    assert meta["result_code"] != 200, answer
    return meta["result_code"], meta["result_subcode"]


def new_task(api: Stack, name: str = "job", **fields) -> str:
    return ok(api.call("tasks.create", name=name, type="training", **fields))["id"]


def entries(api: Stack, queue: str) -> list[str]:
    return [entry["task"] for entry in ok(api.call("queues.get_by_id", queue=queue))["queue"]["entries"]]


def view_of(api: Stack, queue: str) -> dict | None:
    found = ok(api.call("queues.get_all", id=[queue]))["queues"]
    return found[0] if found else None


def test_queues_are_created_once_per_name_and_listed_from_the_view(api: Stack) -> None:
    queue = ok(api.call("queues.create", name="gpu", tags=["fast"], system_tags=[]))["id"]
    assert refused(api.call("queues.create", name="gpu")) == (400, 801)
    assert refused(api.call("queues.create")) == (400, 11)
    assert ok(api.call("queues.get_by_id", queue=queue))["queue"]["name"] == "gpu"
    assert refused(api.call("queues.get_by_id", queue="0" * 32)) == (400, 701)
    listed = wait_until(lambda: ok(api.call("queues.get_all", name="^gp")).get("queues"), message="view")
    assert [(q["id"], q["tags"], q["entries"]) for q in listed] == [(queue, ["fast"], [])]
    assert ok(api.call("queues.get_all", tags=["-fast"]))["queues"] == []


def test_the_default_queue_is_created_on_demand_and_enqueue_uses_it(api: Stack) -> None:
    default = ok(api.call("queues.get_default"))
    assert default["name"] == "default"
    assert ok(api.call("queues.get_default")) == default
    task = new_task(api)
    answer = ok(api.call("tasks.enqueue", task=task, status_reason="go"))
    assert answer["queued"] == 1 and answer["queue"] == default["id"]
    assert answer["fields"]["status"] == "queued"
    assert ok(api.call("queues.peek_task", queue=default["id"]))["task"] == task


def test_enqueue_by_queue_name_and_dequeue_restore_the_status(api: Stack) -> None:
    task = new_task(api)
    queue = ok(api.call("tasks.enqueue", task=task, queue_name="cpu"))["queue"]
    assert entries(api, queue) == [task]
    assert ok(api.call("tasks.get_by_id", task=task))["task"]["execution"]["queue"] == queue
    assert refused(api.call("tasks.enqueue", task=task, queue=queue)) == (400, 706)
    answer = ok(api.call("tasks.dequeue", task=task))
    assert answer["dequeued"] == 1 and answer["fields"]["status"] == "created"
    assert entries(api, queue) == []
    assert refused(api.call("tasks.dequeue", task=task))[0] == 400


def test_get_next_task_pops_in_order_and_claims_for_a_worker(api: Stack) -> None:
    queue = ok(api.call("queues.create", name="jobs"))["id"]
    tasks = [new_task(api, f"t{i}") for i in range(3)]
    for task in tasks:
        assert ok(api.call("queues.add_task", queue=queue, task=task))["added"] == 1
    assert ok(api.call("queues.get_num_entries", queue=queue))["num"] == 3
    plain = ok(api.call("queues.get_next_task", queue=queue))
    assert plain["entry"]["task"] == tasks[0]
    claimed = ok(api.call("queues.get_next_task", queue=queue, worker="w1", environment=["HOME"]))
    assert claimed["entry"]["task"] == tasks[1]
    assert claimed["task"]["status"] == "in_progress" and claimed["task"]["last_worker"] == "w1"
    ok(api.call("queues.get_next_task", queue=queue, worker="w1"))
    assert ok(api.call("queues.get_next_task", queue=queue, worker="w1")) == {}
    assert ok(api.call("queues.peek_task", queue=queue))["task"] is None


def test_moves_answer_the_new_position_and_the_view_shows_the_order(api: Stack) -> None:
    queue = ok(api.call("queues.create", name="ordered"))["id"]
    a, b, c, d = (new_task(api, name) for name in "abcd")
    for task in (a, b, c, d):
        ok(api.call("tasks.enqueue", task=task, queue=queue))
    assert ok(api.call("queues.move_task_forward", queue=queue, task=c))["position"] == 1
    assert ok(api.call("queues.move_task_backward", queue=queue, task=a, count=5))["position"] == 3
    assert ok(api.call("queues.move_task_to_front", queue=queue, task=d))["position"] == 0
    assert ok(api.call("queues.move_task_to_back", queue=queue, task=c))["position"] == 3
    assert entries(api, queue) == [d, b, a, c]
    assert refused(api.call("queues.move_task_to_front", queue=queue, task=new_task(api))) == (400, 703)
    assert ok(api.call("queues.remove_task", queue=queue, task=b))["removed"] == 1
    assert ok(api.call("tasks.get_by_id", task=b))["task"]["status"] == "created"
    wait_until(lambda: [e["task"] for e in (view_of(api, queue) or {}).get("entries", [])] == [d, a, c],
               message="view order")


def test_a_queue_with_tasks_is_deleted_only_with_force_which_returns_them(api: Stack) -> None:
    queue = ok(api.call("queues.create", name="doomed"))["id"]
    task = new_task(api)
    ok(api.call("tasks.enqueue", task=task, queue=queue))
    assert refused(api.call("queues.delete", queue=queue)) == (400, 702)
    assert ok(api.call("queues.delete", queue=queue, force=True))["deleted"] == 1
    assert ok(api.call("tasks.get_by_id", task=task))["task"]["status"] == "created"
    assert refused(api.call("queues.get_by_id", queue=queue)) == (400, 701)
    assert ok(api.call("queues.create", name="doomed"))["id"] != queue  # the name is free again
    wait_until(lambda: view_of(api, queue) is None
               and len(ok(api.call("queues.get_all", name="doomed"))["queues"]) == 1,
               message="deleted queue gone from the view")


def test_clear_queue_answers_the_removed_tasks(api: Stack) -> None:
    queue = ok(api.call("queues.create", name="full"))["id"]
    tasks = [new_task(api) for _ in range(3)]
    for task in tasks:
        ok(api.call("tasks.enqueue", task=task, queue=queue))
    assert ok(api.call("queues.clear_queue", queue=queue))["removed_tasks"] == tasks
    assert all(ok(api.call("tasks.get_by_id", task=t))["task"]["status"] == "created" for t in tasks)


def test_queue_metrics_give_length_and_waiting_time_per_interval(api: Stack) -> None:
    queue = ok(api.call("queues.create", name="measured"))["id"]
    start = time.time() - 1
    tasks = [new_task(api) for _ in range(3)]
    for task in tasks:
        ok(api.call("tasks.enqueue", task=task, queue=queue))
    time.sleep(0.3)
    ok(api.call("queues.get_next_task", queue=queue, worker="w"))
    metrics = ok(api.call("queues.get_queue_metrics", from_date=start, to_date=time.time() + 1, interval=60,
                          queue_ids=[queue]))["queues"]
    assert len(metrics) == 1 and metrics[0]["queue"] == queue
    assert metrics[0]["queue_lengths"] == [2]  # the point with the longest average wait: after the pop
    assert metrics[0]["avg_waiting_times"][0] >= 0.3
    everything = wait_until(lambda: ok(api.call("queues.get_queue_metrics", from_date=start, to_date=time.time(),
                                                interval=1))["queues"][0]["dates"], message="all queues")
    assert everything
    assert refused(api.call("queues.get_queue_metrics", from_date=start))[0] == 400


def test_workers_register_report_and_are_listed_with_their_task(api: Stack) -> None:
    queue = ok(api.call("queues.create", name="work"))["id"]
    task = new_task(api, "running")
    ok(api.call("tasks.enqueue", task=task, queue=queue))
    assert ok(api.call("workers.register", worker="w1", queues=[queue], tags=["gpu"]))["owned_tasks"] == []
    assert refused(api.call("workers.register", worker="w2", queues=["0" * 32])) == (400, 701)
    ok(api.call("queues.get_next_task", queue=queue, worker="w1"))
    ok(api.call("workers.status_report", worker="w1", timestamp=int(time.time()), task=task, queue=queue,
                machine_stats={"cpu_usage": [10.0]}, unknown_field="ignored"))
    workers = wait_until(lambda: [w for w in ok(api.call("workers.get_all"))["workers"]
                                  if w["task"] and w["task"]["name"] == "running"], message="worker with task")
    assert workers[0]["id"] == "w1" and workers[0]["tags"] == ["gpu"]
    assert workers[0]["queues"][0]["name"] == "work" and workers[0]["task"]["running_time"] >= 0
    assert ok(api.call("workers.get_all", tags=["cpu"]))["workers"] == []
    wait_until(lambda: ok(api.call("workers.register", worker="w1", queues=[queue]))["owned_tasks"] == [task],
               message="owned task shown")
    ok(api.call("workers.unregister", worker="w1"))
    assert ok(api.call("workers.get_all"))["workers"] == []
    assert refused(api.call("workers.unregister", worker="w1")) == (400, 1004)
    ok(api.call("workers.status_report", worker="w1", timestamp=int(time.time())))  # registers again
    assert [w["id"] for w in ok(api.call("workers.get_all"))["workers"]] == ["w1"]


def test_the_queue_view_rebuilt_from_zero_equals_the_live_view(api: Stack, mongo_client) -> None:
    queue = ok(api.call("queues.create", name="replayed", metadata={"team": {"key": "team", "value": "ml"}}))["id"]
    tasks = [new_task(api) for _ in range(6)]
    for task in tasks:
        ok(api.call("tasks.enqueue", task=task, queue=queue))
    ok(api.call("queues.move_task_to_front", queue=queue, task=tasks[4]))
    ok(api.call("queues.move_task_backward", queue=queue, task=tasks[0], count=2))
    ok(api.call("queues.get_next_task", queue=queue, worker="w1"))
    ok(api.call("tasks.dequeue", task=tasks[2]))
    ok(api.call("queues.update", queue=queue, tags=["x"]))
    app = TaskTrail(event_store_env(api.data_dir) | {"SQLITE_DBNAME": api.env["SQLITE_DBNAME"]})
    try:
        live = mongo_client[api.env["TASKTRAIL_MONGODB_DB"]]
        last = app.recorder.max_notification_id()
        wait_until(lambda: (live[POSITIONS_COLLECTION].find_one({"_id": Projector.name}) or {}).get("position") == last,
                   message="projector caught up")
        rebuilt = mongo_client[api.env["TASKTRAIL_MONGODB_DB"] + "_rebuilt"]
        projector = Projector(app, rebuilt)
        notifications = app.recorder.select_notifications(0, 10_000, inclusive_of_start=False)
        projector.apply(notifications[: len(notifications) // 2])
        projector.apply(notifications)  # replayed events change nothing
        assert list(rebuilt.queues.find({})) == list(live.queues.find({}))
        aggregate_order = entries(api, queue)
        assert live.queues.find_one({"_id": queue})["order"] == aggregate_order
    finally:
        app.close()


def test_a_queued_task_that_fails_or_starts_leaves_its_queue(api: Stack) -> None:
    queue = ok(api.call("queues.create", name="leaving"))["id"]
    failing, starting, staying = (new_task(api, name) for name in ("failing", "starting", "staying"))
    for task in (failing, starting, staying):
        ok(api.call("tasks.enqueue", task=task, queue=queue))
    ok(api.call("tasks.failed", task=failing, force=True))
    ok(api.call("tasks.started", task=starting))
    assert entries(api, queue) == [staying]
    assert ok(api.call("queues.get_num_entries", queue=queue))["num"] == 1


def test_a_worker_claim_is_recorded_with_the_caller_as_actor_and_the_worker_on_the_task(api: Stack) -> None:
    task = new_task(api)
    ok(api.call("tasks.enqueue", task=task, queue_name="claims"))
    started = ok(api.call("tasks.started", task=task, worker="w7"))
    assert started["started"] == 1
    app = TaskTrail(event_store_env(api.data_dir) | {"SQLITE_DBNAME": api.env["SQLITE_DBNAME"]})
    try:
        claim = app.task_history(task)[-1]
        assert (type(claim).__name__, claim.actor, claim.worker) == ("Started", "tasktrail", "w7")
    finally:
        app.close()
