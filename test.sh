#!/usr/bin/env bash
# The whole test suite, as CI runs it: dependencies, formatting and lints, every test of
# the workspace, then a check that no sandbox left anything behind (directories, mounts,
# cgroups, processes), nor the browser tests' Chromium its temporary directories.
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
failed=0
# The sandbox crate's tests look at the whole machine (leftovers anywhere, the processes
# of each sandbox uid): they run first, with no other sandbox alive.
cargo test -p offswitch-sandbox --no-fail-fast -- --include-ignored 2>&1 || failed=1
cargo test --workspace --exclude offswitch-sandbox --no-run 2>&1
# The tests that run the default local model for minutes are #[ignore]d in a plain
# `cargo test`. Here they run beside the rest at the lowest CPU priority, on the cycles the
# rest leave idle (most of them wait on sandboxes, servers and timers); their output
# follows the rest's.
slow_log=$(mktemp)
# Its time marks the start of the workspace's tests.
started=$(mktemp)
slow=
trap 'rm -f "$slow_log" "$started"; [ -z "$slow" ] || kill -- "-$slow" 2>/dev/null || true' EXIT
setsid nice -n 19 cargo test --workspace --exclude offswitch-sandbox --no-fail-fast \
  -- --ignored >"$slow_log" 2>&1 &
slow=$!
cargo test --workspace --exclude offswitch-sandbox --no-fail-fast 2>&1 || failed=1
# The build without in-process local models (cargo feature `local`) still works.
cargo test -q -p offswitch-models --no-default-features --lib 2>&1 | tail -n 3
cargo check -q -p offswitch --no-default-features
slow_status=0
wait "$slow" || slow_status=$?
slow=
echo "--- the local-model tests, run beside the above ---"
cat "$slow_log"
[ "$slow_status" = 0 ] || failed=1
target/debug/offswitch doctor --leftovers >/dev/null || { target/debug/offswitch doctor --leftovers; exit 1; }
echo "no sandbox leftovers"
# A killed Chromium leaves its singleton directory in $TMPDIR; the tests give it their own.
browser_left=$(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'org.chromium.Chromium.*' -newer "$started")
[ -z "$browser_left" ] || { echo "the browser tests left behind: $browser_left"; exit 1; }
[ "$failed" = 0 ] || { echo "some tests failed (above)"; exit 1; }
