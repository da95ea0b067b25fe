"""The `queues.*` service, and `tasks.enqueue` / `tasks.dequeue`, which change a task and a queue together.

Commands run through the group commit (gateway/queue_work.py does the work on the aggregates).
`get_by_id`, `peek_task` and `get_num_entries` read the Queue aggregate (read your own write);
`get_all` reads the `queues` view; `get_queue_metrics` replays the queues' events.

TaskTrail extensions, beside clearml-server's API:
- `queues.get_next_task` with `worker` also claims the task (`Task.Started`) in the same
  transaction, and answers the task document; with `environment` (names of the variables set
  where the worker runs) it skips tasks whose requirements that environment does not meet.
- `queues.get_or_create` answers the id of a queue by name, creating it when missing.
- `tasks.enqueue` accepts a queue name in `queue` when it is not a queue id, and `front: true`.
- `queues.remove_task` returns the task to its status before enqueueing unless
  `update_task_status` is false, so a task never sits queued outside every queue by accident.
"""
from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import Callable
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from pymongo.collection import Collection

from domain.document import apply_changes
from domain.queue import Queue, QueueNotFound, parse_queue_id, timeline
from domain.task import Task
from gateway import queue_work
from gateway.call import Call, Endpoint
from gateway.errors import invalid_field, missing_field
from gateway.group_commit import Outcome, UnitOfWork
from gateway.request import (
    optional_bool,
    optional_int,
    optional_string,
    optional_string_list,
    required_string,
)
from projections import queue_view

MAX_PAGE_SIZE = 500
MAX_PATTERN_LENGTH = 200


# -- reading requests --------------------------------------------------------------------------
def optional_object(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid_field(f"{key} must be an object")
    return copy.deepcopy(value)


def metadata_field(body: dict[str, Any]) -> dict[str, Any] | None:
    """Queue metadata: {key: {key, type, value}}; a list of such items is accepted too."""
    value = body.get("metadata")
    if value is None:
        return None
    if isinstance(value, list):
        items = value
    elif isinstance(value, dict):
        items = [{"key": key, **item} if isinstance(item, dict) else {"key": key, "value": item}
                 for key, item in value.items()]
    else:
        raise invalid_field("metadata must be an object")
    metadata: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str) or not item["key"]:
            raise invalid_field("each metadata item needs a string key")
        metadata[item["key"]] = {"key": item["key"], "type": item.get("type"), "value": item.get("value")}
    return metadata


def task_changes(outcome: Outcome) -> dict[str, Any]:
    """The task fields a command changed (its Task events), nested as clearml-server answers them."""
    fields: dict[str, Any] = {}
    for event in outcome.events:
        if isinstance(event, Task.Event):
            apply_changes(fields, event.changes())
    return fields


def task_answer(outcome: Outcome, key: str) -> dict[str, Any]:
    updated = 1 if any(isinstance(event, Task.Event) for event in outcome.events) else 0
    return {key: updated, "updated": updated, "fields": task_changes(outcome)}


def status_request(call: Call) -> tuple[str, str]:
    return optional_string(call.body, "status_reason"), optional_string(call.body, "status_message")


async def on_queue(call: Call, change: Callable[[UnitOfWork, Queue], Any]) -> Outcome:
    """Run `change` on the queue named by the call's `queue` field, through the group commit."""
    queue_id = required_string(call.body, "queue")

    def command(work: UnitOfWork) -> Any:
        return change(work, queue_work.get_queue(work, queue_id))

    return await call.writer.execute(command)


def load_queue(call: Call, queue_id: str) -> Queue:
    """The queue as the event store has it (blocking: call it in a thread)."""
    try:
        queue = call.app.repository.get(parse_queue_id(queue_id))
    except AggregateNotFoundError:
        raise QueueNotFound(f"Invalid queue id: {queue_id}") from None
    if not isinstance(queue, Queue):
        raise QueueNotFound(f"Invalid queue id: {queue_id}")
    queue.check_exists()
    return queue


async def read_queue(call: Call) -> Queue:
    return await asyncio.to_thread(load_queue, call, required_string(call.body, "queue"))


# -- tasks.enqueue / tasks.dequeue ---------------------------------------------------------------
async def enqueue(call: Call) -> dict[str, Any]:
    """To `queue` (an id), else `queue_name` (created on demand), else the default queue."""
    task_id = required_string(call.body, "task")
    queue_ref = optional_string(call.body, "queue") or None
    queue_name = optional_string(call.body, "queue_name") or None
    reason, message = status_request(call)
    force = optional_bool(call.body, "force")
    front = optional_bool(call.body, "front")

    def command(work: UnitOfWork) -> str:
        task = work.get_task(task_id)
        queue_work.check_enqueue(task, force)
        queue = queue_work.resolve_queue(work, queue_ref, queue_name, call.actor)
        queue_work.enqueue_task(work, task, queue, call.actor, reason, message, force=force, front=front)
        return queue.queue_id

    outcome = await call.writer.execute(command)
    return {**task_answer(outcome, "queued"), "queue": outcome.result}


