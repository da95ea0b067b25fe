"""Run by tests/e2e/test_clearml_sdk.py in its own process: the SDK's APIClient drives one task.

Usage: api_client_lifecycle.py RESULTS_JSON PROJECT_NAME
Writes what the SDK saw after each step; any exception fails the script.
"""
import json
import sys

from clearml.backend_api.session.client import APIClient

results_path, project_name = sys.argv[1:3]
client = APIClient()
results = {}


def status(task_id):
    return str(client.tasks.get_by_id(task=task_id).status)


project_id = client.projects.create(name=project_name, description="made by the SDK").id
results["project"] = project_id
task_id = client.tasks.create(
    name="sdk lifecycle", type="training", project=project_id,
    script={"binary": "python3", "entry_point": "train.py"},
).id
results["task"] = task_id
results["listed"] = [task.id for task in client.tasks.get_all(id=[task_id])]
results["projects_by_name"] = [project.id for project in client.projects.get_all(name=f"^{project_name}$")]

steps = [
    ("enqueue", lambda: client.tasks.enqueue(task=task_id, queue_name="sdk-queue")),
    ("dequeue", lambda: client.tasks.dequeue(task=task_id)),
    ("started", lambda: client.tasks.started(task=task_id)),
    ("stop", lambda: client.tasks.stop(task=task_id)),
    ("started_again", lambda: client.tasks.started(task=task_id)),
    ("completed", lambda: client.tasks.completed(task=task_id)),
    ("publish", lambda: client.tasks.publish(task=task_id)),
]
results["steps"] = []
for name, step in steps:
    step()
    results["steps"].append([name, status(task_id)])

with open(results_path, "w") as out:
    json.dump(results, out)
