"""Queue operations inside one unit of work: tasks and queues change together, in one transaction.

Every function here runs in the group-commit writer thread on a `UnitOfWork`, checks what it can
before it triggers an event, and leaves the saving to the writer. A task's status and its queue
entry therefore never disagree in the log: enqueue records `Task.Enqueued` and `Queue.TaskAdded`
together, `get_next_task` with a worker records `Queue.TaskTaken` and `Task.Started` together.

Entries can still go stale (a task reset or deleted by a command that did not call
`remove_from_queue`); `take_next` drops such entries as it meets them, so a task that is not
queued on this queue is never handed out.
"""
from __future__ import annotations

from collections.abc import Collection
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from domain.errors import InvalidField, TaskNotFound
from domain.queue import (
    DEFAULT_QUEUE_KEY,
    DEFAULT_QUEUE_NAME,
    DEFAULT_TAG,
    DefaultQueueExists,
    Queue,
    QueueNameTaken,
    QueueNotFound,
    TaskAlreadyInQueue,
    is_queue_id,
    name_key,
    parse_queue_id,
)
from domain.queue_name import QueueName
from domain.requirements import task_requirements, unmet_requirements
from domain.status import TaskStatus, check_transition, parse_status
from domain.task import Task
from gateway.group_commit import UnitOfWork

MAX_SCAN = 1000  # entries one get_next_task looks at before it answers "nothing for you"
WORKER_LOST_POLICY = "on_worker_lost"  # queue metadata key: "fail" (default) or "requeue"


# -- loading ---------------------------------------------------------------------------------
def find(work: UnitOfWork, aggregate_id: UUID) -> Aggregate | None:
    """An aggregate of this unit of work, loaded on first use; None when it does not exist."""
    if aggregate_id in work.aggregates:
        return work.aggregates[aggregate_id]
    try:
        return work.get(aggregate_id, work.app.repository.get)
    except AggregateNotFoundError:
        return None


def get_queue(work: UnitOfWork, queue_id: str) -> Queue:
    queue = find(work, parse_queue_id(queue_id))
    if not isinstance(queue, Queue):
        raise QueueNotFound(f"Invalid queue id: {queue_id}")
    queue.check_exists()
    return queue


def find_queue(work: UnitOfWork, queue_id: str | None) -> Queue | None:
    """The live queue with this id, or None (no id, not an id, unknown or deleted)."""
    if not is_queue_id(queue_id):
        return None
    queue = find(work, parse_queue_id(queue_id))
    return queue if isinstance(queue, Queue) and not queue.deleted else None


def find_task(work: UnitOfWork, task_id: str) -> Task | None:
    try:
        return work.get_task(task_id)
    except TaskNotFound:
        return None


def queue_by_name(work: UnitOfWork, name: str) -> Queue | None:
    index = find(work, name_key(name))
    if isinstance(index, QueueName) and index.is_taken:
        return find_queue(work, index.queue_id)
    return None


# -- creating and resolving --------------------------------------------------------------------
def _key_holder(work: UnitOfWork, key_id: UUID) -> QueueName | None:
    index = find(work, key_id)
    return index if isinstance(index, QueueName) else None


def _claim_key(work: UnitOfWork, key_id: UUID, key: str, queue_id: str, actor: str) -> None:
    index = _key_holder(work, key_id)
    if index is None:
        work.add(QueueName.create(key_id, key, queue_id, actor))
    else:
        index.claim(queue_id, actor)


