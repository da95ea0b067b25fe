"""Group commit: one writer thread saves the commands waiting at that moment in one transaction.

A lone request still gets one-command latency; under load, batches grow by themselves. Commands
on the same task in one batch apply in order to the same in-memory aggregate. When the batch's
save meets a concurrent writer (IntegrityError), its commands are retried one by one so only the
real loser is refused. A request is answered only after its transaction committed.
"""
from __future__ import annotations

import asyncio
import copy
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from domain.errors import InvalidStatusChange, TaskTrailError
from domain.task import Task
from tasktrail.application import TaskTrail

log = logging.getLogger(__name__)

# A command gets the task (None when creating) and returns the task to save.
Command = Callable[[Task | None], Task]


@dataclass
class Outcome:
    """What a committed command did: the task document after it, and the events it recorded."""

    task_id: str
    document: dict[str, Any]
    events: list[Task.Event]

    @property
    def updated(self) -> int:
        return 1 if self.events else 0


@dataclass
class _Pending:
    task_id: UUID
    command: Command
    creates: bool
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Outcome]
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

    async def execute(self, task_id: UUID, command: Command, creates: bool = False) -> Outcome:
        loop = asyncio.get_running_loop()
        pending = _Pending(task_id, command, creates, loop, loop.create_future())
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
        aggregates: dict[UUID, Task] = {}
        for pending in batch:
            self._apply(pending, aggregates)
        try:
            self.app.save(*aggregates.values())
        except IntegrityError:
            log.info("batch of %d met a concurrent writer; retrying one by one", len(batch))
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
        aggregates: dict[UUID, Task] = {}
        self._apply(pending, aggregates)
        if isinstance(pending.result, BaseException):
            return
        try:
            self.app.save(*aggregates.values())
        except IntegrityError:
            pending.result = InvalidStatusChange(
                "Task was changed by another request at the same time; reload and retry"
            )
        except Exception as error:
            pending.result = error

    def _apply(self, pending: _Pending, aggregates: dict[UUID, Task]) -> None:
        try:
            task = aggregates.get(pending.task_id)
            if task is None and not pending.creates:
                task = self.app.get_task(pending.task_id.hex)
            already_pending = len(task._pending_events) if task is not None else 0
            task = pending.command(task)
            aggregates[pending.task_id] = task
            new_events = list(task._pending_events[already_pending:])
            document = {"id": task.task_id, **copy.deepcopy(task.doc)}
            pending.result = Outcome(task.task_id, document, new_events)
        except TaskTrailError as refusal:
            pending.result = refusal
        except Exception as error:
            log.exception("command failed")
            pending.result = error

    def _answer(self, batch: list[_Pending]) -> None:
        if self.on_commit is not None:
            self.on_commit()
        for pending in batch:
            pending.loop.call_soon_threadsafe(_resolve, pending.future, pending.result)


def _resolve(future: asyncio.Future[Outcome], result: Outcome | BaseException | None) -> None:
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)  # type: ignore[arg-type]
