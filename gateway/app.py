"""Builds the gateway application: routes, middleware and the long-lived resources it holds."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import nats
from aiohttp import web

from gateway.auth import auth_context, authenticate
from gateway.call import app_key, settings_key, views_key, writer_key
from gateway.dispatch import envelope_errors
from gateway.group_commit import GroupCommitWriter
from gateway.routes import setup_routes
from projections import mongo
from tasktrail.application import TaskTrail
from tasktrail.config import Settings

log = logging.getLogger(__name__)


async def event_store_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await asyncio.to_thread(TaskTrail, settings.event_store_env)
    nc = await nats.connect(settings.nats_url, max_reconnect_attempts=-1, name="tasktrail-gateway")
    loop = asyncio.get_running_loop()

    def announce_commit() -> None:
        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(nc.publish(settings.subjects.log_appended, b"")))

    writer = GroupCommitWriter(store, on_commit=announce_commit)
    writer.start()
    app[app_key] = store
    app[writer_key] = writer
    yield
    await asyncio.to_thread(writer.close)
    await nc.drain()
    store.close()


async def views_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    app[views_key] = await asyncio.to_thread(mongo.connect, settings.mongodb_uri, settings.mongodb_database)
    yield
    mongo.disconnect()


def init_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[envelope_errors, authenticate], client_max_size=64 * 1024 * 1024)
    app[settings_key] = settings
    app.cleanup_ctx.append(auth_context)
    app.cleanup_ctx.append(event_store_context)
    app.cleanup_ctx.append(views_context)
    setup_routes(app)
    return app
