"""How task commands keep queues in step with tasks (a task leaves its queue on reset, delete, ...).

Commands that take a task out of its queue call `remove_from_queue` inside their unit of work, so
the task's event and the queue's `TaskRemoved` event are saved in one transaction. Call it
*before* the task's own change: it finds the queue through the task's `execution.queue`, which
reset and dequeue clear.

    def command(work: UnitOfWork) -> dict:
        task = work.get_task(task_id)
        check_transition(task.status, TaskStatus.created, force)   # check first
        remove_from_queue(work, task, actor=call.actor, reason="task reset")
        task.reset(...)

A command that forgets still cannot make a worker run the task: `queues.get_next_task` drops
entries whose task is no longer queued on that queue.
"""
from __future__ import annotations

from domain.task import Task
from gateway import queue_work
from gateway.group_commit import UnitOfWork


def remove_from_queue(work: UnitOfWork, task: Task, actor: str = "tasktrail",
                      reason: str = "task left the queue") -> bool:
    """Remove the task's entry from the queue it is in, if any; True when there was one."""
    return queue_work.remove_from_queue(work, task, actor=actor, reason=reason)
