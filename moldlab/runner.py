"""Runs a long-lived coroutine until SIGINT or SIGTERM, then lets it shut down cleanly."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# The end of the --help text of every command that reads MOLDLAB_* settings.
ENV_HELP = "Settings come from MOLDLAB_* environment variables; options given here win."


def setup_logging(level: str) -> None:
    """One line per event on stderr; third-party chatter kept at warnings."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    for noisy in ("alembic.runtime.plugins", "alembic.runtime.migration", "pymodbus"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def command_name(argv: Sequence[str]) -> str:
    """`moldlab SUBCOMMAND` of a command line, to tell in logs which process says what."""
    words = iter(argv[1:])
    for word in words:
        if word == "--log-level":  # the one option before the subcommand that takes a value
            next(words, None)
        elif not word.startswith("-"):
            return f"moldlab {word}"
    return "moldlab"


def run_until_signalled(
    main: Callable[[asyncio.Event], Awaitable[None]], command: str | None = None
) -> int:
    """Run `main(stop)`; the first SIGINT/SIGTERM sets `stop`, the second cancels.

    `command` names the process in the line that logs the signal (default: from sys.argv):
    the demo runs several, all logging to one terminal.
    """
    logger = logging.getLogger(command or command_name(sys.argv))

    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def _on_signal(signum: int) -> None:
            if stop.is_set() and task is not None:
                task.cancel()
            # The pid too: the demo runs two `moldlab sim`, and says which pid is which.
            logger.info("%s received, stopping (pid %d)", signal.Signals(signum).name, os.getpid())
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, _on_signal, signum)
        await main(stop)

    try:
        asyncio.run(_run())
    except asyncio.CancelledError:
        return 130
    return 0
