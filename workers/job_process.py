"""Running a task's script as a child process, and stopping it on request."""
from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Any

STOP_GRACE_SECONDS = 0.5


def script_command(script: dict[str, Any]) -> tuple[list[str], str | None]:
    """The command line and working folder for a ClearML `script` section."""
    entry_point = script.get("entry_point")
    if not entry_point:
        raise ValueError("task has no script.entry_point")
    binary = script.get("binary") or "python"
    if Path(binary).name.startswith("python"):
        executable = shutil.which(binary) if os.path.isabs(binary) else sys.executable
    else:
        executable = shutil.which(binary)
    if not executable:
        raise ValueError(f"binary {binary!r} not found")
    working_dir = script.get("working_dir") or None
    if working_dir and not os.path.isdir(working_dir):
        raise ValueError(f"working_dir {working_dir!r} does not exist")
    return [executable, entry_point], working_dir


class JobProcess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.stop_requested = False

    @classmethod
    async def start(cls, script: dict[str, Any]) -> JobProcess:
        command, working_dir = script_command(script)
        process = await asyncio.create_subprocess_exec(
            *command, cwd=working_dir, stdin=asyncio.subprocess.DEVNULL, start_new_session=True
        )
        return cls(process)

    async def wait(self) -> int:
        return await self.process.wait()

    async def stop(self) -> None:
        """Terminate the child (its whole process group), killing it if it lingers."""
        self.stop_requested = True
        if self.process.returncode is not None:
            return
        try:
            os.killpg(self.process.pid, 15)
            await asyncio.wait_for(self.process.wait(), STOP_GRACE_SECONDS)
        except (ProcessLookupError, asyncio.TimeoutError):
            try:
                os.killpg(self.process.pid, 9)
            except ProcessLookupError:
                pass
            await self.process.wait()
