"""Commands per second through the gateway's group-commit writer, in one process, no HTTP.

    .venv/bin/python bench/group_commit.py [--clients 32] [--tasks 2000] [--store sqlite|postgres]

Each simulated client creates tasks and takes each through enqueue, claim and complete (4 commands).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from uuid import uuid4

from domain.task import Task
from gateway.group_commit import GroupCommitWriter, UnitOfWork
from tasktrail.application import TaskTrail


def store_env(store: str, folder: str) -> dict[str, str]:
    if store == "postgres":
        schema = f"bench_{uuid4().hex[:8]}"
        import psycopg

        with psycopg.connect("host=127.0.0.1 dbname=test user=postgres", autocommit=True) as connection:
            connection.execute(f"CREATE SCHEMA {schema}")
        return {"PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": "test",
                "POSTGRES_HOST": "127.0.0.1", "POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": "",
                "POSTGRES_SCHEMA": schema, "AGGREGATE_CACHE_MAXSIZE": "10000"}
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": os.path.join(folder, "bench.sqlite"),
            "AGGREGATE_CACHE_MAXSIZE": "10000"}


async def client(writer: GroupCommitWriter, tasks: int) -> None:
    for _ in range(tasks):
        task_id = uuid4()

        def create(work: UnitOfWork) -> None:
            work.add(Task.create(task_id, {"name": "bench", "type": "training"}, "bench"))

        await writer.execute(create)
        for change in (lambda t: t.enqueue("default", "bench"), lambda t: t.claim("w"), lambda t: t.complete("w")):
            await writer.execute(lambda work, change=change: change(work.get_task(task_id.hex)))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        app = TaskTrail(store_env(arguments.store, folder))
        writer = GroupCommitWriter(app)
        writer.start()
        per_client = arguments.tasks // arguments.clients
        started = time.perf_counter()
        await asyncio.gather(*(client(writer, per_client) for _ in range(arguments.clients)))
        elapsed = time.perf_counter() - started
        writer.close()
        app.close()
    commands = per_client * arguments.clients * 4
    print(f"{arguments.store}: {commands} commands from {arguments.clients} clients in {elapsed:.2f}s = "
          f"{commands / elapsed:,.0f} commands/s; {writer.batches} batches "
          f"(mean {writer.commands / writer.batches:.1f} commands a batch)")


if __name__ == "__main__":
    asyncio.run(main())
