"""The Task aggregate: a ClearML task whose every change is a past-tense event.

The aggregate's state is the task document itself (`Task.doc`, in the stored form described in
`domain/task_fields.py`). Each event states its effect on the document as a mapping of dotted
paths to values (`changes()`); the aggregate applies that mapping, and so does the MongoDB view,
so the two cannot drift apart. Every command checks everything first, then triggers its events.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.document import apply_changes, get_path, iso_time
from domain.errors import InvalidField, InvalidStatusChange, TaskAlreadyClaimed, TaskNotFound, TaskTrailError
from domain.status import TaskStatus, check_transition, is_transition_allowed, parse_status
from domain.task_fields import (
    PROPERTIES_SECTION,
    SEARCH_TEXT_FIELD,
    SEARCH_TEXT_SOURCES,
    artifact_id,
    escape_key,
    escape_keys,
    search_text,
    stored_artifacts,
    stored_value,
)
from domain.task_reports import (
    MAX_LINES_PER_EVENT,
    MAX_POINTS_PER_EVENT,
    chunked,
    max_iteration,
    truncated,
    updated_last_metrics,
)

S = TaskStatus

ARCHIVED_TAG = "archived"
# A child whose parent was deleted points here (as clearml-server marks it).
DELETED_PREFIX = "__DELETED__"


class TaskCannotBeDeleted(TaskTrailError):
    """Raised when a task may not be deleted without force (its status, or its published children)."""


class MissingTaskFields(TaskTrailError):
    """Raised when a command needs a part of the task document that the task does not have."""


class FieldsConflict(InvalidField):
    """Raised when a request asks for two changes that contradict each other."""


class TaskIsPublished(TaskTrailError):
    """Raised when a published (or publishing) task is sent log lines or metrics: its results are final."""


def task_id_to_uuid(task_id: str) -> UUID:
    """Task ids are 32 hex digits (as in ClearML); raises ValueError for anything else."""
    if not isinstance(task_id, str) or len(task_id) != 32:
        raise ValueError(task_id)
    return UUID(hex=task_id)


def parse_task_id(task_id: str) -> UUID:
    try:
        return task_id_to_uuid(task_id)
    except ValueError:
        raise TaskNotFound(f"Invalid task id: {task_id}") from None


def invalid_task_status(expected: str, current: TaskStatus) -> InvalidStatusChange:
    return InvalidStatusChange(f"Invalid task status: expected={expected} current={current.value}")


class Task(Aggregate):
    class Event(Aggregate.Event):
        actor: str

        @property
        def at(self) -> str:
            """The event time as the ISO-8601 text stored in task documents (sortable as text)."""
            return iso_time(self.timestamp)

        def changes(self) -> dict[str, Any]:
            return {"last_update": self.at, "last_change": self.at}

        def document_changes(self) -> dict[str, Any]:
            """`changes()` plus the private comparable copies of the times they set (see TIME_KEYS)."""
            return with_time_keys(self.changes(), nested=isinstance(self, Aggregate.Created))

        def apply(self, task: Task) -> None:
            # A copy: the document must share no object with the event (a later command would
            # change the recorded event through it).
            apply_changes(task.doc, copy.deepcopy(self.document_changes()))

    class Created(Event, Aggregate.Created):
        fields: dict[str, Any]

        def changes(self) -> dict[str, Any]:
            document = initial_document(self.fields, self.actor, self.at, self.originator_id.hex)
            document.update(super().changes())
            return document

    class StatusEvent(Event):
        """An event that moves the task to `new_status`, with who did it and why."""

        reason: str
        message: str
        new_status: ClassVar[TaskStatus]

        def changes(self) -> dict[str, Any]:
            return {
                **super().changes(),
                "status": self.new_status.value,
                "status_reason": self.reason,
                "status_message": self.message,
                "status_changed": self.at,
            }

    class Enqueued(StatusEvent):
        new_status = S.queued
        queue: str
        previous_status: str

        def changes(self) -> dict[str, Any]:
            return {
                **super().changes(),
                "execution.queue": self.queue,
                "enqueue_status": self.previous_status,
            }

    class Dequeued(StatusEvent):
        new_status = S.created
        restored_status: str

        def changes(self) -> dict[str, Any]:
            return {
                **super().changes(),
                "status": self.restored_status,
                "execution.queue": None,
                "enqueue_status": None,
            }

    class Started(StatusEvent):
        new_status = S.in_progress
        worker: str | None
        first_start: bool

        def changes(self) -> dict[str, Any]:
            changes = super().changes()
            if self.first_start:
                changes["started"] = self.at
            if self.worker:
                changes["last_worker"] = self.worker
                changes["last_worker_report"] = self.at
            return changes

    class StopRequested(Event):
        """A running task was asked to stop; its worker is told and reports `stopped`."""

        reason: str
        message: str

        def changes(self) -> dict[str, Any]:
            return {**super().changes(), "status_reason": self.reason, "status_message": self.message}

    class Ended(StatusEvent):
        """Base of the events that end a run: they set the `completed` (end) time."""

        def changes(self) -> dict[str, Any]:
            return {**super().changes(), "completed": self.at}

    class Stopped(Ended):
        new_status = S.stopped

    class Failed(Ended):
        new_status = S.failed

    class Completed(Ended):
        new_status = S.completed

    class Closed(StatusEvent):
        new_status = S.closed

    class PublishingStarted(StatusEvent):
        """Publishing began; `Published` follows in the same command."""

        new_status = S.publishing

    class Published(StatusEvent):
        new_status = S.published

        def changes(self) -> dict[str, Any]:
            return {**super().changes(), "published": self.at}

    class Reset(StatusEvent):
        """Back to created, with everything a run left behind cleared.

        `clear_all` also empties execution and drops the script; otherwise only the input
        artifacts are kept (`kept_artifacts`, None when the task had no artifacts map).
        """

        new_status = S.created
        clear_all: bool
        kept_artifacts: dict[str, Any] | None
        # The search text without the dropped script (clear_all); None in events recorded before it.
        search_text: str | None = None

        def changes(self) -> dict[str, Any]:
            changes = {
                **super().changes(),
                "started": None,
                "completed": None,
                "published": None,
                "active_duration": None,
                "last_worker": None,
                "last_worker_report": None,
                "last_iteration": 0,
                "last_metrics": {},
                "runtime": {},
                "models.output": [],
                "output.result": None,
                "output.error": None,
                "enqueue_status": None,
            }
            if self.clear_all:
                changes["execution"] = {}
                changes["script"] = None
                if self.search_text is not None:
                    changes[SEARCH_TEXT_FIELD] = self.search_text
            else:
                changes["execution.queue"] = None
                if self.kept_artifacts is not None:
                    changes["execution.artifacts"] = self.kept_artifacts
            return changes

    class FieldsChanged(Event):
        """Base of the events that set document fields: `fields` maps dotted paths to new values."""

        fields: dict[str, Any]

        def changes(self) -> dict[str, Any]:
            return {**super().changes(), **self.fields}

    class Updated(FieldsChanged):
        """tasks.update / update_batch: name, comment, tags, project, output.error, created."""

    class Edited(FieldsChanged):
        """tasks.edit: any of the fields a task is created with."""

    class RequirementsSet(FieldsChanged):
        pass

    class HyperParamsEdited(FieldsChanged):
        pass

    class HyperParamsDeleted(FieldsChanged):
        pass

    class ConfigurationEdited(FieldsChanged):
        pass

    class ConfigurationDeleted(FieldsChanged):
        pass

    class ArtifactsAddedOrUpdated(FieldsChanged):
        pass

    class ArtifactsDeleted(FieldsChanged):
        pass

    class ModelAddedOrUpdated(FieldsChanged):
        pass

    class ModelsDeleted(FieldsChanged):
        pass

    class Archived(FieldsChanged):
        pass

    class Unarchived(FieldsChanged):
        pass

    class ParentDeleted(FieldsChanged):
        """The task's parent was deleted: `parent` now names the deleted task."""

    class Pinged(Event):
        """A client or worker said the task is alive: only `last_update` (and the active time) move."""

        active_duration: int | None

        def changes(self) -> dict[str, Any]:
            changes: dict[str, Any] = {"last_update": self.at}
            if self.active_duration is not None:
                changes["active_duration"] = self.active_duration
            return changes

    class Reported(Event):
        """Base of what a run reports (its worker is alive, console lines, metrics).

        Nobody changed the task, so only `last_update` moves (not `last_change`).
        """

        def changes(self) -> dict[str, Any]:
            return {"last_update": self.at}

    class WorkerReported(Reported):
        """The worker running the task reported it alive (recorded at most once per interval)."""

        worker: str

        def changes(self) -> dict[str, Any]:
            return {**super().changes(), "last_worker": self.worker, "last_worker_report": self.at}

    class LogReported(Reported):
        """A batch of console lines, each {timestamp (ms), level, worker, msg}; the task_logs view keeps them."""

        lines: list[dict[str, Any]]

    class MetricsReported(Reported):
        """A batch of scalar points, each {metric, variant, value, iter, timestamp (ms)}.

        `last_metrics` holds the entries the points changed ({metric key: {variant key: entry}}),
        as the command computed them from the task's earlier entries; `last_iteration` is the
        new highest iteration, None when the points did not raise it.
        """

        points: list[dict[str, Any]]
        last_iteration: int | None
        last_metrics: dict[str, dict[str, dict[str, Any]]]

        def changes(self) -> dict[str, Any]:
            changes = super().changes()
            if self.last_iteration is not None:
                changes["last_iteration"] = self.last_iteration
            for metric, variants in self.last_metrics.items():
                for variant, entry in variants.items():
                    changes[f"last_metrics.{metric}.{variant}"] = entry
            return changes

    class Deleted(Event):
        """The task is gone from the API; its history stays in the log."""

        reason: str
        message: str
        move_to_trash: bool

        def changes(self) -> dict[str, Any]:
            return {
                **super().changes(),
                "deleted": self.at,
                "status_reason": self.reason,
                "status_message": self.message,
            }

    def __init__(self) -> None:
        self.doc: dict[str, Any] = {}

    # -- reading ---------------------------------------------------------------------------
    @property
    def task_id(self) -> str:
        return self.id.hex

    @property
    def status(self) -> TaskStatus:
        return TaskStatus(self.doc["status"])

    @property
    def queue(self) -> str | None:
        return get_path(self.doc, "execution.queue")

    @property
    def is_deleted(self) -> bool:
        return bool(self.doc.get("deleted"))

    @property
    def is_archived(self) -> bool:
        return ARCHIVED_TAG in (self.doc.get("system_tags") or [])

    def check_exists(self) -> None:
        """Raise TaskNotFound for a deleted task: no command may change it."""
        if self.is_deleted:
            raise TaskNotFound(f"Invalid task id: {self.task_id}")

    # -- commands: status ------------------------------------------------------------------
    @classmethod
    def create(cls, task_id: UUID, fields: dict[str, Any], actor: str) -> Task:
        return cls._create(cls.Created, id=task_id, fields=fields, actor=actor)

    def enqueue(self, queue: str, actor: str, reason: str = "", message: str = "", force: bool = False) -> None:
        """Queue the task; a queued task is not queued again unless forced (as clearml-server)."""
        self.check_exists()
        if self.status == S.queued and not force:
            raise InvalidStatusChange("Invalid status change: current=queued new=queued (task already queued)")
        check_transition(self.status, S.queued, force)
        before_queueing = self.doc.get("enqueue_status") or S.created.value
        self.trigger_event(
            self.Enqueued,
            queue=queue,
            previous_status=before_queueing if self.status == S.queued else self.status.value,
            actor=actor,
            reason=reason,
            message=message,
        )

    def dequeue(self, actor: str, new_status: str | None = None, reason: str = "", message: str = "") -> None:
        """Take a queued task off its queue, back to the status it had before (or `new_status`)."""
        self.check_exists()
        if self.status != S.queued:
            raise InvalidStatusChange(
                f"Invalid status change: current={self.status.value}, only a queued task can be dequeued"
            )
        restored = parse_status(new_status or self.doc.get("enqueue_status") or S.created.value)
        self.trigger_event(
            self.Dequeued, restored_status=restored.value, actor=actor, reason=reason, message=message
        )

    def start(self, actor: str, reason: str = "", message: str = "", force: bool = False) -> None:
        self.check_exists()
        check_transition(self.status, S.in_progress, force)
        self._trigger_started(actor, worker=None, reason=reason, message=message)

    def claim(self, worker: str, actor: str | None = None, reason: str = "", message: str = "") -> None:
        """A worker takes a queued task to run it; only one claim of a queued task can succeed.

        `actor` is who asked (the authenticated caller); it defaults to the worker itself.
        """
        self.check_exists()
        if self.status != S.queued:
            raise TaskAlreadyClaimed(
                f"Invalid status change: current={self.status.value} new=in_progress "
                f"(worker {worker} can only claim a queued task)"
            )
        self._trigger_started(actor or worker, worker=worker, reason=reason, message=message)

    def _trigger_started(self, actor: str, worker: str | None, reason: str, message: str) -> None:
        self.trigger_event(
            self.Started,
            worker=worker,
            first_start=self.doc.get("started") is None,
            actor=actor,
            reason=reason,
            message=message,
        )

    def check_stop(self, force: bool = False) -> None:
        """Raise unless `stop` would be accepted."""
        self.check_exists()
        if not self._stop_asks_worker(force):
            check_transition(self.status, S.stopped, force)

    def _stop_asks_worker(self, force: bool) -> bool:
        return self.status == S.in_progress and bool(self.doc.get("last_worker")) and not force

    def stop(self, actor: str, reason: str = "", message: str = "", force: bool = False) -> None:
        """Queued or unattended tasks stop at once; a task a worker runs is asked to stop."""
        self.check_stop(force)
        if self._stop_asks_worker(force):
            self.trigger_event(self.StopRequested, actor=actor, reason=reason, message="stopping")
            return
        self.stopped(actor, reason, message, force)

    def stopped(self, actor: str, reason: str = "", message: str = "", force: bool = False) -> None:
        self._change_status(self.Stopped, actor, reason, message, force)

    def fail(self, actor: str, reason: str = "", message: str = "", force: bool = False) -> None:
        self._change_status(self.Failed, actor, reason, message, force)

    def complete(
        self, actor: str, reason: str = "", message: str = "", force: bool = False, publish: bool = False
    ) -> None:
        """Completed; with `publish`, published right after (both checked before either is recorded)."""
        self.check_exists()
        check_transition(self.status, S.completed, force)
        if publish:
            self._check_publish(S.completed, force)
        self.trigger_event(self.Completed, actor=actor, reason=reason, message=message)
        if publish:
            self._trigger_publish(actor, reason, message)

    def close(self, actor: str, reason: str = "", message: str = "", force: bool = False) -> None:
        self._change_status(self.Closed, actor, reason, message, force)

    def publish(self, actor: str, reason: str = "", message: str = "", force: bool = False) -> None:
        """Through `publishing` to `published` (as clearml-server); a published task is not published again."""
        self.check_exists()
        self._check_publish(self.status, force)
        self._trigger_publish(actor, reason, message)

    @staticmethod
    def _check_publish(current: TaskStatus, force: bool) -> None:
        if not force and S.published not in _allowed_from(current):
            raise InvalidStatusChange(
                f"Invalid status change: current={current.value} new={S.published.value}"
            )

    def _trigger_publish(self, actor: str, reason: str, message: str) -> None:
        self.trigger_event(self.PublishingStarted, actor=actor, reason=reason, message=message)
        self.trigger_event(self.Published, actor=actor, reason=reason, message=message)

    def check_reset(self, force: bool = False) -> None:
        """Raise unless `reset` would be accepted (a published task needs force)."""
        self.check_exists()
        check_transition(self.status, S.created, force)

    def reset(
        self, actor: str, reason: str = "", message: str = "", force: bool = False, clear_all: bool = False
    ) -> None:
        self.check_reset(force)
        artifacts = get_path(self.doc, "execution.artifacts")
        kept = None
        if isinstance(artifacts, dict):
            kept = {key: item for key, item in artifacts.items() if item.get("mode") == "input"}
        self.trigger_event(
            self.Reset,
            actor=actor,
            reason=reason or "reset",
            message=message or "reset",
            clear_all=clear_all,
            kept_artifacts=kept,
            search_text=search_text(self.task_id, {**self.doc, "script": None}) if clear_all else None,
        )

    def _change_status(
        self, event_class: type[StatusEvent], actor: str, reason: str, message: str, force: bool
    ) -> None:
        self.check_exists()
        check_transition(self.status, event_class.new_status, force)
        self.trigger_event(event_class, actor=actor, reason=reason, message=message)

    # -- commands: fields ------------------------------------------------------------------
    def update(self, changes: dict[str, Any], actor: str) -> None:
        """tasks.update: set the given document paths (any status). Nothing given, nothing recorded."""
        self.check_exists()
        if changes:
            self._trigger_fields(self.Updated, dict(changes), actor)

    def edit(self, fields: dict[str, Any], actor: str, force: bool = False) -> None:
        """tasks.edit: a created task (any with force) takes new create fields.

        Objects with fixed fields (script, execution, models) are merged key by key into the
        current ones; everything else is replaced.
        """
        self.check_exists()
        if not force and self.status != S.created:
            raise invalid_task_status(S.created.value, self.status)
        now = iso_time(datetime.now(timezone.utc))
        changes: dict[str, Any] = {}
        for field, value in fields.items():
            stored = stored_value(field, value, now)
            if field == "output_dest":
                self._set_nested(changes, ["output", "destination"], value)
            elif field in ("script", "execution", "models"):
                self._merge_into_map(changes, [field], stored)
            else:
                changes[field] = stored
        if changes:
            self._trigger_fields(self.Edited, changes, actor)

    def set_requirements(self, requirements: dict[str, Any], actor: str) -> None:
        self.check_exists()
        if not isinstance(self.doc.get("script"), dict):
            raise MissingTaskFields(f"Task has no script field: {self.task_id}")
        self._trigger_fields(self.RequirementsSet, {"script.requirements": escape_keys(requirements)}, actor)

    def check_editable(self, force: bool = False, any_status: bool = False) -> None:
        """As clearml-server's tasks-for-update: created only; with force, in_progress too."""
        self.check_exists()
        if any_status:
            return
        allowed = (S.created, S.in_progress) if force else (S.created,)
        if self.status not in allowed:
            expected = S.created.value if not force else f"{S.created.value} or {S.in_progress.value}"
            raise invalid_task_status(expected, self.status)

    def edit_hyper_params(
        self, params: list[dict[str, Any]], actor: str, replace: str = "none", force: bool = False
    ) -> None:
        """Add or update hyper parameters; `replace` is none (these), section (their sections) or all."""
        params = _normalized_sections(params)
        self.check_editable(force, any_status=_only_properties(params))
        sections: dict[str, dict[str, Any]] = {}
        for item in params:
            sections.setdefault(escape_key(item["section"]), {})[escape_key(item["name"])] = dict(item)
        changes: dict[str, Any] = {}
        if replace == "all":
            changes["hyperparams"] = sections
        elif replace == "section":
            self._merge_into_map(changes, ["hyperparams"], sections)
        else:
            for section, items in sections.items():
                self._merge_into_map(changes, ["hyperparams", section], items)
        self._trigger_fields(self.HyperParamsEdited, changes, actor)

    def delete_hyper_params(self, keys: list[dict[str, Any]], actor: str, force: bool = False) -> None:
        """Delete parameters ({section, name}) or whole sections ({section} without a name)."""
        keys = _normalized_sections(keys)
        self.check_editable(force, any_status=_only_properties(keys))
        whole = {key["section"] for key in keys if not key.get("name")}
        if any(key.get("name") and key["section"] in whole for key in keys):
            raise FieldsConflict(
                "Fields conflict: cannot delete section field if the whole section was scheduled for deletion"
            )
        hyperparams = copy.deepcopy(self.doc.get("hyperparams") or {})
        for key in keys:
            section = escape_key(key["section"])
            if not key.get("name"):
                hyperparams.pop(section, None)
            elif isinstance(hyperparams.get(section), dict):
                hyperparams[section].pop(escape_key(key["name"]), None)
        self._trigger_fields(self.HyperParamsDeleted, {"hyperparams": hyperparams}, actor)

    def edit_configuration(
        self, items: list[dict[str, Any]], actor: str, replace: bool = False, force: bool = False
    ) -> None:
        self.check_editable(force)
        configuration = {escape_key(item["name"]): dict(item) for item in items}
        changes: dict[str, Any] = {}
        if replace:
            changes["configuration"] = configuration
        else:
            self._merge_into_map(changes, ["configuration"], configuration)
        self._trigger_fields(self.ConfigurationEdited, changes, actor)

    def delete_configuration(self, names: Iterable[str], actor: str, force: bool = False) -> None:
        self.check_editable(force)
        configuration = copy.deepcopy(self.doc.get("configuration") or {})
        for name in names:
            configuration.pop(escape_key(name), None)
        self._trigger_fields(self.ConfigurationDeleted, {"configuration": configuration}, actor)

    def add_or_update_artifacts(self, artifacts: list[dict[str, Any]], actor: str) -> None:
        """As clearml-server's service, always with force: a created or running task."""
        self.check_editable(force=True)
        changes: dict[str, Any] = {}
        self._merge_into_map(changes, ["execution", "artifacts"], stored_artifacts(artifacts))
        self._trigger_fields(self.ArtifactsAddedOrUpdated, changes, actor)

    def delete_artifacts(self, artifact_ids: list[dict[str, Any]], actor: str) -> None:
        self.check_editable(force=True)
        current = get_path(self.doc, "execution.artifacts")
        artifacts = copy.deepcopy(current) if isinstance(current, dict) else {}
        for item in artifact_ids:
            artifacts.pop(artifact_id(item), None)
        changes: dict[str, Any] = {}
        self._set_nested(changes, ["execution", "artifacts"], artifacts)
        self._trigger_fields(self.ArtifactsDeleted, changes, actor)

    def add_or_update_model(
        self, model_type: str, name: str, model: str, actor: str, iteration: int | None = None
    ) -> None:
        """Set the task's input or output model called `name` (replacing one of that name)."""
        self.check_editable(force=True)
        item = {"name": name, "model": model, "updated": iso_time(datetime.now(timezone.utc))}
        models = [dict(entry) for entry in get_path(self.doc, f"models.{model_type}") or []]
        for index, entry in enumerate(models):
            if entry.get("name") == name:
                models[index] = item
                break
        else:
            models.append(item)
        changes: dict[str, Any] = {}
        self._set_nested(changes, ["models", model_type], models)
        if iteration is not None and iteration > (self.doc.get("last_iteration") or 0):
            changes["last_iteration"] = iteration
        self._trigger_fields(self.ModelAddedOrUpdated, changes, actor)

    def delete_models(self, models: list[dict[str, Any]], actor: str) -> None:
        """Remove models given as {name, type}."""
        self.check_editable(force=True)
        changes: dict[str, Any] = {}
        for model_type in ("input", "output"):
            names = {item["name"] for item in models if item["type"] == model_type}
            if names:
                kept = [
                    dict(entry) for entry in get_path(self.doc, f"models.{model_type}") or []
                    if entry.get("name") not in names
                ]
                self._set_nested(changes, ["models", model_type], kept)
        self._trigger_fields(self.ModelsDeleted, changes, actor)

    def ping(self, actor: str) -> None:
        """Refresh last_update; a running task also gets its active time (seconds since started)."""
        self.check_exists()
        active = None
        started = self.doc.get("started")
        if self.status == S.in_progress and started:
            elapsed = datetime.now(timezone.utc) - datetime.fromisoformat(started)
            active = max(0, int(elapsed.total_seconds()))
        self.trigger_event(self.Pinged, actor=actor, active_duration=active)

    # -- commands: what a run reports -------------------------------------------------------
    def is_run_by(self, worker: str) -> bool:
        """True while `worker` runs this task: in progress, and claimed by that worker."""
        return not self.is_deleted and self.status == S.in_progress and self.doc.get("last_worker") == worker

    def worker_reported(self, worker: str, actor: str) -> None:
        """The worker running the task is alive: refresh last_worker_report (the caller decides how often)."""
        self.check_exists()
        if not self.is_run_by(worker):
            raise InvalidStatusChange(
                f"Task {self.task_id} is not in progress under worker {worker} "
                f"(status={self.status.value}, last_worker={self.doc.get('last_worker')})"
            )
        self.trigger_event(self.WorkerReported, worker=worker, actor=actor)

    def check_reportable(self) -> None:
        """Raise unless the task may take log lines and metrics: any existing task but a published one."""
        self.check_exists()
        if self.status in (S.publishing, S.published):
            raise TaskIsPublished(f"Task is published, its results are final: {self.task_id}")

    def report_log(self, lines: list[dict[str, Any]], actor: str) -> None:
        """Record console lines ({timestamp, level, worker, msg}) in order.

        One event holds at most MAX_LINES_PER_EVENT lines (and about MAX_EVENT_SIZE of text), so a
        larger batch is recorded as several events; messages are cut to MAX_LINE_CHARS.
        """
        self.check_reportable()
        lines = [{**line, "msg": truncated(line["msg"])} for line in lines]
        for chunk in chunked(lines, MAX_LINES_PER_EVENT):
            self.trigger_event(self.LogReported, lines=chunk, actor=actor)

    def report_metrics(self, points: list[dict[str, Any]], actor: str) -> None:
        """Record scalar points ({metric, variant, value, iter, timestamp}) and what they make of
        last_iteration and last_metrics; at most MAX_POINTS_PER_EVENT points an event."""
        self.check_reportable()
        for chunk in chunked(points, MAX_POINTS_PER_EVENT):
            highest = max_iteration(chunk)
            raised = highest if highest is not None and highest > (self.doc.get("last_iteration") or 0) else None
            self.trigger_event(
                self.MetricsReported,
                points=chunk,
                last_iteration=raised,
                last_metrics=updated_last_metrics(self.doc.get("last_metrics"), chunk),
                actor=actor,
            )

    def archive(self, actor: str, reason: str = "", message: str = "") -> None:
        """Take the task off its queue (if queued) and add the archived system tag."""
        self.check_exists()
        if self.status == S.queued:
            self.dequeue(actor, reason=reason, message=message)
        tags = sorted({*(self.doc.get("system_tags") or []), ARCHIVED_TAG})
        self._trigger_fields(
            self.Archived, {"system_tags": tags, "status_reason": reason, "status_message": message}, actor
        )

    def unarchive(self, actor: str, reason: str = "", message: str = "") -> None:
        self.check_exists()
        tags = [tag for tag in self.doc.get("system_tags") or [] if tag != ARCHIVED_TAG]
        self._trigger_fields(
            self.Unarchived, {"system_tags": tags, "status_reason": reason, "status_message": message}, actor
        )

    def check_delete(self, force: bool = False) -> None:
        """A created or archived task may be deleted; any other only with force."""
        self.check_exists()
        if not force and self.status != S.created and not self.is_archived:
            raise TaskCannotBeDeleted(
                f"Task cannot be deleted due to status, use force=True: "
                f"expected={S.created.value} current={self.status.value}"
            )

    def delete(
        self, actor: str, reason: str = "", message: str = "", force: bool = False, move_to_trash: bool = False
    ) -> None:
        self.check_delete(force)
        self.trigger_event(self.Deleted, actor=actor, reason=reason, message=message, move_to_trash=move_to_trash)

    def parent_deleted(self, parent_id: str, actor: str) -> bool:
        """Point a child of the deleted task `parent_id` at the deleted marker; False if not its child."""
        if self.is_deleted or self.doc.get("parent") != parent_id:
            return False
        self._trigger_fields(self.ParentDeleted, {"parent": f"{DELETED_PREFIX}{parent_id}"}, actor)
        return True

    # -- helpers ---------------------------------------------------------------------------
    def _trigger_fields(self, event_class: type[FieldsChanged], fields: dict[str, Any], actor: str) -> None:
        fields = dict(fields)
        if any(path.split(".")[0] in {source.split(".")[0] for source in SEARCH_TEXT_SOURCES} for path in fields):
            after = copy.deepcopy(self.doc)
            apply_changes(after, fields)
            text = search_text(self.task_id, after)
            if text != self.doc.get(SEARCH_TEXT_FIELD):
                fields[SEARCH_TEXT_FIELD] = text
        self.trigger_event(event_class, fields=fields, actor=actor)

    def _merge_into_map(self, changes: dict[str, Any], keys: list[str], entries: dict[str, Any]) -> None:
        """Add the changes setting each entry into the map at doc[keys...], keeping its other entries."""
        if isinstance(get_path(self.doc, ".".join(keys)), dict):
            for key, value in entries.items():
                changes[".".join([*keys, key])] = value
        else:
            self._set_nested(changes, keys, dict(entries))

    def _set_nested(self, changes: dict[str, Any], keys: list[str], value: Any) -> None:
        """Add the change setting doc[keys...] = value as a path MongoDB can `$set`.

        A `$set` through a null or non-object field fails in MongoDB, so the change then replaces
        that field with the nested object instead.
        """
        node: Any = self.doc
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                if isinstance(node, dict) and key in node:  # present but not an object
                    nested: Any = value
                    for inner in reversed(keys[depth + 1:]):
                        nested = {inner: nested}
                    changes[".".join(keys[: depth + 1])] = nested
                    return
                break
            node = child
        changes[".".join(keys)] = value


