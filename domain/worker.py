"""The Worker aggregate: the registry's record of one worker, as events worth auditing.

Registering, unregistering and being declared lost are events: they say who could run tasks and
when, and a lost worker's events name the tasks that were failed because of it. Heartbeats
(`workers.status_report`: last seen, machine stats, current task) are not events. They arrive
every few seconds from every worker, carry nothing an audit needs beyond "it was alive", and
would soon outnumber every other event in the log; they are soft state kept beside the views
(gateway/worker_reports.py) and the liveness monitor turns their absence into the `Lost` event.
Only the running task's `last_worker_report` follows them, as a throttled `Task.WorkerReported`.
"""
from __future__ import annotations

from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.document import iso_time
from domain.errors import TaskTrailError
from domain.queue import TASKTRAIL_NAMESPACE

ACTIVE, UNREGISTERED, LOST = "active", "unregistered", "lost"


class WorkerNotRegistered(TaskTrailError):
    """Raised when a worker that is not registered asks to unregister."""


def worker_key(worker: str) -> UUID:
    """Worker ids are free text (host:pid, a name); the aggregate id is derived from it."""
    return uuid5(TASKTRAIL_NAMESPACE, f"worker:{worker}")


class Worker(Aggregate):
    class Event(Aggregate.Event):
        actor: str

        @property
        def at(self) -> str:
            return iso_time(self.timestamp)

    class Registered(Event):
        queues: list[str]
        tags: list[str]
        system_tags: list[str]

        def apply(self, worker: Worker) -> None:
            worker.state = ACTIVE
            worker.queues = list(self.queues)
            worker.tags = list(self.tags)
            worker.system_tags = list(self.system_tags)
            worker.register_time = self.at
            worker.user = self.actor

    class Created(Registered, Aggregate.Created):
        worker: str

        def apply(self, worker: Worker) -> None:
            worker.worker = self.worker
            super().apply(worker)

    class Unregistered(Event):
        def apply(self, worker: Worker) -> None:
            worker.state = UNREGISTERED

    class Lost(Event):
        """The worker stopped reporting; `tasks` are the runs that ended (failed or re-queued) with it."""

        reason: str
        last_report_time: str | None
        tasks: list[str]

        def apply(self, worker: Worker) -> None:
            worker.state = LOST

    def __init__(self) -> None:
        self.worker = ""
        self.state = ACTIVE
        self.queues: list[str] = []
        self.tags: list[str] = []
        self.system_tags: list[str] = []
        self.register_time = ""
        self.user = ""

    @classmethod
    def register_new(cls, worker: str, actor: str, queues: list[str], tags: list[str],
                     system_tags: list[str]) -> Worker:
        return cls._create(cls.Created, id=worker_key(worker), worker=worker, queues=list(queues),
                           tags=list(tags), system_tags=list(system_tags), actor=actor)

    @property
    def is_active(self) -> bool:
        return self.state == ACTIVE

    def register(self, actor: str, queues: list[str], tags: list[str], system_tags: list[str]) -> None:
        """Registering again (a restart, a comeback after being lost) is recorded each time."""
        self.trigger_event(self.Registered, queues=list(queues), tags=list(tags),
                           system_tags=list(system_tags), actor=actor)

    def unregister(self, actor: str) -> None:
        if self.state != UNREGISTERED:
            self.trigger_event(self.Unregistered, actor=actor)

    def lose(self, actor: str, reason: str, last_report_time: str | None, tasks: list[str]) -> None:
        if self.is_active:
            self.trigger_event(self.Lost, reason=reason, last_report_time=last_report_time,
                               tasks=list(tasks), actor=actor)
