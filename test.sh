#!/usr/bin/env bash
# Install regional-chat with its test tools into .venv and run the whole test suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
.venv/bin/python -m pytest "$@"