# Times that get_all compares (`>`, `>=`, ...). nx-27017 compares strings that look like dates
# through SQLite's datetime(), to the second; the document therefore also keeps each as text that
# does not look like a date ("t" + the ISO text), which both servers compare as plain text.
TIME_KEYS = "_times"
TIME_FILTER_FIELDS = ("status_changed", "last_update", "started")


def time_key(moment: str | None) -> str | None:
    """The comparable text of a stored time (None stays None)."""
    return None if moment is None else f"t{moment}"


def with_time_keys(changes: dict[str, Any], nested: bool = False) -> dict[str, Any]:
    times = {field: time_key(changes[field]) for field in TIME_FILTER_FIELDS if field in changes}
    if not times:
        return changes
    if nested:
        return {**changes, TIME_KEYS: times}
    return {**changes, **{f"{TIME_KEYS}.{field}": value for field, value in times.items()}}


def _allowed_from(status: TaskStatus) -> frozenset[TaskStatus]:
    return frozenset(new for new in TaskStatus if new != status and is_transition_allowed(status, new))


def _normalized_sections(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The properties section is case-insensitive (as clearml-server normalises it)."""
    normalized = []
    for item in items:
        item = dict(item)
        if item["section"].lower() == PROPERTIES_SECTION:
            item["section"] = PROPERTIES_SECTION
        normalized.append(item)
    return normalized


def _only_properties(items: list[dict[str, Any]]) -> bool:
    return bool(items) and all(item["section"] == PROPERTIES_SECTION for item in items)


def initial_document(fields: dict[str, Any], actor: str, created: str, task_id: str = "") -> dict[str, Any]:
    """The task document as `tasks.create` leaves it (fields are the validated API form)."""
    stored = {key: stored_value(key, value, created) for key, value in fields.items()}
    document: dict[str, Any] = {
        "name": fields.get("name"),
        "type": fields.get("type"),
        "user": actor,
        "comment": fields.get("comment", ""),
        "project": fields.get("project"),
        "parent": fields.get("parent"),
        "tags": list(fields.get("tags") or []),
        "system_tags": list(fields.get("system_tags") or []),
        "script": stored.get("script") or {},
        "execution": stored.get("execution") or {},
        "hyperparams": stored.get("hyperparams") or {},
        "configuration": stored.get("configuration") or {},
        "container": stored.get("container") or {},
        "models": {"input": [], "output": [], **(stored.get("models") or {})},
        "runtime": stored.get("runtime") or {},
        "output": {"destination": fields["output_dest"]} if fields.get("output_dest") else {},
        "status": S.created.value,
        "status_reason": "",
        "status_message": "",
        "status_changed": created,
        "created": created,
        "started": None,
        "completed": None,
        "published": None,
        "active_duration": None,
        "last_worker": None,
        "last_worker_report": None,
        "last_iteration": 0,
        "last_metrics": {},
        "enqueue_status": None,
    }
    document[SEARCH_TEXT_FIELD] = search_text(task_id, document)
    return document
