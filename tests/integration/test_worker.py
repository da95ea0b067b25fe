"""Workers as real processes: woken over NATS, claim through the gateway, run, report back."""
from __future__ import annotations

import os
import time
from pathlib import Path

from domain.task import Task
from tasktrail.application import TaskTrail
from tasktrail.config import event_store_env
from tests.conftest import Stack, wait_until


def start_pipeline(stack: Stack, workers: int = 1) -> None:
    stack.start_gateway()
    stack.start("projector")
    stack.start("relay")
    for number in range(workers):
        stack.start("worker", "--queue", "jobs", "--name", f"worker-{number}", name=f"worker-{number}")


def create_task(stack: Stack, script: Path, name: str = "job") -> str:
    answer = stack.call("tasks.create", name=name, type="training",
                        script={"entry_point": str(script), "binary": "python3"})
    return answer["data"]["id"]


def task_status(stack: Stack, task_id: str) -> dict:
    return stack.call("tasks.get_by_id", task=task_id)["data"]["task"]


def test_every_task_is_started_exactly_once_with_two_workers(stack: Stack, tmp_path: Path) -> None:
    script = tmp_path / "quick.py"
    script.write_text("print('done')\n")
    start_pipeline(stack, workers=2)
    task_ids = [create_task(stack, script, f"job{i}") for i in range(20)]
    for task_id in task_ids:
        assert stack.call("tasks.enqueue", task=task_id, queue="jobs")["data"]["queued"] == 1

    def all_completed() -> bool:
        return all(task_status(stack, task_id)["status"] == "completed" for task_id in task_ids)

    wait_until(all_completed, timeout=60, interval=0.2, message="all tasks completed")
    app = TaskTrail(event_store_env(stack.data_dir) | {"SQLITE_DBNAME": stack.env["SQLITE_DBNAME"]})
    try:
        for task_id in task_ids:
            starts = [e for e in app.task_history(task_id) if isinstance(e, Task.Started)]
            assert len(starts) == 1, f"task {task_id} started {len(starts)} times"
    finally:
        app.close()


def test_a_task_queued_before_the_worker_started_is_run(stack: Stack, tmp_path: Path) -> None:
    script = tmp_path / "quick.py"
    script.write_text("print('done')\n")
    stack.start_gateway()
    stack.start("projector")
    stack.start("relay")
    task_id = create_task(stack, script)
    stack.call("tasks.enqueue", task=task_id, queue="jobs")
    wait_until(lambda: stack.call("tasks.get_all", status=["queued"])["data"]["tasks"], message="view shows queued")
    stack.start("worker", "--queue", "jobs", "--name", "late-worker")
    wait_until(lambda: task_status(stack, task_id)["status"] == "completed", timeout=30, message="completed")


def test_stopping_a_running_task_kills_its_process_within_two_seconds(stack: Stack, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = tmp_path / "slow.py"
    script.write_text(f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n")
    start_pipeline(stack)
    task_id = create_task(stack, script)
    stack.call("tasks.enqueue", task=task_id, queue="jobs")
    wait_until(lambda: pid_file.exists() and pid_file.read_text(), timeout=30, message="script running")
    child_pid = int(pid_file.read_text())
    assert task_status(stack, task_id)["status"] == "in_progress"

    asked = time.monotonic()
    answer = stack.call("tasks.stop", task=task_id)
    assert answer["data"]["fields"]["status_message"] == "stopping"
    wait_until(lambda: task_status(stack, task_id)["status"] == "stopped", timeout=5, message="stopped")
    assert time.monotonic() - asked < 2.0
    assert not _process_alive(child_pid)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/status") as status:
            return "zombie" not in status.read()
    except FileNotFoundError:
        return False
