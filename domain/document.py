"""Helpers for the task document: nested dicts addressed by dotted paths."""
from datetime import datetime, timezone
from typing import Any


def set_path(document: dict[str, Any], path: str, value: Any) -> None:
    """Set document["a"]["b"] for path "a.b", creating intermediate dicts."""
    *parents, leaf = path.split(".")
    node = document
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[leaf] = value


def get_path(document: dict[str, Any], path: str, default: Any = None) -> Any:
    node: Any = document
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def apply_changes(document: dict[str, Any], changes: dict[str, Any]) -> None:
    """Apply a {dotted path: value} mapping, the same way the MongoDB view applies `$set`."""
    for path, value in changes.items():
        set_path(document, path, value)


def iso_time(moment: datetime) -> str:
    """UTC ISO-8601 text with microseconds, so that text order is time order."""
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")
