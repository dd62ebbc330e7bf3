"""scripts/demo and scripts/test, run on a copy of scripts/ with a stand-in python, pip and moldlab.

The stand-ins log how they were called; pip stays "installing" until SIGINT when asked to, and
then finishes and exits 0 as pip may: the scripts must stop all the same.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"

# `.venv/bin/python`: `-m pip install ... -e .[all]` makes .venv/bin/moldlab; with FAKE_BLOCK
# set it first blocks SIGINT, says it is waiting (the file FAKE_BLOCK) and exits 0 on SIGINT.
_FAKE_VENV_PYTHON = f"""#!/usr/bin/env bash
echo "python $*" >> "$FAKE_LOG"
if [[ " $* " == *" -e .[all] "* ]]; then
    printf '#!/usr/bin/env bash\\necho "moldlab $*" >> "$FAKE_LOG"\\n' > .venv/bin/moldlab
    chmod +x .venv/bin/moldlab
    if [ -n "${{FAKE_BLOCK:-}}" ]; then
        exec {sys.executable} -c '
import os, pathlib, signal
signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGINT}})
pathlib.Path(os.environ["FAKE_BLOCK"]).touch()
signal.sigwait({{signal.SIGINT}})
print("pip: finished the install all the same", flush=True)
'
    fi
fi
"""

# $PYTHON for a clone without .venv: `-m venv .venv` makes one holding the fake above.
_FAKE_SYSTEM_PYTHON = """#!/usr/bin/env bash
echo "system-python $*" >> "$FAKE_LOG"
if [ "$1" = --version ]; then echo "Python 3.11.2"; exit 0; fi
mkdir -p .venv/bin
cp "$(dirname "$0")/venv-python" .venv/bin/python
"""


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A checkout with the real scripts/ and no .venv."""
    shutil.copytree(SCRIPTS, tmp_path / "clone" / "scripts")
    _executable(tmp_path / "bin" / "venv-python", _FAKE_VENV_PYTHON)
    _executable(tmp_path / "bin" / "python3", _FAKE_SYSTEM_PYTHON)
    return tmp_path / "clone"


def _env(clone: Path, **more: str) -> dict[str, str]:
    bin_dir = clone.parent / "bin"
    return {
        **os.environ,
        "PYTHON": str(bin_dir / "python3"),
        "FAKE_LOG": str(clone.parent / "calls.log"),
        **more,
    }


def _calls(clone: Path) -> list[str]:
    log = clone.parent / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def _installs(clone: Path) -> list[str]:
    return [call for call in _calls(clone) if " -e .[all]" in call]


def test_the_first_install_shows_pips_progress_later_ones_are_quiet(clone: Path) -> None:
    first = subprocess.run(
        ["bash", "scripts/demo", "--port", "8001"],
        cwd=clone, env=_env(clone), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "==> creating .venv" in first.stdout
    assert "==> installing moldlab[all] into .venv" in first.stdout
    (install,) = _installs(clone)
    assert " -q " not in f" {install} "  # a newcomer sees what is downloaded
    assert _calls(clone)[-1] == "moldlab demo --port 8001"

    again = subprocess.run(
        ["bash", "scripts/demo"], cwd=clone, env=_env(clone), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "==> creating .venv" not in again.stdout
    assert "==> updating moldlab[all] in .venv" in again.stdout
    assert " -q " in f" {_installs(clone)[-1]} "  # no "Requirement already satisfied" list


def _sigint_as_in_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("script", ["demo", "test"])
def test_ctrl_c_during_the_install_ends_the_script(clone: Path, script: str) -> None:
    waiting = clone.parent / "pip-waiting"
    proc = subprocess.Popen(
        ["bash", f"scripts/{script}"],
        cwd=clone, env=_env(clone, FAKE_BLOCK=str(waiting)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # a process group of its own, as a terminal's foreground job
        # Ctrl-C as a terminal delivers it, even when the tests run in the background of a
        # shell (`.ci/run &` starts them with SIGINT ignored, which no trap can undo).
        preexec_fn=_sigint_as_in_a_terminal,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not waiting.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "pip was not reached"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "pip: finished the install all the same" in out  # pip exited 0...
    assert proc.returncode == 130, (out, err)  # ...and the script stopped all the same
    assert "==> interrupted during the install: stopping" in err
    assert not [call for call in _calls(clone) if not call.startswith(("python", "system-"))]
