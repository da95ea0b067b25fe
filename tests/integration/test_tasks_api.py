"""The tasks service over HTTP (API 2.23 shapes): every action's answer, refusals and force.

One gateway + projector serve the whole module (tasks are independent: each test makes its own).
"""
from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from domain.task import Task
from tasktrail.application import TaskTrail
from tasktrail.config import event_store_env
from tests.conftest import TEST_CREDENTIALS, Stack, basic_auth, new_stack, wait_until


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, nats_url: str, mongodb_uri: str) -> Iterator[Stack]:
    stack = new_stack(tmp_path_factory.mktemp("tasks_api"), nats_url, mongodb_uri)
    stack.start_gateway()
    stack.start("projector")
    yield stack
    stack.stop_all()


# -- helpers -------------------------------------------------------------------------------------
def ok(envelope: dict) -> dict:
    meta = envelope["meta"]
    assert (meta["result_code"], meta["result_subcode"]) == (200, 0), meta
    return envelope["data"]


def refused(envelope: dict, code: int, subcode: int) -> str:
    meta = envelope["meta"]
    assert (meta["result_code"], meta["result_subcode"]) == (code, subcode), meta
    return meta["result_msg"]


def create(api: Stack, **fields: Any) -> str:
    return ok(api.call("tasks.create", **{"name": "train", "type": "training", **fields}))["id"]


def task_of(api: Stack, task_id: str) -> dict:
    return ok(api.call("tasks.get_by_id", task=task_id))["task"]


def status_of(api: Stack, task_id: str) -> str:
    return task_of(api, task_id)["status"]


def in_status(api: Stack, status: str, **fields: Any) -> str:
    """A new task brought to `status` (by force where the table needs it)."""
    task_id = create(api, **fields)
    steps = {
        "created": [],
        "queued": [("tasks.enqueue", {"queue": "q"})],
        "in_progress": [("tasks.started", {})],
        "stopped": [("tasks.started", {}), ("tasks.stopped", {})],
        "failed": [("tasks.started", {}), ("tasks.failed", {})],
        "completed": [("tasks.started", {}), ("tasks.completed", {})],
        "closed": [("tasks.started", {}), ("tasks.stopped", {}), ("tasks.close", {})],
        "published": [("tasks.started", {}), ("tasks.stopped", {}), ("tasks.publish", {})],
    }[status]
    for endpoint, body in steps:
        ok(api.call(endpoint, task=task_id, **body))
    assert status_of(api, task_id) == status
    return task_id


def in_view(api: Stack, task_id: str) -> bool:
    return bool(ok(api.call("tasks.get_all", id=[task_id], only_fields=["id"]))["tasks"])


def wait_in_view(api: Stack, *task_ids: str) -> None:
    for task_id in task_ids:
        wait_until(lambda: in_view(api, task_id), message=f"task {task_id} in the view")


