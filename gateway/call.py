"""What an endpoint receives: the parsed body, who is calling, and the services it may use."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pymongo.database import Database

from gateway.group_commit import GroupCommitWriter
from gateway.identity import IDENTITY_KEY, Identity
from tasktrail.application import TaskTrail
from tasktrail.config import Settings

app_key = web.AppKey("tasktrail_app", TaskTrail)
writer_key = web.AppKey("group_commit_writer", GroupCommitWriter)
views_key = web.AppKey("views_database", Database)
settings_key = web.AppKey("settings", Settings)
endpoints_key = web.AppKey("endpoints", dict)


@dataclass
class Call:
    request: web.Request
    body: dict[str, Any]
    actor: str  # the authenticated user's id: the actor of every event this call records

    @property
    def identity(self) -> Identity:
        """Who proved themselves on this call (set by the `authenticate` middleware)."""
        return self.request[IDENTITY_KEY]

    @property
    def app(self) -> TaskTrail:
        return self.request.app[app_key]

    @property
    def writer(self) -> GroupCommitWriter:
        return self.request.app[writer_key]

    @property
    def views(self) -> Database:
        return self.request.app[views_key]


Endpoint = Callable[[Call], Awaitable[dict[str, Any]]]
