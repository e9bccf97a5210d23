#!/usr/bin/env bash
# A chain of processes with ready checks: p001 waits for p000 to be ready,
# p002 for p001, ... Measures the wall time from `tend up` to "every process
# is ready" (polling `tend status --json`), and the same for the same number
# of processes without dependencies or checks, as a baseline.
#
# Usage: bench/chain.sh [--no-build]
#
# Knobs (environment):
#   N=100          processes in the chain
#   REPS=3         runs of each variant (the median is printed)
#   PERIOD=20ms    period of the exec ready checks
#   MODES="exec notify flat"
#       exec:   each process creates a marker file, and its ready check is
#               `exec = ["test", "-e", MARKER]` every PERIOD (a check started
#               at spawn usually runs before the marker exists: expect about
#               one PERIOD per link on top of tend's own work);
#       notify: each process runs `systemd-notify --ready` (push readiness,
#               no polling; skipped when systemd-notify is missing);
#       flat:   N processes, no dependencies, no checks (the baseline).
#
# Needs Linux, cargo and python3. Everything it starts carries a marker
# variable and is killed on exit.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
N="${N:-100}"
REPS="${REPS:-3}"
PERIOD="${PERIOD:-20ms}"
MODES="${MODES:-exec notify flat}"

marker="TEND_BENCH_RUN=$$-$(date +%s%N)"
work="$(mktemp -d /tmp/tend-chain.XXXXXX)"

# Kills what is left and removes $work on exit (bench/cleanup.sh).
. "$(dirname "${BASH_SOURCE[0]}")/cleanup.sh"

if [ "${1:-}" = --no-build ]; then
    [ -x "$root/target/release/tend" ] || { echo "no $root/target/release/tend" >&2; exit 1; }
else
    echo "== building tend (release)"
    (cd "$root" && cargo build --release -p tend --quiet)
fi
tend="$root/target/release/tend"

# Writes the config of one variant to $work/MODE/tend.toml.
config() {
    local mode="$1" dir="$work/$1" i name prev
    mkdir -p "$dir/markers"
    {
        printf '[daemon]\nsocket = "tend.sock"\n\n'
        for ((i = 0; i < N; i++)); do
            name="$(printf 'p%03d' "$i")"
            prev="$(printf 'p%03d' $((i - 1)))"
            printf '[process.%s]\n' "$name"
            printf 'logs = { stdout = "null", stderr = "null" }\n'
            case "$mode" in
            exec)
                printf 'command = ["sh", "-c", "touch %s/markers/%s; exec sleep 100000"]\n' "$dir" "$name"
                printf 'ready = { exec = ["test", "-e", "%s/markers/%s"], period = "%s" }\n' "$dir" "$name" "$PERIOD"
                ;;
            notify)
                printf 'command = ["sh", "-c", "systemd-notify --ready; exec sleep 100000"]\n'
                printf 'notify = true\n'
                ;;
            flat)
                printf 'command = ["sleep", "100000"]\n'
                ;;
            esac
            if [ "$mode" != flat ] && [ "$i" -gt 0 ]; then
                printf 'depends_on = { %s = "ready" }\n' "$prev"
            fi
            printf '\n'
        done
    } >"$dir/tend.toml"
    "$tend" check -c "$dir/tend.toml" >/dev/null
}

echo "== $N processes, $REPS runs each, exec check period $PERIOD"
for mode in $MODES; do
    if [ "$mode" = notify ] && ! command -v systemd-notify >/dev/null; then
        echo "notify: skipped (systemd-notify is not installed)"
        continue
    fi
    config "$mode"
    env "$marker" python3 - "$tend" "$work/$mode" "$N" "$REPS" "$mode" <<'EOF'
import json, shutil, statistics, subprocess, sys, time, os

tend, dir, n, reps, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
conf = os.path.join(dir, "tend.toml")
sock = os.path.join(dir, "tend.sock")

def status():
    r = subprocess.run([tend, "status", "--json", "--socket", sock],
                       capture_output=True, timeout=10)
    return json.loads(r.stdout) if r.returncode == 0 else None

times = []
for rep in range(reps):
    shutil.rmtree(os.path.join(dir, "markers"), ignore_errors=True)
    os.makedirs(os.path.join(dir, "markers"))
    with open(os.path.join(dir, "daemon.log"), "w") as log:
        t0 = time.monotonic()
        daemon = subprocess.Popen([tend, "up", "-c", conf], stdout=subprocess.DEVNULL, stderr=log)
        deadline = t0 + 120
        while True:
            if time.monotonic() > deadline:
                sys.exit(f"{mode}: not all ready after 120 s (see {dir}/daemon.log)")
            if daemon.poll() is not None:
                sys.exit(f"{mode}: tend up exited with {daemon.returncode}")
            s = None
            try:
                s = status()
            except (subprocess.TimeoutExpired, ValueError):
                pass
            if s is not None and len(s) == n and all(p["ready"] for p in s):
                times.append(time.monotonic() - t0)
                break
            time.sleep(0.01)
        subprocess.run([tend, "shutdown", "--socket", sock], capture_output=True, timeout=60)
        daemon.wait(timeout=60)
med = statistics.median(times)
runs = ", ".join(f"{t:.3f}" for t in times)
print(f"{mode:>6}: {med:.3f} s from up to all {n} ready (median of {reps}: {runs}); {med / n * 1000:.1f} ms per process")
EOF
done
