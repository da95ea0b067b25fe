"""The endpoint table: ClearML-style `service.action` names and the functions that serve them."""
from __future__ import annotations

from aiohttp import web

from gateway import auth, events_ingest, projects, queues, task_commands, task_log, task_queries, workers_service
from gateway.call import Endpoint, endpoints_key
from gateway.dispatch import api_call, health

TASKS: dict[str, Endpoint] = {
    "tasks.create": task_commands.create,
    "tasks.validate": task_commands.validate,
    "tasks.get_by_id": task_queries.get_by_id,
    "tasks.get_all": task_queries.get_all,
    "tasks.get_types": task_queries.get_types,
    "tasks.update": task_commands.update,
    "tasks.update_batch": task_commands.update_batch,
    "tasks.edit": task_commands.edit,
    "tasks.set_requirements": task_commands.set_requirements,
    "tasks.ping": task_commands.ping,
    "tasks.enqueue": task_commands.enqueue,
    "tasks.enqueue_many": task_commands.enqueue_many,
    "tasks.dequeue": task_commands.dequeue,
    "tasks.dequeue_many": task_commands.dequeue_many,
    "tasks.started": task_commands.started,
    "tasks.stop": task_commands.stop,
    "tasks.stop_many": task_commands.stop_many,
    "tasks.stopped": task_commands.stopped,
    "tasks.failed": task_commands.failed,
    "tasks.completed": task_commands.completed,
    "tasks.close": task_commands.close,
    "tasks.publish": task_commands.publish,
    "tasks.publish_many": task_commands.publish_many,
    "tasks.reset": task_commands.reset,
    "tasks.reset_many": task_commands.reset_many,
    "tasks.delete": task_commands.delete,
    "tasks.delete_many": task_commands.delete_many,
    "tasks.archive": task_commands.archive,
    "tasks.archive_many": task_commands.archive_many,
    "tasks.unarchive_many": task_commands.unarchive_many,
    "tasks.get_hyper_params": task_queries.get_hyper_params,
    "tasks.edit_hyper_params": task_commands.edit_hyper_params,
    "tasks.delete_hyper_params": task_commands.delete_hyper_params,
    "tasks.get_configurations": task_queries.get_configurations,
    "tasks.get_configuration_names": task_queries.get_configuration_names,
    "tasks.edit_configuration": task_commands.edit_configuration,
    "tasks.delete_configuration": task_commands.delete_configuration,
    "tasks.add_or_update_artifacts": task_commands.add_or_update_artifacts,
    "tasks.delete_artifacts": task_commands.delete_artifacts,
    "tasks.add_or_update_model": task_commands.add_or_update_model,
    "tasks.delete_models": task_commands.delete_models,
}

# One table per service; each service module may export its own and be listed here.
SERVICES: list[dict[str, Endpoint]] = [
    TASKS, auth.ENDPOINTS, projects.ENDPOINTS, events_ingest.ENDPOINTS, task_log.ENDPOINTS, queues.QUEUES,
    workers_service.WORKERS,
]

ENDPOINTS: dict[str, Endpoint] = {name: endpoint for service in SERVICES for name, endpoint in service.items()}


def setup_routes(app: web.Application) -> None:
    app[endpoints_key] = ENDPOINTS
    app.router.add_get("/health", health)
    for path in ("/{endpoint}", "/v{version}/{endpoint}"):
        app.router.add_route("GET", path, api_call)
        app.router.add_route("POST", path, api_call)