def post_raw(api: Stack, endpoint: str, body: bytes, content_type: str) -> dict:
    request = urllib.request.Request(
        f"{api.api_url}/{endpoint}", data=body, method="POST",
        headers={"Content-Type": content_type, "Authorization": basic_auth(*TEST_CREDENTIALS)},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return orjson.loads(error.read())


def history(api: Stack, task_id: str) -> list:
    app = TaskTrail(event_store_env(api.data_dir) | {"SQLITE_DBNAME": api.env["SQLITE_DBNAME"]})
    try:
        return app.task_history(task_id)
    finally:
        app.close()


UNKNOWN = "0" * 32
FULL_TASK = {
    "name": "full",
    "type": "data_processing",
    "comment": "all the fields",
    "tags": ["a", "b"],
    "system_tags": ["s"],
    "project": "p1",
    "output_dest": "s3://bucket/out",
    "script": {"repository": "git@x:y.git", "entry_point": "train.py", "binary": "python3",
               "requirements": {"pip": "numpy==1.26"}},
    "execution": {
        "parameters": {"Args/lr": "0.1"},
        "model_labels": {"cat": 1, "dog.big": 2},
        "framework": "pytorch",
        "docker_cmd": "nvidia/cuda",
        "artifacts": [
            {"key": "data.csv", "type": "table", "mode": "input", "uri": "s3://x", "content_size": 10,
             "hash": "h", "timestamp": 1700000000, "type_data": {"preview": "p", "content_type": "text/csv"},
             "display_data": [["rows", "10"]]},
            {"key": "weights", "type": "model"},
        ],
    },
    "hyperparams": {"Args": {"lr": {"section": "Args", "name": "lr", "value": "0.1", "type": "float"},
                             "model.depth": {"section": "Args", "name": "model.depth", "value": "50"}}},
    "configuration": {"General": {"name": "General", "value": "{}", "type": "dictionary"}},
    "container": {"image": "python:3.11", "arguments": None},
    "models": {"input": [{"name": "base", "model": "m1"}], "output": []},
    "runtime": {"gpu": "A100", "nested": {"x.y": 1}},
}


# -- create and validate --------------------------------------------------------------------------
def test_a_task_created_with_every_field_of_the_later_definitions_reads_back_the_same(api: Stack) -> None:
    task_id = ok(api.call("tasks.create", **FULL_TASK))["id"]
    task = task_of(api, task_id)

    assert task["id"] == task_id
    for key in ("name", "type", "comment", "tags", "system_tags", "project", "hyperparams",
                "configuration", "container", "runtime"):
        assert task[key] == FULL_TASK[key], key
    assert task["script"] == FULL_TASK["script"]
    assert task["output"] == {"destination": "s3://bucket/out"}
    execution = task["execution"]
    assert execution["parameters"] == {"Args/lr": "0.1"}
    assert execution["model_labels"] == {"cat": 1, "dog.big": 2}
    assert [a["key"] for a in execution["artifacts"]] == ["data.csv", "weights"]  # sorted by key, mode
    assert execution["artifacts"][1]["mode"] == "output"  # the default mode
    assert execution["artifacts"][0]["type_data"] == {"preview": "p", "content_type": "text/csv"}
    assert task["models"]["input"][0]["name"] == "base" and task["models"]["input"][0]["updated"]
    assert task["status"] == "created" and task["created"] == task["status_changed"]
    assert task["user"] and task["last_update"] and task["last_change"]
    assert task["last_iteration"] == 0 and task["active_duration"] is None
    assert "enqueue_status" not in task and "_text" not in task

    wait_in_view(api, task_id)
    viewed = ok(api.call("tasks.get_all", id=[task_id]))["tasks"][0]
    assert viewed == task


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"name": 5}, "name"),
        ({"tags": "a"}, "tags"),
        ({"tags": ["a", 1]}, "tags[1]"),
        ({"type": "train"}, "type"),
        ({"comment": {"x": 1}}, "comment"),
        ({"parent": 1}, "parent"),
        ({"script": {"entry_point": 3}}, "script.entry_point"),
        ({"script": {"requirements": "numpy"}}, "script.requirements"),
        ({"execution": {"parameters": []}}, "execution.parameters"),
        ({"execution": {"model_labels": {"a": "1"}}}, "execution.model_labels.a"),
        ({"execution": {"artifacts": [{"key": "k"}]}}, "execution.artifacts[0]"),
        ({"execution": {"artifacts": [{"key": "k", "type": "t", "mode": "sideways"}]}}, "execution.artifacts[0].mode"),
        ({"execution": {"artifacts": [{"key": "k", "type": "t", "content_size": "10"}]}},
         "execution.artifacts[0].content_size"),
        ({"hyperparams": {"Args": {"lr": {"value": 0.1}}}}, "hyperparams.Args.lr.value"),
        ({"hyperparams": {"Args": []}}, "hyperparams.Args"),
        ({"configuration": {"c": {"value": 1}}}, "configuration.c.value"),
        ({"container": {"image": 3}}, "container.image"),
        ({"models": {"input": [{"name": "x"}]}}, "models.input[0]"),
        ({"runtime": "fast"}, "runtime"),
    ],
)
def test_a_field_of_the_wrong_type_is_refused_naming_it(api: Stack, fields: dict, named: str) -> None:
    for endpoint in ("tasks.create", "tasks.validate"):
        message = refused(api.call(endpoint, **{"name": "x", "type": "training", **fields}), 400, 12)
        assert named in message, message


def test_validate_accepts_what_create_accepts_and_stores_nothing(api: Stack) -> None:
    parent = create(api)
    assert ok(api.call("tasks.validate", **{**FULL_TASK, "parent": parent})) == {}
    assert ok(api.call("tasks.validate", name="x", type="qc", parent="__DELETED__" + parent)) == {}


@pytest.mark.parametrize("endpoint", ["tasks.create", "tasks.validate"])
def test_create_and_validate_refuse_missing_fields_and_an_unknown_parent(api: Stack, endpoint: str) -> None:
    assert "name" in refused(api.call(endpoint, type="training"), 400, 11)
    assert "type" in refused(api.call(endpoint, name="x"), 400, 11)
    assert "parent" in refused(api.call(endpoint, name="x", type="training", parent=UNKNOWN), 400, 101)


# -- update and update_batch ---------------------------------------------------------------------
def test_update_changes_the_user_fields_and_answers_them(api: Stack) -> None:
    task_id = create(api, name="old")
    answer = ok(api.call("tasks.update", task=task_id, name="new", tags=["t"], system_tags=["s"],
                         comment="c", project="p", output__error="boom", created="2024-01-02T03:04:05Z",
                         status="published"))

    assert answer["updated"] == 1
    fields = answer["fields"]
    assert {key: fields[key] for key in ("name", "tags", "system_tags", "comment", "project")} == {
        "name": "new", "tags": ["t"], "system_tags": ["s"], "comment": "c", "project": "p"}
    assert fields["output"] == {"error": "boom"}
    assert fields["created"] == "2024-01-02T03:04:05.000000+00:00"
    task = task_of(api, task_id)
    assert task["name"] == "new" and task["output"]["error"] == "boom"
    assert task["created"] == "2024-01-02T03:04:05.000000+00:00"
    assert task["status"] == "created", "update does not change the status"


