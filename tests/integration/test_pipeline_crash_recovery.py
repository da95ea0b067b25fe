"""Kill -9 the projector and the relay in the middle of 500 commands: views and stream end exact."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import nats

from projections.positions import POSITIONS_COLLECTION
from projections.projector import Projector
from tasktrail.application import TaskTrail
from tasktrail.config import Subjects, event_store_env
from tests.conftest import Stack, wait_until

TASKS = 120  # with the 10 below: 130 tasks x 4 commands = 520 commands


def lifecycle_commands(stack: Stack, task_id: str) -> list[dict]:
    return [
        stack.call("tasks.enqueue", task=task_id, queue="crash-test"),
        stack.call("tasks.started", task=task_id),
        stack.call("tasks.completed", task=task_id),
    ]


def run_commands(stack: Stack, pool: ThreadPoolExecutor, count: int) -> list[str]:
    created = list(pool.map(lambda i: stack.call("tasks.create", name=f"t{i}", type="training"), range(count)))
    ids = [answer["data"]["id"] for answer in created]
    for answers in pool.map(lambda task_id: lifecycle_commands(stack, task_id), ids):
        assert all(answer["meta"]["result_code"] == 200 for answer in answers), answers
    return ids


def view_documents(database) -> dict[str, dict]:
    return {document["_id"]: document for document in database.tasks.find({})}


def assert_views_equal_event_store(app: TaskTrail, database, task_ids: list[str]) -> None:
    views = view_documents(database)
    assert sorted(views) == sorted(task_ids)
    for task_id in task_ids:
        task = app.get_task(task_id)
        view = dict(views[task_id])
        assert view.pop("_version") == task.version
        view.pop("_id")
        assert view == task.doc


async def published_message_ids(nats_url: str, subjects: Subjects) -> list[int]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(subjects.events_stream)
        ids = []
        for sequence in range(info.state.first_seq, info.state.last_seq + 1):
            message = await js.get_msg(subjects.events_stream, seq=sequence)
            ids.append(int(message.headers["Nats-Msg-Id"]))
        return ids
    finally:
        await nc.close()


async def test_views_and_stream_survive_kill_9_of_projector_and_relay(stack: Stack, nats_url: str,
                                                                       mongo_client) -> None:
    stack.start_gateway()
    stack.start("projector")
    stack.start("relay")
    with ThreadPoolExecutor(16) as pool:
        first = run_commands(stack, pool, TASKS // 2)
        stack.kill("projector")
        stack.kill("relay")
        second = run_commands(stack, pool, TASKS // 2)
        stack.start("projector")
        stack.start("relay")
        third_future = pool.submit(run_commands, stack, pool, 10)
        time.sleep(0.2)
        stack.kill("projector")  # killed again while commands are still arriving
        stack.start("projector")
        third = third_future.result()
    task_ids = first + second + third

    app = TaskTrail(event_store_env(stack.data_dir) | {"SQLITE_DBNAME": stack.env["SQLITE_DBNAME"]})
    last_position = app.recorder.max_notification_id()
    # create, enqueue, started, completed per task (the queue records its own events beside them)
    assert sum(len(app.task_history(task_id)) for task_id in task_ids) == len(task_ids) * 4
    database = mongo_client[stack.env["TASKTRAIL_MONGODB_DB"]]

    def projector_caught_up() -> bool:
        position = database[POSITIONS_COLLECTION].find_one({"_id": Projector.name})
        return bool(position) and position["position"] == last_position

    wait_until(projector_caught_up, timeout=60, message="projector at the end of the log")
    assert_views_equal_event_store(app, database, task_ids)

    subjects = Subjects(stack.env["TASKTRAIL_NAMESPACE"])
    deadline = time.monotonic() + 60
    while True:
        ids = await published_message_ids(nats_url, subjects)
        if len(ids) >= last_position or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert ids == list(range(1, last_position + 1)), "every event published once, in log order"
    app.close()


def test_rebuilding_the_view_from_zero_equals_the_live_view(stack: Stack, mongo_client) -> None:
    stack.start_gateway()
    stack.start("projector")
    with ThreadPoolExecutor(8) as pool:
        task_ids = run_commands(stack, pool, 20)
    stack.call("tasks.stop", task=task_ids[0], force=True)

    app = TaskTrail(event_store_env(stack.data_dir) | {"SQLITE_DBNAME": stack.env["SQLITE_DBNAME"]})
    client = mongo_client
    live = client[stack.env["TASKTRAIL_MONGODB_DB"]]
    last_position = app.recorder.max_notification_id()
    wait_until(lambda: (live[POSITIONS_COLLECTION].find_one({"_id": Projector.name}) or {}).get("position")
               == last_position, message="live projector caught up")

    rebuilt = client[stack.env["TASKTRAIL_MONGODB_DB"] + "_rebuilt"]
    projector = Projector(app, rebuilt)
    notifications = app.recorder.select_notifications(0, 10_000, inclusive_of_start=False)
    projector.apply(notifications[:37])
    projector.apply(notifications)  # a replayed batch changes nothing
    assert view_documents(rebuilt) == view_documents(live)
    app.close()
