"""Validation of the fields a client may give a task (create, validate, edit)."""
from typing import Any

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

STRING_FIELDS = ("name", "comment", "project", "parent", "output_dest")
STRING_LIST_FIELDS = ("tags", "system_tags")
OBJECT_FIELDS = ("script", "execution")
SCRIPT_STRING_FIELDS = (
    "binary",
    "repository",
    "tag",
    "branch",
    "version_num",
    "entry_point",
    "working_dir",
    "diff",
)


def _check_string(field: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise InvalidField(f"Validation error: {field} must be a string")


def _check_string_list(field: str, value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidField(f"Validation error: {field} must be a list of strings")


def _check_object(field: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise InvalidField(f"Validation error: {field} must be an object")


def _check_script(script: dict[str, Any]) -> None:
    for key in SCRIPT_STRING_FIELDS:
        _check_string(f"script.{key}", script.get(key))
    if "requirements" in script and script["requirements"] is not None:
        _check_object("script.requirements", script["requirements"])


def check_task_type(value: Any) -> None:
    if value not in TASK_TYPES:
        raise InvalidField(
            f"Validation error: type must be one of {', '.join(TASK_TYPES)} (got {value!r})"
        )


def validated_task_fields(fields: dict[str, Any], *, require_name_and_type: bool) -> dict[str, Any]:
    """Return the known task fields from a request body, checked; unknown keys are dropped."""
    if require_name_and_type:
        missing = [key for key in ("name", "type") if fields.get(key) in (None, "")]
        if missing:
            raise MissingRequiredField(f"Missing required fields: {', '.join(missing)}")
    known: dict[str, Any] = {}
    for key in STRING_FIELDS:
        if key in fields:
            _check_string(key, fields[key])
            known[key] = fields[key]
    for key in STRING_LIST_FIELDS:
        if key in fields and fields[key] is not None:
            _check_string_list(key, fields[key])
            known[key] = list(fields[key])
    for key in OBJECT_FIELDS:
        if key in fields and fields[key] is not None:
            _check_object(key, fields[key])
            known[key] = dict(fields[key])
    if "script" in known:
        _check_script(known["script"])
    if "type" in fields:
        check_task_type(fields["type"])
        known["type"] = fields["type"]
    return known
