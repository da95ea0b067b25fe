"""Dispatch with real processes: gateway, relay, projector, monitor and workers over NATS.

Every task runs exactly once, in queue order; a vanished worker's task fails naming it; a stop
ends the child within two seconds; moves and removals while workers are busy never start a
removed task; SIGTERM drains; requirements route tasks to the workers that meet them.
"""
from __future__ import annotations

import os
import signal
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from domain.queue import Queue
from domain.task import Task
from tasktrail.application import TaskTrail
from tasktrail.config import event_store_env
from tests.conftest import Stack, wait_until

NO_OP = {"binary": "true"}
WORKER_TIMEOUT = 2.0


def ok(answer: dict) -> dict:
    assert answer["meta"]["result_code"] == 200, answer["meta"]
    return answer["data"]


def start_services(stack: Stack, monitor: bool = True) -> None:
    stack.env["TASKTRAIL_WORKER_TIMEOUT"] = str(WORKER_TIMEOUT)
    stack.env["TASKTRAIL_WORKER_STATE_DIR"] = str(stack.data_dir / "worker-state")
    stack.start_gateway()
    stack.start("relay")
    stack.start("projector")
    if monitor:
        stack.start("monitor")


def start_worker(stack: Stack, name: str, *queues: str, env: dict[str, str] | None = None):
    arguments = ["--name", name]
    for queue in queues:
        arguments += ["--queue", queue]
    if env:
        saved = dict(stack.env)
        stack.env.update(env)
        try:
            return stack.start("worker", *arguments, name=name)
        finally:
            stack.env.clear()
            stack.env.update(saved)
    return stack.start("worker", *arguments, name=name)


def worker_registered(stack: Stack, name: str) -> None:
    wait_until(lambda: name in [w["id"] for w in ok(stack.call("workers.get_all"))["workers"]],
               timeout=30, message=f"worker {name} registered")


def create_task(stack: Stack, name: str, script: dict, **fields) -> str:
    return ok(stack.call("tasks.create", name=name, type="training", script=script, **fields))["id"]


def sleeper(tmp_path: Path, seconds: float, name: str = "slow") -> dict:
    script = tmp_path / f"{name}.py"
    pid_file = tmp_path / f"{name}.pid"
    script.write_text(f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
                      f"print('started', flush=True)\ntime.sleep({seconds})\n")
    return {"binary": "python3", "entry_point": str(script)}


def task_doc(stack: Stack, task_id: str) -> dict:
    return ok(stack.call("tasks.get_by_id", task=task_id))["task"]


def status(stack: Stack, task_id: str) -> str:
    return task_doc(stack, task_id)["status"]


def event_store(stack: Stack) -> TaskTrail:
    return TaskTrail(event_store_env(stack.data_dir) | {"SQLITE_DBNAME": stack.env["SQLITE_DBNAME"]})


def log_events(app: TaskTrail) -> list:
    notifications = app.recorder.select_notifications(0, 1_000_000, inclusive_of_start=False)
    return [app.mapper.to_domain_event(notification) for notification in notifications]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/status") as process_status:
            return "zombie" not in process_status.read()
    except FileNotFoundError:
        return False


