"""The fields a client may give a task, checked field by field, and the form they are stored in.

Requests carry the API form of the later ClearML definitions. The task document (aggregate state
and MongoDB view alike) stores a few things differently, as clearml-server does:

- keys of client-named maps (hyperparams sections and names, configuration names, container,
  runtime, parameters, ...) are escaped (`%` -> `%25`, `.` -> `%2E`, `$` -> `%24`), so that a
  dotted path always addresses one field and no key can look like a MongoDB operator;
- `execution.artifacts` is a map keyed by `<md5 of key>_<mode>` (answered as a list sorted by key
  and mode).

`api_document` turns a stored document back into the API form.
"""
from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from domain.document import iso_time
from domain.errors import InvalidField, MissingRequiredField

TASK_TYPES = (
    "training",
    "testing",
    "inference",
    "data_processing",
    "application",
    "monitor",
    "controller",
    "optimizer",
    "service",
    "qc",
    "custom",
)
ARTIFACT_MODES = ("input", "output")
DEFAULT_ARTIFACT_MODE = "output"
MODEL_TYPES = ("input", "output")
REPLACE_HYPERPARAMS = ("none", "section", "all")
PROPERTIES_SECTION = "properties"
# Fields of the stored document that the API does not answer (clearml-server excludes them too).
INTERNAL_FIELDS = ("enqueue_status",)


def _invalid(path: str, expected: str) -> InvalidField:
    return InvalidField(f"Validation error: {path} must be {expected}")


# -- a small schema language: each spec checks a value and returns a clean copy -----------------
Spec = Callable[[str, Any], Any]


