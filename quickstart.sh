#!/usr/bin/env bash
# One command from a fresh clone: install what is needed, build, and run offswitch's
# main job on its built-in default.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh
cargo build --release -q -p offswitch
exec target/release/offswitch eval "$@"