def test_a_thousand_tasks_over_two_queues_run_exactly_once_in_queue_order(stack: Stack) -> None:
    start_services(stack, monitor=False)
    queues = {name: ok(stack.call("queues.create", name=name))["id"] for name in ("alpha", "beta")}
    with ThreadPoolExecutor(16) as pool:
        tasks = list(pool.map(lambda i: create_task(stack, f"t{i}", NO_OP), range(1000)))
        # Enqueued in order (one client per queue), before any worker runs, so each queue's order is known.
        split = {"alpha": tasks[:500], "beta": tasks[500:]}
        list(pool.map(lambda name: [ok(stack.call("tasks.enqueue", task=task, queue=queues[name]))
                                    for task in split[name]], split))
    started = time.monotonic()
    priorities = {"w0": ("alpha", "beta"), "w1": ("alpha", "beta"), "w2": ("beta", "alpha"), "w3": ("beta", "alpha")}
    for name, order in priorities.items():
        start_worker(stack, name, *order)

    def all_done() -> bool:
        return all(ok(stack.call("queues.get_num_entries", queue=queue))["num"] == 0 for queue in queues.values()) \
            and not ok(stack.call("tasks.get_all", status=["queued", "in_progress"], only_fields=["id"]))["tasks"]

    wait_until(all_done, timeout=90, interval=0.5, message="every task run")
    elapsed = time.monotonic() - started
    app = event_store(stack)
    try:
        events = log_events(app)
    finally:
        app.close()
    starts = defaultdict(list)
    ends = defaultdict(list)
    for event in events:
        if isinstance(event, Task.Started):
            starts[event.originator_id.hex].append(event.worker)
        elif isinstance(event, (Task.Completed, Task.Failed, Task.Stopped)):
            ends[event.originator_id.hex].append(type(event).__name__)
    assert sorted(starts) == sorted(tasks), "every task started"
    assert all(len(workers) == 1 for workers in starts.values()), "no task started twice"
    assert all(ends[task] == ["Completed"] for task in tasks), "every task completed once"
    assert {workers[0] for workers in starts.values()} == set(priorities), "every worker took part"

    # Per worker and queue, tasks were taken in queue order; a worker took from its second queue
    # only once its first queue was empty (all tasks were queued before the workers started).
    position = {task: index for index, task in enumerate(tasks)}
    queue_name = {queue_id: name for name, queue_id in queues.items()}
    lengths = {name: 500 for name in queues}
    taken = defaultdict(list)
    for event in events:
        if isinstance(event, Queue.TaskTaken):
            name = queue_name[event.originator_id.hex]
            lengths[name] -= 1
            first_choice = priorities[event.worker][0]
            if name != first_choice:
                assert lengths[first_choice] == 0, f"{event.worker} took from {name} while {first_choice} had tasks"
            taken[(event.worker, name)].append(position[event.task])
    for key, order in taken.items():
        assert order == sorted(order), f"{key} took tasks out of queue order"
    print(f"\n1000 no-op tasks through 4 workers in {elapsed:.1f}s ({1000 / elapsed:.0f} tasks/s)")


def test_a_worker_killed_mid_task_has_its_task_failed_naming_it_and_others_carry_on(
        stack: Stack, tmp_path: Path) -> None:
    start_services(stack)
    queue = ok(stack.call("queues.create", name="jobs"))["id"]
    start_worker(stack, "doomed", "jobs")
    worker_registered(stack, "doomed")
    slow = create_task(stack, "slow", sleeper(tmp_path, 60))
    ok(stack.call("tasks.enqueue", task=slow, queue=queue))
    pid_file = tmp_path / "slow.pid"
    wait_until(lambda: pid_file.exists() and pid_file.read_text(), timeout=20, message="task running")
    child = int(pid_file.read_text())
    start_worker(stack, "survivor", "jobs")
    worker_registered(stack, "survivor")

    killed = time.monotonic()
    stack.kill("doomed")
    wait_until(lambda: status(stack, slow) == "failed", timeout=WORKER_TIMEOUT + 5, interval=0.1,
               message="task failed after its worker vanished")
    assert time.monotonic() - killed < WORKER_TIMEOUT + 3
    failed = task_doc(stack, slow)
    assert "doomed" in failed["status_reason"] and "vanished" in failed["status_reason"]
    wait_until(lambda: not alive(child), timeout=5, message="the orphaned child died with its worker")
    assert "doomed" not in [w["id"] for w in ok(stack.call("workers.get_all"))["workers"]]

    after = create_task(stack, "after", NO_OP)
    ok(stack.call("tasks.enqueue", task=after, queue=queue))
    wait_until(lambda: status(stack, after) == "completed", timeout=20, message="the other worker carries on")
    assert task_doc(stack, after)["last_worker"] == "survivor"


