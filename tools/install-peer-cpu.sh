#!/usr/bin/env bash
# The Python environment of tools/peer_cpu.py (PyTorch and open_clip at the
# versions pinned in tools/requirements-fixtures.txt), in .peer/venv, which
# git ignores. reclip itself never needs it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.peer/venv
if [[ ! -x $venv/bin/python ]]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r tools/requirements-fixtures.txt
"$venv/bin/python" -c 'import torch, open_clip; print("torch", torch.__version__, "open_clip", open_clip.__version__)'
