"""`QueueName`: the index aggregate that makes queue names (and the default queue) unique.

Its id is derived from the key it holds (`name_key(name)` or `DEFAULT_QUEUE_KEY`), so two commands
that claim the same key write the same aggregate: the second finds it taken or, in another
process, loses the optimistic-concurrency race of the save. Claiming and releasing are events,
so the index is part of the log like everything else, and a name freed by a deleted queue can be
claimed again.
"""
from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate


class QueueName(Aggregate):
    class Event(Aggregate.Event):
        actor: str

    class Created(Event, Aggregate.Created):
        key: str
        queue_id: str

        def apply(self, index: QueueName) -> None:
            index.key = self.key
            index.queue_id = self.queue_id

    class Claimed(Event):
        queue_id: str

        def apply(self, index: QueueName) -> None:
            index.queue_id = self.queue_id

    class Released(Event):
        def apply(self, index: QueueName) -> None:
            index.queue_id = None

    def __init__(self) -> None:
        self.key = ""
        self.queue_id: str | None = None

    @classmethod
    def create(cls, index_id: UUID, key: str, queue_id: str, actor: str) -> QueueName:
        return cls._create(cls.Created, id=index_id, key=key, queue_id=queue_id, actor=actor)

    @property
    def is_taken(self) -> bool:
        return self.queue_id is not None

    def claim(self, queue_id: str, actor: str) -> None:
        """Only a free key can be claimed; the caller checks `is_taken` to answer its own error."""
        assert not self.is_taken, "claim of a taken queue key"
        self.trigger_event(self.Claimed, queue_id=queue_id, actor=actor)

    def release(self, queue_id: str, actor: str) -> None:
        if self.queue_id == queue_id:
            self.trigger_event(self.Released, actor=actor)
