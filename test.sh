#!/usr/bin/env bash
# The whole test suite, as CI runs it: dependencies, formatting and lints, every test of
# the workspace, then a check that no sandbox left anything behind (directories, mounts,
# cgroups, processes).
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh
scripts/install-test-deps.sh
cargo fmt --all --check
# The question program is built by crates/offswitch/build.rs, outside cargo's targets.
rustfmt --edition 2024 --check crates/offswitch/question-client/main.rs
# The tests build target/debug/offswitch (used below) with the workspace's features, as
# clippy does: no separate build of the binary (and of llama.cpp) with other features.
cargo clippy -q --workspace --all-targets -- -D warnings
cargo test --workspace --no-fail-fast 2>&1
# The build without in-process local models (cargo feature `local`) still works.
cargo test -q -p offswitch-models --no-default-features --lib 2>&1 | tail -n 3
cargo check -q -p offswitch --no-default-features
target/debug/offswitch doctor --leftovers >/dev/null || { target/debug/offswitch doctor --leftovers; exit 1; }
echo "no sandbox leftovers"
