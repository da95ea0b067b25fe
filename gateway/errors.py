"""Maps refusals to the envelope's result codes (as clearml-server numbers them)."""
from __future__ import annotations

from domain.errors import (
    InvalidField,
    InvalidProjectName,
    InvalidStatusChange,
    MissingRequiredField,
    ProjectNameTaken,
    ProjectNotFound,
    TaskNotFound,
    TaskTrailError,
)
from domain.queue import (
    DefaultQueueExists,
    QueueNameTaken,
    QueueNotEmpty,
    QueueNotFound,
    TaskAlreadyInQueue,
    TaskNotInQueue,
)
from domain.task import FieldsConflict, MissingTaskFields, TaskCannotBeDeleted
from domain.worker import WorkerNotRegistered
from gateway.envelope import ApiError

# (result_code, result_subcode) for each domain refusal; the most specific class wins.
DOMAIN_ERROR_CODES: list[tuple[type[TaskTrailError], tuple[int, int]]] = [
    (ProjectNotFound, (400, 401)),
    (InvalidProjectName, (400, 407)),
    (ProjectNameTaken, (400, 801)),
    (QueueNotFound, (400, 701)),
    (QueueNotEmpty, (400, 702)),
    (TaskNotInQueue, (400, 703)),
    (TaskAlreadyInQueue, (400, 706)),
    (DefaultQueueExists, (400, 708)),
    (QueueNameTaken, (400, 801)),
    (WorkerNotRegistered, (400, 1004)),
    (TaskCannotBeDeleted, (400, 123)),
    (MissingTaskFields, (400, 122)),
    (FieldsConflict, (400, 15)),
    (TaskNotFound, (400, 101)),
    (InvalidStatusChange, (400, 110)),
    (MissingRequiredField, (400, 11)),
    (InvalidField, (400, 12)),
]


def api_error_for(error: TaskTrailError) -> ApiError:
    for error_class, (code, subcode) in DOMAIN_ERROR_CODES:
        if isinstance(error, error_class):
            return ApiError(code, subcode, str(error))
    return ApiError(400, 0, str(error))


def malformed_json(detail: str) -> ApiError:
    return ApiError(400, 12, f"Invalid request body: malformed JSON ({detail})")


def invalid_field(message: str) -> ApiError:
    return ApiError(400, 12, f"Validation error: {message}")


def missing_field(name: str) -> ApiError:
    return ApiError(400, 11, f"Missing required fields: {name}")


def unknown_endpoint(name: str, version: str | None) -> ApiError:
    return ApiError(404, 0, f"Unable to find endpoint for name {name} and version {version or 'latest'}")