def test_update_in_any_status_and_with_nothing_to_change(api: Stack) -> None:
    task_id = in_status(api, "published")
    assert ok(api.call("tasks.update", task=task_id, comment="still editable"))["updated"] == 1
    assert ok(api.call("tasks.update", task=task_id))["updated"] == 0


def test_update_refusals(api: Stack) -> None:
    task_id = create(api)
    refused(api.call("tasks.update", name="x"), 400, 11)
    refused(api.call("tasks.update", task=UNKNOWN, name="x"), 400, 101)
    refused(api.call("tasks.update", task="not-an-id", name="x"), 400, 101)
    assert "tags" in refused(api.call("tasks.update", task=task_id, tags="x"), 400, 12)
    assert "created" in refused(api.call("tasks.update", task=task_id, created="yesterday"), 400, 12)
    assert "force" in refused(api.call("tasks.stopped", task=task_id, force="yes"), 400, 12)


def test_update_batch_takes_one_update_request_per_line(api: Stack) -> None:
    first, second = create(api, name="one"), create(api, name="two")
    lines = [{"task": first, "name": "uno"}, {"task": second, "comment": "dos", "tags": ["x"]}]
    body = b"\n".join(orjson.dumps(line) for line in lines)

    answer = ok(post_raw(api, "tasks.update_batch", body, "application/json-lines"))

    assert answer == {"updated": 2}
    assert task_of(api, first)["name"] == "uno"
    assert task_of(api, second)["comment"] == "dos" and task_of(api, second)["tags"] == ["x"]


def test_update_batch_changes_nothing_when_one_task_is_unknown(api: Stack) -> None:
    task_id = create(api, name="keep")
    body = orjson.dumps({"task": task_id, "name": "lost"}) + b"\n" + orjson.dumps({"task": UNKNOWN, "name": "x"})
    refused(post_raw(api, "tasks.update_batch", body, "application/json-lines"), 400, 101)
    assert task_of(api, task_id)["name"] == "keep"


def test_update_batch_refusals(api: Stack) -> None:
    task_id = create(api)
    refused(post_raw(api, "tasks.update_batch", b"", "application/json-lines"), 400, 17)
    refused(post_raw(api, "tasks.update_batch", b'{"name": "x"}\n{"name": "y"}', "application/json-lines"), 400, 11)
    bad = orjson.dumps({"task": task_id, "tags": 3}) + b"\n"
    refused(post_raw(api, "tasks.update_batch", bad, "application/json-lines"), 400, 12)
    refused(post_raw(api, "tasks.update_batch", b"{not json\n", "application/json-lines"), 400, 12)


# -- edit ----------------------------------------------------------------------------------------
def test_edit_merges_script_and_execution_and_replaces_the_rest(api: Stack) -> None:
    task_id = create(api, script={"entry_point": "a.py", "repository": "r"},
                     execution={"framework": "tf", "parameters": {"x": "1"}}, tags=["old"])
    answer = ok(api.call("tasks.edit", task=task_id, name="edited", tags=["new"],
                         script={"entry_point": "b.py"}, execution={"parameters": {"y": "2"}},
                         hyperparams={"S": {"p": {"section": "S", "name": "p", "value": "v"}}},
                         output_dest="file:///out", type="testing"))
    assert answer["updated"] == 1
    assert answer["fields"]["name"] == "edited"
    task = task_of(api, task_id)
    assert task["script"] == {"entry_point": "b.py", "repository": "r"}
    assert task["execution"] == {"framework": "tf", "parameters": {"y": "2"}}
    assert task["tags"] == ["new"] and task["type"] == "testing"
    assert task["hyperparams"] == {"S": {"p": {"section": "S", "name": "p", "value": "v"}}}
    assert task["output"]["destination"] == "file:///out"


def test_edit_needs_a_created_task_unless_forced(api: Stack) -> None:
    task_id = in_status(api, "in_progress")
    message = refused(api.call("tasks.edit", task=task_id, comment="x"), 400, 110)
    assert "created" in message and "in_progress" in message
    assert task_of(api, task_id).get("comment") == ""
    assert ok(api.call("tasks.edit", task=task_id, comment="x", force=True))["updated"] == 1
    assert task_of(api, task_id)["comment"] == "x"


def test_edit_refusals(api: Stack) -> None:
    task_id = create(api)
    refused(api.call("tasks.edit", comment="x"), 400, 11)
    refused(api.call("tasks.edit", task=UNKNOWN, comment="x"), 400, 101)
    assert "execution.framework" in refused(api.call("tasks.edit", task=task_id, execution={"framework": 1}), 400, 12)
    assert "parent" in refused(api.call("tasks.edit", task=task_id, parent=UNKNOWN), 400, 101)
    assert ok(api.call("tasks.edit", task=task_id))["updated"] == 0


