#!/usr/bin/env bash
# Runs one benchmark in release mode and prints its figures.
#   bench/run.sh sandbox [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: bench/run.sh BENCH [ARGS...] (benchmarks: $(ls bench/src/bin | sed 's/\.rs$//' | tr '\n' ' '))}
shift
cargo build --release -q -p offswitch -p offswitch-bench
exec "target/release/$name" "$@"
