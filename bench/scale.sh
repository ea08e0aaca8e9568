#!/usr/bin/env bash
# How cost grows with concurrency, against offswitch's mock server answering as a model
# would (OpenAI Chat Completions, the comply fixture, LATENCY per answer): at each level
# C, `offswitch eval --model openai/gpt-4.1` runs WAVES x C episodes (real sandboxes, the
# real store, transcripts on). Prints per level: episodes/s against the ideal
# C / (model turns per episode x LATENCY), CPU ms per episode (the supervisor and every
# child it waited for: /usr/bin/time), the supervisor's peak RSS, outcomes, and any
# descriptor, uid-pool or process-limit failure in its output. "at full C" is the rate
# while all C episodes run: episodes that ended between the C-th and the (WAVES-1)*C-th
# end, over that time (every slot's episodes end once per cycle, so this spans WAVES-2
# whole cycles); the whole run's rate also counts the ramp (the first C episodes start
# one at a time) and the drain (the last wave, with fewer and fewer running). "machine
# ms/ep" is the whole machine's busy CPU per episode during the run (/proc/stat: also the
# kernel's own threads, which tear down namespaces and cgroups, and the mock server), and
# "cap" the most the machine's cores could run at that cost, as a share of the ideal:
# where cap is near or under 100%, the level is bound by this machine's CPU, not by
# waiting. "death p50/p99" is the time from the shutdown falling due to PID 1's exit.
# Each level's first C episodes start evenly over one episode's length as the level
# before measured it (`eval --ramp-up`; the first level: 2 ms apart): a ramp shorter than
# an episode keeps the episodes in one cohort, all waiting on the model at once while
# the cores idle, then all wanting them at once.
# A last line gives the floor (bench/lib.sh: a sandbox's life and the study's five shells)
# and the share of the ideal the cores could run at that cost alone, at the last level;
# then how much of the last level's machine cost the study's shells' `cpuid` traps take
# (bench/run.sh cpuid: glibc's start probes the CPU, and a virtual machine traps each
# probe), and the share of the ideal the cores could run without them.
# The subject is a test fixture: these are the harness's figures, not a model's.
#   bench/run.sh scale [LEVELS] [LATENCY] [WAVES]       (default "1,16,64,256,1000" 2s 4)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
levels=${1:-1,16,64,256,1000}
latency=${2:-2s}
waves=${3:-4}
cargo build --release -q -p offswitch --no-default-features
cargo build --release -q -p offswitch-bench
bin=$PWD/target/release/offswitch
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work"' EXIT
"$bin" mock-server --protocol openai-chat --policy comply --latency "$latency" > "$work/mock.out" &
server=$!
for _ in $(seq 50); do grep -q http "$work/mock.out" && break; sleep 0.1; done
url=$(grep -o 'http://[^ ]*/v1' "$work/mock.out" | head -1)
lat_s=$(awk -v l="$latency" 'BEGIN { if (l ~ /ms$/) { sub(/ms$/, "", l); print l / 1000 } else { sub(/s$/, "", l); print l } }')
cores=$(nproc)
printf '%-5s | %-8s | %-9s | %-22s | %-15s | %-11s | %-19s | %-11s | %-8s | %-15s | %s\n' C episodes "ramp-up" "episodes/s (ideal, %)" "at full C/s (%)" "CPU ms/ep" "machine ms/ep (cap)" "peak RSS MB" "wall s" "death p50/p99" "outcomes; limit failures"
ramp=()
for c in ${levels//,/ }; do
  n=$(( c * waves ))
  [ "$c" -eq 1 ] && n=$waves
  mock_cpu0=$(awk '{ print $14 + $15 }' /proc/$server/stat)
  busy0=$(busy)
  (cd "$work" && OPENAI_BASE_URL=$url OPENAI_API_KEY=bench /usr/bin/time -f '%e %U %S %M' -o "c$c.time" \
      "$bin" eval --model openai/gpt-4.1 --runs "$n" --concurrency "$c" --db "c$c.db" "${ramp[@]}" \
      --progress-every 3600 --json > "c$c.json" 2> "c$c.err") || { tail -n 20 "$work/c$c.err" >&2; exit 1; }
  busy1=$(busy)
  mock_cpu1=$(awk '{ print $14 + $15 }' /proc/$server/stat)
  read -r wall user sys rss_kb < "$work/c$c.time"
  read -r turns full death mean_ms < <(python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
level, waves = int(sys.argv[2]), int(sys.argv[3])
t = c.execute("SELECT COUNT(*) FROM events WHERE kind = ?", ("model_turn",)).fetchone()[0]
e = c.execute("SELECT COUNT(*) FROM episodes").fetchone()[0]
ends = sorted(s + d for s, d in c.execute("SELECT started_at_ms, duration_ms FROM episodes"))
a, b = ends[level - 1], ends[(waves - 1) * level - 1]
full = (waves - 2) * level / ((b - a) / 1000) if waves >= 3 and b > a else float("nan")
lag = sorted(d - i for d, i in c.execute("SELECT json_extract(record, \"$.evidence.machine_died_ms\"), json_extract(record, \"$.evidence.shutdown_issued_ms\") FROM episodes") if d is not None and i is not None)
death = "%d/%d" % (lag[len(lag) // 2], lag[min(len(lag) - 1, len(lag) * 99 // 100)]) if lag else "-"
mean = c.execute("SELECT CAST(AVG(duration_ms) AS INTEGER) FROM episodes").fetchone()[0]
print(t / e, full, death, mean)' "$work/c$c.db" "$c" "$waves")
  used=${ramp[1]:-2ms apart}
  ramp=(--ramp-up "${mean_ms}ms")
  outcomes=$(python3 -c 'import json, sys
cell = json.load(open(sys.argv[1]))["cells"][0]
print(", ".join("%s %d" % kv for kv in sorted(cell["outcomes"].items()) if kv[1]))' "$work/c$c.json")
  failures=$(grep -ciE 'too many open files|EMFILE|ENFILE|uid pool|no free uid|EAGAIN|Resource temporarily unavailable|cannot fork' "$work/c$c.err" || true)
  mock_ms=$(awk -v a="$mock_cpu0" -v b="$mock_cpu1" -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", 1000 * (b - a) / hz / n }')
  machine_ms=$(awk -v a="$busy0" -v b="$busy1" -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", 1000 * (b - a) / hz / n }')
  awk -v c="$c" -v n="$n" -v w="$wall" -v u="$user" -v s="$sys" -v k="$rss_kb" -v t="$turns" -v l="$lat_s" \
      -v o="$outcomes" -v f="$failures" -v m="$mock_ms" -v full="$full" -v mm="$machine_ms" -v cores="$cores" -v death="$death" -v used="$used" 'BEGIN {
    eps = n / w; ideal = c / (t * l); cap = mm > 0 ? 1000 * cores / mm : 0
    printf "%-5d | %-8d | %-9s | %6.2f (%6.2f, %3.0f%%) | %6.2f (%3.0f%%)  | %5.1f +%4s | %5.1f (%5.0f%%)      | %-11.0f | %-8.1f | %-15s | %s; %d\n", c, n, used, eps, ideal, 100 * eps / ideal, full, 100 * full / ideal, 1000 * (u + s) / n, m, mm, 100 * cap / ideal, k / 1024, w, death, o, f
  }'
done
floor_line=$(episode_floor_ms "$work/shell.time")
read -r life _ floor <<<"$floor_line"
echo "$(floor_text "$life" "$floor")$(awk -v floor="$floor" -v cores="$cores" -v t="$turns" -v l="$lat_s" -v c="${levels##*,}" 'BEGIN {
  printf " (bench/lib.sh); at that cost alone %d cores could run %.0f%% of the ideal at C=%s", cores, 100 * 1000 * cores / floor / (c / (t * l)), c
}')"
echo "of the last level's machine ms/ep, $(cpuid_text "$(cpuid_start || true)" "$machine_ms" "sprintf(\"%.0f%% of the ideal at C=${levels##*,}\", 100 * rate / (${levels##*,} / ($turns * $lat_s)))")"
echo "CPU ms/ep: the supervisor with its sandboxes + the mock server. Model turns per episode: $turns; latency $latency per turn."
echo "death p50/p99: ms from the shutdown falling due (the service telling ./next_question to run ./shutdown.sh) to PID 1's exit, over the episodes where both happened."
