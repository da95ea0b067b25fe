"""tasks.get_all on 100,000 tasks in the embedded MongoDB server (nx-27017).

    .venv/bin/python bench/get_all_100k.py [--tasks 100000] [--repeat 20]

Seeds the tasks view with documents made by the real Task aggregate (kept in bench/.data between
runs), then times the query path of `tasks.get_all` (filter building + MongoDB + shaping) for a
status + tag + name-regex filter, ordered by -last_update, page_size 50.
"""
from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path
from uuid import uuid4

import pymongo

from domain.task import Task
from gateway.task_queries import build_task_query, find_tasks
from projections import task_view
from projections.mongo import connect
from projections.task_view import VERSION_FIELD
from tasktrail.embedded_servers import start_mongo_server, stop_process

DATA = Path(__file__).parent / ".data"
WORDS = ["resnet", "bert", "yolo", "gpt", "unet", "vit", "lstm", "gan"]
TAGS = ["nightly", "baseline", "ablation", "prod", "debug"]


def make_document(number: int) -> dict:
    task = Task.create(uuid4(), {
        "name": f"{random.choice(WORDS)}-{random.choice(WORDS)}-{number}",
        "type": "training",
        "project": f"project-{number % 50}",
        "tags": random.sample(TAGS, 2),
    }, "bench")
    roll = random.random()
    if roll < 0.7:
        task.enqueue("default", "bench")
        if roll < 0.5:
            task.claim("w")
            if roll < 0.3:
                task.complete("w")
    return {"_id": task.task_id, **task.doc, VERSION_FIELD: task.version}


def seed(collection, count: int) -> None:
    have = collection.estimated_document_count()
    batch = []
    for number in range(have, count):
        batch.append(make_document(number))
        if len(batch) == 2000:
            collection.insert_many(batch)
            batch.clear()
            print(f"  seeded {number + 1}", end="\r", flush=True)
    if batch:
        collection.insert_many(batch)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    arguments = parser.parse_args()
    DATA.mkdir(exist_ok=True)
    server, uri = start_mongo_server(DATA)
    try:
        database = connect(uri, "bench")
        collection = database[task_view.COLLECTION]
        seed(collection, arguments.tasks)
        body = {"status": ["in_progress", "completed"], "tags": ["nightly"], "name": "^resnet",
                "order_by": ["-last_update"], "page_size": 50, "page": 0,
                "only_fields": ["id", "name", "status", "tags", "last_update"]}
        timings = []
        for _ in range(arguments.repeat):
            started = time.perf_counter()
            tasks = find_tasks(collection, build_task_query(body))
            timings.append((time.perf_counter() - started) * 1000)
        print(f"get_all over {collection.estimated_document_count():,} tasks: {len(tasks)} answers, "
              f"median {statistics.median(timings):.1f} ms, max {max(timings):.1f} ms")
    finally:
        stop_process(server)


if __name__ == "__main__":
    main()
