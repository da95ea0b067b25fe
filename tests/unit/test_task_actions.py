"""The Task aggregate's field commands, delete, publish and the stored document form: pure, in memory."""
from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any
from uuid import uuid4

import pytest

from domain.document import apply_changes
from domain.errors import InvalidField, InvalidStatusChange, MissingRequiredField, TaskNotFound
from domain.status import TaskStatus
from domain.task import (
    DELETED_PREFIX,
    FieldsConflict,
    MissingTaskFields,
    Task,
    TaskCannotBeDeleted,
    time_key,
)
from domain.task_fields import (
    api_document,
    artifact_id,
    escape_key,
    escape_keys,
    parse_time,
    unescape_key,
    unescape_keys,
    validated_task_fields,
    validated_update_fields,
)

S = TaskStatus


def new_task(**fields: Any) -> Task:
    known = validated_task_fields({"name": "train", "type": "training", **fields}, require_name_and_type=True)
    task = Task.create(uuid4(), known, "alice")
    task.collect_events()
    return task


def in_status(status: TaskStatus, **fields: Any) -> Task:
    task = new_task(**fields)
    moves = {
        S.created: lambda: None,
        S.queued: lambda: task.enqueue("q", "setup"),
        S.in_progress: lambda: task.start("setup"),
        S.stopped: lambda: task.stopped("setup", force=True),
        S.completed: lambda: task.complete("setup", force=True),
        S.failed: lambda: task.fail("setup", force=True),
        S.published: lambda: task.publish("setup", force=True),
    }
    moves[status]()
    task.collect_events()
    return task


def events_of(task: Task) -> list[type]:
    return [type(event) for event in task.collect_events()]


def only_event(task: Task) -> Task.Event:
    events = task.collect_events()
    assert len(events) == 1, events
    return events[0]


def assert_refused_unchanged(task: Task, command, error: type[Exception]) -> Exception:
    before, version = copy.deepcopy(task.doc), task.version
    with pytest.raises(error) as refused:
        command()
    assert task.collect_events() == []
    assert task.doc == before and task.version == version
    return refused.value


def replay(events: list) -> Task:
    aggregate = None
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


# -- update and edit -----------------------------------------------------------------------------
def test_update_sets_the_given_paths_in_any_status_and_records_nothing_without_changes():
    task = in_status(S.published)
    task.update(validated_update_fields({"name": "renamed", "output__error": "boom", "tags": ["x"]}), "bob")
    event = only_event(task)

    assert isinstance(event, Task.Updated)
    assert task.doc["name"] == "renamed" and task.doc["output"]["error"] == "boom" and task.doc["tags"] == ["x"]
    assert task.doc["status"] == "published"
    assert "renamed" in task.doc["_text"]
    task.update({}, "bob")
    assert task.collect_events() == []


def test_update_fields_are_checked_and_created_is_normalised():
    assert validated_update_fields({"created": "2024-05-06T07:08:09Z", "status": "published", "task": "x"}) == {
        "created": "2024-05-06T07:08:09.000000+00:00"}
    with pytest.raises(InvalidField, match="created"):
        validated_update_fields({"created": "soon"})
    with pytest.raises(InvalidField, match="name"):
        validated_update_fields({"name": 3})


def test_edit_merges_objects_with_fixed_fields_and_replaces_the_rest():
    task = new_task(script={"entry_point": "a.py", "repository": "r"}, execution={"framework": "tf"},
                    tags=["old"], hyperparams={"A": {"x": {"value": "1"}}})
    task.edit(validated_task_fields({
        "script": {"entry_point": "b.py"},
        "execution": {"parameters": {"p": "1"}},
        "tags": ["new"],
        "hyperparams": {"B": {"y": {"value": "2"}}},
        "output_dest": "s3://out",
    }, require_name_and_type=False), "bob")
    event = only_event(task)

    assert isinstance(event, Task.Edited)
    assert "script.entry_point" in event.fields and "script" not in event.fields
    assert task.doc["script"] == {"entry_point": "b.py", "repository": "r"}
    assert task.doc["execution"] == {"framework": "tf", "parameters": {"p": "1"}}
    assert task.doc["tags"] == ["new"]
    assert task.doc["hyperparams"] == {"B": {"y": {"value": "2"}}}
    assert task.doc["output"] == {"destination": "s3://out"}


def test_edit_of_a_task_that_is_not_created_needs_force():
    task = in_status(S.in_progress)
    error = assert_refused_unchanged(task, lambda: task.edit({"comment": "c"}, "bob"), InvalidStatusChange)
    assert "created" in str(error) and "in_progress" in str(error)
    task.edit({"comment": "c"}, "bob", force=True)
    assert task.doc["comment"] == "c"


