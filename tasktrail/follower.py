"""Follows the event store's notification log in order; the same loop for SQLite and PostgreSQL.

SQLite recorders cannot push, so the follower reads `select_notifications` after its position
whenever it is woken (by a NATS "log appended" signal) or when its poll interval runs out.
PostgreSQL ids may have gaps: "next" is always "the first id greater than my position".
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from eventsourcing.persistence import Notification

from tasktrail.application import TaskTrail

BatchHandler = Callable[[Sequence[Notification]], Awaitable[None]]


class LogFollower:
    def __init__(self, app: TaskTrail, handle_batch: BatchHandler, batch_size: int = 500,
                 poll_interval: float = 1.0) -> None:
        self.app = app
        self.handle_batch = handle_batch
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.position = 0
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        self._wakeup.set()

    async def catch_up(self) -> int:
        """Handle every notification after the position; return how many were handled."""
        handled = 0
        while True:
            batch = await asyncio.to_thread(
                self.app.recorder.select_notifications,
                self.position,
                self.batch_size,
                inclusive_of_start=False,
            )
            if not batch:
                return handled
            await self.handle_batch(batch)
            self.position = batch[-1].id
            handled += len(batch)

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            self._wakeup.clear()
            await self.catch_up()
            waits = [asyncio.ensure_future(self._wakeup.wait()), asyncio.ensure_future(stopping.wait())]
            await asyncio.wait(waits, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waits:
                waiter.cancel()