# -- status changes ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("endpoint", "start", "end"),
    [
        ("tasks.started", "created", "in_progress"),
        ("tasks.stop", "in_progress", "stopped"),  # started by a client, no worker: stops at once
        ("tasks.stop", "queued", "stopped"),
        ("tasks.stopped", "in_progress", "stopped"),
        ("tasks.failed", "in_progress", "failed"),
        ("tasks.completed", "in_progress", "completed"),
        ("tasks.close", "stopped", "closed"),
        ("tasks.publish", "stopped", "published"),
        ("tasks.publish", "completed", "published"),
        ("tasks.reset", "failed", "created"),
    ],
)
def test_a_status_change_answers_the_changed_fields(api: Stack, endpoint: str, start: str, end: str) -> None:
    task_id = in_status(api, start)
    answer = ok(api.call(endpoint, task=task_id, status_reason="why", status_message="what"))
    assert answer["updated"] == 1
    assert answer["fields"]["status"] == end
    assert answer["fields"]["last_update"] == answer["fields"]["status_changed"]
    assert status_of(api, task_id) == end


@pytest.mark.parametrize(
    ("endpoint", "start", "new"),
    [
        ("tasks.started", "published", "in_progress"),
        ("tasks.stop", "created", "stopped"),
        ("tasks.stopped", "completed", "stopped"),
        ("tasks.failed", "queued", "failed"),
        ("tasks.completed", "created", "completed"),
        ("tasks.close", "in_progress", "closed"),
        ("tasks.publish", "created", "published"),
        ("tasks.publish", "published", "published"),
        ("tasks.reset", "published", "created"),
    ],
)
def test_a_status_change_the_table_refuses_needs_force(api: Stack, endpoint: str, start: str, new: str) -> None:
    task_id = in_status(api, start)
    before = task_of(api, task_id)
    message = refused(api.call(endpoint, task=task_id), 400, 110)
    assert start in message and new in message, message
    assert task_of(api, task_id) == before

    assert ok(api.call(endpoint, task=task_id, force=True))["updated"] == 1
    assert status_of(api, task_id) == new


@pytest.mark.parametrize(
    "endpoint",
    ["tasks.started", "tasks.stop", "tasks.stopped", "tasks.failed", "tasks.completed", "tasks.close",
     "tasks.publish", "tasks.reset", "tasks.delete", "tasks.ping", "tasks.set_requirements"],
)
def test_every_task_action_refuses_an_unknown_or_missing_task(api: Stack, endpoint: str) -> None:
    extra = {"requirements": {"pip": "x"}} if endpoint == "tasks.set_requirements" else {}
    refused(api.call(endpoint, task=UNKNOWN, **extra), 400, 101)
    refused(api.call(endpoint, task="xyz", **extra), 400, 101)
    refused(api.call(endpoint, **extra), 400, 11)
    refused(api.call(endpoint, task=7, **extra), 400, 12)


def test_publish_goes_through_publishing_and_sets_the_publish_time(api: Stack) -> None:
    task_id = in_status(api, "stopped")
    answer = ok(api.call("tasks.publish", task=task_id, publish_model=False))
    assert answer["fields"]["status"] == "published"
    assert answer["fields"]["published"] == task_of(api, task_id)["published"]
    assert answer["committed_versions_results"] == []
    kinds = [type(event).__name__ for event in history(api, task_id)]
    assert kinds[-2:] == ["PublishingStarted", "Published"]


def test_completed_with_publish_ends_published_and_checks_both_first(api: Stack) -> None:
    task_id = in_status(api, "in_progress")
    answer = ok(api.call("tasks.completed", task=task_id, publish=True))
    assert answer["published"] == 1 and answer["fields"]["status"] == "published"
    task = task_of(api, task_id)
    assert task["status"] == "published" and task["completed"] and task["published"]

    created = create(api)
    refused(api.call("tasks.completed", task=created, publish=True), 400, 110)
    assert status_of(api, created) == "created"
    assert len(history(api, created)) == 1


def test_started_records_the_start_time_once(api: Stack) -> None:
    task_id = create(api)
    first = ok(api.call("tasks.started", task=task_id))
    assert first["started"] == 1 and first["fields"]["started"]
    ok(api.call("tasks.stopped", task=task_id))
    again = ok(api.call("tasks.started", task=task_id))
    assert "started" not in again["fields"]
    assert task_of(api, task_id)["started"] == first["fields"]["started"]


def test_a_worker_claims_only_a_queued_task(api: Stack) -> None:
    task_id = in_status(api, "queued")
    answer = ok(api.call("tasks.started", task=task_id, worker="w1"))
    assert answer["fields"]["last_worker"] == "w1"
    message = refused(api.call("tasks.started", task=task_id, worker="w2"), 400, 110)
    assert "w2" in message
    stop = ok(api.call("tasks.stop", task=task_id))
    assert stop["fields"]["status_message"] == "stopping" and status_of(api, task_id) == "in_progress"


