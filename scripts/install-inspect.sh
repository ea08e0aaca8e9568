#!/usr/bin/env bash
# Installs Inspect AI (pinned, from PyPI) into .venv-inspect, for the tests that check
# offswitch's Inspect logs with the real reader and schema. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-inspect
lock=scripts/inspect-requirements.lock
stamp="$venv/.installed-$(sha256sum "$lock" | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi
python3 -m venv --help >/dev/null 2>&1 || { echo "python3 venv is missing: apt-get install python3-venv" >&2; exit 1; }
if ! python3 -m venv "$venv" 2>/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
  else
    echo "cannot create a Python virtualenv: sudo apt-get install python3-venv" >&2
    exit 1
  fi
fi
echo "installing inspect_ai into $venv ..." >&2
"$venv/bin/pip" install -q --disable-pip-version-check -r "$lock"
touch "$stamp"
