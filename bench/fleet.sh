#!/usr/bin/env bash
# `tend -H all status` across many daemons on this machine (issue 13).
#
# Usage: bench/fleet.sh [DAEMONS] [PROCESSES] [RUNS]     (defaults: 50, 100, 10)
#
# Starts DAEMONS tend daemons, each with PROCESSES processes `sleep 100000`
# and a TCP listener on 127.0.0.1 (plain HTTP on loopback, a bearer token),
# writes a hosts file naming them all, and once every process runs times RUNS
# runs of `tend -H all status` (the table) and of `status --json`, one client
# fanning out to every daemon in parallel. Prints the median, min and max
# wall time of one run. Then a rolling restart of one process across the
# first 20 daemons (`restart --one-at-a-time --wait-ready`), timed once.
#
# Needs Linux, cargo and room for DAEMONS x PROCESSES processes. Every process
# it starts carries a marker in its environment; on exit, failure or Ctrl-C
# whatever still carries it is killed, and nothing else is touched.
set -euo pipefail

daemons="${1:-50}"
processes="${2:-100}"
runs="${3:-10}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d /tmp/fleet-bench.XXXXXX)"
marker="TEND_BENCH_FLEET=$$-$(date +%s%N)"

# Kills what is left and removes $work on exit (bench/cleanup.sh).
. "$(dirname "${BASH_SOURCE[0]}")/cleanup.sh"

tend="${TEND_BIN:-}"
if [ -z "$tend" ]; then
    echo "== building tend (release)" >&2
    (cd "$root" && cargo build --release -p tend --quiet)
    tend="$root/target/release/tend"
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

token="bench-token-$$"
hosts="$work/hosts.toml"
: >"$hosts"
# Ports the kernel will not hand out meanwhile: below the ephemeral range.
base=$((20000 + ($$ % 5000)))
echo "== starting $daemons daemons x $processes processes" >&2
for i in $(seq 1 "$daemons"); do
    d="$work/d$i"
    mkdir -p "$d"
    port=$((base + i))
    {
        printf '[http]\nlisten = ["127.0.0.1:%d"]\n\n' "$port"
        printf '[access.token.bench]\nhash = "{PLAIN}%s"\nroles = ["admin"]\n\n' "$token"
        for j in $(seq 1 "$processes"); do
            printf '[process.p%d]\ncommand = ["sleep", "100000"]\nlogs = { stdout = "null", stderr = "null" }\n' "$j"
        done
    } >"$d/tend.toml"
    (cd "$d" && "$tend" -c tend.toml up -d >/dev/null 2>"$d/up.err") || {
        cat "$d/up.err" >&2
        exit 1
    }
    printf '[host.d%d]\nurl = "http://127.0.0.1:%d"\ntoken = "%s"\n\n' "$i" "$port" "$token" >>"$hosts"
done
want=$((daemons * processes))
for _ in $(seq 1 600); do
    n=$("$tend" --hosts "$hosts" -H all status --json | grep -o '"state":"running"' | wc -l || true)
    [ "$n" -eq "$want" ] && break
    sleep 0.1
done
echo "== $n of $want processes running" >&2

time_runs() {
    local label="$1"
    shift
    local times=() t0 t1
    for _ in $(seq 1 "$runs"); do
        t0=$(date +%s%N)
        "$@" >/dev/null
        t1=$(date +%s%N)
        times+=($(((t1 - t0) / 1000000)))
    done
    mapfile -t sorted < <(printf '%s\n' "${times[@]}" | sort -n)
    printf '| %s | %d ms | %d ms | %d ms |\n' "$label" \
        "${sorted[$((runs / 2))]}" "${sorted[0]}" "${sorted[$((runs - 1))]}"
}
echo "| $daemons daemons x $processes processes | median | min | max |"
echo "|---|---|---|---|"
time_runs "tend -H all status" "$tend" --hosts "$hosts" -H all status
time_runs "tend -H all status --json" "$tend" --hosts "$hosts" -H all status --json
roll=$((daemons < 20 ? daemons : 20))
sel=$(seq -s, -f 'd%g' 1 "$roll")
t0=$(date +%s%N)
"$tend" --hosts "$hosts" -H "$sel" restart --one-at-a-time --wait-ready p1 >/dev/null
t1=$(date +%s%N)
echo "| rolling restart of p1 across $roll daemons (--wait-ready) | $(((t1 - t0) / 1000000)) ms | | |"
"$tend" --hosts "$hosts" -H all shutdown >/dev/null || true
