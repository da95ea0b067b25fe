"""Environment requirements of a task, in the Train API vocabulary, and whether a worker meets them.

A task declares them in `script.requirements.environment` as a Train API `ListRequirementsResponse`:

    {"requirements": [{"id": 0, "requirement": {"type": "environmentVariable", "name": "DATA_URL",
                                                "target": "URL"}}, ...],
     "relations": [{"type": "all" | "any", "requirements": [0, ...]}, ...]}

Every relation must hold: `all` needs each listed requirement, `any` at least one. A requirement
that no relation names is needed on its own (as if in an `all` relation). Only the type
`environmentVariable` exists so far: the variable must be set in the worker's environment, and its
name must match `^[A-Z]+(_[A-Z]+)*$`.
"""
from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from domain.document import get_path
from domain.errors import InvalidField

REQUIREMENTS_PATH = "script.requirements.environment"
ENVIRONMENT_VARIABLE = "environmentVariable"
VARIABLE_NAME = re.compile(r"^[A-Z]+(_[A-Z]+)*$")
RELATION_TYPES = ("all", "any")


def _invalid(detail: str) -> InvalidField:
    return InvalidField(f"Validation error: {REQUIREMENTS_PATH}: {detail}")


def checked_requirements(spec: Any) -> dict[str, Any]:
    """The requirements section, checked; raises InvalidField with what is wrong."""
    if not isinstance(spec, dict):
        raise _invalid("must be an object with `requirements` and `relations`")
    requirements = spec.get("requirements") or []
    relations = spec.get("relations") or []
    if not isinstance(requirements, list) or not isinstance(relations, list):
        raise _invalid("`requirements` and `relations` must be lists")
    ids: set[int] = set()
    for item in requirements:
        if not isinstance(item, dict) or not isinstance(item.get("id"), int) or isinstance(item["id"], bool):
            raise _invalid("each requirement needs an integer `id`")
        if item["id"] in ids:
            raise _invalid(f"requirement id {item['id']} appears twice")
        ids.add(item["id"])
        requirement = item.get("requirement")
        if not isinstance(requirement, dict) or requirement.get("type") != ENVIRONMENT_VARIABLE:
            raise _invalid(f"requirement {item['id']}: the only supported type is {ENVIRONMENT_VARIABLE!r}")
        name = requirement.get("name")
        if not isinstance(name, str) or not VARIABLE_NAME.match(name):
            raise _invalid(f"requirement {item['id']}: variable name {name!r} must match {VARIABLE_NAME.pattern}")
        if requirement.get("target") is not None and not isinstance(requirement["target"], str):
            raise _invalid(f"requirement {item['id']}: `target` must be a string")
    for relation in relations:
        if not isinstance(relation, dict) or relation.get("type") not in RELATION_TYPES:
            raise _invalid(f"each relation needs a `type` among {', '.join(RELATION_TYPES)}")
        members = relation.get("requirements")
        if not isinstance(members, list) or not members:
            raise _invalid("each relation needs a non-empty list of requirement ids")
        unknown = [member for member in members if member not in ids]
        if unknown:
            raise _invalid(f"relation names unknown requirement ids {unknown}")
    return {"requirements": requirements, "relations": relations}


def task_requirements(task_document: dict[str, Any]) -> dict[str, Any] | None:
    """The requirements a task document declares (checked), or None."""
    spec = get_path(task_document, REQUIREMENTS_PATH)
    return checked_requirements(spec) if spec else None


def unmet_requirements(spec: dict[str, Any] | None, environment: Collection[str]) -> list[str]:
    """What an environment (names of the variables set) lacks: [] when every relation holds.

    Each item reads as a sentence fragment: "DATA_URL" or "one of DATA_URL, DATA_PATH".
    """
    if not spec:
        return []
    names = {item["id"]: item["requirement"]["name"] for item in spec["requirements"]}
    related: set[int] = set()
    missing: list[str] = []
    for relation in spec["relations"]:
        members = relation["requirements"]
        related.update(members)
        absent = [names[member] for member in members if names[member] not in environment]
        if relation["type"] == "all":
            missing.extend(name for name in absent if name not in missing)
        elif len(absent) == len(members):
            missing.append("one of " + ", ".join(names[member] for member in members))
    for requirement_id, name in names.items():
        if requirement_id not in related and name not in environment and name not in missing:
            missing.append(name)
    return missing