# -- reset ---------------------------------------------------------------------------------------
def test_reset_clears_what_a_run_left_and_keeps_input_artifacts(api: Stack) -> None:
    task_id = create(api, execution={"artifacts": [{"key": "in", "type": "t", "mode": "input"},
                                                   {"key": "out", "type": "t"}]})
    ok(api.call("tasks.enqueue", task=task_id, queue="q"))
    ok(api.call("tasks.started", task=task_id, worker="w"))
    ok(api.call("tasks.add_or_update_model", task=task_id, name="m", model="m1", type="output", iteration=7))
    ok(api.call("tasks.update", task=task_id, output__error="bad"))
    ok(api.call("tasks.failed", task=task_id))

    answer = ok(api.call("tasks.reset", task=task_id))

    assert answer["updated"] == 1 and set(answer["dequeued"]) == {"removed"}
    task = task_of(api, task_id)
    assert task["status"] == "created"
    for cleared in ("started", "completed", "published", "last_worker", "last_worker_report", "active_duration"):
        assert task[cleared] is None, cleared
    assert task["last_iteration"] == 0 and task["last_metrics"] == {} and task["runtime"] == {}
    assert task["execution"]["queue"] is None
    assert [artifact["key"] for artifact in task["execution"]["artifacts"]] == ["in"]
    assert task["models"]["output"] == [] and task["output"].get("error") is None


def test_resetting_a_queued_task_takes_it_off_its_queue(api: Stack) -> None:
    task_id = in_status(api, "queued")
    answer = ok(api.call("tasks.reset", task=task_id))
    assert answer["dequeued"] == {"removed": 1}
    assert task_of(api, task_id)["execution"]["queue"] is None


def test_reset_with_clear_all_drops_script_and_execution(api: Stack) -> None:
    task_id = in_status(api, "failed", script={"entry_point": "x.py"}, execution={"framework": "tf"})
    ok(api.call("tasks.reset", task=task_id, clear_all=True))
    task = task_of(api, task_id)
    assert task["script"] is None and task["execution"] == {}
    message = refused(api.call("tasks.set_requirements", task=task_id, requirements={"pip": "x"}), 400, 122)
    assert "script" in message


# -- delete --------------------------------------------------------------------------------------
def test_a_deleted_task_is_gone_from_the_api_but_not_from_the_log(api: Stack) -> None:
    task_id = create(api)
    wait_in_view(api, task_id)
    answer = ok(api.call("tasks.delete", task=task_id, move_to_trash=True))
    assert answer["deleted"] is True and answer["updated_children"] == 0

    refused(api.call("tasks.get_by_id", task=task_id), 400, 101)
    wait_until(lambda: not in_view(api, task_id), message="deleted task gone from the view")
    for endpoint in ("tasks.started", "tasks.delete", "tasks.update", "tasks.ping"):
        refused(api.call(endpoint, task=task_id, name="x"), 400, 101)
    assert ok(api.call("tasks.get_all", id=[task_id]))["tasks"] == []
    assert [type(event) for event in history(api, task_id)] == [Task.Created, Task.Deleted]


def test_delete_needs_a_created_or_archived_task_unless_forced(api: Stack) -> None:
    running = in_status(api, "in_progress")
    message = refused(api.call("tasks.delete", task=running), 400, 123)
    assert "in_progress" in message
    assert status_of(api, running) == "in_progress"
    assert ok(api.call("tasks.delete", task=running, force=True))["deleted"] is True

    archived = in_status(api, "failed")
    assert ok(api.call("tasks.archive", tasks=[archived])) == {"archived": 1}
    assert ok(api.call("tasks.delete", task=archived))["deleted"] is True


def test_deleting_a_parent_marks_its_children(api: Stack) -> None:
    parent = create(api)
    child = create(api, parent=parent)
    wait_in_view(api, parent, child)
    answer = ok(api.call("tasks.delete", task=parent))
    assert answer["updated_children"] == 1
    assert task_of(api, child)["parent"] == f"__DELETED__{parent}"


def test_a_parent_of_a_published_child_is_deleted_only_with_force(api: Stack) -> None:
    parent = create(api)
    child = in_status(api, "published", parent=parent)
    wait_in_view(api, parent, child)
    assert "children" in refused(api.call("tasks.delete", task=parent), 400, 123)
    assert status_of(api, parent) == "created"
    assert ok(api.call("tasks.delete", task=parent, force=True))["updated_children"] == 1


def test_deleting_a_queued_task_with_force(api: Stack) -> None:
    task_id = in_status(api, "queued")
    refused(api.call("tasks.delete", task=task_id), 400, 123)
    assert ok(api.call("tasks.delete", task=task_id, force=True))["deleted"] is True


# -- requirements, ping, archive -----------------------------------------------------------------
def test_set_requirements(api: Stack) -> None:
    task_id = create(api, script={"entry_point": "a.py"})
    answer = ok(api.call("tasks.set_requirements", task=task_id, requirements={"pip": "torch==2.1"}))
    assert answer["updated"] == 1 and answer["fields"]["script"] == {"requirements": {"pip": "torch==2.1"}}
    assert task_of(api, task_id)["script"] == {"entry_point": "a.py", "requirements": {"pip": "torch==2.1"}}
    assert "requirements" in refused(api.call("tasks.set_requirements", task=task_id), 400, 11)
    assert "requirements" in refused(api.call("tasks.set_requirements", task=task_id, requirements="x"), 400, 12)


