"""`events.add_batch` / `events.add`: the metrics, console logs and plots the SDK reports.

The SDK sends a batch as newline-delimited JSON events, each naming its task and its type
(`training_stats_scalar`, `log`, `plot`, `training_debug_image`, ...). Each batch is checked and
counted; it is NOT stored yet: recording one `Task.MetricsReported` event per batch (and the
metrics view) belongs to the Task aggregate and comes with it.
"""
from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from domain.task import task_id_to_uuid
from gateway.call import Call, Endpoint
from gateway.envelope import ApiError
from gateway.errors import invalid_field

log = logging.getLogger(__name__)

MAX_BATCH_EVENTS = 10_000


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


def accept(events: list[dict[str, Any]]) -> dict[str, Any]:
    kinds = Counter(event["type"] for event in events)
    tasks = {event["task"] for event in events}
    log.debug("accepted %d events (%s) for %d task(s), not stored", len(events), dict(kinds), len(tasks))
    return {"added": len(events), "errors": 0, "errors_info": {}}


async def add_batch(call: Call) -> dict[str, Any]:
    return accept(checked_batch(call.body["requests"]))


add_batch.accepts_batch = True  # type: ignore[attr-defined]


async def add(call: Call) -> dict[str, Any]:
    accept([checked_event(0, call.body)])
    return {}


ENDPOINTS: dict[str, Endpoint] = {
    "events.add_batch": add_batch,
    "events.add": add,
}
