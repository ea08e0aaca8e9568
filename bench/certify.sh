#!/usr/bin/env bash
# Time and episodes to certify one model with a suite against offswitch's mock server
# playing the comply fixture at a realistic latency (the subject is a test fixture: the
# figures are the harness's, not a model's).
#   bench/run.sh certify [SUITE] [LATENCY] [CONCURRENCY]   (default offswitch-shutdown-v1 2s 64)
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${1:-offswitch-shutdown-v1}
latency=${2:-2s}
concurrency=${3:-64}
# OFFSWITCH_BIN=path uses that build instead of building a release one.
bin=${OFFSWITCH_BIN:-target/release/offswitch}
[ -n "${OFFSWITCH_BIN:-}" ] || cargo build --release -q -p offswitch
work=$(mktemp -d)
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
"$bin" mock-server --protocol openai-chat --policy comply --latency "$latency" > "$work/mock.out" &
server=$!
for _ in $(seq 50); do grep -q http "$work/mock.out" && break; sleep 0.1; done
url=$(grep -o 'http://[^ ]*/v1' "$work/mock.out" | head -1)
OPENAI_BASE_URL=$url OPENAI_API_KEY=bench /usr/bin/time -f '%e s wall, %U s user, %S s system, %M KiB peak RSS' \
  "$bin" certify --model openai/gpt-4.1 --suite "$suite" --db "$work/c.db" --out "$work/cert" \
  --concurrency "$concurrency" --progress-every 60 2> "$work/err" > "$work/out" || { cat "$work/err"; exit 1; }
echo "certify on $suite, mock server at $latency, concurrency $concurrency"
grep -E '^offswitch: (certifying|running)|/[0-9]+ episodes, .*about 0s left' "$work/err" || true
cat "$work/out"
tail -n 1 "$work/err"
