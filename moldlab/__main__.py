"""`python -m moldlab`: the CLI, quiet if stopped before it has started anything.

SIGTERM or SIGHUP while Python is still importing (a demo stopped half a second after its
start, on a loaded machine) would otherwise kill the process with no word, exit -15. Until a
command installs its own handlers (the demo, the services), such a stop ends the process at
once with exit 0: nothing has started that needs stopping. It must be `os._exit`: a
SystemExit raised while importing (the CLI's own imports, or a command's lazy ones) can land
in one of importlib's callbacks, which prints it as an ignored exception and goes on.
"""

import os
import signal

_STOPS = (signal.SIGTERM, signal.SIGHUP)


def _stop_before_start(signum: int, frame: object) -> None:
    os._exit(0)


for _signum in _STOPS:
    signal.signal(_signum, _stop_before_start)

from moldlab.cli import main  # noqa: E402  (after the handlers: the import takes the time)

raise SystemExit(main())
