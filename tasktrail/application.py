"""The event-sourced application: where task aggregates are loaded from and saved to the log."""
from __future__ import annotations

from eventsourcing.application import AggregateNotFoundError, Application

from domain.errors import ProjectNotFound, TaskNotFound
from domain.project import Project, parse_project_id
from domain.task import Task, parse_task_id


class TaskTrail(Application):
    """All TaskTrail aggregates live in this one application (one SQLite file, one PostgreSQL table)."""

    name = "TaskTrail"

    def get_task(self, task_id: str) -> Task:
        try:
            task = self.repository.get(parse_task_id(task_id))
        except AggregateNotFoundError:
            raise TaskNotFound(f"Invalid task id: {task_id}") from None
        if not isinstance(task, Task):
            raise TaskNotFound(f"Invalid task id: {task_id}")
        return task

    def get_project(self, project_id: str) -> Project:
        try:
            project = self.repository.get(parse_project_id(project_id))
        except AggregateNotFoundError:
            raise ProjectNotFound(f"Invalid project id: {project_id}") from None
        if not isinstance(project, Project):
            raise ProjectNotFound(f"Invalid project id: {project_id}")
        return project

    def task_history(self, task_id: str) -> list[Task.Event]:
        """Every event of one task, oldest first."""
        return list(self.events.get(parse_task_id(task_id)))  # type: ignore[arg-type]
