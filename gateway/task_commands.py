"""`tasks.*` actions that change a task: each is a command on the Task aggregate."""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any
from uuid import uuid4

from domain.document import apply_changes
from domain.task import Task
from domain.task_fields import validated_task_fields
from gateway.call import Call
from gateway.group_commit import Outcome, UnitOfWork
from gateway.request import optional_bool, optional_string, required_string

DEFAULT_QUEUE = "default"

TaskChange = Callable[[Task], None]


def task_document(task: Task) -> dict[str, Any]:
    """The task as a command left it (a copy: later commands in the batch may change the task)."""
    return {"id": task.task_id, **copy.deepcopy(task.doc)}


def changed_fields(outcome: Outcome) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for event in outcome.events:
        apply_changes(fields, event.changes())
    return fields


def update_answer(outcome: Outcome, **extra: int) -> dict[str, Any]:
    return {**extra, "updated": outcome.updated, "fields": changed_fields(outcome)}


async def change_task(call: Call, change: TaskChange) -> Outcome[dict[str, Any]]:
    """Apply `change` to the task named by the call's `task` field, through the group commit."""
    task_id = required_string(call.body, "task")

    def command(work: UnitOfWork) -> dict[str, Any]:
        task = work.get_task(task_id)
        change(task)
        return task_document(task)

    return await call.writer.execute(command)


def status_request(call: Call) -> dict[str, Any]:
    """The common fields of a status change request: who, why, and whether to force it."""
    return {
        "actor": call.actor,
        "reason": optional_string(call.body, "status_reason"),
        "message": optional_string(call.body, "status_message"),
        "force": optional_bool(call.body, "force"),
    }


async def create(call: Call) -> dict[str, Any]:
    fields = validated_task_fields(call.body, require_name_and_type=True)
    task_id = uuid4()

    def command(work: UnitOfWork) -> str:
        task = Task.create(task_id, fields, call.actor)
        work.add(task)
        return task.task_id

    outcome = await call.writer.execute(command)
    return {"id": outcome.result}


def status_change(method: Callable[..., None], answer_key: str | None = None):
    """An endpoint for a plain status change (task, force, status_reason, status_message)."""

    async def endpoint(call: Call) -> dict[str, Any]:
        request = status_request(call)
        outcome = await change_task(call, lambda task: method(task, **request))
        extra = {answer_key: outcome.updated} if answer_key else {}
        return update_answer(outcome, **extra)

    return endpoint


async def started(call: Call) -> dict[str, Any]:
    """`worker` (a TaskTrail extension) makes this a claim: it succeeds only on a queued task."""
    request = status_request(call)
    worker = optional_string(call.body, "worker")

    def change(task: Task) -> None:
        if worker:
            task.claim(worker, reason=request["reason"], message=request["message"])
        else:
            task.start(**request)

    outcome = await change_task(call, change)
    return update_answer(outcome, started=outcome.updated)


async def enqueue(call: Call) -> dict[str, Any]:
    queue = optional_string(call.body, "queue") or optional_string(call.body, "queue_name") or DEFAULT_QUEUE
    request = status_request(call)
    outcome = await change_task(call, lambda task: task.enqueue(queue, **request))
    return update_answer(outcome, queued=outcome.updated)


async def dequeue(call: Call) -> dict[str, Any]:
    new_status = optional_string(call.body, "new_status") or None
    request = status_request(call)
    request.pop("force")
    outcome = await change_task(call, lambda task: task.dequeue(new_status=new_status, **request))
    return update_answer(outcome, dequeued=outcome.updated)


stop = status_change(Task.stop)
stopped = status_change(Task.stopped)
failed = status_change(Task.fail)
completed = status_change(Task.complete)
close = status_change(Task.close)
publish = status_change(Task.publish)
reset = status_change(Task.reset)
