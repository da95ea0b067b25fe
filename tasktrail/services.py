"""The long-running components: gateway, relay and projector, each one coroutine until stopped."""
from __future__ import annotations

import asyncio
import logging

import nats
from aiohttp import web

from gateway.app import init_app
from projections import mongo
from projections.projector import Projector
from tasktrail.application import TaskTrail
from tasktrail.config import Settings, Subjects
from tasktrail.follower import LogFollower
from tasktrail.relay import Relay, ensure_events_stream

log = logging.getLogger(__name__)


async def connect_nats(settings: Settings, name: str) -> nats.NATS:
    return await nats.connect(settings.nats_url, name=name, max_reconnect_attempts=-1)


async def follow_with_wakeups(
    nc: nats.NATS, subjects: Subjects, follower: LogFollower, stopping: asyncio.Event
) -> None:
    async def on_appended(_message) -> None:
        follower.wake()

    subscription = await nc.subscribe(subjects.log_appended, cb=on_appended)
    try:
        await follower.run(stopping)
    finally:
        await subscription.unsubscribe()


async def run_gateway(settings: Settings, host: str, port: int, stopping: asyncio.Event) -> None:
    runner = web.AppRunner(init_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("gateway listening on http://%s:%s", host, port)
    await stopping.wait()
    await runner.cleanup()


async def run_relay(settings: Settings, stopping: asyncio.Event) -> None:
    app = await asyncio.to_thread(TaskTrail, settings.event_store_env)
    nc = await connect_nats(settings, "tasktrail-relay")
    js = nc.jetstream()
    await ensure_events_stream(js, settings.subjects)
    relay = Relay(app, js, settings.subjects)
    follower = LogFollower(app, relay.publish)
    follower.position = await relay.published_position()
    log.info("relay resuming after log position %s", follower.position)
    try:
        await follow_with_wakeups(nc, settings.subjects, follower, stopping)
    finally:
        await nc.drain()
        app.close()


async def run_projector(settings: Settings, stopping: asyncio.Event) -> None:
    app = await asyncio.to_thread(TaskTrail, settings.event_store_env)
    database = await asyncio.to_thread(mongo.connect, settings.mongodb_uri, settings.mongodb_database)
    projector = Projector(app, database)

    async def project(batch) -> None:
        await asyncio.to_thread(projector.apply, batch)

    follower = LogFollower(app, project)
    follower.position = await asyncio.to_thread(projector.load_position)
    log.info("projector resuming after log position %s", follower.position)
    nc = await connect_nats(settings, "tasktrail-projector")
    try:
        await follow_with_wakeups(nc, settings.subjects, follower, stopping)
    finally:
        await nc.drain()
        mongo.disconnect()
        app.close()
