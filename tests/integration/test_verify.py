"""`tasktrail verify`: views rebuilt from the log equal the live views, and a tampered view is caught."""
from __future__ import annotations

import subprocess
import sys

from projections.positions import POSITIONS_COLLECTION
from projections.projector import Projector
from tasktrail.application import TaskTrail
from tasktrail.config import event_store_env
from tests.conftest import Stack, wait_until


def run_verify(stack: Stack) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tasktrail", "verify"], env=stack.env,
                          capture_output=True, text=True, timeout=60)


def test_verify_passes_on_live_views_and_names_a_tampered_task(stack: Stack, mongo_client) -> None:
    stack.start_gateway()
    stack.start("projector")
    task_ids = [stack.call("tasks.create", name=f"t{i}", type="training")["data"]["id"] for i in range(5)]
    for task_id in task_ids[:3]:
        stack.call("tasks.enqueue", task=task_id, queue_name="verify")
    stack.call("tasks.started", task=task_ids[0], worker="w1")
    stack.call("projects.create", name="verified")

    app = TaskTrail(event_store_env(stack.data_dir) | {"SQLITE_DBNAME": stack.env["SQLITE_DBNAME"]})
    last_position = app.recorder.max_notification_id()
    app.close()
    live = mongo_client[stack.env["TASKTRAIL_MONGODB_DB"]]
    wait_until(lambda: (live[POSITIONS_COLLECTION].find_one({"_id": Projector.name}) or {}).get("position")
               == last_position, message="projector caught up")

    clean = run_verify(stack)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "views match the event log" in clean.stdout

    stack.kill("projector")
    live.tasks.update_one({"_id": task_ids[4]}, {"$set": {"status": "published"}})
    tampered = run_verify(stack)
    assert tampered.returncode == 1
    assert f"tasks/{task_ids[4]}: differs in status" in tampered.stdout