def test_stopping_a_running_task_ends_its_process_group_and_reports_stopped(stack: Stack, tmp_path: Path) -> None:
    start_services(stack, monitor=False)
    grandchild_pid = tmp_path / "grandchild.pid"
    script = tmp_path / "family.py"
    script.write_text(
        "import os, subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(grandchild_pid)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n")
    start_worker(stack, "w", "jobs")
    task = create_task(stack, "family", {"binary": "python3", "entry_point": str(script)})
    ok(stack.call("tasks.enqueue", task=task, queue_name="jobs"))
    wait_until(lambda: grandchild_pid.exists() and grandchild_pid.read_text(), timeout=20, message="running")
    grandchild = int(grandchild_pid.read_text())
    asked = time.monotonic()
    ok(stack.call("tasks.stop", task=task))
    wait_until(lambda: status(stack, task) == "stopped", timeout=5, interval=0.05, message="stopped")
    assert time.monotonic() - asked < 2.0
    assert not alive(grandchild)


def test_moves_and_removals_while_workers_are_busy_never_start_a_removed_task(stack: Stack, tmp_path: Path) -> None:
    start_services(stack, monitor=False)
    queue = ok(stack.call("queues.create", name="busy"))["id"]
    gate = tmp_path / "gate"
    blocker_script = tmp_path / "blocker.py"
    blocker_script.write_text(f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.02)\n")
    start_worker(stack, "w", "busy")
    blocker = create_task(stack, "blocker", {"binary": "python3", "entry_point": str(blocker_script)})
    ok(stack.call("tasks.enqueue", task=blocker, queue=queue))
    wait_until(lambda: status(stack, blocker) == "in_progress", timeout=20, message="worker busy")

    t1, t2, t3, t4, t5 = (create_task(stack, f"t{i}", NO_OP) for i in range(1, 6))
    for task in (t1, t2, t3, t4, t5):
        ok(stack.call("tasks.enqueue", task=task, queue=queue))
    ok(stack.call("queues.remove_task", queue=queue, task=t2))
    ok(stack.call("tasks.dequeue", task=t3))
    ok(stack.call("queues.move_task_to_front", queue=queue, task=t5))
    gate.write_text("go")
    wait_until(lambda: all(status(stack, t) == "completed" for t in (t1, t4, t5)), timeout=30, message="ran")
    app = event_store(stack)
    try:
        started = [event.originator_id.hex for event in log_events(app) if isinstance(event, Task.Started)]
    finally:
        app.close()
    assert started == [blocker, t5, t1, t4]
    assert status(stack, t2) == "created" and status(stack, t3) == "created"


def test_sigterm_drains_a_worker_and_requeues_an_unfinished_task_at_the_front(stack: Stack, tmp_path: Path) -> None:
    start_services(stack, monitor=False)
    stack.env["TASKTRAIL_WORKER_DRAIN_SECONDS"] = "0.5"
    queue = ok(stack.call("queues.create", name="drained"))["id"]
    worker = start_worker(stack, "w", "drained")
    long_task = create_task(stack, "long", sleeper(tmp_path, 60))
    waiting = create_task(stack, "waiting", NO_OP)
    ok(stack.call("tasks.enqueue", task=long_task, queue=queue))
    wait_until(lambda: status(stack, long_task) == "in_progress", timeout=20, message="running")
    ok(stack.call("tasks.enqueue", task=waiting, queue=queue))
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0
    assert status(stack, long_task) == "queued"
    assert ok(stack.call("queues.get_by_id", queue=queue))["queue"]["entries"][0]["task"] == long_task
    assert status(stack, waiting) == "queued", "a draining worker claims nothing new"
    assert "w" not in [w["id"] for w in ok(stack.call("workers.get_all"))["workers"]]


