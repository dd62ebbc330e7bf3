# Sourced by scripts/demo and scripts/test: makes .venv with moldlab and everything it runs on.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Ctrl-C ends the script here. Without this trap bash goes on whenever the command it waits
# for handles SIGINT and exits 0 (pip may finish its step), and the demo would start anyway.
# bash runs the trap once that command has ended; `exec` (the demo, pytest) resets it.
trap 'echo "==> interrupted during the install: stopping, nothing was started" >&2; exit 130' INT

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
    echo "==> apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $($PYTHON --version)"
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
        rm -rf .venv
        apt_install python3-venv
        "$PYTHON" -m venv .venv
    fi
fi
group=${MOLDLAB_PIP_GROUP:+(with the $MOLDLAB_PIP_GROUP group)}
if [ -x .venv/bin/moldlab ]; then
    # Installed before: pip only checks, and would list ~85 "Requirement already satisfied".
    echo "==> updating moldlab[all] in .venv $group (quiet; errors only)"
    quiet=(-q)
else
    echo "==> installing moldlab[all] into .venv $group"
    quiet=()
fi
.venv/bin/python -m pip install -q --upgrade 'pip>=25.1'
.venv/bin/python -m pip install "${quiet[@]}" -e '.[all]' ${MOLDLAB_PIP_GROUP:+--group "$MOLDLAB_PIP_GROUP"}
trap 'echo "==> interrupted: stopping" >&2; exit 130' INT
# The charts' and /docs' files, from the npm registry, checked against pinned checksums.
.venv/bin/moldlab assets