def string(path: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _invalid(path, "a string")
    return value


def nullable_string(path: str, value: Any) -> str | None:
    return None if value is None else string(path, value)


def integer(path: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(path, "an integer")
    return value


def boolean(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _invalid(path, "a boolean")
    return value


def scalar(path: str, value: Any) -> Any:
    if value is not None and not isinstance(value, (str, int, float)):
        raise _invalid(path, "a string, a number or null")
    return value


def free_object(path: str, value: Any) -> dict[str, Any]:
    """Any JSON object (its content is the client's business)."""
    if not isinstance(value, dict):
        raise _invalid(path, "an object")
    return copy.deepcopy(value)


def enum(*allowed: str) -> Spec:
    def check(path: str, value: Any) -> str:
        if value not in allowed:
            raise InvalidField(
                f"Validation error: {path} must be one of {', '.join(allowed)} (got {value!r})"
            )
        return value

    return check


def list_of(item: Spec) -> Spec:
    def check(path: str, value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise _invalid(path, "a list")
        return [item(f"{path}[{index}]", element) for index, element in enumerate(value)]

    return check


def map_of(item: Spec) -> Spec:
    def check(path: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _invalid(path, "an object")
        return {key: item(f"{path}.{key}", element) for key, element in value.items()}

    return check


def obj(properties: Mapping[str, Spec], required: Iterable[str] = ()) -> Spec:
    """An object with known properties: unknown keys are dropped, null means absent."""
    required = tuple(required)

    def check(path: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _invalid(path, "an object")
        missing = [key for key in required if value.get(key) is None]
        if missing:
            raise InvalidField(f"Validation error: {path} lacks {', '.join(missing)}")
        return {
            key: properties[key](f"{path}.{key}", element)
            for key, element in value.items()
            if key in properties and element is not None
        }

    return check


SCRIPT = obj(
    {
        **dict.fromkeys(
            ("binary", "repository", "tag", "branch", "version_num", "entry_point", "working_dir", "diff"),
            string,
        ),
        "requirements": free_object,
    }
)
ARTIFACT_TYPE_DATA = obj(dict.fromkeys(("preview", "content_type", "data_hash"), string))
ARTIFACT = obj(
    {
        "key": string,
        "type": string,
        "mode": enum(*ARTIFACT_MODES),
        "uri": string,
        "content_size": integer,
        "hash": string,
        "timestamp": integer,
        "type_data": ARTIFACT_TYPE_DATA,
        "display_data": list_of(list_of(scalar)),
    },
    required=("key", "type"),
)
ARTIFACT_ID = obj({"key": string, "mode": enum(*ARTIFACT_MODES)}, required=("key",))
EXECUTION = obj(
    {
        "queue": string,
        "parameters": free_object,
        "model": string,
        "model_desc": free_object,
        "model_labels": map_of(integer),
        "framework": string,
        "docker_cmd": string,
        "artifacts": list_of(ARTIFACT),
    }
)
PARAMS_ITEM = obj(dict.fromkeys(("section", "name", "value", "type", "description"), string))
CONFIGURATION_ITEM = obj(dict.fromkeys(("name", "value", "type", "description"), string))
MODEL_ITEM = obj({"name": string, "model": string}, required=("name", "model"))
MODELS = obj({"input": list_of(MODEL_ITEM), "output": list_of(MODEL_ITEM)})

# The fields of tasks.create / validate / edit, each with its spec.
TASK_FIELDS: dict[str, Spec] = {
    "name": string,
    "comment": string,
    "parent": string,
    "project": string,
    "output_dest": string,
    "tags": list_of(string),
    "system_tags": list_of(string),
    "type": enum(*TASK_TYPES),
    "script": SCRIPT,
    "execution": EXECUTION,
    "hyperparams": map_of(map_of(PARAMS_ITEM)),
    "configuration": map_of(CONFIGURATION_ITEM),
    "container": map_of(nullable_string),
    "models": MODELS,
    "runtime": free_object,
}
# Field names the messages of older code used; kept as the public names of the simple fields.
STRING_FIELDS = ("name", "comment", "project", "parent", "output_dest")
STRING_LIST_FIELDS = ("tags", "system_tags")


def check_task_type(value: Any) -> None:
    TASK_FIELDS["type"]("type", value)


def validated_task_fields(fields: dict[str, Any], *, require_name_and_type: bool) -> dict[str, Any]:
    """Return the known task fields from a request body, checked (API form); unknown keys are dropped.

    A null value means "not given", except for `type`, which must then be a task type.
    """
    if require_name_and_type:
        missing = [key for key in ("name", "type") if fields.get(key) in (None, "")]
        if missing:
            raise MissingRequiredField(f"Missing required fields: {', '.join(missing)}")
    known: dict[str, Any] = {}
    for key, spec in TASK_FIELDS.items():
        if key not in fields or (fields[key] is None and key != "type"):
            continue
        known[key] = spec(key, fields[key])
    return known


# -- tasks.update fields ------------------------------------------------------------------------
UPDATE_FIELDS: dict[str, Spec] = {
    "name": string,
    "comment": string,
    "project": string,
    "tags": list_of(string),
    "system_tags": list_of(string),
    "output__error": string,
    "created": lambda path, value: parse_time(path, value),
}
# Where each tasks.update field lives in the document.
UPDATE_PATHS = {"output__error": "output.error"}


def validated_update_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields tasks.update may change, checked, as {document path: stored value}."""
    changes: dict[str, Any] = {}
    for key, spec in UPDATE_FIELDS.items():
        if key in fields and fields[key] is not None:
            changes[UPDATE_PATHS.get(key, key)] = spec(key, fields[key])
    return changes


def parse_time(path: str, value: Any) -> str:
    """An ISO-8601 date-time (naive means UTC) or epoch seconds, as the document's UTC text."""
    moment = to_datetime(value)
    if moment is None:
        raise _invalid(path, "an ISO-8601 date-time or epoch seconds")
    return iso_time(moment)


def to_datetime(value: Any) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return _from_epoch(value)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        return _from_epoch(float(text))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _from_epoch(seconds: float) -> datetime | None:
    if seconds > 1e11:  # milliseconds
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


# -- keys: escaping, artifacts ------------------------------------------------------------------
_ESCAPES = {"%": "%25", ".": "%2E", "$": "%24"}
_UNESCAPES = {code: char for char, code in _ESCAPES.items()}
_ESCAPE_RE = re.compile(r"[%.$]")
_UNESCAPE_RE = re.compile(r"%(?:25|2E|24)")


def escape_key(key: str) -> str:
    return _ESCAPE_RE.sub(lambda match: _ESCAPES[match.group()], key)


def unescape_key(key: str) -> str:
    return _UNESCAPE_RE.sub(lambda match: _UNESCAPES[match.group()], key)


def escape_keys(value: Any) -> Any:
    """A copy of `value` with every key of every nested object escaped."""
    if isinstance(value, dict):
        return {escape_key(str(key)): escape_keys(element) for key, element in value.items()}
    if isinstance(value, list):
        return [escape_keys(element) for element in value]
    return value


def unescape_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {unescape_key(key): unescape_keys(element) for key, element in value.items()}
    if isinstance(value, list):
        return [unescape_keys(element) for element in value]
    return value


def artifact_id(artifact: Mapping[str, Any]) -> str:
    """As clearml-server: md5 of the key and the mode, so the id is a safe field name."""
    key_hash = hashlib.md5(artifact["key"].encode()).hexdigest()
    return f"{key_hash}_{artifact.get('mode') or DEFAULT_ARTIFACT_MODE}"


def stored_artifacts(artifacts: list[dict[str, Any]]) -> dict[str, Any]:
    stored = {}
    for artifact in artifacts:
        item = escape_keys({**artifact, "mode": artifact.get("mode") or DEFAULT_ARTIFACT_MODE})
        stored[artifact_id(item)] = item
    return stored


def stored_execution(execution: dict[str, Any]) -> dict[str, Any]:
    stored = escape_keys({key: value for key, value in execution.items() if key != "artifacts"})
    if "artifacts" in execution:
        stored["artifacts"] = stored_artifacts(execution["artifacts"])
    return stored


def stored_models(models: dict[str, Any], updated: str) -> dict[str, Any]:
    return {kind: [{**item, "updated": updated} for item in items] for kind, items in models.items()}


def stored_value(field: str, value: Any, at: str) -> Any:
    """The stored form of one validated create/edit field."""
    if field == "execution":
        return stored_execution(value)
    if field == "models":
        return stored_models(value, at)
    return escape_keys(value)


def api_document(document: Mapping[str, Any], keep_internal: bool = False) -> dict[str, Any]:
    """The API form of a stored task document (or of part of one, e.g. a command's changes).

    Private keys (`_id`, `_version`, `_text`) are left out, and so are INTERNAL_FIELDS unless
    `keep_internal` (a command's answer reports them as clearml-server does).
    """
    hidden = () if keep_internal else INTERNAL_FIELDS
    answer = unescape_keys(
        {key: value for key, value in document.items() if not key.startswith("_") and key not in hidden}
    )
    execution = answer.get("execution")
    if isinstance(execution, dict) and isinstance(execution.get("artifacts"), dict):
        execution["artifacts"] = sorted(
            execution["artifacts"].values(), key=lambda item: (item.get("key", ""), item.get("mode", ""))
        )
    return answer


# -- free-text search ---------------------------------------------------------------------------
SEARCH_TEXT_FIELD = "_text"
SEARCH_TEXT_SOURCES = ("name", "comment", "script.repository", "script.entry_point")


def search_text(task_id: str, document: Mapping[str, Any]) -> str:
    """One lower-cased text of the fields `search_text` looks in (kept in the document)."""
    parts = [task_id]
    for path in SEARCH_TEXT_SOURCES:
        node: Any = document
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, str) and node:
            parts.append(node)
    return "\n".join(parts).lower()
