"""Run by tests/e2e/test_clearml_sdk.py in its own process: the plain SDK experiment.

Usage: task_init.py RESULTS_JSON PROJECT_NAME TASK_NAME
"""
import json
import sys

from clearml import Task

results_path, project_name, task_name = sys.argv[1:4]
task = Task.init(project_name=project_name, task_name=task_name)
task.get_logger().report_scalar("loss", "train", value=0.25, iteration=1)
task.get_logger().report_scalar("loss", "train", value=0.125, iteration=2)
task_id = task.id
task.close()
with open(results_path, "w") as out:
    json.dump({"task": task_id}, out)