def test_ping_refreshes_last_update_only(api: Stack) -> None:
    task_id = in_status(api, "in_progress")
    before = task_of(api, task_id)
    assert ok(api.call("tasks.ping", task=task_id)) == {}
    after = task_of(api, task_id)
    assert after["last_update"] > before["last_update"]
    assert after["last_change"] == before["last_change"]
    assert after["status_changed"] == before["status_changed"]
    assert isinstance(after["active_duration"], int)


def test_archiving_a_queued_task_dequeues_it_first(api: Stack) -> None:
    task_id = in_status(api, "queued")
    assert ok(api.call("tasks.archive", tasks=[task_id], status_reason="tidy")) == {"archived": 1}
    task = task_of(api, task_id)
    assert task["status"] == "created" and task["execution"]["queue"] is None
    assert "archived" in task["system_tags"]
    refused(api.call("tasks.archive", tasks=[task_id, UNKNOWN]), 400, 101)
    refused(api.call("tasks.archive"), 400, 11)


# -- batch forms ---------------------------------------------------------------------------------
def failed_codes(answer: dict) -> dict[str, list[int]]:
    return {item["id"]: item["error"]["codes"] for item in answer["failed"]}


def test_stop_many_answers_each_id(api: Stack) -> None:
    queued, created = in_status(api, "queued"), create(api)
    answer = ok(api.call("tasks.stop_many", ids=[queued, created, UNKNOWN], status_reason="enough"))
    assert [item["id"] for item in answer["succeeded"]] == [queued]
    assert answer["succeeded"][0]["updated"] == 1 and answer["succeeded"][0]["fields"]["status"] == "stopped"
    assert failed_codes(answer) == {created: [400, 110], UNKNOWN: [400, 101]}
    assert all(item["error"]["msg"] for item in answer["failed"])
    assert ok(api.call("tasks.stop_many", ids=[created], force=True))["succeeded"][0]["fields"]["status"] == "stopped"


def test_enqueue_many_and_dequeue_many(api: Stack) -> None:
    first, second, published = create(api), create(api), in_status(api, "published")
    answer = ok(api.call("tasks.enqueue_many", ids=[first, second, published], queue="gpu"))
    assert [(item["id"], item["queued"]) for item in answer["succeeded"]] == [(first, True), (second, True)]
    assert failed_codes(answer) == {published: [400, 110]}
    queue = answer["succeeded"][0]["fields"]["execution"]["queue"]
    assert queue and task_of(api, first)["execution"]["queue"] == queue

    answer = ok(api.call("tasks.dequeue_many", ids=[first, published]))
    assert [(item["id"], item["dequeued"]) for item in answer["succeeded"]] == [(first, True)]
    assert failed_codes(answer) == {published: [400, 110]}
    assert status_of(api, first) == "created" and status_of(api, second) == "queued"


def test_reset_many_publish_many_archive_many_unarchive_many(api: Stack) -> None:
    stopped, queued, published = in_status(api, "stopped"), in_status(api, "queued"), in_status(api, "published")

    answer = ok(api.call("tasks.reset_many", ids=[queued, published]))
    assert [(item["id"], item["dequeued"]) for item in answer["succeeded"]] == [(queued, True)]
    assert failed_codes(answer) == {published: [400, 110]}

    answer = ok(api.call("tasks.publish_many", ids=[stopped, queued]))
    assert [item["id"] for item in answer["succeeded"]] == [stopped]
    assert answer["succeeded"][0]["fields"]["status"] == "published"
    assert failed_codes(answer) == {queued: [400, 110]}

    answer = ok(api.call("tasks.archive_many", ids=[stopped, UNKNOWN]))
    assert answer["succeeded"] == [{"id": stopped, "archived": True}]
    assert failed_codes(answer) == {UNKNOWN: [400, 101]}
    answer = ok(api.call("tasks.unarchive_many", ids=[stopped]))
    assert answer["succeeded"] == [{"id": stopped, "unarchived": True}]
    assert "archived" not in task_of(api, stopped)["system_tags"]


def test_delete_many(api: Stack) -> None:
    created, running = create(api), in_status(api, "in_progress")
    answer = ok(api.call("tasks.delete_many", ids=[created, running]))
    assert [(item["id"], item["deleted"]) for item in answer["succeeded"]] == [(created, True)]
    assert failed_codes(answer) == {running: [400, 123]}
    answer = ok(api.call("tasks.delete_many", ids=[running], force=True))
    assert answer["succeeded"][0]["deleted"] is True
    refused(api.call("tasks.get_by_id", task=running), 400, 101)


@pytest.mark.parametrize(
    "endpoint",
    ["tasks.stop_many", "tasks.enqueue_many", "tasks.dequeue_many", "tasks.reset_many", "tasks.delete_many",
     "tasks.publish_many", "tasks.archive_many", "tasks.unarchive_many"],
)
def test_a_batch_needs_a_list_of_ids(api: Stack, endpoint: str) -> None:
    refused(api.call(endpoint), 400, 11)
    refused(api.call(endpoint, ids=[]), 400, 12)
    refused(api.call(endpoint, ids="abc"), 400, 12)
    refused(api.call(endpoint, ids=[1]), 400, 12)


