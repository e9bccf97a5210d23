#!/usr/bin/env bash
# tend vs supervisord, side by side, in one run. See bench/README.md.
#
# Usage: bench/run.sh [--no-build] [bench.py options]     (e.g. --quick, --reps 5)
#
# Builds tend (release), makes bench/.venv with supervisor from PyPI, compiles
# bench/child.c and bench/spawn_floor.c, then runs bench/bench.py, which writes bench/out/results.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="$here/out"
venv="$here/.venv"
mkdir -p "$out"

# Every process the benchmark starts (daemons, their children, our helpers)
# carries this variable in its environment; the cleanup below finds them by it,
# so nothing of ours survives a failure or a Ctrl-C, and nothing else is hit.
marker="TEND_BENCH_RUN=$$-$(date +%s%N)"
# Scratch space for configs, sockets and logs: short paths (sockets), off the repo.
scratch="$(mktemp -d /tmp/tend-bench-XXXXXX)"

# The pids of the processes that carry the marker (not this shell: only its
# children do), from one grep over every environ file.
marked() {
    grep -lzxF "$marker" /proc/[0-9]*/environ 2>/dev/null | sed -e 's|^/proc/||' -e 's|/environ$||' || true
}

cleanup() {
    local status=$? pass pids
    trap - EXIT INT TERM
    for pass in 1 2 3 4 5; do
        mapfile -t pids < <(marked)
        [ "${#pids[@]}" -eq 0 ] && break
        [ "$pass" -eq 1 ] && echo "cleanup: killing ${#pids[@]} leftover process(es)" >&2
        kill -KILL "${pids[@]}" 2>/dev/null || true
        sleep 0.2
    done
    rm -rf "$scratch"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "${1:-}" = --no-build ]; then
    # For a tree that does not build right now: measure the last release build.
    shift
    [ -x "$root/target/release/tend" ] || { echo "no $root/target/release/tend to measure" >&2; exit 1; }
    echo "== not building: measuring the existing target/release/tend"
else
    echo "== building tend (release)"
    (cd "$root" && cargo build --release -p tend --quiet)
fi

echo "== supervisor venv at $venv"
if ! "$venv/bin/python" -c 'import supervisor' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'supervisor>=4.3,<4.4'
fi
"$venv/bin/python" -c 'import importlib.metadata as m; print("supervisor", m.version("supervisor"))'

echo "== compiling bench/child.c and bench/spawn_floor.c"
gcc -O2 -Wall -Wextra -o "$out/child" "$here/child.c"
gcc -O2 -Wall -Wextra -o "$out/spawn_floor" "$here/spawn_floor.c"

# supervisord keeps pipes for each child: 1,000 children need thousands of
# fds, 10,000 (--n 10000) need 30,000 or more. As root the hard limit goes up
# too (to fs.nr_open at most).
want=65536
if [ "$(id -u)" = 0 ]; then
    nr_open="$(cat /proc/sys/fs/nr_open 2>/dev/null || echo 1048576)"
    want=$(( nr_open < 262144 ? nr_open : 262144 ))
    ulimit -Hn "$want" 2>/dev/null || true
fi
hard="$(ulimit -Hn)"
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want="$hard"; fi
ulimit -n "$want"
echo "== ulimit -n $(ulimit -n)"

# In the background and waited for, so that a TERM or INT reaches the trap at
# once instead of after the run (bash runs traps only between commands).
env "$marker" "$venv/bin/python" "$here/bench.py" \
    --scratch "$scratch" \
    --tend "$root/target/release/tend" \
    --venv "$venv" \
    --child "$out/child" \
    --floor "$out/spawn_floor" \
    --out "$out" \
    --repo "$root" \
    "$@" &
wait "$!"
