"""Every Task command behind a `tasks.*` action, in random sequences, against a reference model.

The model (`Reference`) is written independently of domain/: it states the clearml-server status
table, and keeps the whole task document as the rules say it should be, changed by hand (nested
dicts, not the domain's dotted paths), with its own key escaping, artifact ids and search text.

Each rule draws valid and invalid inputs (statuses, force flags, request bodies, conflicting keys)
and checks that the command is accepted exactly when the model predicts, refused with the
predicted error class otherwise (then nothing changes: no event, same version, same document),
and on acceptance records the predicted event types, by the given actor; the invariant then
compares the whole document with the model. Most rules may first bring the task to some status
through forced commands (`prepare`), so that every command meets every status. Besides:

- once per place (status, worker, archived, deleted) a run reaches, every status and editability
  decision is tried, unforced and forced (refusals on the task, acceptances on a copy);
- once deleted, the task refuses every command, forced or not, with TaskNotFound;
- at the end of each run, replaying the events rebuilds the document as it was after each
  command (no event may change after it was recorded), and as it is.

Which action calls which command (gateway/task_commands.py, gateway/queue_work.py):
  create -> Task.create                 update, update_batch -> update
  edit -> edit                          set_requirements -> set_requirements
  ping -> ping                          enqueue(_many) -> enqueue (and dequeue when moving queues)
  dequeue(_many) -> dequeue             started -> start, or claim with `worker`
  stop(_many) -> check_stop, stop       stopped / failed / close -> stopped / fail / close
  completed -> complete(publish=...)    publish(_many) -> publish
  reset(_many) -> check_reset, reset    delete(_many) -> check_delete, delete, parent_deleted
  archive(_many) -> archive             unarchive_many -> unarchive
  edit_hyper_params / delete_hyper_params, edit_configuration / delete_configuration,
  add_or_update_artifacts / delete_artifacts, add_or_update_model / delete_models -> same names
"""
from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import orjson
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from domain.errors import InvalidField, InvalidStatusChange, TaskAlreadyClaimed, TaskNotFound, TaskTrailError
from domain.status import TaskStatus
from domain.task import FieldsConflict, MissingTaskFields, Task, TaskCannotBeDeleted
from domain.task_fields import validated_task_fields, validated_update_fields

S = TaskStatus

# -- the rules, written out ------------------------------------------------------------------------
# clearml-server's status table: from a status (key) a task may move to those in its set; moving
# to the same status is always allowed, and force skips the table.
TABLE: dict[TaskStatus, set[TaskStatus]] = {
    S.created: {S.queued, S.in_progress},
    S.queued: {S.created, S.in_progress, S.stopped},
    S.in_progress: {S.stopped, S.failed, S.created, S.completed},
    S.stopped: {S.closed, S.created, S.failed, S.queued, S.in_progress, S.published, S.publishing, S.completed},
    S.closed: {S.created, S.failed, S.published, S.publishing, S.stopped},
    S.failed: {S.created, S.stopped, S.published, S.queued},
    S.publishing: {S.published},
    S.completed: {S.published, S.in_progress, S.created},
    S.published: set(),
    S.unknown: set(),
}
ARCHIVED = "archived"
DELETED_PARENT = "__DELETED__"
NOW = "<set by the command>"  # models' `updated`: the command's clock, not an event time
# The status each event leaves (the others leave it as it was).
STATUS_AFTER = {
    Task.Enqueued: S.queued, Task.Started: S.in_progress, Task.StopRequested: S.in_progress, Task.Stopped: S.stopped,
    Task.Failed: S.failed, Task.Closed: S.closed, Task.Completed: S.completed, Task.Published: S.published,
    Task.Reset: S.created,
}
# What the model predicts of a command: the refusal (None: accepted), and the events it records if accepted.
Expected = tuple[type[TaskTrailError] | None, list[type]]


def may_move(current: TaskStatus, new: TaskStatus, force: bool) -> bool:
    return force or current == new or new in TABLE[current]