# -- hyper parameters and configuration ----------------------------------------------------------
def hyperparams(api: Stack, task_id: str) -> list[dict]:
    (entry,) = ok(api.call("tasks.get_hyper_params", tasks=[task_id]))["params"]
    assert entry["task"] == task_id
    return entry["hyperparams"]


def test_edit_hyper_params_adds_updates_and_replaces(api: Stack) -> None:
    task_id = create(api)
    items = [{"section": "Args", "name": "lr", "value": "0.1"},
             {"section": "Args", "name": "model.depth", "value": "50", "type": "int"},
             {"section": "Env", "name": "$HOME", "value": "/root"}]
    assert ok(api.call("tasks.edit_hyper_params", task=task_id, hyperparams=items)) == {"updated": 1}
    assert hyperparams(api, task_id) == sorted(items, key=lambda item: (item["section"], item["name"]))
    assert task_of(api, task_id)["hyperparams"]["Args"]["model.depth"]["value"] == "50"

    ok(api.call("tasks.edit_hyper_params", task=task_id, hyperparams=[{"section": "Args", "name": "lr", "value": "1"}]))
    assert {(p["name"], p["value"]) for p in hyperparams(api, task_id) if p["section"] == "Args"} == {
        ("lr", "1"), ("model.depth", "50")}

    ok(api.call("tasks.edit_hyper_params", task=task_id, replace_hyperparams="section",
                hyperparams=[{"section": "Args", "name": "bs", "value": "8"}]))
    assert [(p["section"], p["name"]) for p in hyperparams(api, task_id)] == [("Args", "bs"), ("Env", "$HOME")]

    ok(api.call("tasks.edit_hyper_params", task=task_id, replace_hyperparams="all",
                hyperparams=[{"section": "New", "name": "x", "value": "y"}]))
    assert [(p["section"], p["name"]) for p in hyperparams(api, task_id)] == [("New", "x")]


def test_delete_hyper_params_by_name_or_section(api: Stack) -> None:
    task_id = create(api)
    ok(api.call("tasks.edit_hyper_params", task=task_id, hyperparams=[
        {"section": "A", "name": "x", "value": "1"}, {"section": "A", "name": "y", "value": "2"},
        {"section": "B", "name": "z", "value": "3"}]))
    assert ok(api.call("tasks.delete_hyper_params", task=task_id, hyperparams=[
        {"section": "A", "name": "x"}, {"section": "B"}])) == {"deleted": 1}
    assert [(p["section"], p["name"]) for p in hyperparams(api, task_id)] == [("A", "y")]
    message = refused(api.call("tasks.delete_hyper_params", task=task_id, hyperparams=[
        {"section": "A"}, {"section": "A", "name": "y"}]), 400, 15)
    assert "section" in message


def test_hyper_params_of_a_running_task_need_force_except_properties(api: Stack) -> None:
    task_id = in_status(api, "in_progress")
    item = {"section": "Args", "name": "lr", "value": "1"}
    message = refused(api.call("tasks.edit_hyper_params", task=task_id, hyperparams=[item]), 400, 110)
    assert "in_progress" in message
    assert ok(api.call("tasks.edit_hyper_params", task=task_id, hyperparams=[item], force=True)) == {"updated": 1}
    completed = in_status(api, "completed")
    refused(api.call("tasks.edit_hyper_params", task=completed, hyperparams=[item], force=True), 400, 110)
    properties = {"section": "Properties", "name": "p", "value": "v"}
    assert ok(api.call("tasks.edit_hyper_params", task=completed, hyperparams=[properties])) == {"updated": 1}
    assert hyperparams(api, completed)[0]["section"] == "properties"
    ok(api.call("tasks.delete_hyper_params", task=completed, hyperparams=[{"section": "properties", "name": "p"}]))


@pytest.mark.parametrize(
    ("body", "code", "named"),
    [
        ({}, 11, "hyperparams"),
        ({"hyperparams": []}, 12, "hyperparams"),
        ({"hyperparams": [{"section": "A", "name": "x"}]}, 12, "value"),
        ({"hyperparams": [{"section": "", "name": "x", "value": "1"}]}, 12, "section"),
        ({"hyperparams": [{"section": "A", "name": "x", "value": 1}]}, 12, "hyperparams[0].value"),
        ({"hyperparams": [{"section": "A", "name": "x", "value": "1"}], "replace_hyperparams": "most"}, 12,
         "replace_hyperparams"),
    ],
)
def test_edit_hyper_params_refusals(api: Stack, body: dict, code: int, named: str) -> None:
    task_id = create(api)
    assert named in refused(api.call("tasks.edit_hyper_params", task=task_id, **body), 400, code)


def test_hyper_params_getters_refuse_unknown_tasks(api: Stack) -> None:
    task_id = create(api)
    for endpoint in ("tasks.get_hyper_params", "tasks.get_configurations", "tasks.get_configuration_names"):
        refused(api.call(endpoint, tasks=[task_id, UNKNOWN]), 400, 101)
        refused(api.call(endpoint), 400, 11)
    refused(api.call("tasks.edit_hyper_params", task=UNKNOWN, hyperparams=[{"section": "a", "name": "b", "value": "c"}]),
            400, 101)