def test_edit_replaces_an_object_that_is_null_instead_of_setting_inside_it():
    task = in_status(S.failed, script={"entry_point": "a.py"})
    task.reset("bob", clear_all=True)
    assert task.doc["script"] is None
    task.collect_events()
    task.edit({"script": {"entry_point": "b.py", "binary": "python3"}}, "bob")
    event = only_event(task)
    assert event.fields["script"] == {"entry_point": "b.py", "binary": "python3"}
    assert task.doc["script"] == {"entry_point": "b.py", "binary": "python3"}


def test_set_requirements_needs_a_script():
    task = new_task()
    task.set_requirements({"pip": "numpy"}, "bob")
    assert task.doc["script"]["requirements"] == {"pip": "numpy"}
    task = in_status(S.failed)
    task.reset("bob", clear_all=True)
    task.collect_events()
    assert_refused_unchanged(task, lambda: task.set_requirements({"pip": "x"}, "bob"), MissingTaskFields)


# -- hyper parameters and configuration ----------------------------------------------------------
def param(section: str, name: str, value: str = "v") -> dict[str, str]:
    return {"section": section, "name": name, "value": value}


def test_hyper_params_are_set_one_by_one_by_section_or_all():
    task = new_task()
    task.edit_hyper_params([param("Args", "lr", "0.1"), param("Args", "model.depth", "50")], "bob")
    assert "hyperparams.Args" in only_event(task).fields  # a new section is set whole
    task.edit_hyper_params([param("Args", "lr", "1"), param("Env", "$HOME", "/")], "bob")
    assert {"hyperparams.Args.lr", "hyperparams.Env"} <= set(only_event(task).fields)  # names inside a section
    assert api_document(task.doc)["hyperparams"] == {
        "Args": {"lr": param("Args", "lr", "1"), "model.depth": param("Args", "model.depth", "50")},
        "Env": {"$HOME": param("Env", "$HOME", "/")},
    }
    task.edit_hyper_params([param("Args", "bs")], "bob", replace="section")
    assert set(task.doc["hyperparams"]) == {"Args", "Env"} and list(task.doc["hyperparams"]["Args"]) == ["bs"]
    task.edit_hyper_params([param("Only", "one")], "bob", replace="all")
    assert task.doc["hyperparams"] == {"Only": {"one": param("Only", "one")}}


def test_hyper_params_of_a_running_task_need_force_but_properties_never_do():
    task = in_status(S.in_progress)
    assert_refused_unchanged(task, lambda: task.edit_hyper_params([param("A", "x")], "bob"), InvalidStatusChange)
    task.edit_hyper_params([param("A", "x")], "bob", force=True)
    done = in_status(S.completed)
    assert_refused_unchanged(done, lambda: done.edit_hyper_params([param("A", "x")], "bob", force=True),
                             InvalidStatusChange)
    done.edit_hyper_params([param("PROPERTIES", "p")], "bob")
    assert list(done.doc["hyperparams"]) == ["properties"]
    done.delete_hyper_params([{"section": "Properties", "name": "p"}], "bob")
    assert done.doc["hyperparams"] == {"properties": {}}


def test_deleting_hyper_params_by_name_or_whole_section():
    task = new_task()
    task.edit_hyper_params([param("A", "x"), param("A", "y"), param("B", "z")], "bob")
    task.delete_hyper_params([{"section": "A", "name": "x"}, {"section": "B"}, {"section": "C", "name": "n"}], "bob")
    assert task.doc["hyperparams"] == {"A": {"y": param("A", "y")}}
    task.collect_events()
    error = assert_refused_unchanged(
        task, lambda: task.delete_hyper_params([{"section": "A"}, {"section": "A", "name": "y"}], "bob"),
        FieldsConflict)
    assert isinstance(error, InvalidField)


def test_configuration_items_are_set_replaced_and_deleted_by_name():
    task = new_task()
    task.edit_configuration([{"name": "a.b", "value": "1"}, {"name": "c", "value": "2"}], "bob")
    assert set(task.doc["configuration"]) == {"a%2Eb", "c"}
    task.edit_configuration([{"name": "c", "value": "3"}], "bob")
    assert task.doc["configuration"]["c"]["value"] == "3" and "a%2Eb" in task.doc["configuration"]
    task.delete_configuration(["a.b", "missing"], "bob")
    assert list(task.doc["configuration"]) == ["c"]
    task.edit_configuration([{"name": "d", "value": "4"}], "bob", replace=True)
    assert list(task.doc["configuration"]) == ["d"]
    running = in_status(S.in_progress)
    assert_refused_unchanged(running, lambda: running.edit_configuration([{"name": "d", "value": "4"}], "bob"),
                             InvalidStatusChange)


