"""How a stored event travels over NATS: JSON with the log position as its identity."""
from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from tasktrail.config import Subjects

STANDARD_FIELDS = ("originator_id", "originator_version", "timestamp", "originator_topic")


def event_subject(subjects: Subjects, event: Any) -> str:
    aggregate = type(event).__qualname__.split(".")[0]
    return subjects.event(aggregate, type(event).__name__, event.originator_id.hex)


def event_payload(position: int, event: Any) -> bytes:
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    data = {key: value for key, value in fields.items() if key not in STANDARD_FIELDS}
    return orjson.dumps(
        {
            "position": position,
            "aggregate": type(event).__qualname__.split(".")[0],
            "type": type(event).__name__,
            "id": event.originator_id.hex,
            "version": event.originator_version,
            "timestamp": event.timestamp,
            "data": data,
        }
    )
