"""The Project aggregate and its name reservation, in memory."""
from __future__ import annotations

from uuid import uuid4

import pytest

from domain.errors import InvalidField, InvalidProjectName, ProjectNotFound
from domain.project import Project, ProjectName, checked_name, parse_project_id, validated_project_fields


def new_project(name: str = "vision/detection", **fields) -> Project:
    return Project.create(uuid4(), name, validated_project_fields(fields), actor="alice")


def test_a_new_project_records_its_name_basename_owner_and_times() -> None:
    project = new_project(description="boxes", tags=["cv"])
    assert project.doc["name"] == "vision/detection"
    assert project.doc["basename"] == "detection"
    assert project.doc["user"] == "alice"
    assert project.doc["description"] == "boxes" and project.doc["tags"] == ["cv"]
    assert project.doc["system_tags"] == [] and project.doc["created"] == project.doc["last_update"]


def test_an_update_records_only_the_fields_that_change() -> None:
    project = new_project(description="boxes")
    project.update({"description": "boxes"}, actor="bob")
    assert project.version == 1
    project.update({"description": "masks", "tags": []}, actor="bob")
    assert project.version == 2
    assert project.collect_events()[-1].fields == {"description": "masks"}
    assert project.doc["description"] == "masks"


@pytest.mark.parametrize("name", ["", "   ", "a//b", "/a", "a/", None, 3, "x" * 1025])
def test_blank_or_malformed_names_are_refused(name) -> None:
    with pytest.raises(InvalidProjectName):
        checked_name(name)


def test_names_are_trimmed() -> None:
    assert checked_name("  vision ") == "vision"


@pytest.mark.parametrize("fields", [{"description": 1}, {"tags": "cv"}, {"system_tags": [1]}])
def test_fields_of_the_wrong_type_are_refused(fields) -> None:
    with pytest.raises(InvalidField):
        validated_project_fields(fields)


def test_unknown_fields_are_dropped() -> None:
    assert validated_project_fields({"description": "d", "search_hidden": True}) == {"description": "d"}


@pytest.mark.parametrize("project_id", ["", "x" * 32, "abc", None, 42])
def test_ids_that_are_not_32_hex_digits_name_no_project(project_id) -> None:
    with pytest.raises(ProjectNotFound):
        parse_project_id(project_id)


def test_a_name_reservation_has_the_same_id_whoever_makes_it() -> None:
    first = ProjectName.reserve("vision", uuid4().hex)
    second = ProjectName.reserve("vision", uuid4().hex)
    assert first.id == second.id == ProjectName.id_for("vision")
    assert ProjectName.id_for("Vision") != first.id
