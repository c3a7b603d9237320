#!/usr/bin/env bash
# Install regional-chat with its test tools into .venv and run the whole test suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
# The browser tests drive Debian's chromium (Playwright cannot download its own browsers offline).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
  { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium; } \
    || echo "test.sh: could not install chromium; the browser tests will be skipped" >&2
fi
.venv/bin/python -m pytest "$@"
