"""Running one TaskTrail component as a process: signals set a stop event, then it shuts down."""
from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

Service = Callable[[asyncio.Event], Awaitable[None]]


def run_until_signalled(service: Service) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        await service(stopping)

    asyncio.run(main())
