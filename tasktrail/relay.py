"""The relay (outbox): publishes every stored event to JetStream, message id = log position.

The relay keeps no position of its own: it reads it back from the last message in the stream,
so a crash between "published" and any bookkeeping cannot lose or double an event, and
JetStream's duplicate window drops a re-published batch.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from eventsourcing.persistence import Notification
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from tasktrail.application import TaskTrail
from tasktrail.config import Subjects
from tasktrail.event_payload import event_payload, event_subject

log = logging.getLogger(__name__)

MESSAGE_ID_HEADER = "Nats-Msg-Id"
PUBLISH_WINDOW = 256


async def ensure_events_stream(js: JetStreamContext, subjects: Subjects) -> None:
    config = StreamConfig(
        name=subjects.events_stream,
        subjects=[f"{subjects.events_prefix}.>"],
        duplicate_window=600.0,
    )
    try:
        await js.stream_info(subjects.events_stream)
    except NotFoundError:
        await js.add_stream(config)


class Relay:
    def __init__(self, app: TaskTrail, js: JetStreamContext, subjects: Subjects) -> None:
        self.app = app
        self.js = js
        self.subjects = subjects

    async def published_position(self) -> int:
        """The log position of the last event in the stream (0 when it is empty)."""
        info = await self.js.stream_info(self.subjects.events_stream)
        if info.state.messages == 0:
            return 0
        message = await self.js.get_msg(self.subjects.events_stream, seq=info.state.last_seq)
        return int((message.headers or {}).get(MESSAGE_ID_HEADER, 0))

    async def publish(self, notifications: Sequence[Notification]) -> None:
        for start in range(0, len(notifications), PUBLISH_WINDOW):
            window = notifications[start : start + PUBLISH_WINDOW]
            await asyncio.gather(*(self._publish_one(n) for n in window))

    async def _publish_one(self, notification: Notification) -> None:
        event = self.app.mapper.to_domain_event(notification)
        await self.js.publish(
            event_subject(self.subjects, event),
            event_payload(notification.id, event),
            stream=self.subjects.events_stream,
            headers={MESSAGE_ID_HEADER: str(notification.id)},
        )
