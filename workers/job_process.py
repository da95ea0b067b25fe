"""Running a task's script as a child process: output read line by line, stopped on request.

The child runs in its own session (process group), so a stop reaches everything it started; on
Linux it also gets SIGKILL if the worker dies (PR_SET_PDEATHSIG), so a worker killed with -9
leaves no run behind that nobody reports on.
"""
from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

STOP_GRACE_SECONDS = 0.5
READ_CHUNK = 64 * 1024
OUTPUT_DRAIN_SECONDS = 1.0  # after the child exits, how long its output may still arrive
PR_SET_PDEATHSIG = 1

LineHandler = Callable[[str, str], None]  # (stream name: "stdout" or "stderr", line without newline)


def script_command(script: dict[str, Any]) -> tuple[list[str], str | None]:
    """The command line and working folder for a ClearML `script` section.

    A Python binary runs `entry_point`; any other binary runs with `entry_point` as its argument
    when there is one (so `{"binary": "true"}` is a valid no-op task).
    """
    entry_point = script.get("entry_point") or None
    binary = script.get("binary") or "python"
    is_python = Path(binary).name.startswith("python")
    if is_python and not entry_point:
        raise ValueError("task has no script.entry_point")
    if is_python:
        executable = shutil.which(binary) if os.path.isabs(binary) else sys.executable
    else:
        executable = shutil.which(binary)
    if not executable:
        raise ValueError(f"binary {binary!r} not found")
    working_dir = script.get("working_dir") or None
    if working_dir and not os.path.isdir(working_dir):
        raise ValueError(f"working_dir {working_dir!r} does not exist")
    return [executable, *([entry_point] if entry_point else [])], working_dir


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


class JobProcess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.stop_requested = False
        self._readers: list[asyncio.Future] = []

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(cls, script: dict[str, Any], env: dict[str, str] | None = None,
                    on_line: LineHandler | None = None) -> JobProcess:
        command, working_dir = script_command(script)
        preexec = _die_with_parent if sys.platform.startswith("linux") else None
        process = await asyncio.create_subprocess_exec(
            *command, cwd=working_dir, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, preexec_fn=preexec,
        )
        job = cls(process)
        handler = on_line or (lambda stream, line: None)
        job._readers = [asyncio.ensure_future(_pump(process.stdout, "stdout", handler)),
                        asyncio.ensure_future(_pump(process.stderr, "stderr", handler))]
        return job

    async def wait(self) -> int:
        """The exit code, once the child ended and its output was read (what is left of its group dies)."""
        code = await self.process.wait()
        self._kill_group(signal.SIGKILL)
        done, pending = await asyncio.wait(self._readers, timeout=OUTPUT_DRAIN_SECONDS)
        for reader in pending:
            reader.cancel()
        return code

    async def stop(self) -> None:
        """Terminate the child's whole process group, killing it if it lingers."""
        self.stop_requested = True
        if self.process.returncode is not None:
            return
        self._kill_group(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self.process.wait()), STOP_GRACE_SECONDS)
        except asyncio.TimeoutError:
            self._kill_group(signal.SIGKILL)
            await self.process.wait()

    def _kill_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


async def _pump(stream: asyncio.StreamReader | None, name: str, on_line: LineHandler) -> None:
    if stream is None:
        return
    pending = b""
    while True:
        chunk = await stream.read(READ_CHUNK)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            on_line(name, line.decode(errors="replace").rstrip("\r"))
    if pending:
        on_line(name, pending.decode(errors="replace"))


def kill_leftover_group(pgid: int) -> bool:
    """Kill a process group a previous worker process left behind; True when one was there."""
    try:
        os.killpg(pgid, signal.SIGKILL)
        return True
    except (ProcessLookupError, PermissionError):
        return False
