#!/usr/bin/env bash
# The same scripted shutdown episode in Inspect AI (../shared/bench/inspect-baseline, its
# `local` sandbox, which isolates nothing) and in offswitch (`eval --model scripted/comply`:
# the real CLI, real sandboxes, the real store, transcripts on), one after the other at
# each concurrency level, and one table with both and the ratios: episodes/s, CPU per
# episode (every child process counted: /usr/bin/time), peak RSS. Both are test fixtures:
# the figures are the harnesses' cost, not any model's. A last column gives the whole
# machine's busy CPU per episode during each run (/proc/stat), which also counts the
# kernel's own work for the run (offswitch's sandboxes leave network namespaces and
# cgroups for kernel workers to tear down, which no process's rusage includes).
# This machine's speed drifts by up to a fifth within minutes, so each level runs as a
# pair (Inspect, then offswitch, back to back), ROUNDS times, and the table gives every
# pair and, per level, the median of the pairs' ratios.
#   bench/run.sh compare-inspect [EPISODES] [LEVELS] [ROUNDS]   (default 200 "1,16,64" 3)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
episodes=${1:-200}
levels=${2:-1,16,64}
rounds=${3:-3}
baseline=${INSPECT_BASELINE:-../shared/bench/inspect-baseline/run.sh}
[ -x "$baseline" ] || { echo "no Inspect baseline at $baseline (set INSPECT_BASELINE)" >&2; exit 2; }
# offswitch without the in-process local models (not used here, and a long C++ build).
cargo build --release -q -p offswitch --no-default-features
cargo build --release -q -p offswitch-bench
bin=$PWD/target/release/offswitch
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for r in $(seq "$rounds"); do
  for c in ${levels//,/ }; do
    echo "round $r of $rounds: Inspect AI at concurrency $c ($episodes episodes) ..." >&2
    SABOTAGE_LEVEL=0 "$baseline" "$episodes" "$c" | tee "$work/inspect.c$c.r$r" >&2
    echo "round $r of $rounds: offswitch at concurrency $c ..." >&2
    busy > "$work/c$c.r$r.busy0"
    (cd "$work" && /usr/bin/time -v "$bin" eval --model scripted/comply --runs "$episodes" \
        --concurrency "$c" --db "c$c.r$r.db" --progress-every 3600 --json > "c$c.r$r.json" 2> "c$c.r$r.time") \
      || { cat "$work/c$c.r$r.time" >&2; exit 1; }
    busy > "$work/c$c.r$r.busy1"
  done
done
hz=$(getconf CLK_TCK)

field() { grep -F "$1" "$2" | head -1 | sed 's/.*: //'; }
wall_s() { # h:mm:ss or m:ss
  awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }' <<<"$1"
}
printf '\n%-9s | %-28s | %-28s | %-26s | %s\n' "C, round" "episodes/s (offswitch/Inspect)" "CPU ms/episode (o/I)" "peak RSS MB (o/I)" "machine CPU ms/episode (o/I)"
for c in ${levels//,/ }; do
  for r in $(seq "$rounds"); do
    line=$(grep -E "^inspect concurrency=$c " "$work/inspect.c$c.r$r" | head -1)
    i_eps=$(sed -E 's/.*episodes_per_s=([0-9.]+).*/\1/' <<<"$line")
    i_cpu=$(sed -E 's/.*cpu_ms_per_episode=([0-9.]+).*/\1/' <<<"$line")
    i_rss=$(sed -E 's/.*peak_rss_mb=([0-9.]+).*/\1/' <<<"$line")
    i_others=$(sed -E 's/.*others_cpu_s=([0-9.]+).*/\1/' <<<"$line")
    o_busy=$(awk -v a="$(cat "$work/c$c.r$r.busy0")" -v b="$(cat "$work/c$c.r$r.busy1")" -v hz="$hz" 'BEGIN { print (b - a) / hz }')
    t=$work/c$c.r$r.time
    wall=$(wall_s "$(field 'Elapsed (wall clock)' "$t")")
    cpu=$(awk -v u="$(field 'User time' "$t")" -v s="$(field 'System time' "$t")" 'BEGIN { print u + s }')
    rss=$(awk -v k="$(field 'Maximum resident set size' "$t")" 'BEGIN { printf "%.0f", k / 1024 }')
    awk -v c="$c, $r" -v n="$episodes" -v w="$wall" -v cpu="$cpu" -v rss="$rss" \
        -v ie="$i_eps" -v ic="$i_cpu" -v ir="$i_rss" -v io="$i_others" -v ob="$o_busy" 'BEGIN {
      oe = n / w; oc = 1000 * cpu / n
      # Inspect: its processes plus the rest of the machine while it ran (others_cpu_s).
      om = 1000 * ob / n; im = ic + 1000 * io / n
      printf "%-9s | %8.1f / %6.1f = %5.1fx     | %6.0f / %6.0f = %5.2fx     | %5d / %5d = %5.2fx     | %5.0f / %5.0f = %5.2fx\n", c, oe, ie, oe / ie, oc, ic, oc / ic, rss, ir, rss / ir, om, im, om / im
    }' | tee -a "$work/rows.c$c"
  done
  # The median over the rounds of each ratio (columns as above).
  awk -v c="$c" -F'=' '{
      for (i = 2; i <= NF; i++) { split($i, f, "x"); v[i, NR] = f[1] + 0 }
      cols = NF
    } END {
      line = sprintf("%-9s |", c ", median")
      for (i = 2; i <= cols; i++) {
        n = 0; for (r = 1; r <= NR; r++) a[++n] = v[i, r]
        for (x = 1; x <= n; x++) for (y = x + 1; y <= n; y++) if (a[y] < a[x]) { t = a[x]; a[x] = a[y]; a[y] = t }
        m = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        line = line sprintf(" %27s |", sprintf(i == 2 ? "%.1fx" : "%.2fx", m))
      }
      print line
    }' "$work/rows.c$c"
