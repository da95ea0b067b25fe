"""`projects.*`: create (a command on the Project aggregate), get_by_id (from the aggregate: read
your own write) and get_all (from the view).

The SDK finds a project by name (`projects.get_all` with the regex `^name$`) and creates it when
none matches; names are unique (see `domain.project`) and matched case-sensitively.
"""
from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

from eventsourcing.application import AggregateNotFoundError
from pymongo.collection import Collection

from domain.errors import ProjectNameTaken
from domain.project import Project, ProjectName, checked_name, parse_project_id, validated_project_fields
from gateway.call import Call, Endpoint
from gateway.errors import invalid_field
from gateway.group_commit import UnitOfWork
from gateway.request import optional_bool, optional_int, optional_string, optional_string_list, required_string
from gateway.task_queries import (
    checked_field_name,
    checked_pattern,
    list_field_filter,
    membership,
    task_from_view as document_from_view,
)
from projections import project_view

MAX_PAGE_SIZE = 500
HIDDEN_TAG = "hidden"  # system tag of the SDK's own projects (datasets, pipelines): listed on request only


def project_document(project: Project) -> dict[str, Any]:
    return {"id": project.project_id, **project.doc}


def reserve_name(work: UnitOfWork, name: str, project_id: str) -> None:
    """Reserve `name` for the project in this unit of work, unless a project already has it."""
    reservation_id = ProjectName.id_for(name)
    try:
        work.get(reservation_id, work.app.repository.get)
    except AggregateNotFoundError:
        work.add(ProjectName.reserve(name, project_id))
        return
    raise ProjectNameTaken(f"Project name already exists: {name!r} (names must be unique)")


async def create(call: Call) -> dict[str, Any]:
    name = checked_name(required_string(call.body, "name"))
    fields = validated_project_fields(call.body)
    project_id = uuid4()

    def command(work: UnitOfWork) -> str:
        reserve_name(work, name, project_id.hex)
        project = Project.create(project_id, name, fields, call.actor)
        work.add(project)
        return project.project_id

    outcome = await call.writer.execute(command)
    return {"id": outcome.result}


async def get_by_id(call: Call) -> dict[str, Any]:
    project_id = parse_project_id(required_string(call.body, "project")).hex
    project = await asyncio.to_thread(call.app.get_project, project_id)
    return {"project": project_document(project)}


def project_filter(body: dict[str, Any]) -> dict[str, Any]:
    query: dict[str, Any] = {}
    ids = optional_string_list(body, "id")
    if ids:
        query["_id"] = membership(ids)
    users = optional_string_list(body, "user")
    if users:
        query["user"] = membership(users)
    name = optional_string(body, "name")
    if name:
        query["name"] = {"$regex": checked_pattern(name)}
    basename = optional_string(body, "basename")
    if basename:
        query["basename"] = basename
    conditions = []
    for field in ("tags", "system_tags"):
        values = optional_string_list(body, field)
        if values:
            conditions.append((field, list_field_filter(values)))
    if not optional_bool(body, "search_hidden"):
        conditions.append(("system_tags", {"$nin": [HIDDEN_TAG]}))
    for field, condition in conditions:
        if field in query:  # a second condition on the same field
            query.setdefault("$and", []).append({field: condition})
        else:
            query[field] = condition
    return query


def find_projects(collection: Collection, body: dict[str, Any]) -> list[dict[str, Any]]:
    query = project_filter(body)
    sort = []
    for key in optional_string_list(body, "order_by") or []:
        field = checked_field_name(key.lstrip("-"))
        sort.append(("_id" if field == "id" else field, -1 if key.startswith("-") else 1))
    page = optional_int(body, "page", minimum=0) or 0
    page_size = optional_int(body, "page_size", minimum=1) or MAX_PAGE_SIZE
    if page_size > MAX_PAGE_SIZE:
        raise invalid_field(f"page_size must be at most {MAX_PAGE_SIZE}")
    only_fields = [checked_field_name(field) for field in optional_string_list(body, "only_fields") or []]
    cursor = collection.find(query)
    if sort:
        cursor = cursor.sort(sort)
    cursor = cursor.skip(page * page_size).limit(page_size)
    return [document_from_view(document, only_fields or None) for document in cursor]


async def get_all(call: Call) -> dict[str, Any]:
    projects = await asyncio.to_thread(find_projects, call.views[project_view.COLLECTION], call.body)
    return {"projects": projects}


ENDPOINTS: dict[str, Endpoint] = {
    "projects.create": create,
    "projects.get_by_id": get_by_id,
    "projects.get_all": get_all,
}
