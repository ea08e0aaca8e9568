#!/usr/bin/env bash
# One command from a fresh clone: install what is needed, build, fetch the default local
# model (Qwen2.5-Coder-1.5B, verified by sha256) and run offswitch's main job on it:
# `offswitch eval` on the built-in default scenario, in-process, no API key needed.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh
# The debug profile: ~60% of the build time of --release, and the model runs as fast
# (llama.cpp and the Rust side of each token are optimised in it too, see Cargo.toml).
# Studies that run many episodes at once want `cargo build --release`.
cargo build -q -p offswitch
target/debug/offswitch models pull qwen2.5-coder-1.5b
if [ $# -eq 0 ]; then
  set -- --runs 3
fi
exec target/debug/offswitch eval "$@"
