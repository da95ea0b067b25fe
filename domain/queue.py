"""The Queue aggregate: the ordered entries of one queue, every change of order an event.

A queue holds task ids in order (`order`) with the time each was added (`added`). Adding, taking
the next task, removing, moving and clearing are past-tense events, so the order of a queue at any
moment can be rebuilt from the log, and so can its length and waiting times (`timeline`).

Queue names are unique: `QueueName` (domain/queue_name.py) is the index aggregate that makes a
second queue with a taken name fail in the same transaction.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.document import iso_time
from domain.errors import TaskTrailError

DEFAULT_TAG = "default"  # the system tag of the default queue (`queues.get_default`)
DEFAULT_QUEUE_NAME = "default"
TASKTRAIL_NAMESPACE = UUID("5b0c3f8e-6a51-4d5c-9a55-7f2f0b7a6e10")  # for ids derived from names


class QueueNotFound(TaskTrailError):
    """Raised when a command names a queue that does not exist (or was deleted)."""


class QueueNameTaken(TaskTrailError):
    """Raised when a queue is created (or renamed) with the name of another queue."""


class QueueNotEmpty(TaskTrailError):
    """Raised when a queue that still holds tasks is deleted without `force`."""


class TaskNotInQueue(TaskTrailError):
    """Raised when a queue command names a task that is not an entry of the queue."""


class TaskAlreadyInQueue(TaskTrailError):
    """Raised when a task is added to a queue that already holds it."""


class DefaultQueueExists(TaskTrailError):
    """Raised when a second queue would carry the `default` system tag."""


def parse_queue_id(queue_id: Any) -> UUID:
    """Queue ids are 32 hex digits (as task ids); anything else names no queue."""
    if not is_queue_id(queue_id):
        raise QueueNotFound(f"Invalid queue id: {queue_id}")
    return UUID(hex=queue_id)


def is_queue_id(text: Any) -> bool:
    if not isinstance(text, str) or len(text) != 32:
        return False
    try:
        UUID(hex=text)
    except ValueError:
        return False
    return True


def name_key(name: str) -> UUID:
    """The id of the index aggregate that holds a queue name."""
    return uuid5(TASKTRAIL_NAMESPACE, f"queue-name:{name}")


DEFAULT_QUEUE_KEY = uuid5(TASKTRAIL_NAMESPACE, "queue-system-tag:default")


class Queue(Aggregate):
    class Event(Aggregate.Event):
        actor: str

        @property
        def at(self) -> str:
            return iso_time(self.timestamp)

        def apply(self, queue: Queue) -> None:
            queue.last_update = self.at

    class Created(Event, Aggregate.Created):
        name: str
        tags: list[str]
        system_tags: list[str]
        metadata: dict[str, Any]

        def apply(self, queue: Queue) -> None:
            super().apply(queue)
            queue.name = self.name
            queue.tags = list(self.tags)
            queue.system_tags = list(self.system_tags)
            queue.metadata = dict(self.metadata)
            queue.user = self.actor
            queue.created = self.at

    class Updated(Event):
        """New values for the fields given (name, tags, system_tags, metadata)."""

        fields: dict[str, Any]

        def apply(self, queue: Queue) -> None:
            super().apply(queue)
            for key, value in self.fields.items():
                setattr(queue, key, value)

    class TaskAdded(Event):
        """The task joined the queue at `position` (None: at the back)."""

        task: str
        position: int | None

        def apply(self, queue: Queue) -> None:
            super().apply(queue)
            queue._insert(self.task, self.position)
            queue.added[self.task] = self.at

    class TaskTaken(Event):
        """`queues.get_next_task` popped the task (for `worker`, who claimed it in the same transaction)."""

        task: str
        worker: str | None

        def apply(self, queue: Queue) -> None:
            super().apply(queue)
            queue._discard(self.task)

    class TaskRemoved(Event):
        """The entry left the queue without being run: `reason` says why."""

        task: str
        reason: str

        def apply(self, queue: Queue) -> None:
            super().apply(queue)
            queue._discard(self.task)

    class TaskMoved(Event):
        task: str
        position: int

        def apply(self, queue: Queue) -> None:
            super().apply(queue)
            queue.order.remove(self.task)
            queue.order.insert(self.position, self.task)

    class TaskPassedOver(Event):
        """A worker left the task in the queue: its environment lacks what the task requires."""

        task: str
        worker: str
        missing: list[str]

        def apply(self, queue: Queue) -> None:
            super().apply(queue)
            waiting = [item for item in queue.waiting.get(self.task, []) if item["worker"] != self.worker]
            waiting.append({"worker": self.worker, "missing": list(self.missing)})
            queue.waiting[self.task] = waiting

    class Cleared(Event):
        tasks: list[str]

        def apply(self, queue: Queue) -> None:
            super().apply(queue)
            queue.order, queue.added, queue.waiting = [], {}, {}

    class Deleted(Event):
        tasks: list[str]

        def apply(self, queue: Queue) -> None:
            super().apply(queue)
            queue.order, queue.added, queue.waiting = [], {}, {}
            queue.deleted = True

    def __init__(self) -> None:
        self.name = ""
        self.tags: list[str] = []
        self.system_tags: list[str] = []
        self.metadata: dict[str, Any] = {}
        self.user = ""
        self.created = ""
        self.last_update = ""
        self.order: list[str] = []  # task ids, head first (plain strings: cheap to copy from the cache)
        self.added: dict[str, str] = {}  # task id -> time it joined
        self.waiting: dict[str, list[dict[str, Any]]] = {}  # task id -> workers that passed it over, and why
        self.deleted = False

    # -- state helpers used by the events ------------------------------------------------------
    def _insert(self, task: str, position: int | None) -> None:
        if position is None:
            self.order.append(task)
        else:
            self.order.insert(position, task)

    def _discard(self, task: str) -> None:
        self.order.remove(task)
        self.added.pop(task, None)
        self.waiting.pop(task, None)

    # -- reading -----------------------------------------------------------------------------
    @property
    def queue_id(self) -> str:
        return self.id.hex

    @property
    def is_default(self) -> bool:
        return DEFAULT_TAG in self.system_tags

    def __contains__(self, task: str) -> bool:
        return task in self.added

    def position_of(self, task: str) -> int:
        if task not in self.added:
            raise TaskNotInQueue(f"Invalid queue id or task not in queue: queue={self.queue_id} task={task}")
        return self.order.index(task)

    def entries(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Entries in order; `waiting` tells which workers left a task, lacking what it requires."""
        tasks = self.order if limit is None else self.order[:limit]
        entries: list[dict[str, Any]] = []
        for task in tasks:
            entry: dict[str, Any] = {"task": task, "added": self.added[task]}
            if self.waiting.get(task):
                entry["waiting"] = [dict(item) for item in self.waiting[task]]
            entries.append(entry)
        return entries

    def document(self, max_entries: int | None = None) -> dict[str, Any]:
        """The queue as `queues.get_by_id` answers it."""
        return {
            "id": self.queue_id,
            "name": self.name,
            "user": self.user,
            "created": self.created,
            "last_update": self.last_update,
            "tags": list(self.tags),
            "system_tags": list(self.system_tags),
            "metadata": dict(self.metadata),
            "entries": self.entries(max_entries),
            "num_entries": len(self.order),
        }

    # -- commands ----------------------------------------------------------------------------
    @classmethod
    def create(cls, queue_id: UUID, name: str, actor: str, tags: list[str] | None = None,
               system_tags: list[str] | None = None, metadata: dict[str, Any] | None = None) -> Queue:
        return cls._create(cls.Created, id=queue_id, name=name, tags=list(tags or []),
                           system_tags=list(system_tags or []), metadata=dict(metadata or {}), actor=actor)

    def check_exists(self) -> None:
        if self.deleted:
            raise QueueNotFound(f"Invalid queue id: {self.queue_id} (deleted)")

    def update(self, actor: str, **fields: Any) -> None:
        self.check_exists()
        changed = {key: value for key, value in fields.items() if getattr(self, key) != value}
        if changed:
            self.trigger_event(self.Updated, fields=changed, actor=actor)

    def add(self, task: str, actor: str, front: bool = False) -> None:
        self.check_exists()
        if task in self:
            raise TaskAlreadyInQueue(f"Task already queued: task={task} queue={self.queue_id}")
        self.trigger_event(self.TaskAdded, task=task, position=0 if front else None, actor=actor)

    def take(self, task: str, actor: str, worker: str | None = None) -> None:
        self.position_of(task)
        self.trigger_event(self.TaskTaken, task=task, worker=worker, actor=actor)

    def remove(self, task: str, actor: str, reason: str) -> None:
        self.position_of(task)
        self.trigger_event(self.TaskRemoved, task=task, reason=reason, actor=actor)

    def move(self, task: str, actor: str, position: int) -> int:
        """Move the entry to `position` (clamped to the queue); answer where it ended up."""
        current = self.position_of(task)
        position = max(0, min(position, len(self.order) - 1))
        if position != current:
            self.trigger_event(self.TaskMoved, task=task, position=position, actor=actor)
        return position

    def pass_over(self, task: str, worker: str, missing: list[str], actor: str) -> None:
        """Record why `worker` left the task, once per reason (repeated polls add nothing)."""
        self.position_of(task)
        known = {item["worker"]: item["missing"] for item in self.waiting.get(task, [])}
        if known.get(worker) != missing:
            self.trigger_event(self.TaskPassedOver, task=task, worker=worker, missing=list(missing), actor=actor)

    def clear(self, actor: str) -> list[str]:
        self.check_exists()
        tasks = list(self.order)
        if tasks:
            self.trigger_event(self.Cleared, tasks=tasks, actor=actor)
        return tasks

    def delete(self, actor: str, force: bool = False) -> list[str]:
        self.check_exists()
        if self.order and not force:
            raise QueueNotEmpty(f"Queue is not empty, use force=true to delete: queue={self.queue_id}")
        tasks = list(self.order)
        self.trigger_event(self.Deleted, tasks=tasks, actor=actor)
        return tasks


def timeline(events: list[Queue.Event]) -> list[tuple[float, int, float]]:
    """(time, queue length, average waiting seconds of the entries) after each event of one queue."""
    samples: list[tuple[float, int, float]] = []
    queue: Queue | None = None
    for event in events:
        queue = event.mutate(queue)
        assert queue is not None
        now = event.timestamp.timestamp()
        if queue.order:
            waits = [now - datetime.fromisoformat(queue.added[task]).timestamp() for task in queue.order]
            average = sum(waits) / len(waits)
        else:
            average = 0.0
        samples.append((now, len(queue.order), average))
    return samples