def escape(key: str) -> str:
    return key.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def escaped(value: Any) -> Any:
    """A copy of `value` with every key of every nested object escaped."""
    if isinstance(value, dict):
        return {escape(key): escaped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [escaped(item) for item in value]
    return copy.deepcopy(value)


def unescape(key: str) -> str:
    return key.replace("%2E", ".").replace("%24", "$").replace("%25", "%")


def artifact_key(artifact: dict[str, Any]) -> str:
    return f"{hashlib.md5(artifact['key'].encode()).hexdigest()}_{artifact.get('mode') or 'output'}"


def stored_artifacts(artifacts: list[dict[str, Any]]) -> dict[str, Any]:
    return {artifact_key(item): escaped({**item, "mode": item.get("mode") or "output"}) for item in artifacts}


def stored_execution(execution: dict[str, Any]) -> dict[str, Any]:
    stored = escaped({key: value for key, value in execution.items() if key != "artifacts"})
    if "artifacts" in execution:
        stored["artifacts"] = stored_artifacts(execution["artifacts"])
    return stored


def stored_models(models: dict[str, Any]) -> dict[str, Any]:
    return {kind: [{**item, "updated": NOW} for item in items] for kind, items in models.items()}


def clone(document: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a (JSON-like) task document, faster than copy.deepcopy."""
    return orjson.loads(orjson.dumps(document))


def time_key(moment: str | None) -> str | None:
    return None if moment is None else "t" + moment


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """The task document with the models' `updated` times (the command's clock) masked (a shallow copy)."""
    models = doc.get("models")
    if not isinstance(models, dict):
        return doc
    masked = {}
    for kind, items in models.items():
        for item in items:
            assert isinstance(item.get("updated"), str), item
        masked[kind] = [{**item, "updated": NOW} for item in items]
    return {**doc, "models": masked}


class Reference:
    """The task document as the rules say it should be."""

    def __init__(self, task_id: str, fields: dict[str, Any], actor: str, at: str) -> None:
        self.task_id = task_id
        models = {"input": [], "output": [], **stored_models(fields.get("models") or {})}
        self.doc: dict[str, Any] = {
            "name": fields["name"],
            "type": fields["type"],
            "user": actor,
            "comment": fields.get("comment", ""),
            "project": fields.get("project"),
            "parent": fields.get("parent"),
            "tags": list(fields.get("tags") or []),
            "system_tags": list(fields.get("system_tags") or []),
            "script": escaped(fields.get("script") or {}),
            "execution": stored_execution(fields.get("execution") or {}),
            "hyperparams": escaped(fields.get("hyperparams") or {}),
            "configuration": escaped(fields.get("configuration") or {}),
            "container": escaped(fields.get("container") or {}),
            "models": models,
            "runtime": escaped(fields.get("runtime") or {}),
            "output": {"destination": fields["output_dest"]} if fields.get("output_dest") else {},
            "status": "created",
            "status_reason": "",
            "status_message": "",
            "status_changed": at,
            "created": at,
            "started": None,
            "completed": None,
            "published": None,
            "active_duration": None,
            "last_worker": None,
            "last_worker_report": None,
            "last_iteration": 0,
            "last_metrics": {},
            "enqueue_status": None,
            "last_update": at,
            "last_change": at,
            "_times": {"status_changed": time_key(at), "last_update": time_key(at), "started": None},
        }
        self.refresh_text()

    # -- reading ---------------------------------------------------------------------------------
    @property
    def status(self) -> TaskStatus:
        return TaskStatus(self.doc["status"])

    @property
    def deleted(self) -> bool:
        return bool(self.doc.get("deleted"))

    @property
    def archived(self) -> bool:
        return ARCHIVED in self.doc["system_tags"]

    def editable(self, force: bool) -> bool:
        """clearml-server's tasks-for-update: created; with force, in_progress too."""
        return self.status == S.created or (force and self.status == S.in_progress)

    def search_text(self) -> str:
        script = self.doc.get("script") if isinstance(self.doc.get("script"), dict) else {}
        parts = [self.task_id] + [
            text for text in (self.doc.get("name"), self.doc.get("comment"),
                              script.get("repository"), script.get("entry_point"))
            if isinstance(text, str) and text
        ]
        return "\n".join(parts).lower()

    # -- changing --------------------------------------------------------------------------------
    def refresh_text(self) -> None:
        """The search text always reflects the searched fields."""
        self.doc["_text"] = self.search_text()

    def touch(self, at: str) -> None:
        self.doc["last_update"] = self.doc["last_change"] = at
        self.doc["_times"]["last_update"] = time_key(at)

    def move(self, status: TaskStatus | str, at: str, reason: str, message: str) -> None:
        self.touch(at)
        self.doc["status"] = TaskStatus(status).value
        self.doc["status_reason"] = reason
        self.doc["status_message"] = message
        self.doc["status_changed"] = at
        self.doc["_times"]["status_changed"] = time_key(at)

    def run_started(self, at: str) -> None:
        if self.doc["started"] is None:
            self.doc["started"] = at
            self.doc["_times"]["started"] = time_key(at)

    def leave_queue(self) -> None:
        self.doc["execution"]["queue"] = None
        self.doc["enqueue_status"] = None


# -- inputs ----------------------------------------------------------------------------------------
PARENTS = ["a" * 32, "b" * 32]
actors = st.sampled_from(["alice", "bob"])
reasons = st.sampled_from(["", "why"])
messages = st.sampled_from(["", "note"])
forces = st.sampled_from([False, False, True])  # forced commands are mostly accepted: fewer of them
# Where a rule may first bring the task (see TaskActions.prepare): a third of the time nowhere.
_places = st.sampled_from([
    "created", "cleared", "queued", "claimed", "running", "stopped", "failed", "completed", "closed",
    "publishing", "published", "unknown", "archived",
])
firsts = st.one_of(st.none(), _places, _places)
# The field commands mostly need a created or running task.
editable_firsts = st.one_of(st.none(), st.sampled_from(["created", "cleared", "running", "claimed"]), _places)
queues = st.sampled_from(["default", "gpu"])
workers = st.sampled_from(["worker-1", "worker-2"])
# What a client may ask dequeue to restore: nothing, any status, or a name that is no status.
dequeue_targets = st.one_of(st.sampled_from([None, "sleeping"]), st.sampled_from(["", *(s.value for s in TaskStatus)]))
names = st.sampled_from(["train", "Eval.v2"])
comments = st.sampled_from(["", "A Comment"])
tags = st.lists(st.sampled_from(["a", "b"]), max_size=2)
system_tags = st.lists(st.sampled_from([ARCHIVED, "hidden"]), max_size=2, unique=True)
# Hyper parameter sections: "Properties" is the properties section too (case-insensitive).
sections = st.sampled_from(["Args", "a.b", "properties", "Properties"])
param_names = st.sampled_from(["lr", "x.y", "$z"])
config_names = st.sampled_from(["main", "a.b", "50%"])
artifact_keys = st.sampled_from(["data", "a.b", "$x"])
artifact_modes = st.sampled_from([None, "input", "output"])
model_names = st.sampled_from(["best", "last"])
model_types = st.sampled_from(["input", "output"])


def without_none(**items: Any) -> dict[str, Any]:
    return {key: value for key, value in items.items() if value is not None}


params = st.builds(
    without_none, section=sections, name=param_names, value=st.sampled_from(["1", "2"]),
    type=st.sampled_from([None, "float"]), description=st.sampled_from([None, "d"]),
)
param_keys = st.builds(without_none, section=sections, name=st.sampled_from([None, "", "lr", "x.y", "$z"]))
config_items = st.builds(
    without_none, name=config_names, value=st.sampled_from(["a", "b"]), type=st.sampled_from([None, "yaml"])
)
artifacts = st.builds(
    without_none, key=artifact_keys, type=st.sampled_from(["str", "dict"]), mode=artifact_modes,
    uri=st.sampled_from([None, "s3://bucket/x"]), type_data=st.sampled_from([None, {"content_type": "x"}]),
)
artifact_ids = st.builds(without_none, key=artifact_keys, mode=artifact_modes)
model_items = st.builds(dict, name=model_names, model=st.sampled_from(["m1", "m2"]))
requirements = st.dictionaries(
    st.sampled_from(["pip", "a.b", "$env"]), st.sampled_from([["numpy"], {"x.y": 1}, "text"]), max_size=3
)
scripts = st.fixed_dictionaries({"repository": st.sampled_from(["", "https://Git/Repo"])}, optional={
    "entry_point": st.sampled_from(["Train.py"]),
    "branch": st.just("main"),
    "requirements": requirements,
})
executions = st.fixed_dictionaries({}, optional={
    "queue": st.just("edited-queue"),
    "parameters": st.dictionaries(st.sampled_from(["lr", "a.b"]), st.just("1"), max_size=2),
    "framework": st.just("torch"),
    "artifacts": st.lists(artifacts, max_size=2),
})
task_fields = {
    "comment": comments,
    "tags": tags,
    "system_tags": system_tags,
    "parent": st.sampled_from(PARENTS),
    "project": st.sampled_from(["p1", "p2"]),
    "output_dest": st.sampled_from(["", "s3://out"]),
    "script": scripts,
    "execution": executions,
    "hyperparams": st.dictionaries(sections, st.dictionaries(param_names, params, max_size=2), max_size=2),
    "configuration": st.dictionaries(config_names, config_items, max_size=2),
    "container": st.dictionaries(st.sampled_from(["image", "a.b"]), st.sampled_from([None, "x"]), max_size=2),
    "models": st.fixed_dictionaries({}, optional={"input": st.lists(model_items, max_size=2),
                                                  "output": st.lists(model_items, max_size=2)}),
    "runtime": st.dictionaries(st.sampled_from(["gpus", "x.y"]), st.integers(0, 3), max_size=2),
}
# Half the new tasks have parameters, configuration, artifacts and models, for later edits and deletions to meet.
create_bodies = st.fixed_dictionaries(
    {"name": names, "type": st.sampled_from(["training", "testing"])}, optional=task_fields
) | st.fixed_dictionaries(
    {
        "name": names,
        "type": st.sampled_from(["training", "testing"]),
        "script": scripts,
        "execution": st.fixed_dictionaries(
            {"artifacts": st.lists(artifacts, min_size=1, max_size=3), "parameters": st.just({"lr": "1"})}
        ),
        "hyperparams": st.dictionaries(sections, st.dictionaries(param_names, params, min_size=1), min_size=1),
        "configuration": st.dictionaries(config_names, config_items, min_size=1),
        "models": st.fixed_dictionaries({"input": st.lists(model_items, min_size=1, max_size=2),
                                         "output": st.lists(model_items, min_size=1, max_size=2)}),
    },
    optional={key: value for key, value in task_fields.items()
              if key not in ("script", "execution", "hyperparams", "configuration", "models")},
)
# An edit body may hold a value the field check refuses (an unknown type, tags that are no list), or
# change nothing (empty objects merged into the task's own).
_edit_fields = st.fixed_dictionaries({}, optional={
    **task_fields,
    "name": names,
    "type": st.sampled_from(["training", "testing", "no-such-type"]),
    "tags": st.one_of(tags, st.just("a")),
    "not_a_field": st.just(1),
})
edit_bodies = st.one_of(_edit_fields, _edit_fields, _edit_fields,
                        st.sampled_from([{}, {"script": {}}, {"execution": {}, "models": {}}]))


@st.composite
def created_times(draw: st.DrawFn) -> tuple[Any, str | None]:
    """A `created` value a client may send, and the stored text it means (None: refused)."""
    moment = draw(st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2030, 1, 1)))
    utc = moment.replace(tzinfo=timezone.utc)
    form = draw(st.sampled_from(["iso", "naive", "z", "offset", "epoch", "bad"]))
    if form == "bad":
        return "yesterday", None
    if form == "epoch":
        utc = utc.replace(microsecond=0)
        return int(utc.timestamp()), utc.isoformat(timespec="microseconds")
    if form == "offset":
        return utc.astimezone(timezone(timedelta(hours=2))).isoformat(), utc.isoformat(timespec="microseconds")
    raw = {"iso": utc.isoformat(), "naive": moment.isoformat(), "z": moment.isoformat() + "Z"}[form]
    return raw, utc.isoformat(timespec="microseconds")