def test_a_worker_leaves_tasks_whose_requirements_it_lacks_and_says_why(stack: Stack) -> None:
    start_services(stack, monitor=False)
    queue = ok(stack.call("queues.create", name="envs"))["id"]
    start_worker(stack, "plain", "envs")
    worker_registered(stack, "plain")
    requirements = {"requirements": [{"id": 0, "requirement": {"type": "environmentVariable", "name": "DATA_URL",
                                                               "target": "URL"}}],
                    "relations": [{"type": "all", "requirements": [0]}]}
    needy = create_task(stack, "needy", {**NO_OP, "requirements": {"environment": requirements}})
    plain = create_task(stack, "plain", NO_OP)
    ok(stack.call("tasks.enqueue", task=needy, queue=queue))
    ok(stack.call("tasks.enqueue", task=plain, queue=queue))
    wait_until(lambda: status(stack, plain) == "completed", timeout=20, message="plain task ran")
    assert status(stack, needy) == "queued"

    def waiting_reason() -> list:
        queues = ok(stack.call("queues.get_all", id=[queue]))["queues"]
        return queues and queues[0]["entries"] and queues[0]["entries"][0].get("waiting")

    assert wait_until(waiting_reason, message="why the task waits") == [{"worker": "plain", "missing": ["DATA_URL"]}]
    passed_over = [w for w in ok(stack.call("workers.get_all"))["workers"] if w["id"] == "plain"][0]["passed_over"]
    assert passed_over == [{"task": needy, "queue": queue, "missing": ["DATA_URL"]}]

    start_worker(stack, "equipped", "envs", env={"DATA_URL": "http://data"})
    wait_until(lambda: status(stack, needy) == "completed", timeout=20, message="equipped worker ran it")
    assert task_doc(stack, needy)["last_worker"] == "equipped"


def test_a_restarted_worker_fails_the_task_it_was_running_before_it_crashed(stack: Stack, tmp_path: Path) -> None:
    start_services(stack, monitor=False)
    start_worker(stack, "phoenix", "jobs")
    task = create_task(stack, "slow", sleeper(tmp_path, 60))
    ok(stack.call("tasks.enqueue", task=task, queue_name="jobs"))
    pid_file = tmp_path / "slow.pid"
    wait_until(lambda: pid_file.exists() and pid_file.read_text(), timeout=20, message="running")
    wait_until(lambda: ok(stack.call("tasks.get_all", id=[task], status=["in_progress"], only_fields=["id"]))["tasks"],
               message="view shows it running")
    stack.kill("phoenix")
    start_worker(stack, "phoenix", "jobs")
    wait_until(lambda: status(stack, task) == "failed", timeout=20, message="failed on restart")
    assert task_doc(stack, task)["status_reason"] == "worker phoenix restarted"
    assert not alive(int(pid_file.read_text()))


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_idle_workers_sleep_on_nats_and_wake_for_new_work(stack: Stack) -> None:
    """No polling loop while idle: an idle worker uses no CPU, yet a new task starts at once."""
    start_services(stack, monitor=False)
    stack.env["TASKTRAIL_WORKER_HEARTBEAT"] = "60"
    worker = start_worker(stack, "idle", "later")
    worker_registered(stack, "idle")
    time.sleep(0.5)
    before = cpu_ticks(worker.pid)
    time.sleep(1.5)
    assert cpu_ticks(worker.pid) - before <= 2, "an idle worker should not spin"
    for index in range(3):
        task = create_task(stack, f"late{index}", NO_OP)
        sent = time.monotonic()
        ok(stack.call("tasks.enqueue", task=task, queue_name="later"))
        wait_until(lambda: status(stack, task) != "queued", timeout=5, interval=0.01, message="woken")
        assert time.monotonic() - sent < 1.0


def test_a_failed_run_reports_the_tail_of_its_output(stack: Stack, tmp_path: Path) -> None:
    start_services(stack, monitor=False)
    script = tmp_path / "noisy.py"
    script.write_text("import sys\nfor i in range(30): print('line', i)\nprint('boom', file=sys.stderr)\nsys.exit(3)\n")
    start_worker(stack, "w", "jobs")
    task = create_task(stack, "noisy", {"binary": "python3", "entry_point": str(script)})
    ok(stack.call("tasks.enqueue", task=task, queue_name="jobs"))
    wait_until(lambda: status(stack, task) == "failed", timeout=20, message="failed")
    message = task_doc(stack, task)["status_message"]
    assert message.startswith("exit code 3; last output:\n")
    assert "line 29" in message and "boom" in message  # stdout and stderr, read side by side
    assert "line 0\n" not in message  # only the tail