done
# offswitch's episode starts the study's shell five times (four calls and shutdown.sh):
# part of its machine CPU above that no harness of this episode can save, and larger on
# virtual machines, where glibc's start (its CPU-feature and cache-size probing, cpuid)
# traps to the hypervisor. (Inspect's replica starts more: its next_task is a bash script.)
# With a sandbox's life, that is the floor (bench/lib.sh): at that cost alone the cores
# run at most this many episodes a second, set against Inspect's median rate at the
# highest level. Then the same without the shells' cpuid traps (bench/run.sh cpuid), for
# the floor and for offswitch's measured machine CPU per episode at the highest level.
floor_line=$(episode_floor_ms "$work/shell.time")
read -r life shell floor <<<"$floor_line"
echo "the study's shell on this machine: $shell ms of CPU per start; offswitch's episode starts it 5 times: $(awk -v s="$shell" 'BEGIN { printf "%.1f", 5 * s }') ms of its machine CPU per episode"
top=${levels##*,}
inspect_median=$(for r in $(seq "$rounds"); do grep -E "^inspect concurrency=$top " "$work/inspect.c$top.r$r" | head -1 | sed -E 's/.*episodes_per_s=([0-9.]+).*/\1/'; done | median)
echo "$(floor_text "$life" "$floor")$(awk -v floor="$floor" -v cores="$(nproc)" -v i="$inspect_median" -v c="$top" 'BEGIN {
  most = 1000 * cores / floor
  printf "; %d cores run at most %.0f episodes/s at that cost = %.1fx Inspect'"'"'s median at C=%s (%.1f/s)", cores, most, most / i, c, i
}')"
cpuid=$(cpuid_start || true)
against="sprintf(\"%.1fx Inspect's median at C=$top (as measured here; its own process starts would also cost less)\", rate / $inspect_median)"
echo "of the floor, $(cpuid_text "$cpuid" "$floor" "$against")"
top_machine=$(for r in $(seq "$rounds"); do awk -v a="$(cat "$work/c$top.r$r.busy0")" -v b="$(cat "$work/c$top.r$r.busy1")" -v hz="$hz" -v n="$episodes" 'BEGIN { print 1000 * (b - a) / hz / n }'; done | median)
echo "of offswitch's machine CPU per episode at C=$top (the median round), $(cpuid_text "$cpuid" "$top_machine" "$against")"
for c in ${levels//,/ }; do
  for r in $(seq "$rounds"); do
    python3 -c 'import json, sys
cell = json.load(open(sys.argv[1]))["cells"][0]
print("offswitch at C=%s, round %s: %d of %d complied" % (sys.argv[2], sys.argv[3], cell["outcomes"]["complied"], cell["episodes"]))' "$work/c$c.r$r.json" "$c" "$r"
  done
done
