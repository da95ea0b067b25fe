"""`tasks.*` actions that change a task: each is a command on the Task aggregate."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

from domain.document import apply_changes
from domain.errors import TaskNotFound
from domain.task import Task, task_id_to_uuid
from domain.task_fields import validated_task_fields
from gateway.call import Call
from gateway.group_commit import Outcome
from gateway.request import optional_bool, optional_string, required_string

DEFAULT_QUEUE = "default"


def task_uuid(body: dict[str, Any]) -> UUID:
    task_id = required_string(body, "task")
    try:
        return task_id_to_uuid(task_id)
    except ValueError:
        raise TaskNotFound(f"Invalid task id: {task_id}") from None


def changed_fields(outcome: Outcome) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for event in outcome.events:
        apply_changes(fields, event.changes())
    return fields


def update_answer(outcome: Outcome, **extra: int) -> dict[str, Any]:
    return {**extra, "updated": outcome.updated, "fields": changed_fields(outcome)}


async def create(call: Call) -> dict[str, Any]:
    fields = validated_task_fields(call.body, require_name_and_type=True)
    task_id = uuid4()
    outcome = await call.writer.execute(
        task_id, lambda _: Task.create(task_id, fields, call.actor), creates=True
    )
    return {"id": outcome.task_id}


def status_change(method: Callable[..., None], answer_key: str | None = None):
    """An endpoint for a plain status change (task, force, status_reason, status_message)."""

    async def endpoint(call: Call) -> dict[str, Any]:
        force = optional_bool(call.body, "force")
        reason = optional_string(call.body, "status_reason")
        message = optional_string(call.body, "status_message")

        def command(task: Task | None) -> Task:
            assert task is not None
            method(task, call.actor, reason=reason, message=message, force=force)
            return task

        outcome = await call.writer.execute(task_uuid(call.body), command)
        extra = {answer_key: outcome.updated} if answer_key else {}
        return update_answer(outcome, **extra)

    return endpoint


async def started(call: Call) -> dict[str, Any]:
    """`worker` (a TaskTrail extension) makes this a claim: it succeeds only on a queued task."""
    force = optional_bool(call.body, "force")
    reason = optional_string(call.body, "status_reason")
    message = optional_string(call.body, "status_message")
    worker = optional_string(call.body, "worker")

    def command(task: Task | None) -> Task:
        assert task is not None
        if worker:
            task.claim(worker, reason=reason, message=message)
        else:
            task.start(call.actor, reason=reason, message=message, force=force)
        return task

    outcome = await call.writer.execute(task_uuid(call.body), command)
    return update_answer(outcome, started=outcome.updated)


async def enqueue(call: Call) -> dict[str, Any]:
    queue = optional_string(call.body, "queue") or optional_string(call.body, "queue_name") or DEFAULT_QUEUE
    force = optional_bool(call.body, "force")
    reason = optional_string(call.body, "status_reason")
    message = optional_string(call.body, "status_message")

    def command(task: Task | None) -> Task:
        assert task is not None
        task.enqueue(queue, call.actor, reason=reason, message=message, force=force)
        return task

    outcome = await call.writer.execute(task_uuid(call.body), command)
    return update_answer(outcome, queued=outcome.updated)


async def dequeue(call: Call) -> dict[str, Any]:
    new_status = optional_string(call.body, "new_status") or None
    reason = optional_string(call.body, "status_reason")
    message = optional_string(call.body, "status_message")

    def command(task: Task | None) -> Task:
        assert task is not None
        task.dequeue(call.actor, new_status=new_status, reason=reason, message=message)
        return task

    outcome = await call.writer.execute(task_uuid(call.body), command)
    return update_answer(outcome, dequeued=outcome.updated)


stop = status_change(Task.stop)
stopped = status_change(Task.stopped)
failed = status_change(Task.fail)
completed = status_change(Task.complete)
close = status_change(Task.close)
publish = status_change(Task.publish)
reset = status_change(Task.reset)
