"""The `tasktrail` command: `up` for everything, or one component per process."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tasktrail.config import load_settings
from tasktrail.processes import run_until_signalled


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tasktrail", description="Event-sourced task orchestration.")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run everything on this machine (the embedded default)")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8008)
    up.add_argument("--data-dir", type=Path, default=Path(os.environ.get("TASKTRAIL_DATA_DIR", ".tasktrail")))
    up.add_argument("--queue", action="append", dest="queues", help="queue(s) of the local worker")

    gateway = commands.add_parser("gateway", help="serve the HTTP API")
    gateway.add_argument("--host", default="127.0.0.1")
    gateway.add_argument("--port", type=int, default=8008)

    commands.add_parser("migrate", help="create the event store's tables (once, before the other parts)")
    commands.add_parser("verify", help="rebuild every view from the log and compare it with the live views")
    commands.add_parser("relay", help="publish the event log to NATS JetStream")
    commands.add_parser("projector", help="keep the MongoDB views up to date")
    commands.add_parser("monitor", help="declare silent workers lost and end their runs "
                                        "(timeout: $TASKTRAIL_WORKER_TIMEOUT seconds)")

    worker = commands.add_parser("worker", help="run queued tasks")
    worker.add_argument("--queue", action="append", dest="queues", help="queue name, in priority order")
    worker.add_argument("--name", default=None, help="worker id (default host:pid)")
    worker.add_argument("--api", default=None, help="gateway URL (default $TASKTRAIL_API_URL)")
    return parser.parse_args(argv)


def run_verify(settings) -> int:
    from pymongo import MongoClient

    from tasktrail.application import TaskTrail
    from tasktrail.verify import verify

    app = TaskTrail(settings.event_store_env)
    client = MongoClient(settings.mongodb_uri)
    try:
        found = verify(app, client, settings.mongodb_database)
    finally:
        client.close()
        app.close()
    for difference in found:
        print(difference)
    print("views match the event log" if not found else f"{len(found)} differences")
    return 1 if found else 0


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    if arguments.command == "up":
        from tasktrail.launcher import up

        return up(arguments.host, arguments.port, arguments.data_dir, arguments.queues or ["default"])

    settings = load_settings()
    if arguments.command == "migrate":
        from tasktrail.application import TaskTrail

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        TaskTrail(dict(settings.event_store_env, CREATE_TABLE="y")).close()
        print("event store tables ready")
    elif arguments.command == "verify":
        return run_verify(settings)
    elif arguments.command == "gateway":
        from tasktrail.services import run_gateway

        run_until_signalled(lambda stop: run_gateway(settings, arguments.host, arguments.port, stop))
    elif arguments.command == "relay":
        from tasktrail.services import run_relay

        run_until_signalled(lambda stop: run_relay(settings, stop))
    elif arguments.command == "projector":
        from tasktrail.services import run_projector

        run_until_signalled(lambda stop: run_projector(settings, stop))
    elif arguments.command == "monitor":
        from tasktrail.liveness import run_monitor

        run_until_signalled(lambda stop: run_monitor(settings, stop))
    elif arguments.command == "worker":
        from workers.worker import run_worker

        api_url = arguments.api or settings.api_url
        queues = arguments.queues or ["default"]
        run_until_signalled(lambda stop: run_worker(api_url, queues, arguments.name, stop))
    return 0


if __name__ == "__main__":
    sys.exit(main())
