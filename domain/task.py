"""The Task aggregate: a ClearML task whose every change is a past-tense event.

The aggregate's state is the task document itself (`Task.doc`). Each event states its effect on
the document as a mapping of dotted paths to values (`changes()`); the aggregate applies that
mapping, and so does the MongoDB view, so the two cannot drift apart.
"""
from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.document import apply_changes, get_path, iso_time
from domain.errors import InvalidStatusChange, TaskAlreadyClaimed, TaskNotFound
from domain.status import TaskStatus, check_transition, parse_status

S = TaskStatus


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


class Task(Aggregate):
    class Event(Aggregate.Event):
        actor: str

        @property
        def at(self) -> str:
            """The event time as the ISO-8601 text stored in task documents (sortable as text)."""
            return iso_time(self.timestamp)

        def changes(self) -> dict[str, Any]:
            return {"last_update": self.at, "last_change": self.at}

        def apply(self, task: Task) -> None:
            apply_changes(task.doc, self.changes())

    class Created(Event, Aggregate.Created):
        fields: dict[str, Any]

        def changes(self) -> dict[str, Any]:
            document = initial_document(self.fields, self.actor, self.at)
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

    class Published(StatusEvent):
        new_status = S.published

        def changes(self) -> dict[str, Any]:
            return {**super().changes(), "published": self.at}

    class Reset(StatusEvent):
        new_status = S.created

        def changes(self) -> dict[str, Any]:
            return {
                **super().changes(),
                "started": None,
                "completed": None,
                "published": None,
                "last_worker": None,
                "last_worker_report": None,
                "last_iteration": 0,
                "execution.queue": None,
                "enqueue_status": None,
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

    # -- commands ----------------------------------------------------------------------------
    @classmethod
    def create(cls, task_id: UUID, fields: dict[str, Any], actor: str) -> Task:
        return cls._create(cls.Created, id=task_id, fields=fields, actor=actor)

    def enqueue(self, queue: str, actor: str, reason: str = "", message: str = "", force: bool = False) -> None:
        check_transition(self.status, S.queued, force)
        self.trigger_event(
            self.Enqueued,
            queue=queue,
            previous_status=self.status.value,
            actor=actor,
            reason=reason,
            message=message,
        )

    def dequeue(self, actor: str, new_status: str | None = None, reason: str = "", message: str = "") -> None:
        """Take a queued task off its queue, back to the status it had before (or `new_status`)."""
        if self.status != S.queued:
            raise InvalidStatusChange(
                f"Invalid status change: current={self.status.value}, only a queued task can be dequeued"
            )
        restored = parse_status(new_status or self.doc.get("enqueue_status") or S.created.value)
        self.trigger_event(
            self.Dequeued, restored_status=restored.value, actor=actor, reason=reason, message=message
        )

    def start(self, actor: str, reason: str = "", message: str = "", force: bool = False) -> None:
        check_transition(self.status, S.in_progress, force)
        self._trigger_started(actor, worker=None, reason=reason, message=message)

    def claim(self, worker: str, reason: str = "", message: str = "") -> None:
        """A worker takes a queued task to run it; only one claim of a queued task can succeed."""
        if self.status != S.queued:
            raise TaskAlreadyClaimed(
                f"Invalid status change: current={self.status.value} new=in_progress "
                f"(worker {worker} can only claim a queued task)"
            )
        self._trigger_started(worker, worker=worker, reason=reason, message=message)

    def _trigger_started(self, actor: str, worker: str | None, reason: str, message: str) -> None:
        self.trigger_event(
            self.Started,
            worker=worker,
            first_start=self.doc.get("started") is None,
            actor=actor,
            reason=reason,
            message=message,
        )

    def stop(self, actor: str, reason: str = "", message: str = "", force: bool = False) -> None:
        """Queued or unattended tasks stop at once; a task a worker runs is asked to stop."""
        if self.status == S.in_progress and self.doc.get("last_worker") and not force:
            self.trigger_event(self.StopRequested, actor=actor, reason=reason, message="stopping")
            return
        self.stopped(actor, reason, message, force)

    def stopped(self, actor: str, reason: str = "", message: str = "", force: bool = False) -> None:
        self._change_status(self.Stopped, actor, reason, message, force)

    def fail(self, actor: str, reason: str = "", message: str = "", force: bool = False) -> None:
        self._change_status(self.Failed, actor, reason, message, force)

    def complete(self, actor: str, reason: str = "", message: str = "", force: bool = False) -> None:
        self._change_status(self.Completed, actor, reason, message, force)

    def close(self, actor: str, reason: str = "", message: str = "", force: bool = False) -> None:
        self._change_status(self.Closed, actor, reason, message, force)

    def publish(self, actor: str, reason: str = "", message: str = "", force: bool = False) -> None:
        self._change_status(self.Published, actor, reason, message, force)

    def reset(self, actor: str, reason: str = "", message: str = "", force: bool = False) -> None:
        self._change_status(self.Reset, actor, reason, message, force)

    def _change_status(
        self, event_class: type[StatusEvent], actor: str, reason: str, message: str, force: bool
    ) -> None:
        check_transition(self.status, event_class.new_status, force)
        self.trigger_event(event_class, actor=actor, reason=reason, message=message)


def initial_document(fields: dict[str, Any], actor: str, created: str) -> dict[str, Any]:
    """The task document as `tasks.create` leaves it."""
    document: dict[str, Any] = {
        "name": fields.get("name"),
        "type": fields.get("type"),
        "user": actor,
        "comment": fields.get("comment", ""),
        "project": fields.get("project"),
        "parent": fields.get("parent"),
        "tags": list(fields.get("tags") or []),
        "system_tags": list(fields.get("system_tags") or []),
        "script": dict(fields.get("script") or {}),
        "execution": dict(fields.get("execution") or {}),
        "output": {"destination": fields["output_dest"]} if fields.get("output_dest") else {},
        "status": S.created.value,
        "status_reason": "",
        "status_message": "",
        "status_changed": created,
        "created": created,
        "started": None,
        "completed": None,
        "published": None,
        "last_worker": None,
        "last_worker_report": None,
        "last_iteration": 0,
        "enqueue_status": None,
    }
    return document