# -- artifacts and models ------------------------------------------------------------------------
def test_artifacts_are_keyed_by_key_and_mode():
    task = in_status(S.in_progress)
    task.add_or_update_artifacts([{"key": "a", "type": "t"}, {"key": "a", "type": "t", "mode": "input"}], "bob")
    task.add_or_update_artifacts([{"key": "a", "type": "t2"}], "bob")
    stored = task.doc["execution"]["artifacts"]
    assert set(stored) == {artifact_id({"key": "a"}), artifact_id({"key": "a", "mode": "input"})}
    assert stored[artifact_id({"key": "a", "mode": "output"})]["type"] == "t2"
    assert [item["mode"] for item in api_document(task.doc)["execution"]["artifacts"]] == ["input", "output"]
    task.delete_artifacts([{"key": "a", "mode": "input"}], "bob")
    assert list(task.doc["execution"]["artifacts"]) == [artifact_id({"key": "a"})]
    done = in_status(S.completed)
    assert_refused_unchanged(done, lambda: done.add_or_update_artifacts([{"key": "a", "type": "t"}], "bob"),
                             InvalidStatusChange)


def test_models_are_replaced_by_name_and_raise_the_last_iteration():
    task = in_status(S.in_progress)
    task.add_or_update_model("output", "best", "m1", "bob", iteration=5)
    task.add_or_update_model("output", "best", "m2", "bob", iteration=3)
    task.add_or_update_model("output", "last", "m3", "bob")
    assert [(m["name"], m["model"]) for m in task.doc["models"]["output"]] == [("best", "m2"), ("last", "m3")]
    assert task.doc["last_iteration"] == 5
    task.delete_models([{"name": "best", "type": "output"}, {"name": "x", "type": "input"}], "bob")
    assert [m["name"] for m in task.doc["models"]["output"]] == ["last"] and task.doc["models"]["input"] == []


# -- publish, complete, reset --------------------------------------------------------------------
def test_publishing_goes_through_publishing():
    task = in_status(S.stopped)
    task.publish("bob")
    assert events_of(task) == [Task.PublishingStarted, Task.Published]
    assert task.status == S.published and task.doc["published"]


def test_a_published_task_is_not_published_again_without_force():
    task = in_status(S.published)
    error = assert_refused_unchanged(task, lambda: task.publish("bob"), InvalidStatusChange)
    assert str(error).count("published") == 2
    task.publish("bob", force=True)
    assert events_of(task) == [Task.PublishingStarted, Task.Published]


def test_completing_with_publish_checks_both_before_recording_either():
    task = in_status(S.in_progress)
    task.complete("bob", publish=True)
    assert events_of(task) == [Task.Completed, Task.PublishingStarted, Task.Published]
    assert task.status == S.published and task.doc["completed"] and task.doc["published"]
    created = new_task()
    assert_refused_unchanged(created, lambda: created.complete("bob", publish=True), InvalidStatusChange)


def test_reset_clears_the_run_and_keeps_input_artifacts():
    task = new_task(execution={"artifacts": [{"key": "in", "type": "t", "mode": "input"}, {"key": "out", "type": "t"}]},
                    script={"entry_point": "a.py"})
    task.start("bob")
    task.add_or_update_model("output", "m", "m1", "bob", iteration=3)
    task.update({"output.error": "bad"}, "bob")
    task.fail("bob")
    task.collect_events()

    task.reset("bob")
    event = only_event(task)

    assert (event.reason, event.message) == ("reset", "reset")
    assert task.status == S.created
    assert [item["key"] for item in task.doc["execution"]["artifacts"].values()] == ["in"]
    assert task.doc["models"]["output"] == [] and task.doc["last_iteration"] == 0
    assert task.doc["output"]["error"] is None and task.doc["runtime"] == {} and task.doc["active_duration"] is None
    assert task.doc["script"] == {"entry_point": "a.py"}

    task.reset("bob", clear_all=True)
    assert task.doc["execution"] == {} and task.doc["script"] is None


# -- delete, children, archive, ping -------------------------------------------------------------
@pytest.mark.parametrize("status", [S.queued, S.in_progress, S.stopped, S.completed, S.failed, S.published],
                         ids=lambda s: s.value)
