"""The embedded default's own servers: nats-server (JetStream) and nx-27017, on free ports."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def installed_executable(name: str) -> str:
    """A console program installed beside this Python (the venv's bin), else on PATH."""
    candidates = [Path(sys.executable).parent / name, Path(sysconfig.get_path("scripts")) / name]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} is not installed (pip install the project's dependencies)")
    return found


def wait_for_port(host: str, port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def start_nats_server(data_dir: Path, host: str = "127.0.0.1", port: int | None = None) -> tuple[subprocess.Popen, str]:
    port = port or free_port(host)
    store = data_dir / "nats"
    store.mkdir(parents=True, exist_ok=True)
    command = [installed_executable("nats-server"), "-a", host, "-p", str(port), "-js", "-sd", str(store)]
    with open(data_dir / "nats-server.log", "ab") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    wait_for_port(host, port, process)
    return process, f"nats://{host}:{port}"


def start_mongo_server(data_dir: Path, host: str = "127.0.0.1", port: int | None = None) -> tuple[subprocess.Popen, str]:
    port = port or free_port(host)
    store = data_dir / "mongo"
    store.mkdir(parents=True, exist_ok=True)
    command = [
        installed_executable("nx-27017"),
        "--data-dir", str(store),
        "--host", host,
        "-p", str(port),
        "--pid-file", str(store / "nx.pid"),
        "--log-file", str(data_dir / "nx-27017.log"),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(host, port, process)
    return process, f"mongodb://{host}:{port}"


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