async def dequeue(call: Call) -> dict[str, Any]:
    task_id = required_string(call.body, "task")
    new_status = optional_string(call.body, "new_status") or None
    reason, message = status_request(call)

    def command(work: UnitOfWork) -> None:
        task = work.get_task(task_id)
        queue_work.dequeue_task(work, task, call.actor, new_status, reason, message)

    return task_answer(await call.writer.execute(command), "dequeued")


# -- queues: create, read, update, delete ----------------------------------------------------------
async def create(call: Call) -> dict[str, Any]:
    name = required_string(call.body, "name")
    tags = optional_string_list(call.body, "tags") or []
    system_tags = optional_string_list(call.body, "system_tags") or []
    metadata = metadata_field(call.body) or {}

    def command(work: UnitOfWork) -> str:
        return queue_work.create_queue(work, name, call.actor, tags, system_tags, metadata).queue_id

    return {"id": (await call.writer.execute(command)).result}


async def get_or_create(call: Call) -> dict[str, Any]:
    """TaskTrail: the id of the queue called `name`, created when there is none (workers use it)."""
    name = required_string(call.body, "name")

    def command(work: UnitOfWork) -> tuple[str, bool]:
        queue, created = queue_work.queue_named(work, name, call.actor)
        return queue.queue_id, created

    queue_id, created = (await call.writer.execute(command)).result
    return {"id": queue_id, "name": name, "created": created}


async def get_by_id(call: Call) -> dict[str, Any]:
    max_entries = optional_int(call.body, "max_task_entries", minimum=1)
    queue = await read_queue(call)
    return {"queue": queue.document(max_entries)}


async def get_default(call: Call) -> dict[str, Any]:
    def command(work: UnitOfWork) -> tuple[str, str]:
        queue = queue_work.default_queue(work, call.actor)
        return queue.queue_id, queue.name

    queue_id, name = (await call.writer.execute(command)).result
    return {"id": queue_id, "name": name}


async def update(call: Call) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if call.body.get("name") is not None:
        fields["name"] = required_string(call.body, "name")
    for key in ("tags", "system_tags"):
        values = optional_string_list(call.body, key)
        if values is not None:
            fields[key] = values
    metadata = metadata_field(call.body)
    if metadata is not None:
        fields["metadata"] = metadata

    def change(work: UnitOfWork, queue: Queue) -> dict[str, Any]:
        queue_work.update_queue(work, queue, call.actor, fields)
        return {key: getattr(queue, key) for key in fields}

    outcome = await on_queue(call, change)
    return {"updated": outcome.updated, "fields": outcome.result if outcome.updated else {}}


async def add_or_update_metadata(call: Call) -> dict[str, Any]:
    items = metadata_field({"metadata": call.body.get("metadata")})
    if items is None:
        raise missing_field("metadata")
    replace = optional_bool(call.body, "replace_metadata")

    def change(work: UnitOfWork, queue: Queue) -> None:
        metadata = items if replace else {**queue.metadata, **items}
        queue_work.update_queue(work, queue, call.actor, {"metadata": metadata})

    return {"updated": (await on_queue(call, change)).updated}


async def delete_metadata(call: Call) -> dict[str, Any]:
    keys = optional_string_list(call.body, "keys")
    if not keys:
        raise missing_field("keys")

    def change(work: UnitOfWork, queue: Queue) -> None:
        kept = {key: item for key, item in queue.metadata.items() if key not in keys}
        queue_work.update_queue(work, queue, call.actor, {"metadata": kept})

    return {"updated": (await on_queue(call, change)).updated}


async def delete(call: Call) -> dict[str, Any]:
    """Refused while the queue holds tasks, unless `force`: its tasks then go back to their status."""
    force = optional_bool(call.body, "force")
    await on_queue(call, lambda work, queue: queue_work.delete_queue(work, queue, call.actor, force))
    return {"deleted": 1}


async def clear_queue(call: Call) -> dict[str, Any]:
    outcome = await on_queue(call, lambda work, queue: queue_work.clear_queue(work, queue, call.actor))
    return {"removed_tasks": outcome.result}


# -- entries ---------------------------------------------------------------------------------------
async def add_task(call: Call) -> dict[str, Any]:
    """In TaskTrail adding a task to a queue is enqueueing it there (its status becomes queued)."""
    task_id = required_string(call.body, "task")

    def change(work: UnitOfWork, queue: Queue) -> None:
        queue_work.enqueue_task(work, work.get_task(task_id), queue, call.actor)

    await on_queue(call, change)
    return {"added": 1}


async def get_next_task(call: Call) -> dict[str, Any]:
    """Pop the head of the queue (atomically); with `worker`, claim it in the same transaction."""
    worker = optional_string(call.body, "worker") or None
    environment = optional_string_list(call.body, "environment")
    head = optional_string(call.body, "task") or None
    get_task_info = optional_bool(call.body, "get_task_info")

    def change(work: UnitOfWork, queue: Queue) -> dict[str, Any]:
        taken = queue_work.take_next(work, queue, call.actor, worker, environment, head)
        if taken is None:
            return {}
        task, added = taken
        answer: dict[str, Any] = {"entry": {"task": task.task_id, "added": added}}
        if get_task_info:
            answer["task_info"] = {"company": "", "user": task.doc.get("user")}
        if worker:
            answer["task"] = {"id": task.task_id, **copy.deepcopy(task.doc)}
        return answer

    return (await on_queue(call, change)).result


async def remove_task(call: Call) -> dict[str, Any]:
    task_id = required_string(call.body, "task")
    update_status = optional_bool(call.body, "update_task_status", default=True)

    def change(work: UnitOfWork, queue: Queue) -> None:
        queue.position_of(task_id)
        task = queue_work.find_task(work, task_id)
        if update_status and task is not None and not queue_work.is_stale(task, queue):
            queue_work.dequeue_task(work, task, call.actor, reason="removed from queue")
        else:
            queue.remove(task_id, call.actor, reason="removed")

    await on_queue(call, change)
    return {"removed": 1}


def mover(position: Callable[[Queue, int, int], int]) -> Endpoint:
    async def endpoint(call: Call) -> dict[str, Any]:
        task_id = required_string(call.body, "task")
        count = optional_int(call.body, "count", minimum=1) or 1

        def change(work: UnitOfWork, queue: Queue) -> int:
            current = queue.position_of(task_id)
            return queue.move(task_id, call.actor, position(queue, current, count))

        return {"position": (await on_queue(call, change)).result}

    return endpoint


move_task_forward = mover(lambda queue, current, count: current - count)
move_task_backward = mover(lambda queue, current, count: current + count)
move_task_to_front = mover(lambda queue, current, count: 0)
move_task_to_back = mover(lambda queue, current, count: len(queue.order) - 1)


async def peek_task(call: Call) -> dict[str, Any]:
    queue = await read_queue(call)
    return {"task": queue.order[0] if queue.order else None}


async def get_num_entries(call: Call) -> dict[str, Any]:
    queue = await read_queue(call)
    return {"num": len(queue.order)}


# -- get_all (the view) ----------------------------------------------------------------------------
def checked_pattern(pattern: str) -> str:
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise invalid_field(f"pattern longer than {MAX_PATTERN_LENGTH} characters")
    try:
        re.compile(pattern)
    except re.error as error:
        raise invalid_field(f"invalid pattern {pattern!r}: {error}") from None
    return pattern


def tag_filter(values: list[str]) -> Any:
    include = [value for value in values if not value.startswith("-")]
    exclude = [value[1:] for value in values if value.startswith("-")]
    if include and not exclude and len(include) == 1:
        return include[0]
    condition: dict[str, Any] = {}
    if include:
        condition["$in"] = include
    if exclude:
        condition["$nin"] = exclude
    return condition


def queue_query(body: dict[str, Any]) -> dict[str, Any]:
    query: dict[str, Any] = {queue_view.ACTIVE_FIELD: True}
    ids = optional_string_list(body, "id")
    if ids:
        query["_id"] = ids[0] if len(ids) == 1 else {"$in": ids}
    name = optional_string(body, "name")
    if name:
        query["name"] = {"$regex": "(?i)" + checked_pattern(name)}
    for field in ("tags", "system_tags"):
        values = optional_string_list(body, field)
        if values:
            query[field] = tag_filter(values)
    return query


def find_queues(collection: Collection, body: dict[str, Any]) -> list[dict[str, Any]]:
    query = queue_query(body)
    page = optional_int(body, "page") or 0
    page_size = optional_int(body, "page_size", minimum=1) or MAX_PAGE_SIZE
    if page_size > MAX_PAGE_SIZE:
        raise invalid_field(f"page_size must be at most {MAX_PAGE_SIZE}")
    max_entries = optional_int(body, "max_task_entries", minimum=1)
    only_fields = optional_string_list(body, "only_fields")
    sort = []
    for key in optional_string_list(body, "order_by") or []:
        field = key.lstrip("-")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", field):
            raise invalid_field(f"invalid field name {field!r}")
        sort.append(("_id" if field == "id" else field, -1 if key.startswith("-") else 1))
    cursor = collection.find(query)
    if sort:
        cursor = cursor.sort(sort)
    cursor = cursor.skip(page * page_size).limit(page_size)
    queues = [queue_view.api_document(document, max_entries) for document in cursor]
    if only_fields:
        queues = [{key: value for key, value in queue.items() if key in {"id", *only_fields}} for queue in queues]
    return queues


