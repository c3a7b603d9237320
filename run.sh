#!/usr/bin/env bash
# Install regional-chat into .venv, build the index from corpus/ (only what changed), start the app.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e .
.venv/bin/regional-chat build --progress
if [ -f app.py ]; then
  exec .venv/bin/python app.py "$@"
fi
echo 'Index ready. Ask with: .venv/bin/regional-chat ask "Where is the UNRCCA headquartered?"'
