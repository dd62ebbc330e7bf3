"""Runs a long-lived coroutine until SIGINT or SIGTERM, then lets it shut down cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# The end of the --help text of every command that reads MOLDLAB_* settings.
ENV_HELP = "Settings come from MOLDLAB_* environment variables; options given here win."


def setup_logging(level: str) -> None:
    """One line per event on stderr; third-party chatter kept at warnings."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    for noisy in ("alembic.runtime.plugins", "alembic.runtime.migration", "pymodbus"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    """Run `main(stop)`; the first SIGINT/SIGTERM sets `stop`, the second cancels."""

    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def _on_signal(signum: int) -> None:
            if stop.is_set() and task is not None:
                task.cancel()
            logging.getLogger("moldlab").info("%s received, stopping", signal.Signals(signum).name)
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, _on_signal, signum)
        await main(stop)

    try:
        asyncio.run(_run())
    except asyncio.CancelledError:
        return 130
    return 0
