"""Group commit: one writer thread saves the commands waiting at that moment in one transaction.

A lone request still gets one-command latency; under load, batches grow by themselves. A command
works on aggregates through a `UnitOfWork`; commands on the same aggregate in one batch apply in
order to the same in-memory object. When the batch's save meets a concurrent writer
(IntegrityError), or a refused command had already changed an aggregate, the batch's commands are
run again one by one on fresh aggregates, so only the real loser is refused. A request is answered
only after its transaction committed.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from domain.errors import InvalidStatusChange, TaskTrailError
from domain.task import Task, parse_task_id
from tasktrail.application import TaskTrail

log = logging.getLogger(__name__)

R = TypeVar("R")


class UnitOfWork:
    """The aggregates one batch works on: loaded once, saved together."""

    def __init__(self, app: TaskTrail) -> None:
        self.app = app
        self.aggregates: dict[UUID, Aggregate] = {}

    def get_task(self, task_id: str) -> Task:
        return self.get(parse_task_id(task_id), lambda _: self.app.get_task(task_id))  # type: ignore[return-value]

    def get(self, aggregate_id: UUID, load: Callable[[UUID], Aggregate]) -> Aggregate:
        """An aggregate of this batch, loaded with `load` the first time (which raises if unknown)."""
        if aggregate_id not in self.aggregates:
            self.aggregates[aggregate_id] = load(aggregate_id)
        return self.aggregates[aggregate_id]

    def add(self, aggregate: Aggregate) -> None:
        self.aggregates[aggregate.id] = aggregate

    def pending_counts(self) -> dict[UUID, int]:
        return {key: len(aggregate._pending_events) for key, aggregate in self.aggregates.items()}

    def events_since(self, counts: dict[UUID, int]) -> list[Any]:
        return [
            event
            for key, aggregate in self.aggregates.items()
            for event in aggregate._pending_events[counts.get(key, 0):]
        ]

    def save(self) -> None:
        self.app.save(*self.aggregates.values())


@dataclass
class Outcome(Generic[R]):
    """What a committed command answered, and the events it recorded."""

    result: R
    events: list[Any]

    @property
    def updated(self) -> int:
        return 1 if self.events else 0


Command = Callable[[UnitOfWork], R]


@dataclass
class _Pending:
    command: Command
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    result: Outcome | BaseException | None = field(default=None)


class GroupCommitWriter:
    def __init__(self, app: TaskTrail, on_commit: Callable[[], None] | None = None,
                 max_batch: int = 1000) -> None:
        self.app = app
        self.on_commit = on_commit
        self.max_batch = max_batch
        self._inbox: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self.batches = 0
        self.commands = 0

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._inbox.put(None)
        self._thread.join(timeout=10)

    async def execute(self, command: Command[R]) -> Outcome[R]:
        loop = asyncio.get_running_loop()
        pending = _Pending(command, loop, loop.create_future())
        self._inbox.put(pending)
        return await pending.future

    # -- the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._inbox.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Pending]) -> None:
        work = UnitOfWork(self.app)
        clean = all(self._apply(pending, work) for pending in batch)
        try:
            if not clean:
                raise _RunAlone
            work.save()
        except (IntegrityError, _RunAlone):
            if len(batch) > 1 or clean:
                log.info("batch of %d runs again one by one", len(batch))
            for pending in batch:
                self._commit_alone(pending)
        except Exception as error:  # the store is down: every command in the batch fails
            log.exception("saving a batch failed")
            for pending in batch:
                pending.result = error
        self.batches += 1
        self.commands += len(batch)
        self._answer(batch)

    def _commit_alone(self, pending: _Pending) -> None:
        work = UnitOfWork(self.app)
        if not self._apply(pending, work) or isinstance(pending.result, BaseException):
            return
        try:
            work.save()
        except IntegrityError:
            pending.result = InvalidStatusChange(
                "The task was changed by another request at the same time; reload and retry"
            )
        except Exception as error:
            pending.result = error

    def _apply(self, pending: _Pending, work: UnitOfWork) -> bool:
        """Run one command; False when it failed after changing an aggregate (the batch is unsafe)."""
        counts = work.pending_counts()
        try:
            result = pending.command(work)
            pending.result = Outcome(result, work.events_since(counts))
            return True
        except TaskTrailError as refusal:
            pending.result = refusal
        except Exception as error:
            log.exception("command failed")
            pending.result = error
        return not work.events_since(counts)

    def _answer(self, batch: list[_Pending]) -> None:
        if self.on_commit is not None:
            self.on_commit()
        for pending in batch:
            pending.loop.call_soon_threadsafe(_resolve, pending.future, pending.result)


class _RunAlone(Exception):
    """A refused command left events behind: the batch must run again command by command."""


def _resolve(future: asyncio.Future, result: Outcome | BaseException | None) -> None:
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
