"""`tasks.*` actions that change a task: each is a command on the Task aggregate.

A command loads the aggregates it needs through the group commit's unit of work, checks
everything, then records events; the answer is computed from the events (read your own write).
Batch forms (`*_many`) run the single-task endpoint once per id and answer clearml-server's
{succeeded, failed} shape.
"""
from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import Callable
from typing import Any
from uuid import uuid4

from domain.document import apply_changes
from domain.errors import TaskNotFound, TaskTrailError
from domain.status import TaskStatus
from domain.task import (
    DELETED_PREFIX,
    Task,
    TaskCannotBeDeleted,
    parse_task_id,
)
from domain.task_fields import (
    ARTIFACT,
    ARTIFACT_ID,
    MODEL_TYPES,
    REPLACE_HYPERPARAMS,
    api_document,
    enum,
    free_object,
    list_of,
    obj,
    string,
    validated_task_fields,
    validated_update_fields,
)
from gateway.call import Call, Endpoint
from gateway.envelope import ApiError
from gateway.errors import api_error_for, invalid_field, missing_field
from gateway.group_commit import Outcome, UnitOfWork
from gateway import queues
from gateway.queue_membership import remove_from_queue
from gateway.request import optional_bool, optional_int, optional_string, required_string
from projections import task_view

TaskChange = Callable[[Task], None]



# -- answers -------------------------------------------------------------------------------------
def task_document(task: Task) -> dict[str, Any]:
    """The task as a command left it (a copy: later commands in the batch may change the task)."""
    return {"id": task.task_id, **copy.deepcopy(task.doc)}


def changed_fields(outcome: Outcome) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for event in outcome.events:
        if isinstance(event, Task.Event):
            apply_changes(fields, event.changes())
    return api_document(fields, keep_internal=True)


def update_answer(outcome: Outcome, **extra: int) -> dict[str, Any]:
    return {**extra, "updated": outcome.updated, "fields": changed_fields(outcome)}


# -- reading requests ----------------------------------------------------------------------------
def status_request(call: Call) -> dict[str, Any]:
    """The common fields of a status change request: who, why, and whether to force it."""
    return {
        "actor": call.actor,
        "reason": optional_string(call.body, "status_reason"),
        "message": optional_string(call.body, "status_message"),
        "force": optional_bool(call.body, "force"),
    }


def required_list(body: dict[str, Any], key: str, item: Callable[[str, Any], Any] = string) -> list[Any]:
    """A non-empty list, each item checked by `item` (a task_fields spec)."""
    value = body.get(key)
    if value is None:
        raise missing_field(key)
    if not isinstance(value, list):
        raise invalid_field(f"{key} must be a list")
    if not value:
        raise invalid_field(f"{key} must not be empty")
    return list_of(item)(key, value)


