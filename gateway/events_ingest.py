"""`events.add_batch` / `events.add`: the console lines and scalar metrics that runs report.

The SDK and the workers send a batch as newline-delimited JSON events (or a JSON list), each
naming its task and its type. A batch is recorded in one transaction: its events are grouped by
task, and each task records ONE `Task.LogReported` for its `log` events and ONE
`Task.MetricsReported` for its `training_stats_scalar` events (never an event per line or
point; only a batch beyond the per-event caps of domain/task_reports.py is split). An event for
an unknown, deleted or published task, or with an invalid value, is counted in `errors` (by
reason, in `errors_info`) and the rest of the batch is still recorded. Other event types
(plots, debug images, vectors) are checked and counted as added but not stored yet.

A batch whose structure is wrong (not objects, no task or type, an id that is no task id) is
refused whole, as before.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from domain.errors import InvalidField, InvalidStatusChange, TaskNotFound, TaskTrailError
from domain.task import TaskIsPublished, task_id_to_uuid
from domain.task_reports import log_line, scalar_point
from gateway.call import Call, Endpoint
from gateway.envelope import ApiError
from gateway.errors import invalid_field
from gateway.group_commit import UnitOfWork

MAX_BATCH_EVENTS = 10_000
LOG = "log"
SCALAR = "training_stats_scalar"
WORKER_HEADER = "X-ClearML-Worker"  # who sends (as clearml-server reads it); the default `worker` of a line
CONFLICT_RETRIES = 3  # another process changed one of the tasks at the same moment: record again


def batch_contains_no_items() -> ApiError:
    return ApiError(400, 17, "Batch request contains no items")


def checked_event(index: int, event: Any) -> dict[str, Any]:
    """One reported event: an object with a task id and a type; other keys are the SDK's to choose."""
    if not isinstance(event, dict):
        raise invalid_field(f"event {index} must be an object")
    for key in ("task", "type"):
        if not isinstance(event.get(key), str) or not event[key]:
            raise invalid_field(f"event {index} lacks a string {key!r}")
    try:
        task_id_to_uuid(event["task"])
    except ValueError:
        raise invalid_field(f"event {index} has an invalid task id {event['task']!r}") from None
    return event


def checked_batch(events: list[Any]) -> list[dict[str, Any]]:
    if not events:
        raise batch_contains_no_items()
    if len(events) > MAX_BATCH_EVENTS:
        raise invalid_field(f"a batch holds at most {MAX_BATCH_EVENTS} events (got {len(events)})")
    return [checked_event(index, event) for index, event in enumerate(events)]


@dataclass
class TaskReports:
    """What one batch reports for one task, in the batch's order."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    points: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0  # every valid event of the task, stored or only counted


def grouped(events: list[dict[str, Any]], default_worker: str, now_ms: int) -> tuple[dict[str, TaskReports], Counter]:
    """The batch's valid events by task, and the invalid ones counted by reason."""
    reports: dict[str, TaskReports] = {}
    errors: Counter = Counter()
    for event in events:
        report = reports.setdefault(event["task"], TaskReports())
        kind = event["type"].replace(" ", "_")
        try:
            if kind == LOG:
                report.lines.append(log_line(event, default_worker, now_ms))
            elif kind == SCALAR:
                report.points.append(scalar_point(event, now_ms))
        except InvalidField as error:
            errors[str(error)] += 1
            continue
        report.events += 1
    return reports, errors


def refusal_reason(refusal: TaskTrailError) -> str:
    if isinstance(refusal, TaskNotFound):
        return "Invalid task id"
    if isinstance(refusal, TaskIsPublished):
        return "Task is published"
    return str(refusal)


def record_reports(work: UnitOfWork, reports: dict[str, TaskReports], actor: str) -> tuple[int, Counter]:
    """The command: per task, one LogReported and one MetricsReported; refused tasks are counted."""
    added = 0
    errors: Counter = Counter()
    for task_id, report in reports.items():
        if not report.events:
            continue
        try:
            task = work.get_task(task_id)
            task.check_reportable()
        except TaskTrailError as refusal:
            errors[refusal_reason(refusal)] += report.events
            continue
        if report.lines:
            task.report_log(report.lines, actor)
        if report.points:
            task.report_metrics(report.points, actor)
        added += report.events
    return added, errors


async def record(call: Call, events: list[dict[str, Any]]) -> dict[str, Any]:
    default_worker = call.request.headers.get(WORKER_HEADER) or call.actor
    reports, errors = grouped(events, default_worker, int(time.time() * 1000))
    added = 0
    if any(report.events for report in reports.values()):
        for attempt in range(CONFLICT_RETRIES):
            try:
                outcome = await call.writer.execute(lambda work: record_reports(work, reports, call.actor))
                break
            except InvalidStatusChange:  # the only refusal the command lets out: a concurrent writer won
                if attempt + 1 == CONFLICT_RETRIES:
                    raise
        added, refused = outcome.result
        errors.update(refused)
    return {"added": added, "errors": sum(errors.values()), "errors_info": dict(errors)}


async def add_batch(call: Call) -> dict[str, Any]:
    return await record(call, checked_batch(call.body["requests"]))


add_batch.accepts_batch = True  # type: ignore[attr-defined]


async def add(call: Call) -> dict[str, Any]:
    return await record(call, [checked_event(0, call.body)])


ENDPOINTS: dict[str, Endpoint] = {
    "events.add_batch": add_batch,
    "events.add": add,
}
