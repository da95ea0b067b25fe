"""The endpoint table: ClearML-style `service.action` names and the functions that serve them."""
from __future__ import annotations

from aiohttp import web

from gateway import task_commands, task_queries
from gateway.call import Endpoint, endpoints_key
from gateway.dispatch import api_call, health

TASKS: dict[str, Endpoint] = {
    "tasks.create": task_commands.create,
    "tasks.get_by_id": task_queries.get_by_id,
    "tasks.get_all": task_queries.get_all,
    "tasks.enqueue": task_commands.enqueue,
    "tasks.dequeue": task_commands.dequeue,
    "tasks.started": task_commands.started,
    "tasks.stop": task_commands.stop,
    "tasks.stopped": task_commands.stopped,
    "tasks.failed": task_commands.failed,
    "tasks.completed": task_commands.completed,
    "tasks.close": task_commands.close,
    "tasks.publish": task_commands.publish,
    "tasks.reset": task_commands.reset,
}

# One table per service; each service module may export its own and be listed here.
SERVICES: list[dict[str, Endpoint]] = [TASKS]

ENDPOINTS: dict[str, Endpoint] = {name: endpoint for service in SERVICES for name, endpoint in service.items()}


def setup_routes(app: web.Application) -> None:
    app[endpoints_key] = ENDPOINTS
    app.router.add_get("/health", health)
    for path in ("/{endpoint}", "/v{version}/{endpoint}"):
        app.router.add_route("GET", path, api_call)
        app.router.add_route("POST", path, api_call)
