"""Run by tests/e2e/test_clearml_sdk.py in its own process: the SDK's APIClient edits and deletes a task.

Usage: api_client_edit_delete.py RESULTS_JSON
"""
import json
import sys

from clearml.backend_api.session.client import APIClient

results_path = sys.argv[1]
client = APIClient()
task_id = client.tasks.create(name="sdk edit", type="training").id
client.tasks.edit(task=task_id, comment="edited by the SDK", script={"binary": "python3", "entry_point": "b.py"})
edited = client.tasks.get_by_id(task=task_id)
client.tasks.delete(task=task_id, force=True)
with open(results_path, "w") as out:
    json.dump({
        "task": task_id,
        "comment": edited.comment,
        "entry_point": edited.script.entry_point,
        "listed_after_delete": [task.id for task in client.tasks.get_all(id=[task_id])],
    }, out)