def _check_name_free(work: UnitOfWork, name: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InvalidField("Validation error: queue name must be a non-empty string")
    holder = _key_holder(work, name_key(name))
    if holder is not None and holder.is_taken:
        raise QueueNameTaken(f"Value combination already exists (unique field): name={name}")


def _check_default_free(work: UnitOfWork) -> None:
    holder = _key_holder(work, DEFAULT_QUEUE_KEY)
    if holder is not None and holder.is_taken:
        raise DefaultQueueExists(
            f"More than one queue is tagged as the default queue: {holder.queue_id} already is"
        )


def create_queue(work: UnitOfWork, name: str, actor: str, tags: list[str] | None = None,
                 system_tags: list[str] | None = None, metadata: dict[str, Any] | None = None) -> Queue:
    system_tags = list(system_tags or [])
    _check_name_free(work, name)
    if DEFAULT_TAG in system_tags:
        _check_default_free(work)
    queue = Queue.create(uuid4(), name, actor, tags, system_tags, metadata)
    work.add(queue)
    _claim_key(work, name_key(name), f"name:{name}", queue.queue_id, actor)
    if DEFAULT_TAG in system_tags:
        _claim_key(work, DEFAULT_QUEUE_KEY, "system_tag:default", queue.queue_id, actor)
    return queue


def update_queue(work: UnitOfWork, queue: Queue, actor: str, fields: dict[str, Any]) -> None:
    """Rename or retag a queue; the name and default-queue keys follow."""
    renamed = "name" in fields and fields["name"] != queue.name
    if renamed:
        _check_name_free(work, fields["name"])
    was_default = queue.is_default
    becomes_default = DEFAULT_TAG in fields.get("system_tags", queue.system_tags)
    if becomes_default and not was_default:
        _check_default_free(work)
    old_name = queue.name
    queue.update(actor, **fields)
    if renamed:
        _release_key(work, name_key(old_name), queue, actor)
        _claim_key(work, name_key(queue.name), f"name:{queue.name}", queue.queue_id, actor)
    if becomes_default and not was_default:
        _claim_key(work, DEFAULT_QUEUE_KEY, "system_tag:default", queue.queue_id, actor)
    elif was_default and not becomes_default:
        _release_key(work, DEFAULT_QUEUE_KEY, queue, actor)


def _release_key(work: UnitOfWork, key_id: UUID, queue: Queue, actor: str) -> None:
    holder = _key_holder(work, key_id)
    if holder is not None:
        holder.release(queue.queue_id, actor)


def default_queue(work: UnitOfWork, actor: str) -> Queue:
    """The queue tagged `default`; a queue named "default" stands in; else one is created."""
    holder = _key_holder(work, DEFAULT_QUEUE_KEY)
    if holder is not None and holder.is_taken:
        return get_queue(work, holder.queue_id)  # type: ignore[arg-type]
    named = queue_by_name(work, DEFAULT_QUEUE_NAME)
    if named is not None:
        return named
    return create_queue(work, DEFAULT_QUEUE_NAME, actor, system_tags=[DEFAULT_TAG])


def queue_named(work: UnitOfWork, name: str, actor: str) -> tuple[Queue, bool]:
    """The queue with this name, created on demand; and whether it was created now."""
    existing = queue_by_name(work, name)
    if existing is not None:
        return existing, False
    if name == DEFAULT_QUEUE_NAME:
        holder = _key_holder(work, DEFAULT_QUEUE_KEY)
        tag = [] if holder is not None and holder.is_taken else [DEFAULT_TAG]
        return create_queue(work, name, actor, system_tags=tag), True
    return create_queue(work, name, actor), True


def resolve_queue(work: UnitOfWork, queue: str | None, queue_name: str | None, actor: str) -> Queue:
    """`queue` (an id; a TaskTrail leniency: a name), else `queue_name`, else the default queue."""
    if queue:
        if is_queue_id(queue):
            return get_queue(work, queue)
        return queue_named(work, queue, actor)[0]
    if queue_name:
        return queue_named(work, queue_name, actor)[0]
    return default_queue(work, actor)


# -- tasks in and out of queues ----------------------------------------------------------------
def check_enqueue(task: Task, force: bool = False) -> None:
    """Refuse, before anything is recorded, a task that cannot be queued (run it before creating a queue)."""
    task.check_exists()
    task_requirements(task.doc)  # malformed requirements are refused now, not when a worker meets them
    if task.status != TaskStatus.queued:
        check_transition(task.status, TaskStatus.queued, force)


def enqueue_task(work: UnitOfWork, task: Task, queue: Queue, actor: str, reason: str = "",
                 message: str = "", force: bool = False, front: bool = False) -> None:
    """Queue the task on `queue`, taking it out of any other queue first."""
    task_id = task.task_id
    if task_id in queue:
        raise TaskAlreadyInQueue(f"Task already queued: task={task_id} queue={queue.queue_id}")
    check_enqueue(task, force)
    queue.check_exists()
    if task.status == TaskStatus.queued:
        if task.queue == queue.queue_id:  # queued here, but its entry was popped or removed: put it back
            queue.add(task_id, actor, front=front)
            return
        # Moving between queues: back to the status before enqueueing, then queued again, so the
        # remembered status stays the one the task had before it was first queued.
        check_transition(parse_status(task.doc.get("enqueue_status") or "created"), TaskStatus.queued, force)
        remove_from_queue(work, task, actor, reason=f"moved to queue {queue.queue_id}")
        task.dequeue(actor, reason=reason or "moved to another queue", message=message)
    check_transition(task.status, TaskStatus.queued, force)
    task.enqueue(queue.queue_id, actor=actor, reason=reason, message=message, force=force)
    queue.add(task_id, actor, front=front)


def dequeue_task(work: UnitOfWork, task: Task, actor: str, new_status: str | None = None,
                 reason: str = "", message: str = "") -> None:
    queue = find_queue(work, task.queue)
    task.dequeue(actor, new_status=new_status, reason=reason, message=message)
    if queue is not None and task.task_id in queue:
        queue.remove(task.task_id, actor, reason="dequeued")


def remove_from_queue(work: UnitOfWork, task: Task, actor: str = "tasktrail",
                      reason: str = "task left the queue") -> bool:
    """Remove the task's entry from the queue it is in, if any; True when there was one.

    Call it before the command changes `execution.queue` (reset clears it).
    """
    queue = find_queue(work, task.queue)
    if queue is None or task.task_id not in queue:
        return False
    queue.remove(task.task_id, actor, reason=reason)
    return True


def return_tasks(work: UnitOfWork, queue: Queue, task_ids: list[str], actor: str, reason: str) -> None:
    """Tasks leaving a cleared or deleted queue go back to the status they had before enqueueing."""
    for task_id in task_ids:
        task = find_task(work, task_id)
        if task is not None and task.status == TaskStatus.queued and task.queue == queue.queue_id:
            task.dequeue(actor, reason=reason)


def clear_queue(work: UnitOfWork, queue: Queue, actor: str) -> list[str]:
    tasks = list(queue.order)
    return_tasks(work, queue, tasks, actor, reason="Queue was cleared")
    queue.clear(actor)
    return tasks


def delete_queue(work: UnitOfWork, queue: Queue, actor: str, force: bool) -> list[str]:
    tasks = list(queue.order)
    if tasks and not force:
        queue.delete(actor, force=False)  # raises QueueNotEmpty
    return_tasks(work, queue, tasks, actor, reason="Queue was deleted")
    queue.delete(actor, force=True)
    _release_key(work, name_key(queue.name), queue, actor)
    if queue.is_default:
        _release_key(work, DEFAULT_QUEUE_KEY, queue, actor)
    return tasks


def is_stale(task: Task | None, queue: Queue) -> bool:
    """An entry whose task is gone, or no longer queued on this queue."""
    return task is None or task.is_deleted or task.status != TaskStatus.queued or task.queue != queue.queue_id


def take_next(work: UnitOfWork, queue: Queue, actor: str, worker: str | None = None,
              environment: Collection[str] | None = None, head: str | None = None
              ) -> tuple[Task, str] | None:
    """Pop the first entry this caller may run (and claim it for `worker`); None when there is none.

    With `environment` (the names of the variables set where `worker` runs), entries whose
    requirements it does not meet stay queued for another worker, and the queue records why.
    With `head`, only that task is taken, and only when it is first in the queue.
    """
    for task_id in list(queue.order[:MAX_SCAN]):
        task = find_task(work, task_id)
        if is_stale(task, queue):
            queue.remove(task_id, actor, reason="stale entry: the task is no longer queued here")
            continue
        assert task is not None
        if head is not None and task_id != head:
            return None
        if environment is not None and worker:
            try:
                missing = unmet_requirements(task_requirements(task.doc), environment)
            except InvalidField as invalid:
                missing = [str(invalid)]
            if missing:
                queue.pass_over(task_id, worker, missing, actor)
                continue
        added = queue.added[task_id]
        queue.take(task_id, actor, worker)
        if worker:
            task.claim(worker, actor=actor, reason=f"taken from queue {queue.name}", message="")
        return task, added
    return None


def worker_lost_policy(queue: Queue | None) -> str:
    """What happens to a task whose worker vanished: "fail" unless the queue's metadata says "requeue"."""
    if queue is None:
        return "fail"
    item = queue.metadata.get(WORKER_LOST_POLICY)
    value = item.get("value") if isinstance(item, dict) else item
    return "requeue" if value == "requeue" else "fail"


def requeue_at_front(work: UnitOfWork, task: Task, queue: Queue, actor: str, reason: str) -> None:
    """Put a task that ended without finishing (failed, stopped) back at the head of its queue."""
    task.enqueue(queue.queue_id, actor=actor, reason=reason, message="re-queued")
    queue.add(task.task_id, actor, front=True)