def test_only_a_created_task_is_deleted_without_force(status):
    task = in_status(status)
    error = assert_refused_unchanged(task, lambda: task.delete("bob"), TaskCannotBeDeleted)
    assert status.value in str(error)
    task.delete("bob", force=True)
    assert events_of(task) == [Task.Deleted]


def test_an_archived_task_is_deleted_without_force_and_then_refuses_every_command():
    task = in_status(S.failed)
    task.archive("bob")
    task.delete("bob", move_to_trash=True)
    assert events_of(task) == [Task.Archived, Task.Deleted]
    assert task.is_deleted
    for command in (lambda: task.start("bob"), lambda: task.update({"name": "x"}, "bob"), lambda: task.ping("bob"),
                    lambda: task.delete("bob", force=True), lambda: task.reset("bob", force=True),
                    lambda: task.edit_hyper_params([param("A", "x")], "bob"), lambda: task.archive("bob")):
        assert_refused_unchanged(task, command, TaskNotFound)


def test_a_child_of_a_deleted_task_points_at_the_deleted_marker():
    parent, other = new_task(), new_task()
    child = new_task(parent=parent.task_id)
    assert child.parent_deleted(parent.task_id, "bob") is True
    assert child.doc["parent"] == f"{DELETED_PREFIX}{parent.task_id}"
    assert isinstance(only_event(child), Task.ParentDeleted)
    assert child.parent_deleted(parent.task_id, "bob") is False
    assert other.parent_deleted(parent.task_id, "bob") is False
    assert child.collect_events() == [] and other.collect_events() == []


def test_archiving_a_queued_task_dequeues_it_and_tags_it_once():
    task = in_status(S.queued, system_tags=["archived", "keep"])
    task.archive("bob", reason="tidy")
    assert events_of(task) == [Task.Dequeued, Task.Archived]
    assert task.status == S.created and task.queue is None
    assert task.doc["system_tags"] == ["archived", "keep"] and task.doc["status_reason"] == "tidy"
    task.unarchive("bob")
    assert task.doc["system_tags"] == ["keep"]


def test_ping_moves_only_last_update_and_the_active_time():
    task = in_status(S.in_progress)
    before = copy.deepcopy(task.doc)
    task.ping("w")
    event = only_event(task)
    assert set(event.changes()) == {"last_update", "active_duration"}
    assert task.doc["last_change"] == before["last_change"]
    assert task.doc["last_update"] == event.at > before["last_update"]
    idle = new_task()
    idle.ping("w")
    assert set(only_event(idle).changes()) == {"last_update"}


# -- the document --------------------------------------------------------------------------------
def test_times_get_a_comparable_copy_that_does_not_look_like_a_date():
    task = in_status(S.in_progress)
    assert task.doc["_times"] == {
        "status_changed": time_key(task.doc["status_changed"]),
        "last_update": time_key(task.doc["last_update"]),
        "started": time_key(task.doc["started"]),
    }
    assert task.doc["_times"]["started"].startswith("t2")
    task.stopped("bob")
    task.reset("bob")
    assert task.doc["_times"]["started"] is None


def test_replaying_every_kind_of_event_rebuilds_the_same_document():
    parent = new_task()
    fields = validated_task_fields({
        "name": "n0", "type": "qc", "parent": parent.task_id, "hyperparams": {"A": {"x": {"value": "1"}}},
        "execution": {"artifacts": [{"key": "k", "type": "t"}]}, "models": {"input": [{"name": "i", "model": "m"}]},
    }, require_name_and_type=True)
    task = Task.create(uuid4(), fields, "alice")
    task.update({"name": "n", "output.error": "e"}, "a")
    task.edit({"comment": "c", "script": {"entry_point": "e.py"}}, "a")
    task.set_requirements({"pip": "x"}, "a")
    task.edit_hyper_params([param("B", "y.z")], "a")
    task.delete_hyper_params([{"section": "A"}], "a")
    task.edit_configuration([{"name": "c.d", "value": "1"}], "a")
    task.delete_configuration(["c.d"], "a")
    task.add_or_update_artifacts([{"key": "k2", "type": "t"}], "a")
    task.delete_artifacts([{"key": "k"}], "a")
    task.add_or_update_model("output", "o", "m2", "a", iteration=4)
    task.delete_models([{"name": "i", "type": "input"}], "a")
    task.enqueue("q", "a")
    task.archive("a")
    task.unarchive("a")
    task.start("a")
    task.ping("a")
    task.complete("a", publish=True)
    task.reset("a", force=True, clear_all=True)
    task.parent_deleted(parent.task_id, "a")
    task.delete("a")
    events = task.collect_events()

    rebuilt = replay(events)

    assert rebuilt.doc == task.doc and rebuilt.version == task.version


