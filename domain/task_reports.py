"""What a run reports besides its status: console log lines and scalar metric points.

Reports arrive in batches (`events.add_batch`); each batch becomes, per task, one
`Task.LogReported` and/or one `Task.MetricsReported` event, never one event per line or point.
This module shapes them: it checks and normalises one reported line or point, caps what one
event may hold (so an event stays well under NATS's 1 MiB message limit), and computes the
task's `last_metrics` entries (clearml-server's shape) from the entries the task already has.
Last, min and max depend on earlier reports, so the command computes them from the aggregate
and records the results in the event: the views then stay a pure function of the log.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from domain.errors import InvalidField

# Caps that keep one event bounded.
MAX_LINE_CHARS = 8192  # a longer message is cut, with a note of how much was cut
MAX_LINES_PER_EVENT = 1000
MAX_POINTS_PER_EVENT = 1000
MAX_EVENT_SIZE = 256 * 1024  # estimated JSON size of the lines (or points) of one event
MAX_NAME_CHARS = 255  # metric and variant names
MAX_LEVEL_CHARS = 32
MAX_WORKER_CHARS = 255
MAX_ITERATION = 2**63 - 1
DEFAULT_LEVEL = "info"

T = TypeVar("T")


def truncated(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """`text`, cut to `limit` characters with a note saying how many were cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} characters truncated]"


def json_size(item: Any) -> int:
    """An upper bound of the item's size as UTF-8 JSON (ASCII-escaped JSON is never shorter)."""
    return len(json.dumps(item))


def chunked(items: list[T], max_items: int, max_size: int = MAX_EVENT_SIZE,
            size: Callable[[T], int] = json_size) -> list[list[T]]:
    """`items` in order, cut into chunks of at most `max_items` items and about `max_size` size.

    A chunk holds at least one item, so a single item over `max_size` still gets its own chunk
    (lines are truncated to MAX_LINE_CHARS first, so that is bounded too).
    """
    chunks: list[list[T]] = []
    current: list[T] = []
    current_size = 0
    for item in items:
        item_size = size(item)
        if current and (len(current) >= max_items or current_size + item_size > max_size):
            chunks.append(current)
            current, current_size = [], 0
        current.append(item)
        current_size += item_size
    if current:
        chunks.append(current)
    return chunks


# -- reading one reported event ---------------------------------------------------------------
def _timestamp(event: Mapping[str, Any], default_ms: int) -> int:
    value = event.get("timestamp")
    if value is None:
        return default_ms
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidField("Validation error: timestamp must be a number (milliseconds since the epoch)")
    return int(value)


def _short_string(event: Mapping[str, Any], key: str, default: str, limit: int) -> str:
    value = event.get(key)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise InvalidField(f"Validation error: {key} must be a string")
    return value[:limit]


def log_line(event: Mapping[str, Any], default_worker: str, now_ms: int) -> dict[str, Any]:
    """One `log` event as a stored line: timestamp (ms), level, worker and message (truncated)."""
    message = event.get("msg")
    if message is None:
        message = ""
    elif not isinstance(message, str):
        message = json.dumps(message)
    return {
        "timestamp": _timestamp(event, now_ms),
        "level": _short_string(event, "level", DEFAULT_LEVEL, MAX_LEVEL_CHARS),
        "worker": _short_string(event, "worker", default_worker, MAX_WORKER_CHARS),
        "msg": truncated(message),
    }


def scalar_point(event: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    """One `training_stats_scalar` event as a stored point: metric, variant, value, iter, timestamp."""
    value = event.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidField("Validation error: value must be a finite number")
    iteration = event.get("iter")
    if iteration is not None:
        if isinstance(iteration, float) and iteration.is_integer():
            iteration = int(iteration)
        if isinstance(iteration, bool) or not isinstance(iteration, int) or abs(iteration) > MAX_ITERATION:
            raise InvalidField(f"Validation error: iter must be an integer not exceeding {MAX_ITERATION}")
    names = {}
    for key in ("metric", "variant"):
        name = event.get(key) or ""
        if not isinstance(name, str) or len(name) > MAX_NAME_CHARS:
            raise InvalidField(f"Validation error: {key} must be a string of at most {MAX_NAME_CHARS} characters")
        names[key] = name
    return {**names, "value": value, "iter": iteration, "timestamp": _timestamp(event, now_ms)}


# -- last_metrics ---------------------------------------------------------------------------
def metric_key(name: str) -> str:
    """A metric or variant name as a `last_metrics` key (as clearml-server hashes them)."""
    return hashlib.md5(name.encode()).hexdigest()


def next_metric_entry(previous: Mapping[str, Any] | None, point: Mapping[str, Any]) -> dict[str, Any]:
    """The `last_metrics` entry of a metric and variant after one more point.

    The last value is the one of the highest iteration (a later report wins a tie); min and max
    keep the iteration they were reached at; count and mean cover every point reported.
    """
    value = point["value"]
    iteration = point["iter"] if point["iter"] is not None else 0
    if not previous:
        return {
            "metric": point["metric"],
            "variant": point["variant"],
            "value": value,
            "iter": iteration,
            "min_value": value,
            "min_value_iteration": iteration,
            "max_value": value,
            "max_value_iteration": iteration,
            "first_value": value,
            "first_value_iteration": iteration,
            "count": 1,
            "mean_value": value,
        }
    entry = dict(previous)
    count = int(previous.get("count") or 1) + 1
    mean = previous.get("mean_value", previous.get("value", value))
    entry["count"] = count
    entry["mean_value"] = mean + (value - mean) / count
    if value < previous.get("min_value", value) or "min_value" not in previous:
        entry["min_value"], entry["min_value_iteration"] = value, iteration
    if value > previous.get("max_value", value) or "max_value" not in previous:
        entry["max_value"], entry["max_value_iteration"] = value, iteration
    if iteration >= previous.get("iter", iteration):
        entry["value"], entry["iter"] = value, iteration
    return entry


def updated_last_metrics(current: Mapping[str, Any] | None,
                         points: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """The `last_metrics` entries the points change, as they are after them ({metric key: {variant key: entry}}).

    Points without a metric or a variant name count for the iteration only (as in clearml-server).
    """
    current = current or {}
    changed: dict[str, dict[str, dict[str, Any]]] = {}
    for point in points:
        if not point["metric"] or not point["variant"]:
            continue
        metric, variant = metric_key(point["metric"]), metric_key(point["variant"])
        previous = changed.get(metric, {}).get(variant)
        if previous is None:
            variants = current.get(metric)
            previous = variants.get(variant) if isinstance(variants, Mapping) else None
        changed.setdefault(metric, {})[variant] = next_metric_entry(previous, point)
    return changed


def max_iteration(points: Iterable[Mapping[str, Any]]) -> int | None:
    iterations = [point["iter"] for point in points if point["iter"] is not None]
    return max(iterations) if iterations else None
