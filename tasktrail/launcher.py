"""`tasktrail up`: the embedded default, every part on one machine, as child processes.

nats-server and nx-27017 start on free ports with their data in the data folder (unless NATS_URL
or MONGODB_URI point elsewhere); then the projector, relay, gateway, liveness monitor and one
worker. A component that dies is started again. Ctrl-C or SIGTERM stops them all, workers first, servers last.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tasktrail.application import TaskTrail
from tasktrail.config import event_store_env
from tasktrail.credentials import CREDENTIALS_FILE, complete_credentials
from tasktrail.embedded_servers import start_mongo_server, start_nats_server, stop_process


@dataclass
class Component:
    name: str
    arguments: list[str]
    process: subprocess.Popen | None = field(default=None)

    def start(self, env: dict[str, str], log_folder: Path) -> None:
        with open(log_folder / f"{self.name}.log", "ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tasktrail", *self.arguments],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the launcher only; it stops children in order
            )


def create_event_store_tables(data_dir: Path) -> None:
    """Create the event store's tables once, before several processes open the store."""
    TaskTrail(event_store_env(data_dir)).close()


def up(host: str, port: int, data_dir: Path, queues: list[str]) -> int:
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    env = dict(os.environ, TASKTRAIL_DATA_DIR=str(data_dir), TASKTRAIL_API_URL=f"http://{host}:{port}")
    servers: list[subprocess.Popen] = []
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        if not env.get("NATS_URL"):
            process, env["NATS_URL"] = start_nats_server(data_dir)
            servers.append(process)
        if not env.get("MONGODB_URI"):
            process, env["MONGODB_URI"] = start_mongo_server(data_dir)
            servers.append(process)
        create_event_store_tables(data_dir)
        env["CREATE_TABLE"] = "n"
        keys_from_environment = bool(env.get("TASKTRAIL_ACCESS_KEY"))
        pass_credentials(env, data_dir)
        worker_arguments = ["worker", "--name", "local-worker"]
        for queue in queues:
            worker_arguments += ["--queue", queue]
        components = [
            Component("projector", ["projector"]),
            Component("relay", ["relay"]),
            Component("gateway", ["gateway", "--host", host, "--port", str(port)]),
            Component("monitor", ["monitor"]),
            Component("worker", worker_arguments),
        ]
        for component in components:
            component.start(env, logs)
        print_credentials(env, data_dir, keys_from_environment)
        print_addresses(host, port, data_dir, env)
        supervise(components, env, logs, stopping)
        for component in reversed(components):
            if component.process is not None:
                stop_process(component.process)
    finally:
        for process in reversed(servers):
            stop_process(process)
    print("TaskTrail stopped; data kept in", data_dir, flush=True)
    return 0


def supervise(components: list[Component], env: dict[str, str], logs: Path, stopping: threading.Event) -> None:
    while not stopping.wait(0.5):
        for component in components:
            if component.process is not None and component.process.poll() is not None:
                print(f"{component.name} exited with {component.process.returncode}; starting it again", flush=True)
                component.start(env, logs)


def pass_credentials(env: dict[str, str], data_dir: Path) -> None:
    """Give every child the same key pair and token secret (the data folder's, unless set)."""
    credentials = complete_credentials(
        env.get("TASKTRAIL_ACCESS_KEY", ""),
        env.get("TASKTRAIL_SECRET_KEY", ""),
        env.get("TASKTRAIL_AUTH_SECRET", ""),
        data_dir,
    )
    env["TASKTRAIL_ACCESS_KEY"] = credentials.access_key
    env["TASKTRAIL_SECRET_KEY"] = credentials.secret_key
    env["TASKTRAIL_AUTH_SECRET"] = credentials.auth_secret


def print_credentials(env: dict[str, str], data_dir: Path, from_environment: bool) -> None:
    if from_environment:
        print(f"API access key {env['TASKTRAIL_ACCESS_KEY']} (from TASKTRAIL_ACCESS_KEY)", flush=True)
        return
    print(
        "API key pair (kept in "
        f"{data_dir / CREDENTIALS_FILE}; for the clearml SDK: CLEARML_API_ACCESS_KEY, CLEARML_API_SECRET_KEY)\n"
        f"  access key  {env['TASKTRAIL_ACCESS_KEY']}\n"
        f"  secret key  {env['TASKTRAIL_SECRET_KEY']}",
        flush=True,
    )


def print_addresses(host: str, port: int, data_dir: Path, env: dict[str, str]) -> None:
    store = env.get("PERSISTENCE_MODULE") or f"SQLite {data_dir / 'events.sqlite'}"
    print(
        "TaskTrail is up\n"
        f"  gateway     http://{host}:{port}\n"
        f"  NATS        {env['NATS_URL']}\n"
        f"  MongoDB     {env['MONGODB_URI']}\n"
        f"  event store {store}\n"
        f"  data        {data_dir} (logs in {data_dir / 'logs'})\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )
