#!/usr/bin/env bash
# Installs a pinned set of Python packages from PyPI into a virtualenv. Idempotent.
#   scripts/install-inspect.sh            Inspect AI into .venv-inspect (the tests that
#                                         check offswitch's Inspect logs)
#   scripts/install-inspect.sh sdk        the providers' official SDKs into .venv-sdk (the
#                                         tests that validate request bodies)
#   scripts/install-inspect.sh k8s        kubernetes-validate into .venv-k8s (the test
#                                         that checks deploy/kubernetes/)
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-inspect}" in
  inspect) venv=.venv-inspect; lock=scripts/inspect-requirements.lock; what=inspect_ai ;;
  sdk) venv=.venv-sdk; lock=scripts/sdk-requirements.lock; what="the openai, anthropic and google-genai SDKs" ;;
  k8s) venv=.venv-k8s; lock=scripts/k8s-requirements.lock; what=kubernetes-validate ;;
  *) echo "usage: $0 [inspect|sdk|k8s]" >&2; exit 2 ;;
esac
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
echo "installing $what into $venv ..." >&2
"$venv/bin/pip" install -q --disable-pip-version-check -r "$lock"
touch "$stamp"
