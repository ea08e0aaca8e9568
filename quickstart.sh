#!/usr/bin/env bash
# One command from a fresh clone: install what is needed, build, fetch the default local
# model (Qwen2.5-Coder-1.5B, verified by sha256) and run offswitch's main job on it:
# `offswitch eval` on the built-in default scenario, in-process, no API key needed.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh
cargo build --release -q -p offswitch
target/release/offswitch models pull qwen2.5-coder-1.5b
if [ $# -eq 0 ]; then
  set -- --runs 3
fi
exec target/release/offswitch eval "$@"
