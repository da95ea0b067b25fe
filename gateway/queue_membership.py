"""How task commands keep queues in step with tasks (a task leaves its queue on reset, delete, ...).

Commands that take a task out of its queue call `remove_from_queue` inside their unit of work, so
the task's event and the queue's event are saved in one transaction.
"""
from __future__ import annotations

from domain.task import Task
from gateway.group_commit import UnitOfWork


def remove_from_queue(work: UnitOfWork, task: Task) -> None:
    """Remove the task's entry from the queue it is in, if any (no-op until queues are aggregates)."""
