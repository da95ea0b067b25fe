"""`tasktrail up` as a user runs it: real nats-server and nx-27017 on free ports, HTTP only."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

from tasktrail.embedded_servers import free_port
from tests.conftest import call_api, wait_until


def start_tasktrail(data_dir: Path, port: int) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TASKTRAIL_")}
    return subprocess.Popen(
        [sys.executable, "-m", "tasktrail", "up", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )


def generated_key_pair(data_dir: Path) -> tuple[str, str]:
    path = data_dir / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    return stored["access_key"], stored["secret_key"]


def create_script_task(api: str, auth: tuple[str, str], name: str, script: Path) -> str:
    answer = call_api(api, "tasks.create", {
        "name": name, "type": "training",
        "script": {"binary": "python3", "entry_point": script.name, "working_dir": str(script.parent)},
    }, auth=auth)
    assert answer["meta"]["result_code"] == 200, answer
    return answer["data"]["id"]


def tasks_by_id(api: str, auth: tuple[str, str]) -> dict[str, dict]:
    answer = call_api(api, "tasks.get_all", {"order_by": ["-last_update"]}, auth=auth)
    return {task["id"]: task for task in answer["data"]["tasks"]}


def test_a_script_enqueued_on_default_completes_and_a_failing_one_fails(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("print('hello')\n")
    (tmp_path / "bad.py").write_text("import sys\nsys.exit(1)\n")
    data_dir = tmp_path / "data"
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    launcher = start_tasktrail(data_dir, port)
    try:
        wait_until(lambda: (data_dir / "credentials.json").exists(), timeout=30, message="credentials")
        auth = generated_key_pair(data_dir)
        wait_until(lambda: call_api(api, "tasks.get_all", {}, timeout=1, auth=auth).get("data") is not None
                   if _port_open(port) else False, timeout=30, message="gateway up")
        ok = create_script_task(api, auth, "ok", tmp_path / "ok.py")
        bad = create_script_task(api, auth, "bad", tmp_path / "bad.py")
        for task in (ok, bad):
            answer = call_api(api, "tasks.enqueue", {"task": task, "queue_name": "default"}, auth=auth)
            assert answer["data"]["queued"] == 1

        def both_ended() -> dict[str, dict] | None:
            tasks = tasks_by_id(api, auth)
            ended = all(tasks.get(t, {}).get("status") in ("completed", "failed") for t in (ok, bad))
            return tasks if ended else None

        tasks = wait_until(both_ended, timeout=30, message="both tasks ended")
        assert tasks[ok]["status"] == "completed"
        assert tasks[bad]["status"] == "failed"
        assert tasks[bad]["status_message"] == "exit code 1"
        for task in (ok, bad):
            assert tasks[task]["started"] <= tasks[task]["completed"]
            assert tasks[task]["last_worker"] == "local-worker"
    finally:
        launcher.send_signal(signal.SIGTERM)
        output, _ = launcher.communicate(timeout=30)
    assert launcher.returncode == 0, output
    assert "TaskTrail stopped" in output
    assert auth[0] in output and auth[1] in output  # the generated pair is shown at start

    # Data is kept between runs: a new launcher on the same folder shows the same tasks.
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    launcher = start_tasktrail(data_dir, port)
    try:
        wait_until(lambda: _port_open(port), timeout=30, message="gateway up again")
        assert generated_key_pair(data_dir) == auth  # the same keys on every run
        tasks = wait_until(lambda: tasks_by_id(api, auth) or None, timeout=30, message="views after restart")
        assert tasks[ok]["status"] == "completed" and tasks[bad]["status"] == "failed"
    finally:
        launcher.send_signal(signal.SIGTERM)
        launcher.communicate(timeout=30)


def _port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