def test_no_event_sets_a_path_and_a_path_inside_it():
    """MongoDB refuses a `$set` whose paths overlap ("a" and "a.b"); so must every event."""
    task = new_task(execution={"artifacts": [{"key": "k", "type": "t"}]})
    task.edit({"execution": {"framework": "x"}, "models": {"output": []}}, "a")
    task.start("a")
    task.add_or_update_artifacts([{"key": "a", "type": "t"}, {"key": "b", "type": "t"}], "a")
    task.edit_hyper_params([param("A", "x"), param("A", "y"), param("B", "z")], "a", force=True)
    task.fail("a")
    task.reset("a")
    task.reset("a", clear_all=True)
    for event in task.collect_events():
        paths = sorted(event.document_changes())
        for index, path in enumerate(paths):
            for other in paths[index + 1:]:
                assert not other.startswith(path + "."), (type(event).__name__, path, other)


# -- fields: validation and stored form ----------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"execution": {"artifacts": [{"key": "k", "type": "t", "timestamp": 1.5}]}}, "execution.artifacts[0].timestamp"),
        ({"execution": {"artifacts": [{"key": "k", "type": "t", "type_data": {"preview": 1}}]}},
         "execution.artifacts[0].type_data.preview"),
        ({"execution": {"artifacts": [{"key": "k", "type": "t", "display_data": [["a", {}]]}]}},
         "execution.artifacts[0].display_data[0][1]"),
        ({"execution": {"model_labels": {"a": True}}}, "execution.model_labels.a"),
        ({"models": {"output": [{"name": "n", "model": 1}]}}, "models.output[0].model"),
        ({"container": {"image": ["x"]}}, "container.image"),
        ({"configuration": {"c": []}}, "configuration.c"),
    ],
)
def test_a_wrong_type_anywhere_is_refused_naming_its_path(fields, path):
    with pytest.raises(InvalidField) as refused:
        validated_task_fields({"name": "x", "type": "custom", **fields}, require_name_and_type=True)
    assert path in str(refused.value)


def test_missing_name_is_a_missing_field_not_a_wrong_type():
    with pytest.raises(MissingRequiredField):
        validated_task_fields({"name": None, "type": "qc"}, require_name_and_type=True)


def test_keys_are_escaped_so_a_path_addresses_one_field():
    weird = {"a.b": {"$c": {"d%e": 1}}}
    assert escape_keys(weird) == {"a%2Eb": {"%24c": {"d%25e": 1}}}
    assert unescape_keys(escape_keys(weird)) == weird
    for key in ("plain", "a.b.c", "$x", "%2E", "100%", "a%252E"):
        assert unescape_key(escape_key(key)) == key
        assert "." not in escape_key(key) and not escape_key(key).startswith("$")


def test_a_stored_document_is_answered_in_the_api_form():
    task = new_task(container={"a.b": "c"}, runtime={"x.y": {"$z": 1}},
                    execution={"artifacts": [{"key": "b", "type": "t"}, {"key": "a", "type": "t"}]})
    answer = api_document(task.doc)
    assert answer["container"] == {"a.b": "c"} and answer["runtime"] == {"x.y": {"$z": 1}}
    assert [item["key"] for item in answer["execution"]["artifacts"]] == ["a", "b"]
    assert not any(key.startswith("_") for key in answer) and "enqueue_status" not in answer
    assert "enqueue_status" in api_document(task.doc, keep_internal=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05.000000+00:00"),
        ("2024-01-02T03:04:05.5+02:00", "2024-01-02T01:04:05.500000+00:00"),
        ("2024-01-02", "2024-01-02T00:00:00.000000+00:00"),
        ("1704164645", "2024-01-02T03:04:05.000000+00:00"),
        (1704164645000, "2024-01-02T03:04:05.000000+00:00"),
    ],
)
def test_times_are_normalised_to_utc_text(value, expected):
    assert parse_time("created", value) == expected


def test_an_event_applied_to_a_copy_changes_it_as_the_aggregate():
    task = new_task()
    document = copy.deepcopy(task.doc)
    task.edit_hyper_params([param("A", "x")], "bob")
    event = only_event(task)
    apply_changes(document, event.document_changes())
    assert document == task.doc
    assert datetime.fromisoformat(event.at) <= datetime.now(timezone.utc)