def required_object(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        raise missing_field(key)
    return free_object(key, value)


def non_empty_string(path: str, value: Any) -> str:
    if not string(path, value):
        raise invalid_field(f"{path} must not be empty")
    return value


# -- running commands ----------------------------------------------------------------------------
async def change_task(call: Call, change: TaskChange) -> Outcome[dict[str, Any]]:
    """Apply `change` to the task named by the call's `task` field, through the group commit."""
    return await work_on_task(call, lambda work, task: change(task))


async def work_on_task(call: Call, change: Callable[[UnitOfWork, Task], Any]) -> Outcome[dict[str, Any]]:
    """As change_task, for changes that need the unit of work too (e.g. to leave a queue)."""
    task_id = required_string(call.body, "task")

    def command(work: UnitOfWork) -> dict[str, Any]:
        task = work.get_task(task_id)
        change(work, task)
        return task_document(task)

    return await call.writer.execute(command)


def existing_task(work: UnitOfWork, task_id: str) -> Task:
    task = work.get_task(task_id)
    task.check_exists()
    return task


def check_parent(load: Callable[[str], Task], parent: str | None) -> None:
    """A parent must be an existing task (as clearml-server validates it); `load` finds a task."""
    if not parent:
        return
    try:
        found = load(parent)
    except TaskNotFound:
        found = None
    if found is None or found.is_deleted:
        raise TaskNotFound(f"Invalid task id: invalid parent {parent}")


# -- create, validate, update, edit --------------------------------------------------------------
async def create(call: Call) -> dict[str, Any]:
    fields = validated_task_fields(call.body, require_name_and_type=True)
    task_id = uuid4()

    def command(work: UnitOfWork) -> str:
        check_parent(work.get_task, fields.get("parent"))
        task = Task.create(task_id, fields, call.actor)
        work.add(task)
        return task.task_id

    outcome = await call.writer.execute(command)
    return {"id": outcome.result}


async def validate(call: Call) -> dict[str, Any]:
    """create's checks; nothing is stored. A parent marked deleted is not checked (as clearml-server)."""
    fields = validated_task_fields(call.body, require_name_and_type=True)
    parent = fields.get("parent")
    if parent and not parent.startswith(DELETED_PREFIX):
        await asyncio.to_thread(check_parent, call.app.get_task, parent)
    return {}


async def update(call: Call) -> dict[str, Any]:
    changes = validated_update_fields(call.body)
    outcome = await change_task(call, lambda task: task.update(changes, call.actor))
    return update_answer(outcome)


def batch_items(call: Call) -> list[dict[str, Any]]:
    """The update requests of an `application/json-lines` body (one JSON object per line)."""
    items = call.body.get("requests")
    if not isinstance(items, list):
        items = [call.body] if call.body.get("task") else []
    if not items:
        raise ApiError(400, 17, "Batch request contains no items")
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise ApiError(400, 18, f"Batch request validation error: item {number} is not an object")
    return items


async def update_batch(call: Call) -> dict[str, Any]:
    """Update many tasks, one tasks.update request per line; all tasks must exist, or none changes."""
    requests: dict[str, dict[str, Any]] = {}
    for item in batch_items(call):
        requests[required_string(item, "task")] = validated_update_fields(item)

    def command(work: UnitOfWork) -> int:
        tasks = {}
        missing = []
        for task_id in requests:
            try:
                tasks[task_id] = existing_task(work, task_id)
            except TaskNotFound:
                missing.append(task_id)
        if missing:
            raise TaskNotFound(f"Invalid task id: {', '.join(missing)}")
        updated = 0
        for task_id, changes in requests.items():
            if changes:
                tasks[task_id].update(changes, call.actor)
                updated += 1
        return updated

    outcome = await call.writer.execute(command)
    return {"updated": outcome.result}


update_batch.accepts_batch = True  # type: ignore[attr-defined]  # read_body gives {"requests": [...]}


async def edit(call: Call) -> dict[str, Any]:
    """A created task (any, with force) takes new create fields."""
    fields = validated_task_fields(call.body, require_name_and_type=False)
    force = optional_bool(call.body, "force")

    def change(work: UnitOfWork, task: Task) -> None:
        task.check_exists()
        check_parent(work.get_task, fields.get("parent"))
        task.edit(fields, call.actor, force=force)

    outcome = await work_on_task(call, change)
    return update_answer(outcome)


async def set_requirements(call: Call) -> dict[str, Any]:
    requirements = required_object(call.body, "requirements")
    outcome = await change_task(call, lambda task: task.set_requirements(requirements, call.actor))
    return update_answer(outcome)


async def ping(call: Call) -> dict[str, Any]:
    await change_task(call, lambda task: task.ping(call.actor))
    return {}


# -- status changes ------------------------------------------------------------------------------
def status_change(method: Callable[..., None], answer_key: str | None = None):
    """An endpoint for a plain status change (task, force, status_reason, status_message)."""

    async def endpoint(call: Call) -> dict[str, Any]:
        request = status_request(call)

        def change(work: UnitOfWork, task: Task) -> None:
            leave_queue_after(work, task, call.actor, lambda: method(task, **request))

        outcome = await work_on_task(call, change)
        extra = {answer_key: outcome.updated} if answer_key else {}
        return update_answer(outcome, **extra)

    return endpoint


def leave_queue_after(work: UnitOfWork, task: Task, actor: str, change: Callable[[], None]) -> None:
    """Run a status change (which checks before recording); a task it took out of `queued` leaves its queue."""
    was_queued = task.status == TaskStatus.queued
    change()
    if was_queued and task.status != TaskStatus.queued:
        remove_from_queue(work, task, actor=actor, reason=f"task is {task.status.value}")


async def started(call: Call) -> dict[str, Any]:
    """`worker` (a TaskTrail extension) makes this a claim: it succeeds only on a queued task."""
    request = status_request(call)
    worker = optional_string(call.body, "worker")

    def start(task: Task) -> None:
        if worker:
            task.claim(worker, actor=call.actor, reason=request["reason"], message=request["message"])
        else:
            task.start(**request)

    def change(work: UnitOfWork, task: Task) -> None:
        leave_queue_after(work, task, call.actor, lambda: start(task))

    outcome = await work_on_task(call, change)
    return update_answer(outcome, started=outcome.updated)


async def enqueue(call: Call) -> dict[str, Any]:
    """The task and its queue change together: see gateway/queues.py."""
    return await queues.enqueue(call)


async def dequeue(call: Call) -> dict[str, Any]:
    """The task and its queue change together: see gateway/queues.py."""
    return await queues.dequeue(call)


async def stop(call: Call) -> dict[str, Any]:
    """A queued task leaves its queue and stops; a task a worker runs is asked to stop."""
    request = status_request(call)

    def change(work: UnitOfWork, task: Task) -> None:
        task.check_stop(request["force"])
        if task.status == TaskStatus.queued:
            remove_from_queue(work, task, actor=call.actor, reason="task stopped")
        task.stop(**request)

    return update_answer(await work_on_task(call, change))


stopped = status_change(Task.stopped)
failed = status_change(Task.fail)
close = status_change(Task.close)


async def completed(call: Call) -> dict[str, Any]:
    """`publish: true` publishes the completed task in the same command."""
    request = status_request(call)
    publish = optional_bool(call.body, "publish")
    outcome = await change_task(call, lambda task: task.complete(**request, publish=publish))
    extra = {"published": outcome.updated} if publish else {}
    return update_answer(outcome, **extra)


async def publish(call: Call) -> dict[str, Any]:
    request = status_request(call)
    optional_bool(call.body, "publish_model")  # checked; TaskTrail keeps no models to publish
    outcome = await change_task(call, lambda task: task.publish(**request))
    return {**update_answer(outcome), "committed_versions_results": []}


async def reset(call: Call) -> dict[str, Any]:
    """Back to created; a queued task leaves its queue first."""
    request = status_request(call)
    clear_all = optional_bool(call.body, "clear_all")
    for flag in ("return_file_urls", "delete_output_models", "delete_external_artifacts"):
        optional_bool(call.body, flag)
    dequeued = {"removed": 0}

    def change(work: UnitOfWork, task: Task) -> None:
        task.check_reset(request["force"])
        dequeued["removed"] = int(remove_from_queue(work, task, actor=call.actor, reason="task reset"))
        task.reset(**request, clear_all=clear_all)

    outcome = await work_on_task(call, change)
    return {**update_answer(outcome), "dequeued": dequeued, "deleted_models": 0}


async def delete(call: Call) -> dict[str, Any]:
    """Delete a created (or archived) task, any with force; its children's parent is marked deleted.

    Children are found in the view, then each is checked against its own aggregate; a child
    created after the view was last updated keeps its parent.
    """
    task_id = parse_task_id(required_string(call.body, "task")).hex
    request = status_request(call)
    move_to_trash = optional_bool(call.body, "move_to_trash")
    for flag in ("return_file_urls", "delete_output_models", "delete_external_artifacts"):
        optional_bool(call.body, flag)
    children_ids = await asyncio.to_thread(child_ids, call, task_id)

    def command(work: UnitOfWork) -> dict[str, Any]:
        task = work.get_task(task_id)
        task.check_delete(request["force"])
        children = []
        for child_id in children_ids:
            try:
                child = existing_task(work, child_id)
            except TaskNotFound:
                continue
            if child.doc.get("parent") == task.task_id:
                children.append(child)
        published = [child for child in children if child.status == TaskStatus.published]
        if published and not request["force"]:
            raise TaskCannotBeDeleted(
                f"Task cannot be deleted: it has {len(published)} published children, use force=True"
            )
        remove_from_queue(work, task, actor=call.actor, reason="task deleted")
        task.delete(**request, move_to_trash=move_to_trash)
        updated_children = sum(child.parent_deleted(task.task_id, call.actor) for child in children)
        return {"deleted": True, "updated_children": updated_children, "updated_models": 0, "deleted_models": 0}

    outcome = await call.writer.execute(command)
    return {**outcome.result, "events": {}}


def child_ids(call: Call, task_id: str) -> list[str]:
    collection = call.views[task_view.COLLECTION]
    return [document["_id"] for document in collection.find({"parent": task_id}, {"_id": 1})]


async def archive(call: Call) -> dict[str, Any]:
    """Archive tasks (`tasks` ids, all must exist): a queued task leaves its queue first."""
    task_ids = required_list(call.body, "tasks")
    reason = optional_string(call.body, "status_reason")
    message = optional_string(call.body, "status_message")

    def command(work: UnitOfWork) -> int:
        tasks = [existing_task(work, task_id) for task_id in dict.fromkeys(task_ids)]
        for task in tasks:
            archive_one(work, task, call.actor, reason, message)
        return len(tasks)

    outcome = await call.writer.execute(command)
    return {"archived": outcome.result}


def archive_one(work: UnitOfWork, task: Task, actor: str, reason: str, message: str) -> None:
    task.check_exists()
    if task.status == TaskStatus.queued:
        remove_from_queue(work, task, actor=actor, reason="task archived")
    task.archive(actor, reason, message)


async def archive_single(call: Call) -> dict[str, Any]:
    """One id of archive_many."""
    reason = optional_string(call.body, "status_reason")
    message = optional_string(call.body, "status_message")
    outcome = await work_on_task(call, lambda work, task: archive_one(work, task, call.actor, reason, message))
    return {"archived": bool(outcome.updated)}


async def unarchive_single(call: Call) -> dict[str, Any]:
    """One id of unarchive_many."""
    reason = optional_string(call.body, "status_reason")
    message = optional_string(call.body, "status_message")
    outcome = await change_task(call, lambda task: task.unarchive(call.actor, reason, message))
    return {"unarchived": bool(outcome.updated)}


# -- hyper parameters, configuration, artifacts, models ------------------------------------------
HYPERPARAM_ITEM = obj(
    {
        "section": non_empty_string,
        "name": non_empty_string,
        "value": string,
        "type": string,
        "description": string,
    },
    required=("section", "name", "value"),
)
HYPERPARAM_KEY = obj({"section": non_empty_string, "name": string}, required=("section",))
CONFIGURATION_ITEM = obj(
    {"name": non_empty_string, "value": string, "type": string, "description": string},
    required=("name", "value"),
)
MODEL_KEY = obj({"name": string, "type": enum(*MODEL_TYPES)}, required=("name", "type"))


async def edit_hyper_params(call: Call) -> dict[str, Any]:
    params = required_list(call.body, "hyperparams", HYPERPARAM_ITEM)
    replace = optional_string(call.body, "replace_hyperparams") or "none"
    enum(*REPLACE_HYPERPARAMS)("replace_hyperparams", replace)
    force = optional_bool(call.body, "force")
    outcome = await change_task(
        call, lambda task: task.edit_hyper_params(params, call.actor, replace=replace, force=force)
    )
    return {"updated": outcome.updated}


async def delete_hyper_params(call: Call) -> dict[str, Any]:
    keys = required_list(call.body, "hyperparams", HYPERPARAM_KEY)
    force = optional_bool(call.body, "force")
    outcome = await change_task(call, lambda task: task.delete_hyper_params(keys, call.actor, force=force))
    return {"deleted": outcome.updated}


async def edit_configuration(call: Call) -> dict[str, Any]:
    items = required_list(call.body, "configuration", CONFIGURATION_ITEM)
    replace = optional_bool(call.body, "replace_configuration")
    force = optional_bool(call.body, "force")
    outcome = await change_task(
        call, lambda task: task.edit_configuration(items, call.actor, replace=replace, force=force)
    )
    return {"updated": outcome.updated}


async def delete_configuration(call: Call) -> dict[str, Any]:
    names = required_list(call.body, "configuration")
    force = optional_bool(call.body, "force")
    outcome = await change_task(call, lambda task: task.delete_configuration(names, call.actor, force=force))
    return {"deleted": outcome.updated}


async def add_or_update_artifacts(call: Call) -> dict[str, Any]:
    artifacts = required_list(call.body, "artifacts", ARTIFACT)
    optional_bool(call.body, "force")  # as clearml-server's service: always forced
    outcome = await change_task(call, lambda task: task.add_or_update_artifacts(artifacts, call.actor))
    return {"updated": outcome.updated}


async def delete_artifacts(call: Call) -> dict[str, Any]:
    artifact_ids = required_list(call.body, "artifacts", ARTIFACT_ID)
    optional_bool(call.body, "force")
    outcome = await change_task(call, lambda task: task.delete_artifacts(artifact_ids, call.actor))
    return {"deleted": outcome.updated}


async def add_or_update_model(call: Call) -> dict[str, Any]:
    name = required_string(call.body, "name")
    model = required_string(call.body, "model")
    model_type = required_string(call.body, "type")
    enum(*MODEL_TYPES)("type", model_type)
    iteration = optional_int(call.body, "iteration")
    outcome = await change_task(
        call, lambda task: task.add_or_update_model(model_type, name, model, call.actor, iteration=iteration)
    )
    return {"updated": outcome.updated}


async def delete_models(call: Call) -> dict[str, Any]:
    models = required_list(call.body, "models", MODEL_KEY)
    outcome = await change_task(call, lambda task: task.delete_models(models, call.actor))
    return {"updated": outcome.updated}


# -- batch forms ---------------------------------------------------------------------------------
def failure(task_id: str, error: ApiError) -> dict[str, Any]:
    return {"id": task_id, "error": {"codes": [error.code, error.subcode], "msg": error.message, "data": {}}}


def many(single: Endpoint, item: Callable[[dict[str, Any]], dict[str, Any]] = lambda data: data) -> Endpoint:
    """A `*_many` endpoint: `ids` plus the fields every id shares, run as one `single` call per id."""

    async def run_one(call: Call, shared: dict[str, Any], task_id: str) -> tuple[dict | None, dict | None]:
        one = dataclasses.replace(call, body={**shared, "task": task_id})
        try:
            return {"id": task_id, **item(await single(one))}, None
        except ApiError as error:
            return None, failure(task_id, error)
        except TaskTrailError as refusal:
            return None, failure(task_id, api_error_for(refusal))

    async def endpoint(call: Call) -> dict[str, Any]:
        ids = required_list(call.body, "ids")
        shared = {key: value for key, value in call.body.items() if key not in ("ids", "task")}
        results = await asyncio.gather(*(run_one(call, shared, task_id) for task_id in ids))
        return {
            "succeeded": [done for done, _ in results if done is not None],
            "failed": [failed for _, failed in results if failed is not None],
        }

    endpoint.__doc__ = f"{single.__name__} for each of `ids`."
    return endpoint


def _queued_item(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "queued": bool(data.get("queued"))}


def _dequeued_item(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "dequeued": bool(data.get("dequeued"))}


def _reset_item(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "dequeued": bool(data.get("dequeued", {}).get("removed"))}


def _delete_item(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key != "events"}


stop_many = many(stop)
enqueue_many = many(enqueue, _queued_item)
dequeue_many = many(dequeue, _dequeued_item)
reset_many = many(reset, _reset_item)
delete_many = many(delete, _delete_item)
publish_many = many(publish)
archive_many = many(archive_single)
unarchive_many = many(unarchive_single)
