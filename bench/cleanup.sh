# shellcheck shell=bash
# Sourced by the bench shell scripts once they have set `marker` (NAME=VALUE,
# exported here into everything they start) and `work` (their scratch
# directory). On exit, failure or Ctrl-C, whatever still carries the marker is
# killed (the script itself never) and `work` is removed; the script's exit
# status is kept.
export "${marker?}"

bench_cleanup() {
    local status=$? pass pids f pid
    trap - EXIT INT TERM
    for pass in 1 2 3 4 5; do
        pids=()
        for f in /proc/[0-9]*/environ; do
            if grep -qzxF "$marker" "$f" 2>/dev/null; then
                pid="${f#/proc/}"
                pid="${pid%/environ}"
                [ "$pid" != "$$" ] && pids+=("$pid")
            fi
        done
        [ "${#pids[@]}" -eq 0 ] && break
        [ "$pass" -eq 1 ] && echo "cleanup: killing ${#pids[@]} leftover process(es)" >&2
        kill -KILL "${pids[@]}" 2>/dev/null || true
        sleep 0.2
    done
    rm -rf "$work"
    exit "$status"
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
