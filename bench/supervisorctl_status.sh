#!/usr/bin/env bash
# `supervisorctl status` with 1,000 programs, against tend and against
# supervisord, in the same run.
#
# Usage: bench/supervisorctl_status.sh [RUNS] [PROGRAMS]     (defaults: 10, 1000)
#
# Both daemons read the same generated supervisord.conf (each in its own
# directory: the file says `%(here)s` for its socket and logs) with PROGRAMS
# programs `sleep 100000` (startsecs=0, logs NONE). Once every program of both
# is RUNNING, the real supervisorctl (supervisor 4.3.0 from PyPI, in the
# repository's .venv, made here if missing as scripts/test makes it) runs
# `status` RUNS times against each, alternating, output to /dev/null. It prints
# a markdown table: median, min and max wall time of one `supervisorctl status`
# (which includes starting Python, the same for both), the floor (`supervisorctl
# pid`: Python, supervisorctl and one tiny call), and the ratio of the medians,
# also above the floor. A ratio from one run holds on a noisy machine; an absolute time
# from another day does not.
#
# Needs Linux, cargo, python3 with venv, and room for 2 x PROGRAMS processes.
# Every process it starts carries a marker in its environment; on exit, failure
# or Ctrl-C whatever still carries it is killed, and nothing else is touched.
set -euo pipefail

runs="${1:-10}"
programs="${2:-1000}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
work="$(mktemp -d /tmp/sctl-bench.XXXXXX)"
marker="TEND_BENCH_STATUS=$$-$(date +%s%N)"

# Kills what is left and removes $work on exit (bench/cleanup.sh).
. "$(dirname "${BASH_SOURCE[0]}")/cleanup.sh"

echo "== building tend (release)" >&2
(cd "$root" && cargo build --release -p tend --quiet)
tend="$root/target/release/tend"

if [ ! -x "$venv/bin/supervisorctl" ] || [ ! -x "$venv/bin/supervisord" ]; then
    echo "== making $venv with supervisor 4.3.0" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check supervisor==4.3.0
fi
ctl="$venv/bin/supervisorctl"

# supervisord keeps pipes for each child.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

conf() {
    cat <<EOF
[unix_http_server]
file=%(here)s/s.sock

[supervisord]
logfile=%(here)s/supervisord.log
pidfile=%(here)s/supervisord.pid
childlogdir=%(here)s
minfds=$((programs * 4 + 256))

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%(here)s/s.sock
EOF
    local i
    for ((i = 1; i <= programs; i++)); do
        printf '\n[program:p%04d]\ncommand=sleep 100000\nstartsecs=0\nstdout_logfile=NONE\nstderr_logfile=NONE\n' "$i"
    done
}

mkdir -p "$work/tend" "$work/sup"
conf >"$work/tend/supervisord.conf"
conf >"$work/sup/supervisord.conf"

echo "== starting both daemons with $programs programs each" >&2
(cd "$work/tend" && exec "$tend" -c "$work/tend/supervisord.conf" up >daemon.out 2>&1) &
tend_pid=$!
(cd "$work/sup" && exec "$venv/bin/supervisord" -n -c "$work/sup/supervisord.conf" >daemon.out 2>&1) &
sup_pid=$!

running() {
    "$ctl" -c "$1/supervisord.conf" status 2>/dev/null | grep -c ' RUNNING ' || true
}
for side in tend sup; do
    deadline=$((SECONDS + 300))
    until [ "$(running "$work/$side")" -eq "$programs" ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "error: $side did not get $programs programs RUNNING in 300 s" >&2
            tail -20 "$work/$side/daemon.out" >&2 || true
            exit 1
        fi
        sleep 0.5
    done
done

# Wall time of one `supervisorctl ARGS` against a side, in milliseconds.
time_ctl() {
    local dir=$1 t0 t1
    shift
    t0=$(date +%s%N)
    "$ctl" -c "$dir/supervisord.conf" "$@" >/dev/null 2>&1 || true
    t1=$(date +%s%N)
    echo "$(((t1 - t0) / 1000))" | awk '{ printf "%.1f\n", $1 / 1000 }'
}

echo "== $runs runs each, alternating" >&2
: >"$work/tend.ms"
: >"$work/sup.ms"
: >"$work/floor.ms"
for ((r = 0; r < runs; r++)); do
    if ((r % 2 == 0)); then
        time_ctl "$work/tend" status >>"$work/tend.ms"
        time_ctl "$work/sup" status >>"$work/sup.ms"
    else
        time_ctl "$work/sup" status >>"$work/sup.ms"
        time_ctl "$work/tend" status >>"$work/tend.ms"
    fi
    # The floor: Python, supervisorctl and one tiny call (getPID).
    time_ctl "$work/tend" pid >>"$work/floor.ms"
done

stats() { # median min max of a column of numbers
    sort -n "$1" | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.1f %.1f %.1f\n", m, v[1], v[NR] }'
}
read -r tm tmin tmax < <(stats "$work/tend.ms")
read -r sm smin smax < <(stats "$work/sup.ms")
read -r fm fmin fmax < <(stats "$work/floor.ms")

echo
echo "\`supervisorctl status\` with $programs programs, $runs runs each (wall time, ms):"
echo
echo "| daemon | median | min | max |"
echo "| --- | ---: | ---: | ---: |"
echo "| tend | $tm | $tmin | $tmax |"
echo "| supervisord 4.3.0 | $sm | $smin | $smax |"
echo "| floor: \`supervisorctl pid\` against tend | $fm | $fmin | $fmax |"
echo
awk -v t="$tm" -v s="$sm" -v f="$fm" 'BEGIN {
    printf "supervisord / tend (medians): %.2f; above the floor: %.2f\n", s / t, (s - f) / (t - f) }'

echo "== shutting both down" >&2
for side in tend sup; do
    "$ctl" -c "$work/$side/supervisord.conf" shutdown >/dev/null 2>&1 || true
done
deadline=$((SECONDS + 120))
while kill -0 "$tend_pid" 2>/dev/null || kill -0 "$sup_pid" 2>/dev/null; do
    [ "$SECONDS" -ge "$deadline" ] && break
    sleep 0.5
done
