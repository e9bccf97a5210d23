#!/usr/bin/env bash
# Log throughput, run by hand (not in CI): a child writes 200 MB of 100-byte
# lines as fast as it can (bench/writer.c). Measured in one run, side by side:
#   - straight to a file, and into a pipe read by `cat` into a file (floors);
#   - under supervisord (stdout_logfile, no rotation);
#   - under tend (logs.stdout file, max_size 0).
# For each: the writer's own wall time, the supervisor's CPU time while the
# writer ran (utime+stime from /proc), and bytes lost (expected - in file).
# Usage: bench/log_throughput.sh [BYTES] [REPEATS]   (default 200000000, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
BYTES=${1:-200000000}
REPS=${2:-3}
ROOT=$PWD
OUT=$ROOT/bench/out/logs
rm -rf "$OUT" && mkdir -p "$OUT"
cargo build --release -q -p tend
TEND=$ROOT/target/release/tend
gcc -O2 -o "$OUT/writer" bench/writer.c
if [ ! -x bench/.venv/bin/supervisord ]; then
  python3 -m venv bench/.venv && bench/.venv/bin/pip install -q supervisor
fi
SUPD=$ROOT/bench/.venv/bin/supervisord
SUPCTL=$ROOT/bench/.venv/bin/supervisorctl
HZ=$(getconf CLK_TCK)
cleanup() { pkill -f "$OUT/" 2>/dev/null || true; }
trap cleanup EXIT

cpu_ms() { # utime+stime of a pid, in ms
  awk -v hz="$HZ" '{ sub(/^.*\) /, ""); print ($12 + $13) * 1000 / hz }' "/proc/$1/stat"
}
median() { sort -n | awk '{a[NR]=$1} END { print a[int((NR+1)/2)] }'; }
size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }

declare -A WALL CPU LOST
run_direct() {
  : > "$OUT/t.direct"
  for _ in $(seq "$REPS"); do
    rm -f "$OUT/direct.log"; "$OUT/writer" "$BYTES" "$OUT/t.direct" > "$OUT/direct.log"
    LOST[direct]=$((BYTES - $(size_of "$OUT/direct.log")))
  done
  WALL[direct]=$(median < "$OUT/t.direct"); CPU[direct]="-"
  : > "$OUT/t.cat"
  for _ in $(seq "$REPS"); do
    rm -f "$OUT/cat.log"; "$OUT/writer" "$BYTES" "$OUT/t.cat" | cat > "$OUT/cat.log"
    LOST[cat]=$((BYTES - $(size_of "$OUT/cat.log")))
  done
  WALL[cat]=$(median < "$OUT/t.cat"); CPU[cat]="-"
}

run_supervisord() {
  local d=$OUT/sup; mkdir -p "$d"; : > "$d/t"; : > "$d/cpu"
  cat > "$d/supervisord.conf" <<CONF
[unix_http_server]
file=$d/s.sock
[supervisord]
logfile=$d/supervisord.log
pidfile=$d/supervisord.pid
nodaemon=true
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://$d/s.sock
[program:writer]
command=$OUT/writer $BYTES $d/t
autostart=false
autorestart=false
startsecs=0
stdout_logfile=$d/writer.log
stdout_logfile_maxbytes=0
CONF
  "$SUPD" -c "$d/supervisord.conf" & local pid=$!
  until [ -S "$d/s.sock" ]; do sleep 0.1; done
  for _ in $(seq "$REPS"); do
    rm -f "$d/writer.log"; "$SUPCTL" -c "$d/supervisord.conf" reopen >/dev/null 2>&1 || true
    local before; before=$(cpu_ms "$pid"); local lines; lines=$(wc -l < "$d/t")
    "$SUPCTL" -c "$d/supervisord.conf" start writer >/dev/null
    # (supervisorctl status exits 3 for a process that is not running.)
    until [ "$(wc -l < "$d/t")" -gt "$lines" ] && [[ "$("$SUPCTL" -c "$d/supervisord.conf" status writer || true)" == *EXITED* ]]; do sleep 0.05; done
    # supervisord drains the pipe in its loop: wait until the file is complete (or stops growing).
    local last=-1; while [ "$(size_of "$d/writer.log")" != "$last" ]; do last=$(size_of "$d/writer.log"); sleep 1.2; done
    echo "$(( $(cpu_ms "$pid") - before ))" >> "$d/cpu"
    LOST[supervisord]=$((BYTES - $(size_of "$d/writer.log")))
  done
  "$SUPCTL" -c "$d/supervisord.conf" shutdown >/dev/null || true; wait "$pid" || true
  WALL[supervisord]=$(median < "$d/t"); CPU[supervisord]=$(median < "$d/cpu")
}

run_tend() {
  local d=$OUT/tend; mkdir -p "$d"; : > "$d/t"; : > "$d/cpu"
  cat > "$d/tend.toml" <<CONF
[process.writer]
command = ["$OUT/writer", "$BYTES", "$d/t"]
autostart = false
restart = "never"
[process.writer.logs]
stdout = "$d/writer.log"
max_size = 0
CONF
  "$TEND" up -d -c "$d/tend.toml" >/dev/null
  local pid; pid=$("$TEND" pid -c "$d/tend.toml")
  for _ in $(seq "$REPS"); do
    rm -f "$d/writer.log"; "$TEND" logs --reopen -c "$d/tend.toml" >/dev/null 2>&1 || true
    local before; before=$(cpu_ms "$pid")
    "$TEND" start -c "$d/tend.toml" writer >/dev/null
    until [[ "$("$TEND" status --json -c "$d/tend.toml" writer || true)" == *'"exited"'* ]]; do sleep 0.05; done
    local last=-1; while [ "$(size_of "$d/writer.log")" != "$last" ]; do last=$(size_of "$d/writer.log"); sleep 0.3; done
    echo "$(( $(cpu_ms "$pid") - before ))" >> "$d/cpu"
    LOST[tend]=$((BYTES - $(size_of "$d/writer.log")))
  done
  "$TEND" shutdown -c "$d/tend.toml" >/dev/null || true
  WALL[tend]=$(median < "$d/t"); CPU[tend]=$(median < "$d/cpu")
}

run_direct
run_supervisord
run_tend
{
  echo "Log throughput: $BYTES bytes of 100-byte lines, median of $REPS; $(nproc) CPUs, $(uname -r), $(date -u +%FT%TZ), tend $(git rev-parse --short HEAD)"
  echo
  echo "| writer's output goes | writer wall time | supervisor CPU while it ran | bytes lost |"
  echo "|---|---|---|---|"
  for k in direct cat supervisord tend; do
    label=$k; [ "$k" = direct ] && label="straight to a file"; [ "$k" = cat ] && label="a pipe read by cat"
    cpu=${CPU[$k]}; [ "$cpu" != "-" ] && cpu="${cpu} ms"
    echo "| $label | ${WALL[$k]} s | $cpu | ${LOST[$k]} |"
  done
} | tee "$OUT/results.md"
