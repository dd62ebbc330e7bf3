"""`python -m moldlab`: the CLI, quiet if stopped before it has started anything.

SIGTERM or SIGHUP while Python is still importing (a demo stopped half a second after its
start, on a loaded machine) would otherwise kill the process with no word, exit -15. Until a
command installs its own handlers (the demo, the services), such a stop ends it with exit 0:
nothing has started that needs stopping.
"""

import signal


def _stop_before_start(signum: int, frame: object) -> None:
    raise SystemExit(0)


for _signum in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_signum, _stop_before_start)

from moldlab.cli import main  # noqa: E402  (after the handlers: the import takes the time)

raise SystemExit(main())
