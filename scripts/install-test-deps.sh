#!/usr/bin/env bash
# What only the test suite needs beyond scripts/install-deps.sh: Debian's Chromium and
# ChromeDriver (the web viewer's browser test), Inspect AI in .venv-inspect (the
# Inspect log checks) and the providers' official SDKs in .venv-sdk (request bodies
# checked against their types) and kubernetes-validate in .venv-k8s (the Kubernetes
# manifests checked against the API's schemas).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "the tests need Chromium and ChromeDriver: sudo apt-get install -y chromium chromium-driver" >&2
    exit 1
  fi
  echo "installing chromium and chromium-driver ..." >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
scripts/install-inspect.sh
scripts/install-inspect.sh sdk
scripts/install-inspect.sh k8s
