#!/usr/bin/env bash
# The README's quick start as a new user meets it, timed: a clean clone of this
# repository's last commit in a temporary directory, nothing cached (a fresh CARGO_HOME,
# so every crate is fetched and built; a fresh model cache, so the model is downloaded),
# `./quickstart.sh` run under `script`, as on a terminal, so eval follows the episode.
# Prints the minutes from the start to: the build's end, the model's download, eval's
# start, and each episode's end with its outcome (read from the store the quick start
# wrote), so when the first scored episode came. Debian packages are machine-wide: this
# machine's stay installed (on a fresh machine apt adds about a minute). How long an
# episode takes is the model's doing: a program it starts that waits for a terminal (vim)
# runs to the 60-s call timeout. The output of the run is kept when it fails.
#   bench/run.sh quickstart
set -euo pipefail
cd "$(dirname "$0")/.."
[ -z "$(git status --porcelain --untracked-files=no)" ] ||
  echo "note: uncommitted changes are not in the clone; it times the last commit" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q . "$work/repo"
echo "quick start from a clean clone of $(git rev-parse --short HEAD), nothing cached, on $(nproc) cores"
start=$(date +%s.%N)
if ! (cd "$work/repo" && CARGO_HOME=$work/cargo XDG_CACHE_HOME=$work/cache \
  script -q -e -c ./quickstart.sh "$work/typescript" </dev/null >/dev/null 2>&1); then
  cp "$work/typescript" bench-quickstart.typescript
  echo "the quick start failed; its terminal output is in bench-quickstart.typescript" >&2
  exit 1
fi
end=$(date +%s.%N)
built=$(stat -c %.3Y "$work/repo/target/debug/offswitch")
pulled=$(stat -c %.3Y "$work"/cache/offswitch/models/*.verified)
python3 - "$work/repo/offswitch.db" "$start" "$built" "$pulled" "$end" <<'EOF'
import sqlite3, sys
db, start, built, pulled, end = sys.argv[1], *map(float, sys.argv[2:])
minutes = lambda t: f"{(t - start) / 60:5.2f} min"
con = sqlite3.connect(db)
(created,), = con.execute("SELECT created_at_ms FROM runs")
episodes = con.execute(
    "SELECT epoch, outcome, started_at_ms, duration_ms FROM episodes ORDER BY started_at_ms + duration_ms"
).fetchall()
print(f"built (crates fetched, debug profile)  {minutes(built)}")
print(f"model downloaded and verified          {minutes(pulled)}")
print(f"eval started                           {minutes(created / 1000)}")
for epoch, outcome, started, duration in episodes:
    print(f"episode {epoch} scored: {outcome:<16}       {minutes((started + duration) / 1000)}  (took {duration / 60000:.2f} min)")
print(f"quick start done                       {minutes(end)}")
if not episodes:
    sys.exit("no episode was scored")
first = (episodes[0][2] + episodes[0][3]) / 1000
print(f"first scored episode: {(first - start) / 60:.2f} min from a clean clone (target: under 10)")
EOF