async def get_all(call: Call) -> dict[str, Any]:
    collection = call.views[queue_view.COLLECTION]
    return {"queues": await asyncio.to_thread(find_queues, collection, call.body)}


# -- metrics ---------------------------------------------------------------------------------------
def required_number(body: dict[str, Any], key: str) -> float:
    value = body.get(key)
    if value is None:
        raise missing_field(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid_field(f"{key} must be a number")
    return float(value)


def metrics_series(samples: list[tuple[float, int, float]], start: float, end: float,
                   interval: int) -> dict[str, list]:
    """One point per interval that saw a change: the largest average wait and the length then."""
    buckets: dict[int, tuple[float, int]] = {}
    for moment, length, wait in samples:
        if start <= moment <= end:
            bucket = int((moment - start) // interval)
            if bucket not in buckets or wait >= buckets[bucket][0]:
                buckets[bucket] = (wait, length)
    dates = sorted(buckets)
    return {
        "dates": [int(start + bucket * interval) for bucket in dates],
        "avg_waiting_times": [round(buckets[bucket][0], 3) for bucket in dates],
        "queue_lengths": [buckets[bucket][1] for bucket in dates],
    }


def queue_samples(call: Call, queue_id: str) -> list[tuple[float, int, float]]:
    events = list(call.app.events.get(parse_queue_id(queue_id)))
    if not events or not isinstance(events[0], Queue.Created):
        raise QueueNotFound(f"Invalid queue id: {queue_id}")
    return timeline(events)


def merged_samples(per_queue: list[list[tuple[float, int, float]]]) -> list[tuple[float, int, float]]:
    """Across queues: at each change, the summed length and the mean of the queues' waits."""
    changes = sorted((moment, index, length, wait) for index, samples in enumerate(per_queue)
                     for moment, length, wait in samples)
    current: dict[int, tuple[int, float]] = {}
    merged = []
    for moment, index, length, wait in changes:
        current[index] = (length, wait)
        waits = [w for _, w in current.values()]
        merged.append((moment, sum(n for n, _ in current.values()), sum(waits) / len(waits)))
    return merged


async def get_queue_metrics(call: Call) -> dict[str, Any]:
    start = required_number(call.body, "from_date")
    end = required_number(call.body, "to_date")
    interval = optional_int(call.body, "interval", minimum=1)
    if interval is None:
        raise missing_field("interval")
    if end < start:
        raise invalid_field("to_date must not be before from_date")
    queue_ids = optional_string_list(call.body, "queue_ids") or []

    def compute() -> list[dict[str, Any]]:
        if queue_ids:
            return [{"queue": queue_id, **metrics_series(queue_samples(call, queue_id), start, end, interval)}
                    for queue_id in queue_ids]
        collection = call.views[queue_view.COLLECTION]
        ids = [document["_id"] for document in collection.find({queue_view.ACTIVE_FIELD: True}, {"_id": 1})]
        merged = merged_samples([queue_samples(call, queue_id) for queue_id in ids])
        return [{"queue": "all", **metrics_series(merged, start, end, interval)}]

    return {"queues": await asyncio.to_thread(compute)}


QUEUES: dict[str, Endpoint] = {
    "queues.create": create,
    "queues.get_by_id": get_by_id,
    "queues.get_all": get_all,
    "queues.get_all_ex": get_all,
    "queues.get_default": get_default,
    "queues.get_or_create": get_or_create,
    "queues.update": update,
    "queues.delete": delete,
    "queues.add_task": add_task,
    "queues.get_next_task": get_next_task,
    "queues.remove_task": remove_task,
    "queues.clear_queue": clear_queue,
    "queues.move_task_forward": move_task_forward,
    "queues.move_task_backward": move_task_backward,
    "queues.move_task_to_front": move_task_to_front,
    "queues.move_task_to_back": move_task_to_back,
    "queues.peek_task": peek_task,
    "queues.get_num_entries": get_num_entries,
    "queues.get_queue_metrics": get_queue_metrics,
    "queues.add_or_update_metadata": add_or_update_metadata,
    "queues.delete_metadata": delete_metadata,
}

# The task actions that move tasks in and out of queues (listed in routes.TASKS).
TASK_QUEUEING: dict[str, Endpoint] = {
    "tasks.enqueue": enqueue,
    "tasks.dequeue": dequeue,
}
