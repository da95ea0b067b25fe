"""The task status machine: one table of allowed transitions, read by one function."""
from enum import Enum

from domain.errors import InvalidField, InvalidStatusChange


class TaskStatus(str, Enum):
    created = "created"
    queued = "queued"
    in_progress = "in_progress"
    stopped = "stopped"
    published = "published"
    publishing = "publishing"
    closed = "closed"
    failed = "failed"
    completed = "completed"
    unknown = "unknown"


S = TaskStatus

# As in clearml-server: from a status (key) a task may move to any status in its set.
# Moving to the same status is always allowed; `force` skips the table.
ALLOWED_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    S.created: frozenset({S.queued, S.in_progress}),
    S.queued: frozenset({S.created, S.in_progress, S.stopped}),
    S.in_progress: frozenset({S.stopped, S.failed, S.created, S.completed}),
    S.stopped: frozenset(
        {S.closed, S.created, S.failed, S.queued, S.in_progress, S.published, S.publishing, S.completed}
    ),
    S.closed: frozenset({S.created, S.failed, S.published, S.publishing, S.stopped}),
    S.failed: frozenset({S.created, S.stopped, S.published, S.queued}),
    S.publishing: frozenset({S.published}),
    S.completed: frozenset({S.published, S.in_progress, S.created}),
    S.published: frozenset(),
    S.unknown: frozenset(),
}


def is_transition_allowed(current: TaskStatus, new: TaskStatus, force: bool = False) -> bool:
    return force or current == new or new in ALLOWED_TRANSITIONS[current]


def check_transition(current: TaskStatus, new: TaskStatus, force: bool = False) -> None:
    """Raise InvalidStatusChange unless the table (or force) allows current -> new."""
    if not is_transition_allowed(current, new, force):
        raise InvalidStatusChange(
            f"Invalid status change: current={current.value} new={new.value}"
        )


def parse_status(value: str) -> TaskStatus:
    try:
        return TaskStatus(value)
    except ValueError:
        raise InvalidField(f"Validation error: unknown task status {value!r}") from None
