# Sourced by scripts/demo and scripts/test: makes .venv with moldlab and everything it runs on.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

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
echo "==> installing moldlab[all] into .venv ${MOLDLAB_PIP_GROUP:+(with the $MOLDLAB_PIP_GROUP group)}"
.venv/bin/python -m pip install -q --upgrade 'pip>=25.1'
.venv/bin/python -m pip install -e '.[all]' ${MOLDLAB_PIP_GROUP:+--group "$MOLDLAB_PIP_GROUP"}