update_bodies = st.fixed_dictionaries({}, optional={
    "name": names,
    "comment": comments,
    "project": st.sampled_from(["p1", "p2"]),
    "tags": tags,
    "system_tags": system_tags,
    "output__error": st.sampled_from(["", "boom"]),
    "created": created_times(),
    "status": st.just("published"),  # not an update field: dropped
})


class TaskActions(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.task: Task
        self.model: Reference
        self.events: list[Task.Event] = []
        self.history: dict[int, dict[str, Any]] = {}  # version -> a copy of the document then
        self.probed: set[tuple[Any, ...]] = set()  # the places where every command was tried

    @initialize(body=create_bodies, actor=actors, then=st.sampled_from([None, "enqueue", "claim"]))
    def create(self, body: dict[str, Any], actor: str, then: str | None) -> None:
        """tasks.create; most runs then start from a queued or a claimed task, so that the commands
        on those get their turn often."""
        fields = validated_task_fields(copy.deepcopy(body), require_name_and_type=True)
        self.task = Task.create(uuid4(), fields, actor)
        [created] = self.task.collect_events()
        assert isinstance(created, Task.Created) and created.actor == actor
        self.events.append(created)
        self.model = Reference(self.task.task_id, copy.deepcopy(body), actor, created.at)
        doc = comparable(self.task.doc)
        for key, value in comparable(self.model.doc).items():
            assert doc[key] == value, key
        # Fields added to the document since this model was written are taken as they are; the
        # commands below must then leave them alone (the invariant compares whole documents).
        for key in set(doc) - set(self.model.doc):
            self.model.doc[key] = copy.deepcopy(self.task.doc[key])
        self.history[self.task.version] = clone(self.task.doc)
        if then:
            self.enqueue("default", force=False, reason="", message="", actor=actor)
            assert self.model.status == S.queued
        if then == "claim":
            self.claim("worker-1", actor=None, reason="", message="", first=None)
            assert self.model.status == S.in_progress

    # -- the check every rule shares -------------------------------------------------------------
    def run(
        self,
        name: str,
        refusal: type[TaskTrailError] | None,
        expected: list[type],
        command: Callable[[], Any],
        actor: str,
    ) -> list[Task.Event] | None:
        """Run `command`; it must be refused with `refusal`, or (None) record `expected` by `actor`.

        Returns the recorded events when accepted (maybe none), None when refused.
        """
        version_before = self.task.version
        doc_before = self.history[version_before]  # a copy of the document as it is now
        try:
            command()
        except TaskTrailError as error:
            event(f"{name}: refused ({type(error).__name__})")
            assert refusal is not None, f"{name} refused ({error!r}), but the model accepts it: {expected}"
            assert type(error) is refusal, f"{name}: expected {refusal.__name__}, got {error!r}"
            assert self.task.collect_events() == []
            assert self.task.version == version_before
            assert self.task.doc == doc_before
            return None
        event(f"{name}: accepted")
        new_events = self.task.collect_events()
        assert refusal is None, f"{name} accepted, but the model refuses it ({refusal.__name__})"
        assert [type(item) for item in new_events] == expected
        assert all(item.actor == actor for item in new_events)
        assert self.task.version == version_before + len(new_events)
        self.events.extend(new_events)
        return new_events

    def guard(self, refusal: type[TaskTrailError] | None, check: Callable[[], None]) -> None:
        """A check_* method raises exactly the refusal the model predicts, and changes nothing."""
        version_before = self.task.version
        doc_before = self.history[version_before]  # a copy of the document as it is now
        try:
            check()
        except TaskTrailError as error:
            assert refusal is not None, f"check refused ({error!r}), but the model accepts"
            assert type(error) is refusal, f"expected {refusal.__name__}, got {error!r}"
        else:
            assert refusal is None, f"check passed, but the model refuses ({refusal.__name__})"
        assert self.task.collect_events() == []
        assert self.task.version == version_before
        assert self.task.doc == doc_before

    def refusal(self, *checks: tuple[bool, type[TaskTrailError]]) -> type[TaskTrailError] | None:
        """The first refusal whose condition holds: a deleted task refuses everything first."""
        if self.model.deleted:
            return TaskNotFound
        for refused, error in checks:
            if refused:
                return error
        return None

    def not_editable(self, force: bool) -> tuple[bool, type[TaskTrailError]]:
        return (not self.model.editable(force), InvalidStatusChange)

    # -- what the model predicts: the refusal (None: accepted), and the events if accepted ---------
    def expect_enqueue(self, force: bool) -> Expected:
        current = self.model.status
        return self.refusal(
            (current == S.queued and not force, InvalidStatusChange),  # not queued twice unless forced
            (not may_move(current, S.queued, force), InvalidStatusChange),
        ), [Task.Enqueued]

    def expect_dequeue(self, new_status: str | None) -> tuple[type[TaskTrailError] | None, list[type], str]:
        """Back to the status before queueing (or `new_status`): also the status it restores."""
        target = new_status or self.model.doc["enqueue_status"] or "created"
        refusal = self.refusal(
            (self.model.status != S.queued, InvalidStatusChange),
            (target not in {s.value for s in TaskStatus}, InvalidField),
        )
        return refusal, [Task.Dequeued], target

    def expect_move(self, status: TaskStatus, event_class: type, force: bool) -> Expected:
        return self.refusal((not may_move(self.model.status, status, force), InvalidStatusChange)), [event_class]

    def expect_claim(self) -> Expected:
        return self.refusal((self.model.status != S.queued, TaskAlreadyClaimed)), [Task.Started]

    def expect_stop(self, force: bool) -> Expected:
        """A task a worker runs is asked to stop (unless forced); any other stops as the table allows."""
        if self.model.status == S.in_progress and self.model.doc["last_worker"] and not force:
            return self.refusal(), [Task.StopRequested]
        return self.expect_move(S.stopped, Task.Stopped, force)

    def publish_refused(self, current: TaskStatus, force: bool) -> bool:
        """Publishing goes through `publishing`; a published task is not published again without force."""
        return not force and S.published not in TABLE[current]

    def expect_complete(self, force: bool, publish: bool) -> Expected:
        refusal = self.refusal(
            (not may_move(self.model.status, S.completed, force), InvalidStatusChange),
            (publish and self.publish_refused(S.completed, force), InvalidStatusChange),  # both checked first
        )
        return refusal, [Task.Completed, Task.PublishingStarted, Task.Published] if publish else [Task.Completed]

    def expect_publish(self, force: bool) -> Expected:
        refusal = self.refusal((self.publish_refused(self.model.status, force), InvalidStatusChange))
        return refusal, [Task.PublishingStarted, Task.Published]

    def expect_delete(self, force: bool) -> Expected:
        """A created or archived task may be deleted; any other only with force."""
        refusal = self.refusal(
            (not force and self.model.status != S.created and not self.model.archived, TaskCannotBeDeleted)
        )
        return refusal, [Task.Deleted]

    def expect_edit(self, force: bool) -> Expected:
        """tasks.edit: a created task; with force, any (not only created or running)."""
        return self.refusal((not force and self.model.status != S.created, InvalidStatusChange)), [Task.Edited]

    def expect_editable(self, event_class: type, force: bool) -> Expected:
        return self.refusal(self.not_editable(force)), [event_class]

    def done(self, events: list[Task.Event] | None) -> None:
        """After the model took an accepted command's changes."""
        if events:
            self.model.refresh_text()
            self.history[self.task.version] = clone(self.task.doc)

    # -- status ----------------------------------------------------------------------------------
    @rule(queue=queues, force=forces, reason=reasons, message=messages, actor=actors,
          first=st.one_of(firsts, st.just("queued")))  # a forced enqueue of a queued task keeps enqueue_status
    def enqueue(self, queue: str, force: bool, reason: str, message: str, actor: str, first: str | None = None) -> None:
        self.prepare(first)
        current = self.model.status
        refusal, expected = self.expect_enqueue(force)
        events = self.run("enqueue", refusal, expected,
                          lambda: self.task.enqueue(queue, actor, reason, message, force=force), actor)
        if events:
            previous = (self.model.doc["enqueue_status"] or "created") if current == S.queued else current.value
            self.model.move(S.queued, events[0].at, reason, message)
            self.model.doc["execution"]["queue"] = queue
            self.model.doc["enqueue_status"] = previous
        self.done(events)

    def prepare(self, first: str | None) -> None:
        """Bring the task to `first` through forced commands (each checked as its rule checks it), so
        that every command meets every status often: a random walk alone rarely reaches most pairs."""
        if first is None or self.model.deleted:
            return
        quiet = {"reason": "", "message": "", "actor": "alice"}
        if first in ("queued", "claimed", "publishing", "unknown"):
            if self.model.status != S.queued:
                self.enqueue("gpu", force=True, **quiet)
            if first == "claimed":
                self.claim("worker-2", actor=None, reason="", message="")
            elif first != "queued":  # only a dequeue reaches these
                self.dequeue(first, **quiet)
            return
        moves: dict[str, Callable[[], None]] = {
            "created": lambda: self.reset(force=True, clear_all=False, **quiet),
            "cleared": lambda: self.reset(force=True, clear_all=True, **quiet),  # no script, empty execution
            "running": lambda: self.start(force=True, **quiet),
            "stopped": lambda: self.stopped(force=True, **quiet),
            "failed": lambda: self.fail(force=True, **quiet),
            "completed": lambda: self.complete(force=True, publish=False, **quiet),
            "closed": lambda: self.close(force=True, **quiet),
            "published": lambda: self.publish(force=True, **quiet),
            "archived": lambda: self.archive(**quiet),
        }
        moves[first]()

    @rule(new_status=dequeue_targets, reason=reasons, message=messages, actor=actors, first=firsts)
    def dequeue(self, new_status: str | None, reason: str, message: str, actor: str, first: str | None = None) -> None:
        self.prepare(first)
        refusal, expected, target = self.expect_dequeue(new_status)
        events = self.run("dequeue", refusal, expected,
                          lambda: self.task.dequeue(actor, new_status, reason, message), actor)
        if events:
            self.model.move(target, events[0].at, reason, message)
            self.model.leave_queue()
        self.done(events)

    @rule(force=forces, reason=reasons, message=messages, actor=actors, first=firsts)
    def start(self, force: bool, reason: str, message: str, actor: str, first: str | None = None) -> None:
        self.prepare(first)
        refusal, expected = self.expect_move(S.in_progress, Task.Started, force)
        events = self.run("start", refusal, expected,
                          lambda: self.task.start(actor, reason, message, force=force), actor)
        if events:
            self.model.move(S.in_progress, events[0].at, reason, message)
            self.model.run_started(events[0].at)
        self.done(events)

    @rule(worker=workers, actor=st.sampled_from([None, "alice"]), reason=reasons, message=messages,
          first=firsts)
    def claim(self, worker: str, actor: str | None, reason: str, message: str, first: str | None = None) -> None:
        self.prepare(first)
        refusal, expected = self.expect_claim()
        events = self.run("claim", refusal, expected,
                          lambda: self.task.claim(worker, actor, reason, message), actor or worker)
        if events:
            at = events[0].at
            self.model.move(S.in_progress, at, reason, message)
            self.model.run_started(at)
            self.model.doc["last_worker"] = worker
            self.model.doc["last_worker_report"] = at
        self.done(events)

    @rule(force=forces, reason=reasons, message=messages, actor=actors, first=firsts)
    def stop(self, force: bool, reason: str, message: str, actor: str, first: str | None = None) -> None:
        self.prepare(first)
        refusal, expected = self.expect_stop(force)
        asks_worker = expected == [Task.StopRequested]
        self.guard(refusal, lambda: self.task.check_stop(force))
        events = self.run("stop", refusal, expected,
                          lambda: self.task.stop(actor, reason, message, force=force), actor)
        if events and asks_worker:  # the worker is told; the task runs on until it reports
            self.model.touch(events[0].at)
            self.model.doc["status_reason"] = reason
            self.model.doc["status_message"] = "stopping"
        elif events:
            self.end_run(S.stopped, events[0].at, reason, message)
        self.done(events)

    def end_run(self, status: TaskStatus, at: str, reason: str, message: str) -> None:
        self.model.move(status, at, reason, message)
        self.model.doc["completed"] = at

    def change_status(self, name: str, status: TaskStatus, event_class: type, method: Callable[..., None],
                      force: bool, reason: str, message: str, actor: str) -> None:
        refusal, expected = self.expect_move(status, event_class, force)
        events = self.run(name, refusal, expected, lambda: method(actor, reason, message, force=force), actor)
        if events and status == S.closed:
            self.model.move(status, events[0].at, reason, message)
        elif events:
            self.end_run(status, events[0].at, reason, message)
        self.done(events)

    @rule(force=forces, reason=reasons, message=messages, actor=actors, first=firsts)
    def stopped(self, force: bool, reason: str, message: str, actor: str, first: str | None = None) -> None:
        self.prepare(first)
        self.change_status("stopped", S.stopped, Task.Stopped, self.task.stopped, force, reason, message, actor)

    @rule(force=forces, reason=reasons, message=messages, actor=actors, first=firsts)
    def fail(self, force: bool, reason: str, message: str, actor: str, first: str | None = None) -> None:
        self.prepare(first)
        self.change_status("fail", S.failed, Task.Failed, self.task.fail, force, reason, message, actor)

    @rule(force=forces, reason=reasons, message=messages, actor=actors, first=firsts)
    def close(self, force: bool, reason: str, message: str, actor: str, first: str | None = None) -> None:
        self.prepare(first)
        self.change_status("close", S.closed, Task.Closed, self.task.close, force, reason, message, actor)

    def published(self, events: list[Task.Event], reason: str, message: str) -> None:
        starting, published = events
        self.model.move(S.publishing, starting.at, reason, message)
        self.model.move(S.published, published.at, reason, message)
        self.model.doc["published"] = published.at

    @rule(force=forces, publish=st.booleans(), reason=reasons, message=messages, actor=actors,
          first=firsts)
    def complete(self, force: bool, publish: bool, reason: str, message: str, actor: str,
                 first: str | None = None) -> None:
        self.prepare(first)
        refusal, expected = self.expect_complete(force, publish)
        events = self.run("complete", refusal, expected,
                          lambda: self.task.complete(actor, reason, message, force=force, publish=publish), actor)
        if events:
            self.end_run(S.completed, events[0].at, reason, message)
            if publish:
                self.published(events[1:], reason, message)
        self.done(events)

    @rule(force=forces, reason=reasons, message=messages, actor=actors, first=firsts)
    def publish(self, force: bool, reason: str, message: str, actor: str, first: str | None = None) -> None:
        self.prepare(first)
        refusal, expected = self.expect_publish(force)
        events = self.run("publish", refusal, expected,
                          lambda: self.task.publish(actor, reason, message, force=force), actor)
        if events:
            self.published(events, reason, message)
        self.done(events)

    @rule(force=forces, clear_all=st.booleans(), reason=reasons, message=messages, actor=actors,
          first=firsts)
    def reset(self, force: bool, clear_all: bool, reason: str, message: str, actor: str,
              first: str | None = None) -> None:
        self.prepare(first)
        refusal, expected = self.expect_move(S.created, Task.Reset, force)
        self.guard(refusal, lambda: self.task.check_reset(force))
        events = self.run("reset", refusal, expected,
                          lambda: self.task.reset(actor, reason, message, force=force, clear_all=clear_all), actor)
        if events:
            doc = self.model.doc
            self.model.move(S.created, events[0].at, reason or "reset", message or "reset")
            doc.update(started=None, completed=None, published=None, active_duration=None, last_worker=None,
                       last_worker_report=None, last_iteration=0, last_metrics={}, runtime={}, enqueue_status=None)
            doc["_times"]["started"] = None
            doc["models"]["output"] = []
            doc["output"].update(result=None, error=None)
            if clear_all:
                doc["execution"] = {}
                doc["script"] = None
            else:
                doc["execution"]["queue"] = None
                if isinstance(doc["execution"].get("artifacts"), dict):  # input artifacts stay
                    doc["execution"]["artifacts"] = {
                        key: item for key, item in doc["execution"]["artifacts"].items() if item["mode"] == "input"
                    }
        self.done(events)

    # -- fields ----------------------------------------------------------------------------------
    @rule(body=update_bodies, actor=actors)
    def update(self, body: dict[str, Any], actor: str) -> None:
        created = body.get("created")
        request = {**body, "created": created[0]} if created else dict(body)
        if created and created[1] is None:  # refused by the field check, before the task is read
            refusal: type[TaskTrailError] | None = InvalidField
        else:
            refusal = self.refusal()
        fields = {key: body[key] for key in ("name", "comment", "project", "tags", "system_tags") if key in body}
        expected = [Task.Updated] if fields or "output__error" in body or created else []
        events = self.run("update", refusal, expected,
                          lambda: self.task.update(validated_update_fields(copy.deepcopy(request)), actor), actor)
        if events:
            self.model.touch(events[0].at)
            self.model.doc.update(copy.deepcopy(fields))
            if "output__error" in body:
                self.model.doc["output"]["error"] = body["output__error"]
            if created:
                self.model.doc["created"] = created[1]
        self.done(events)

    @rule(body=edit_bodies, force=forces, actor=actors, first=editable_firsts)
    def edit(self, body: dict[str, Any], force: bool, actor: str, first: str | None = None) -> None:
        self.prepare(first)
        doc = self.model.doc
        if body.get("type") == "no-such-type" or isinstance(body.get("tags"), str):
            refusal: type[TaskTrailError] | None = InvalidField
        else:
            refusal = self.expect_edit(force)[0]
        fields = {key: value for key, value in body.items() if key in task_fields or key in ("name", "type")}
        # A fixed-field object (script, execution, models) is merged key by key: an empty one
        # changes nothing, unless the task lacks that object.
        changes = [
            key for key, value in fields.items()
            if key not in ("script", "execution", "models") or value or not isinstance(doc.get(key), dict)
        ]
        events = self.run(
            "edit", refusal, [Task.Edited] if changes else [],
            lambda: self.task.edit(validated_task_fields(copy.deepcopy(body), require_name_and_type=False),
                                   actor, force=force),
            actor,
        )
        if events:
            self.model.touch(events[0].at)
            stored = {
                "script": escaped, "execution": stored_execution, "models": stored_models,
            }
            for key, value in fields.items():
                value = stored.get(key, escaped)(value)
                if key == "output_dest":
                    doc["output"]["destination"] = body["output_dest"]
                elif key in stored and isinstance(doc.get(key), dict):
                    doc[key].update(value)
                else:
                    doc[key] = value
        self.done(events)

    @rule(requirements=requirements, actor=actors, first=editable_firsts)
    def set_requirements(self, requirements: dict[str, Any], actor: str, first: str | None = None) -> None:
        self.prepare(first)
        refusal = self.refusal((not isinstance(self.model.doc["script"], dict), MissingTaskFields))
        events = self.run("set_requirements", refusal, [Task.RequirementsSet],
                          lambda: self.task.set_requirements(copy.deepcopy(requirements), actor), actor)
        if events:
            self.model.touch(events[0].at)
            self.model.doc["script"]["requirements"] = escaped(requirements)
        self.done(events)

    @rule(actor=actors, first=firsts)
    def ping(self, actor: str, first: str | None = None) -> None:
        self.prepare(first)
        events = self.run("ping", self.refusal(), [Task.Pinged], lambda: self.task.ping(actor), actor)
        if events:
            at = events[0].at
            self.model.doc["last_update"] = at  # only last_update: a ping is no change
            self.model.doc["_times"]["last_update"] = time_key(at)
            started = self.model.doc["started"]
            if self.model.status == S.in_progress and started:
                # Whole seconds from the start to the ping (the command's clock, just before `at`).
                elapsed = (datetime.fromisoformat(at) - datetime.fromisoformat(started)).total_seconds()
                active = self.task.doc["active_duration"]
                assert isinstance(active, int) and 0 <= active <= elapsed + 1, (active, elapsed)
                self.model.doc["active_duration"] = active
        self.done(events)

    # -- hyper parameters, configuration ---------------------------------------------------------
    @staticmethod
    def normalized(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {**item, "section": "properties"} if item["section"].lower() == "properties" else dict(item)
            for item in items
        ]

    @rule(items=st.lists(params, min_size=1, max_size=3), replace=st.sampled_from(["none", "section", "all"]),
          force=forces, actor=actors, first=editable_firsts)
    def edit_hyper_params(self, items: list[dict[str, Any]], replace: str, force: bool, actor: str,
                          first: str | None = None) -> None:
        self.prepare(first)
        normalized = self.normalized(items)
        only_properties = all(item["section"] == "properties" for item in normalized)  # allowed in any status
        refusal = self.refusal(self.not_editable(force) if not only_properties else (False, TaskTrailError))
        events = self.run(
            "edit_hyper_params", refusal, [Task.HyperParamsEdited],
            lambda: self.task.edit_hyper_params(copy.deepcopy(items), actor, replace=replace, force=force), actor,
        )
        if events:
            self.model.touch(events[0].at)
            given: dict[str, dict[str, Any]] = {}
            for item in copy.deepcopy(normalized):
                given.setdefault(escape(item["section"]), {})[escape(item["name"])] = item
            hyperparams = self.model.doc["hyperparams"]
            if replace == "all":
                self.model.doc["hyperparams"] = given
            elif replace == "section":
                hyperparams.update(given)
            else:
                for section, entries in given.items():
                    hyperparams.setdefault(section, {}).update(entries)
        self.done(events)

    @rule(keys=st.lists(param_keys, min_size=1, max_size=3), force=forces, actor=actors, first=editable_firsts)
    def delete_hyper_params(self, keys: list[dict[str, Any]], force: bool, actor: str,
                            first: str | None = None) -> None:
        self.prepare(first)
        normalized = self.normalized(keys)
        only_properties = all(key["section"] == "properties" for key in normalized)
        whole = {key["section"] for key in normalized if not key.get("name")}
        conflict = any(key.get("name") and key["section"] in whole for key in normalized)
        refusal = self.refusal(
            self.not_editable(force) if not only_properties else (False, TaskTrailError),
            (conflict, FieldsConflict),
        )
        events = self.run("delete_hyper_params", refusal, [Task.HyperParamsDeleted],
                          lambda: self.task.delete_hyper_params(copy.deepcopy(keys), actor, force=force), actor)
        if events:
            self.model.touch(events[0].at)
            hyperparams = self.model.doc["hyperparams"]
            for key in normalized:
                if not key.get("name"):
                    hyperparams.pop(escape(key["section"]), None)
                else:
                    hyperparams.get(escape(key["section"]), {}).pop(escape(key["name"]), None)
        self.done(events)

    @rule(items=st.lists(config_items, min_size=1, max_size=3), replace=st.booleans(), force=forces, actor=actors,
          first=editable_firsts)
    def edit_configuration(self, items: list[dict[str, Any]], replace: bool, force: bool, actor: str,
                           first: str | None = None) -> None:
        self.prepare(first)
        refusal = self.refusal(self.not_editable(force))
        events = self.run(
            "edit_configuration", refusal, [Task.ConfigurationEdited],
            lambda: self.task.edit_configuration(copy.deepcopy(items), actor, replace=replace, force=force), actor,
        )
        if events:
            self.model.touch(events[0].at)
            given = {escape(item["name"]): dict(item) for item in copy.deepcopy(items)}
            if replace:
                self.model.doc["configuration"] = given
            else:
                self.model.doc["configuration"].update(given)
        self.done(events)

    @rule(data=st.data(), force=forces, actor=actors, first=editable_firsts)
    def delete_configuration(self, data: st.DataObject, force: bool, actor: str, first: str | None = None) -> None:
        self.prepare(first)
        existing = sorted(unescape(name) for name in self.model.doc["configuration"])  # mostly: names it has
        names = data.draw(st.lists(st.sampled_from([*existing, "a.b", "missing"]), min_size=1, max_size=3))
        refusal = self.refusal(self.not_editable(force))
        events = self.run("delete_configuration", refusal, [Task.ConfigurationDeleted],
                          lambda: self.task.delete_configuration(list(names), actor, force=force), actor)
        if events:
            self.model.touch(events[0].at)
            for name in names:
                self.model.doc["configuration"].pop(escape(name), None)
        self.done(events)

    # -- artifacts, models: as clearml-server's service, always forced (created or running) -------
    @rule(items=st.lists(artifacts, min_size=1, max_size=3), actor=actors, first=editable_firsts)
    def add_or_update_artifacts(self, items: list[dict[str, Any]], actor: str, first: str | None = None) -> None:
        self.prepare(first)
        refusal = self.refusal(self.not_editable(force=True))
        events = self.run("add_or_update_artifacts", refusal, [Task.ArtifactsAddedOrUpdated],
                          lambda: self.task.add_or_update_artifacts(copy.deepcopy(items), actor), actor)
        if events:
            self.model.touch(events[0].at)
            execution = self.model.doc["execution"]
            if isinstance(execution.get("artifacts"), dict):
                execution["artifacts"].update(stored_artifacts(items))
            else:
                execution["artifacts"] = stored_artifacts(items)
        self.done(events)

    @rule(items=st.lists(artifact_ids, min_size=1, max_size=3), actor=actors, first=editable_firsts)
    def delete_artifacts(self, items: list[dict[str, Any]], actor: str, first: str | None = None) -> None:
        self.prepare(first)
        refusal = self.refusal(self.not_editable(force=True))
        events = self.run("delete_artifacts", refusal, [Task.ArtifactsDeleted],
                          lambda: self.task.delete_artifacts(copy.deepcopy(items), actor), actor)
        if events:
            self.model.touch(events[0].at)
            execution = self.model.doc["execution"]
            kept = execution.get("artifacts") if isinstance(execution.get("artifacts"), dict) else {}
            execution["artifacts"] = {key: item for key, item in kept.items()
                                      if key not in {artifact_key(given) for given in items}}
        self.done(events)

    @rule(model_type=model_types, name=model_names, model=st.sampled_from(["m1", "m2"]),
          iteration=st.sampled_from([None, 0, 2, 4]), actor=actors, first=editable_firsts)
    def add_or_update_model(self, model_type: str, name: str, model: str, iteration: int | None, actor: str,
                            first: str | None = None) -> None:
        self.prepare(first)
        refusal = self.refusal(self.not_editable(force=True))
        events = self.run(
            "add_or_update_model", refusal, [Task.ModelAddedOrUpdated],
            lambda: self.task.add_or_update_model(model_type, name, model, actor, iteration=iteration), actor,
        )
        if events:
            self.model.touch(events[0].at)
            doc = self.model.doc
            entries = doc["models"].setdefault(model_type, [])
            item = {"name": name, "model": model, "updated": NOW}
            same = [index for index, entry in enumerate(entries) if entry["name"] == name]
            if same:
                entries[same[0]] = item
            else:
                entries.append(item)
            if iteration is not None and iteration > (doc["last_iteration"] or 0):  # never lowered
                doc["last_iteration"] = iteration
        self.done(events)

    @rule(models=st.lists(st.tuples(model_types, model_names, st.sampled_from(["m1", "m2"]),
                                    st.sampled_from([None, 0, 2, 4])), min_size=2, max_size=3),
          actor=actors)
    def add_or_update_models(self, models: list[tuple[str, str, str, int | None]], actor: str) -> None:
        """Several in a row (as a client reporting its models does): names meet, iterations go up and down."""
        for model_type, name, model, iteration in models:
            self.add_or_update_model(model_type, name, model, iteration, actor)

    @rule(data=st.data(), actor=actors, first=editable_firsts)
    def delete_models(self, data: st.DataObject, actor: str, first: str | None = None) -> None:
        self.prepare(first)
        existing = [{"name": entry["name"], "type": kind}  # mostly: models it has
                    for kind, entries in self.model.doc["models"].items() for entry in entries]
        keys = st.builds(dict, name=model_names, type=model_types)
        items = data.draw(st.lists(st.sampled_from(existing) | keys if existing else keys, min_size=1, max_size=3))
        refusal = self.refusal(self.not_editable(force=True))
        events = self.run("delete_models", refusal, [Task.ModelsDeleted],
                          lambda: self.task.delete_models(copy.deepcopy(items), actor), actor)
        if events:
            self.model.touch(events[0].at)
            models = self.model.doc["models"]
            for kind in ("input", "output"):
                gone = {item["name"] for item in items if item["type"] == kind}
                if gone:
                    models[kind] = [entry for entry in models.get(kind) or [] if entry["name"] not in gone]
        self.done(events)

    # -- archive, delete -------------------------------------------------------------------------
    @rule(reason=reasons, message=messages, actor=actors, first=firsts)
    def archive(self, reason: str, message: str, actor: str, first: str | None = None) -> None:
        self.prepare(first)
        queued = self.model.status == S.queued  # a queued task leaves its queue first
        expected = [Task.Dequeued, Task.Archived] if queued else [Task.Archived]
        events = self.run("archive", self.refusal(), expected,
                          lambda: self.task.archive(actor, reason, message), actor)
        if events:
            if queued:
                self.model.move(self.model.doc["enqueue_status"] or "created", events[0].at, reason, message)
                self.model.leave_queue()
            self.model.touch(events[-1].at)
            self.model.doc["system_tags"] = sorted({*self.model.doc["system_tags"], ARCHIVED})
            self.model.doc["status_reason"] = reason
            self.model.doc["status_message"] = message
        self.done(events)

    @rule(reason=reasons, message=messages, actor=actors, first=firsts)
    def unarchive(self, reason: str, message: str, actor: str, first: str | None = None) -> None:
        self.prepare(first)
        events = self.run("unarchive", self.refusal(), [Task.Unarchived],
                          lambda: self.task.unarchive(actor, reason, message), actor)
        if events:
            self.model.touch(events[0].at)
            self.model.doc["system_tags"] = [tag for tag in self.model.doc["system_tags"] if tag != ARCHIVED]
            self.model.doc["status_reason"] = reason
            self.model.doc["status_message"] = message
        self.done(events)

    # A deleted task refuses everything after, so most draws only check (as tasks.delete does first).
    @rule(force=forces, move_to_trash=st.booleans(), reason=st.sampled_from(["gone", "obsolete"]), message=messages,
          actor=actors, check_only=st.sampled_from([True, True, False]), first=firsts)
    def delete(self, force: bool, move_to_trash: bool, reason: str, message: str, actor: str,
               check_only: bool, first: str | None = None) -> None:
        self.prepare(first)
        refusal, expected = self.expect_delete(force)
        self.guard(refusal, lambda: self.task.check_delete(force))
        if check_only:
            return
        events = self.run(
            "delete", refusal, expected,
            lambda: self.task.delete(actor, reason, message, force=force, move_to_trash=move_to_trash), actor,
        )
        if events:
            self.model.touch(events[0].at)
            self.model.doc["deleted"] = events[0].at
            self.model.doc["status_reason"] = reason
            self.model.doc["status_message"] = message
        self.done(events)
        if events:
            self.everything_is_refused_once_deleted()

    def everything_is_refused_once_deleted(self) -> None:
        """Every command, even forced or allowed in any status, now refuses with TaskNotFound."""
        task = self.task
        properties = [{"section": "properties", "name": "p", "value": "1"}]
        commands: dict[str, Callable[[], Any]] = {
            "enqueue": lambda: task.enqueue("gpu", "alice", force=True),
            "dequeue": lambda: task.dequeue("alice", "created"),
            "start": lambda: task.start("alice", force=True),
            "claim": lambda: task.claim("worker-1"),
            "stop": lambda: task.stop("alice", force=True),
            "stopped": lambda: task.stopped("alice", force=True),
            "fail": lambda: task.fail("alice", force=True),
            "complete": lambda: task.complete("alice", force=True, publish=True),
            "close": lambda: task.close("alice", force=True),
            "publish": lambda: task.publish("alice", force=True),
            "reset": lambda: task.reset("alice", force=True, clear_all=True),
            "update": lambda: task.update({"name": "again"}, "alice"),
            "edit": lambda: task.edit({"name": "again"}, "alice", force=True),
            "set_requirements": lambda: task.set_requirements({"pip": []}, "alice"),
            "ping": lambda: task.ping("alice"),
            "edit_hyper_params": lambda: task.edit_hyper_params(properties, "alice", force=True),
            "delete_hyper_params": lambda: task.delete_hyper_params(properties, "alice", force=True),
            "edit_configuration": lambda: task.edit_configuration([{"name": "c", "value": "v"}], "alice", force=True),
            "delete_configuration": lambda: task.delete_configuration(["c"], "alice", force=True),
            "add_or_update_artifacts": lambda: task.add_or_update_artifacts([{"key": "k", "type": "t"}], "alice"),
            "delete_artifacts": lambda: task.delete_artifacts([{"key": "k"}], "alice"),
            "add_or_update_model": lambda: task.add_or_update_model("input", "m", "m1", "alice"),
            "delete_models": lambda: task.delete_models([{"name": "m", "type": "input"}], "alice"),
            "archive": lambda: task.archive("alice"),
            "unarchive": lambda: task.unarchive("alice"),
            "delete": lambda: task.delete("alice", force=True),
        }
        for name, command in commands.items():
            self.run(f"{name} once deleted", TaskNotFound, [], command, "alice")
        for check in (task.check_exists, lambda: task.check_stop(True), lambda: task.check_reset(True),
                      lambda: task.check_delete(True), lambda: task.check_editable(True, any_status=True)):
            self.guard(TaskNotFound, check)
        assert task.parent_deleted(self.model.doc["parent"] or PARENTS[0], "alice") is False
        assert task.collect_events() == []

    @rule(parent=st.sampled_from(PARENTS), actor=actors)
    def parent_deleted(self, parent: str, actor: str) -> None:
        """The parent of this task (or another task) was deleted: only a child that exists is marked."""
        child = not self.model.deleted and self.model.doc["parent"] == parent
        answers = []
        events = self.run("parent_deleted", None, [Task.ParentDeleted] if child else [],
                          lambda: answers.append(self.task.parent_deleted(parent, actor)), actor)
        assert answers == [child]
        if events:
            self.model.touch(events[0].at)
            self.model.doc["parent"] = DELETED_PARENT + parent
        self.done(events)

    @rule(force=forces, any_status=st.booleans())
    def checks(self, force: bool, any_status: bool) -> None:
        self.guard(self.refusal(), self.task.check_exists)
        refusal = self.refusal(self.not_editable(force) if not any_status else (False, TaskTrailError))
        self.guard(refusal, lambda: self.task.check_editable(force, any_status=any_status))
        assert self.task.is_deleted == self.model.deleted
        assert self.task.is_archived == self.model.archived

    # -- invariants ------------------------------------------------------------------------------
    @invariant()
    def the_document_matches_the_model(self) -> None:
        assert comparable(self.task.doc) == comparable(self.model.doc)
        assert self.task.status == self.model.status
        assert self.task.queue == self.model.doc["execution"].get("queue")

    @invariant()
    def every_command_is_decided_as_the_model_says_here(self) -> None:
        """Once per place (status, worker, archived, deleted) a run reaches, every status and
        editability decision is tried, unforced and forced: a refusal on the task itself (it must
        change nothing), an acceptance on a copy (it must record the predicted events and leave the
        predicted status). The rules check the documents; this makes every status meet every command."""
        place = (self.model.status, bool(self.model.doc["last_worker"]), self.model.archived, self.model.deleted)
        if place in self.probed:
            return
        self.probed.add(place)
        item = [{"section": "Args", "name": "p", "value": "1"}]
        probes: list[tuple[str, Callable[[Task], Any], Expected]] = [
            ("dequeue", lambda task: task.dequeue("probe"), self.expect_dequeue(None)[:2]),
            ("claim", lambda task: task.claim("worker-9"), self.expect_claim()),
            # Forced, these only skip the table (the rules try them forced).
            ("start", lambda task: task.start("probe"), self.expect_move(S.in_progress, Task.Started, False)),
            ("stopped", lambda task: task.stopped("probe"), self.expect_move(S.stopped, Task.Stopped, False)),
            ("fail", lambda task: task.fail("probe"), self.expect_move(S.failed, Task.Failed, False)),
            ("close", lambda task: task.close("probe"), self.expect_move(S.closed, Task.Closed, False)),
            ("complete", lambda task: task.complete("probe"), self.expect_complete(False, False)),
            ("reset", lambda task: task.reset("probe"), self.expect_move(S.created, Task.Reset, False)),
        ]
        for force in (False, True):
            probes += [
                ("enqueue", lambda task, f=force: task.enqueue("gpu", "probe", force=f), self.expect_enqueue(force)),
                ("stop", lambda task, f=force: task.stop("probe", force=f), self.expect_stop(force)),
                ("complete+publish", lambda task, f=force: task.complete("probe", force=f, publish=True),
                 self.expect_complete(force, True)),
                ("publish", lambda task, f=force: task.publish("probe", force=f), self.expect_publish(force)),
                ("delete", lambda task, f=force: task.delete("probe", force=f), self.expect_delete(force)),
                ("edit", lambda task, f=force: task.edit({"comment": "probe"}, "probe", force=f),
                 self.expect_edit(force)),
                ("edit_hyper_params", lambda task, f=force: task.edit_hyper_params(item, "probe", force=f),
                 self.expect_editable(Task.HyperParamsEdited, force)),
                ("edit_configuration", lambda task, f=force: task.edit_configuration(
                    [{"name": "c", "value": "v"}], "probe", force=f),
                 self.expect_editable(Task.ConfigurationEdited, force)),
            ]
        properties = [{"section": "Properties", "name": "p", "value": "1"}]  # any status
        conflict = [{"section": "Args"}, {"section": "Args", "name": "lr"}]  # the section, and one of its names
        probes += [
            ("add_or_update_artifacts", lambda task: task.add_or_update_artifacts([{"key": "k", "type": "t"}], "probe"),
             self.expect_editable(Task.ArtifactsAddedOrUpdated, True)),
            ("edit_hyper_params properties", lambda task: task.edit_hyper_params(properties, "probe"),
             (self.refusal(), [Task.HyperParamsEdited])),
            ("delete_hyper_params properties", lambda task: task.delete_hyper_params(properties, "probe"),
             (self.refusal(), [Task.HyperParamsDeleted])),
            ("delete_hyper_params conflict", lambda task: task.delete_hyper_params(conflict, "probe", force=True),
             (self.refusal(self.not_editable(True), (True, FieldsConflict)), [])),
        ]
        for name, command, (refusal, expected) in probes:
            if refusal is not None:  # refused: tried on the task itself, which must not change
                self.run(f"{name} (probe)", refusal, expected, lambda: command(self.task), "probe")
                continue
            copy_of_task = copy.copy(self.task)
            copy_of_task.doc = clone(self.task.doc)
            copy_of_task._pending_events = []  # its own (the shallow copy shares the task's list)
            try:
                command(copy_of_task)
            except TaskTrailError as error:
                raise AssertionError(f"{name} (probe) refused ({error!r}), but the model accepts it") from None
            assert [type(item) for item in copy_of_task.collect_events()] == expected, name
            after = STATUS_AFTER.get(expected[-1], self.model.status)
            if name == "dequeue":
                after = TaskStatus(self.expect_dequeue(None)[2])
            assert copy_of_task.status == after, name
            assert copy_of_task.is_deleted == (expected == [Task.Deleted]), name
            if expected == [Task.StopRequested]:
                assert copy_of_task.doc["status_message"] == "stopping"

    @invariant()
    def every_event_was_collected(self) -> None:
        assert self.task.collect_events() == []
        assert self.task.version == len(self.events)

    def teardown(self) -> None:
        """Replaying the events rebuilds the task as it was after each command, and as it is."""
        if not self.events:  # the run stopped before the task was created
            return
        rebuilt = None
        for recorded in self.events:
            rebuilt = recorded.mutate(rebuilt)
            if rebuilt.version in self.history:
                assert rebuilt.doc == self.history[rebuilt.version], rebuilt.version
        assert rebuilt is not None
        assert rebuilt.version == self.task.version == len(self.events)
        assert rebuilt.doc == self.task.doc


TaskActions.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_task_actions = TaskActions.TestCase
