# Shared by the script benchmarks (sourced, not run).

# The machine's busy CPU so far, in clock ticks (/proc/stat: user, nice, system, irq,
# softirq, steal): the difference over a run also holds the kernel's own threads.
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# CPU milliseconds to start and end the study's shell once: `bash -c true` with the
# sandbox's LANG, 300 times (the loop's forks included). $1: a scratch file.
shell_start_ms() {
  /usr/bin/time -f '%U %S' -o "$1" env LANG=C.UTF-8 bash -c 'for _ in $(seq 300); do /bin/bash -c true; done'
  awk '{ printf "%.2f", ($1 + $2) * 1000 / 300 }' "$1"
}

# The least machine CPU an episode with a real sandbox can cost here, before the question
# program, its service, the supervisor and the store: a sandbox's whole life with no
# command (create, teardown and the kernel's deferred work: the sandbox benchmark, which
# must be built) plus the study's shell started five times (four calls and shutdown.sh).
# Prints "LIFE SHELL FLOOR" in ms. $1: a scratch file.
episode_floor_ms() {
  local life shell
  life=$(target/release/sandbox 200 | awk '/^create -> teardown/ { getline; print $3 }')
  [[ $life =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "the sandbox benchmark gave no machine CPU per run (got '$life')" >&2; return 1; }
  shell=$(shell_start_ms "$1")
  awk -v l="$life" -v s="$shell" 'BEGIN { printf "%.2f %.2f %.2f\n", l, s, l + 5 * s }'
}

# The floor's first words, for a line that goes on to say what it allows. $1 LIFE, $2 FLOOR.
floor_text() {
  awk -v l="$1" -v f="$2" 'BEGIN { printf "floor on this machine: a sandbox'"'"'s life with no command %.2f ms + the study'"'"'s shell 5 times = %.1f ms of machine CPU per episode", l, f }'
}

# The study's shell's start in `cpuid` instructions, which a virtual machine traps to its
# hypervisor (bench/src/bin/cpuid.rs, which must be built: the time of one here, and the
# count in one start of the C library, single-stepped). Prints "US_EACH COUNT MS_PER_START".
cpuid_start() {
  target/release/cpuid | awk '$1 == "cpuid" && NF == 4 { print $2, $3, $4; found = 1 } END { exit !found }'
}

# The line that says what those traps cost an episode (five starts) and what the cores
# could run without them. $1: cpuid_start's "US_EACH COUNT MS_PER_START" (empty where it
# measured nothing); $2: the machine ms per episode they are taken from; $3: what the
# rate is set against, as awk code on `rate` (e.g. `sprintf("%.1fx ...", rate / 9.3)`).
cpuid_text() {
  [ -n "$1" ] || { echo "cpuid: not measured on this machine"; return 0; }
  local us count ms
  read -r us count ms <<<"$1"
  awk -v us="$us" -v n="$count" -v ms="$ms" -v base="$2" -v cores="$(nproc)" "BEGIN {
    rest = base - 5 * ms; rate = 1000 * cores / rest
    printf \"the C library's start runs %d cpuid instructions, each %.2f us here (trapped to the hypervisor; natively a few hundred cycles): %.2f ms per start of the study's shell, %.1f of these %.1f ms per episode; without them %.1f ms, at which %d cores run %.0f episodes/s = %s\\n\", n, us, ms, 5 * ms, base, rest, cores, rate, $3
  }"
}

# The median of the numbers on standard input, one per line.
median() {
  sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
