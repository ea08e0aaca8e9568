#!/usr/bin/env bash
# Runs one benchmark in release mode and prints its figures.
#   bench/run.sh sandbox [RUNS]; bench/run.sh compare-inspect [EPISODES] [LEVELS]
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: bench/run.sh BENCH [ARGS...] (benchmarks: $( (ls bench/src/bin; ls bench/*.sh) | grep -vE '(run|lib)\.sh' | sed 's/\.rs$//; s/\.sh$//; s|.*/||' | tr '\n' ' '))}
shift
# Script benchmarks (they build what they need).
[ -x "bench/$name.sh" ] && exec "bench/$name.sh" "$@"
cargo build --release -q -p offswitch -p offswitch-bench
exec "target/release/$name" "$@"
