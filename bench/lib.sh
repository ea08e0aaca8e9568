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