def test_configuration_edit_get_names_and_delete(api: Stack) -> None:
    task_id = create(api)
    items = [{"name": "General", "value": "a: 1", "type": "yaml"}, {"name": "empty.one", "value": ""},
             {"name": "Other", "value": "{}", "description": "d"}]
    assert ok(api.call("tasks.edit_configuration", task=task_id, configuration=items)) == {"updated": 1}

    (entry,) = ok(api.call("tasks.get_configurations", tasks=[task_id]))["configurations"]
    assert entry == {"task": task_id, "configuration": sorted(items, key=lambda item: item["name"])}
    (entry,) = ok(api.call("tasks.get_configurations", tasks=[task_id], names=["Other"]))["configurations"]
    assert [item["name"] for item in entry["configuration"]] == ["Other"]
    (names,) = ok(api.call("tasks.get_configuration_names", tasks=[task_id]))["configurations"]
    assert names == {"task": task_id, "names": ["General", "Other"]}
    (names,) = ok(api.call("tasks.get_configuration_names", tasks=[task_id], skip_empty=False))["configurations"]
    assert names["names"] == ["General", "Other", "empty.one"]

    assert ok(api.call("tasks.delete_configuration", task=task_id, configuration=["Other", "missing"])) == {"deleted": 1}
    ok(api.call("tasks.edit_configuration", task=task_id, replace_configuration=True,
                configuration=[{"name": "Only", "value": "1"}]))
    assert list(task_of(api, task_id)["configuration"]) == ["Only"]

    running = in_status(api, "in_progress")
    refused(api.call("tasks.edit_configuration", task=running, configuration=[{"name": "x", "value": "1"}]), 400, 110)
    ok(api.call("tasks.edit_configuration", task=running, configuration=[{"name": "x", "value": "1"}], force=True))
    assert "configuration" in refused(api.call("tasks.edit_configuration", task=task_id), 400, 11)
    refused(api.call("tasks.edit_configuration", task=task_id, configuration=[{"value": "1"}]), 400, 12)


# -- artifacts and models ------------------------------------------------------------------------
def test_artifacts_are_added_updated_and_deleted_by_key_and_mode(api: Stack) -> None:
    task_id = in_status(api, "in_progress")
    artifacts = [{"key": "a", "type": "t", "uri": "u1"}, {"key": "a", "type": "t", "mode": "input"}]
    assert ok(api.call("tasks.add_or_update_artifacts", task=task_id, artifacts=artifacts)) == {"updated": 1}
    ok(api.call("tasks.add_or_update_artifacts", task=task_id, artifacts=[{"key": "a", "type": "t", "uri": "u2"}]))
    listed = task_of(api, task_id)["execution"]["artifacts"]
    assert [(a["key"], a["mode"], a.get("uri")) for a in listed] == [("a", "input", None), ("a", "output", "u2")]

    assert ok(api.call("tasks.delete_artifacts", task=task_id, artifacts=[{"key": "a"}])) == {"deleted": 1}
    assert [a["mode"] for a in task_of(api, task_id)["execution"]["artifacts"]] == ["input"]

    done = in_status(api, "completed")
    assert "completed" in refused(api.call("tasks.add_or_update_artifacts", task=done, artifacts=artifacts), 400, 110)
    assert "artifacts" in refused(api.call("tasks.add_or_update_artifacts", task=task_id), 400, 11)
    assert "artifacts[0]" in refused(api.call("tasks.add_or_update_artifacts", task=task_id,
                                              artifacts=[{"key": "k"}]), 400, 12)


def test_models_are_added_replaced_by_name_and_deleted(api: Stack) -> None:
    task_id = in_status(api, "in_progress")
    assert ok(api.call("tasks.add_or_update_model", task=task_id, name="best", model="m1", type="output",
                       iteration=10)) == {"updated": 1}
    ok(api.call("tasks.add_or_update_model", task=task_id, name="best", model="m2", type="output"))
    ok(api.call("tasks.add_or_update_model", task=task_id, name="init", model="m0", type="input"))
    task = task_of(api, task_id)
    assert [(m["name"], m["model"]) for m in task["models"]["output"]] == [("best", "m2")]
    assert [(m["name"], m["model"]) for m in task["models"]["input"]] == [("init", "m0")]
    assert task["last_iteration"] == 10

    assert ok(api.call("tasks.delete_models", task=task_id, models=[{"name": "best", "type": "output"}])) == {
        "updated": 1}
    assert task_of(api, task_id)["models"]["output"] == []
    assert "type" in refused(api.call("tasks.add_or_update_model", task=task_id, name="x", model="m",
                                      type="sideways"), 400, 12)
    refused(api.call("tasks.add_or_update_model", task=task_id, name="x", type="input"), 400, 11)
    refused(api.call("tasks.delete_models", task=task_id, models=[{"name": "x"}]), 400, 12)
