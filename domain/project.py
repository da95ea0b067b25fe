"""The Project aggregate (a named folder of tasks) and the reservation that keeps names unique.

As with tasks, the aggregate's state is the project document (`Project.doc`) and each event
states its effect as dotted-path changes, which the aggregate and the MongoDB view both apply.

Two projects may not share a name. The name is reserved by a `ProjectName` aggregate whose id is
derived from the name, saved in the same transaction as the project: a second reservation of the
name meets the first one (in the unit of work, or as a version conflict in the event store), so
two concurrent creations with one name can never both succeed, on any number of gateways.
"""
from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.document import apply_changes, iso_time
from domain.errors import InvalidField, InvalidProjectName, ProjectNotFound

STRING_FIELDS = ("description", "default_output_destination")
STRING_LIST_FIELDS = ("tags", "system_tags")
MAX_NAME_LENGTH = 1024


def parse_project_id(project_id: Any) -> UUID:
    """Project ids are 32 hex digits, as task ids are."""
    if not isinstance(project_id, str) or len(project_id) != 32:
        raise ProjectNotFound(f"Invalid project id: {project_id}")
    try:
        return UUID(hex=project_id)
    except ValueError:
        raise ProjectNotFound(f"Invalid project id: {project_id}") from None


def checked_name(name: Any) -> str:
    """A project name: non-blank text; "a/b" names project b inside a, so no part may be blank."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidProjectName("Invalid project name: name must be a non-empty string")
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidProjectName(f"Invalid project name: longer than {MAX_NAME_LENGTH} characters")
    if any(not part.strip() for part in name.split("/")):
        raise InvalidProjectName(f"Invalid project name {name!r}: a path part is empty")
    return name


def validated_project_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The known, checked project fields of a request body (without the name); unknown keys are dropped."""
    fields: dict[str, Any] = {}
    for key in STRING_FIELDS:
        if body.get(key) is not None:
            if not isinstance(body[key], str):
                raise InvalidField(f"Validation error: {key} must be a string")
            fields[key] = body[key]
    for key in STRING_LIST_FIELDS:
        if body.get(key) is not None:
            value = body[key]
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise InvalidField(f"Validation error: {key} must be a list of strings")
            fields[key] = list(value)
    return fields


class Project(Aggregate):
    class Event(Aggregate.Event):
        actor: str

        @property
        def at(self) -> str:
            return iso_time(self.timestamp)

        def changes(self) -> dict[str, Any]:
            return {"last_update": self.at}

        def apply(self, project: Project) -> None:
            apply_changes(project.doc, self.changes())

    class Created(Event, Aggregate.Created):
        name: str
        fields: dict[str, Any]

        def changes(self) -> dict[str, Any]:
            return {
                "name": self.name,
                "basename": self.name.rsplit("/", 1)[-1],
                "description": self.fields.get("description", ""),
                "user": self.actor,
                "tags": list(self.fields.get("tags", [])),
                "system_tags": list(self.fields.get("system_tags", [])),
                "default_output_destination": self.fields.get("default_output_destination"),
                "created": self.at,
                **super().changes(),
            }

    class Updated(Event):
        """Some of the project's fields were given new values."""

        fields: dict[str, Any]

        def changes(self) -> dict[str, Any]:
            return {**super().changes(), **self.fields}

    def __init__(self) -> None:
        self.doc: dict[str, Any] = {}

    @property
    def project_id(self) -> str:
        return self.id.hex

    @property
    def name(self) -> str:
        return self.doc["name"]

    @classmethod
    def create(cls, project_id: UUID, name: str, fields: dict[str, Any], actor: str) -> Project:
        return cls._create(cls.Created, id=project_id, name=checked_name(name), fields=fields, actor=actor)

    def update(self, fields: dict[str, Any], actor: str) -> None:
        """Record the fields whose values change; nothing when none does."""
        changed = {key: value for key, value in fields.items() if self.doc.get(key) != value}
        if changed:
            self.trigger_event(self.Updated, fields=changed, actor=actor)


class ProjectName(Aggregate):
    """The reservation of one project name; its id is a function of the name."""

    class Reserved(Aggregate.Created):
        name: str
        project_id: str

    def __init__(self, name: str, project_id: str) -> None:
        self.name = name
        self.project_id = project_id

    @staticmethod
    def id_for(name: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"tasktrail:project-name:{name}")

    @classmethod
    def reserve(cls, name: str, project_id: str) -> ProjectName:
        return cls._create(cls.Reserved, id=cls.id_for(name), name=name, project_id=project_id)
