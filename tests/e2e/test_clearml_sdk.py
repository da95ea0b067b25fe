"""The real clearml SDK against TaskTrail: APIClient calls and a plain `Task.init` experiment.

The SDK runs in its own process (its global session, threads and console hooks stay out of
pytest), configured only by environment variables and a throw-away config file, with its home
and cache in a temporary folder. Its scripts live in `sdk_scripts/` and report what they saw
as JSON; the tests then read TaskTrail's own API.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from domain.task_reports import metric_key
from tests.conftest import TEST_ACCESS_KEY, TEST_SECRET_KEY, Stack, new_stack, wait_until

SCRIPTS = Path(__file__).parent / "sdk_scripts"
SDK_TIMEOUT = 60
# The reporter in a thread (not a subprocess): `task.close()` then returns as soon as the events
# are sent, instead of after the SDK's 10 s wait for a daemon. Few, quick retries on errors.
SDK_CONFIG = """
sdk { development { report_use_subprocess: false } }
api { http { retries { total: 2, backoff_factor: 0.1 } } }
"""


@dataclass
class SdkRun:
    results: dict
    output: str


@pytest.fixture(scope="module")
def sdk_stack(tmp_path_factory, nats_url: str, mongodb_uri: str) -> Iterator[Stack]:
    stack = new_stack(tmp_path_factory.mktemp("sdk-stack"), nats_url, mongodb_uri)
    stack.start_gateway()
    stack.start("projector")
    stack.start("relay")
    yield stack
    stack.stop_all()


def sdk_environment(stack: Stack, home: Path) -> dict[str, str]:
    config = home / "clearml.conf"
    config.write_text(SDK_CONFIG)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CLEARML_", "TRAINS_"))}
    env.update(
        HOME=str(home),
        CLEARML_API_HOST=stack.api_url,
        CLEARML_WEB_HOST=stack.api_url,
        CLEARML_FILES_HOST=stack.api_url,
        CLEARML_API_ACCESS_KEY=TEST_ACCESS_KEY,
        CLEARML_API_SECRET_KEY=TEST_SECRET_KEY,
        CLEARML_CONFIG_FILE=str(config),
        CLEARML_NO_DEFAULT_SERVER="1",
        CLEARML_CACHE_DIR=str(home / "cache"),
        PYTHONUNBUFFERED="1",
    )
    return env


def run_sdk(stack: Stack, folder: Path, script: str, *arguments: str) -> SdkRun:
    """Copy a script into `folder` and run it there with the SDK pointed at the stack."""
    folder.mkdir(parents=True, exist_ok=True)
    home = folder / "home"
    home.mkdir(exist_ok=True)
    shutil.copy(SCRIPTS / script, folder / script)
    results = folder / "results.json"
    process = subprocess.run(
        [sys.executable, script, str(results), *arguments],
        cwd=folder, env=sdk_environment(stack, home), capture_output=True, text=True, timeout=SDK_TIMEOUT,
    )
    output = process.stdout + process.stderr
    assert process.returncode == 0, output
    return SdkRun(json.loads(results.read_text()), output)


def task_view(stack: Stack, task_id: str) -> dict:
    answer = stack.call("tasks.get_by_id", task=task_id)
    assert answer["meta"]["result_code"] == 200, answer
    return answer["data"]["task"]


def sdk_errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if re.search(r"Action failed|failed logging|ERROR", line)]


def test_api_client_lists_creates_enqueues_dequeues_starts_stops_completes_and_publishes(
    sdk_stack: Stack, tmp_path: Path
) -> None:
    project_name = f"sdk-api-{uuid.uuid4().hex[:8]}"
    run = run_sdk(sdk_stack, tmp_path, "api_client_lifecycle.py", project_name)
    task_id = run.results["task"]
    assert run.results["listed"] == [task_id]
    assert run.results["projects_by_name"] == [run.results["project"]]
    assert run.results["steps"] == [
        ["enqueue", "queued"],
        ["dequeue", "created"],
        ["started", "in_progress"],
        ["stop", "stopped"],
        ["started_again", "in_progress"],
        ["completed", "completed"],
        ["publish", "published"],
    ]
    task = task_view(sdk_stack, task_id)
    assert task["project"] == run.results["project"] and task["user"] == "tasktrail"
    assert task["script"]["entry_point"] == "train.py"


def test_api_client_edits_and_deletes_a_task(sdk_stack: Stack, tmp_path: Path) -> None:
    run = run_sdk(sdk_stack, tmp_path, "api_client_edit_delete.py")
    assert run.results["comment"] == "edited by the SDK"
    assert run.results["entry_point"] == "b.py"
    assert run.results["listed_after_delete"] == []
    answer = sdk_stack.call("tasks.get_by_id", task=run.results["task"])
    assert (answer["meta"]["result_code"], answer["meta"]["result_subcode"]) == (400, 101)


@pytest.fixture(scope="module")
def task_init_run(sdk_stack: Stack, tmp_path_factory) -> tuple[SdkRun, str, str]:
    project_name = f"sdk-init-{uuid.uuid4().hex[:8]}"
    run = run_sdk(sdk_stack, tmp_path_factory.mktemp("task-init"), "task_init.py", project_name, "first run")
    return run, project_name, run.results["task"]


def test_task_init_then_close_leaves_the_task_completed_in_its_project(
    sdk_stack: Stack, task_init_run: tuple[SdkRun, str, str]
) -> None:
    run, project_name, task_id = task_init_run
    task = task_view(sdk_stack, task_id)
    assert task["name"] == "first run" and task["type"] == "training"
    assert task["status"] == "completed" and task["status_reason"] == "completed"
    assert task["started"] <= task["completed"]
    assert "development" in task["system_tags"]
    projects = wait_until(
        lambda: sdk_stack.call("projects.get_all", name=f"^{project_name}$")["data"]["projects"],
        message="the SDK's project in the view",
    )
    assert [project["id"] for project in projects] == [task["project"]]
    # The reported scalars and console lines reached the gateway without an error.
    assert "events.add_batch" not in run.output


def test_task_init_scalars_become_the_tasks_last_metrics_and_its_console_is_readable(
    sdk_stack: Stack, task_init_run: tuple[SdkRun, str, str]
) -> None:
    _, _, task_id = task_init_run
    task = wait_until(lambda: (doc := task_view(sdk_stack, task_id))["last_iteration"] == 2 and doc,
                      message="the SDK's scalars in the task view")
    loss = task["last_metrics"][metric_key("loss")][metric_key("train")]
    assert (loss["metric"], loss["variant"], loss["value"]) == ("loss", "train", 0.125)
    assert (loss["min_value"], loss["max_value"], loss["count"]) == (0.125, 0.25, 2)

    def console() -> list[str]:
        answer = sdk_stack.call("events.get_task_log", task=task_id, order="asc")
        assert answer["meta"]["result_code"] == 200, answer
        return [event["msg"] for event in answer["data"]["events"]]

    wait_until(lambda: any(f"created new task id={task_id}" in message for message in console()),
               message="the SDK's console output in the task's log")


def test_task_init_records_the_script_and_runtime_without_sdk_errors(
    sdk_stack: Stack, task_init_run: tuple[SdkRun, str, str]
) -> None:
    run, _, task_id = task_init_run
    task = task_view(sdk_stack, task_id)
    assert task["script"]["entry_point"] == "task_init.py"
    assert "Task.init(project_name=project_name" in task["script"]["diff"]
    assert "clearml" in task["script"]["requirements"]["pip"]
    assert task["runtime"]["python_version"] and task["runtime"]["progress"] == "100"
    assert sdk_errors(run.output) == []
