#!/usr/bin/env python3
"""Two (or more) tend binaries, alternating, on N processes whose output is "null".

For each binary in turn (in the order given, `--rounds` times): `tend up` of N
`sleep` processes, then the daemon's CPU and the wall time of each status
request (`tend status --json`, the table, a bare `GET /v1/status` and `GET
/v1/status?stats=true` with curl), then `tend shutdown`: when half and all of
the sleepers are gone and when the daemon has exited. The daemon's CPU per
request comes from /proc/PID/stat, so it holds on a loaded machine where the
wall times do not. Meant for before/after comparisons in one run:

    cp target/release/tend /tmp/tend-before   # before the change
    ...                                        # change, cargo build --release -p tend
    bench/alternate.py /tmp/tend-before target/release/tend --n 10000

Every process it starts carries a marker in its environment; whatever still
carries it at the end (or on an error, or Ctrl-C) is killed.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

STATUS = {
    "status --json": lambda tend, sock: [tend, "status", "--json", "--socket", sock],
    "status (table)": lambda tend, sock: [tend, "status", "--socket", sock],
    "GET /v1/status": lambda tend, sock: ["curl", "-sf", "-o", "/dev/null", "--unix-socket", sock, "http://tend/v1/status"],
    "GET /v1/status?stats=true": lambda tend, sock: ["curl", "-sf", "-o", "/dev/null", "--unix-socket", sock, "http://tend/v1/status?stats=true"],
}


def marked(marker: bytes) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            with open(f"/proc/{p}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    out.append(int(p))
        except OSError:
            pass
    return out


def kill_marked(marker: bytes) -> None:
    for _ in range(10):
        pids = marked(marker)
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, 9)
            except OSError:
                pass
        time.sleep(0.3)


def cpu_ms(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def nprocs() -> int:
    return sum(1 for p in os.listdir("/proc") if p.isdigit())


def trial(tend: str, args, env: dict, work: Path) -> dict:
    conf = work / "tend.toml"
    lines = ["[daemon]", 'socket = "tend.sock"', ""]
    for i in range(1, args.n + 1):
        lines += [f"[process.s{i:05}]", 'command = ["sleep", "100000"]', 'logs = { stdout = "null", stderr = "null" }', ""]
    conf.write_text("\n".join(lines))
    sock = str(work / "tend.sock")
    out: dict = {"tend": tend, "load_start": os.getloadavg()[0]}
    t0 = time.monotonic()
    daemon = subprocess.Popen([tend, "up", "-c", str(conf)], env=env, cwd=work,
                              stdout=subprocess.DEVNULL, stderr=(work / "daemon.log").open("w"))
    while True:
        time.sleep(1)
        if daemon.poll() is not None:
            raise SystemExit(f"{tend}: the daemon exited ({daemon.returncode}); see {work}/daemon.log")
        r = subprocess.run(["curl", "-sf", "--unix-socket", sock, "http://tend/v1/status"], capture_output=True)
        if r.returncode == 0 and r.stdout.count(b'"state":"running"') == args.n:
            break
        if time.monotonic() - t0 > args.up_deadline:
            raise SystemExit(f"{tend}: not all {args.n} running after {args.up_deadline} s")
    out["up_s"] = time.monotonic() - t0
    time.sleep(2)
    for what, argv in STATUS.items():
        cmd = argv(tend, sock)
        walls = []
        c0 = cpu_ms(daemon.pid)
        for _ in range(args.runs):
            t = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, env=env)
            walls.append((time.perf_counter() - t) * 1000)
            if r.returncode not in (0, 3):
                raise SystemExit(f"{cmd}: exit {r.returncode}: {r.stderr[:300]!r}")
        out[what] = {"cpu_ms": (cpu_ms(daemon.pid) - c0) / args.runs, "median_ms": statistics.median(walls), "min_ms": min(walls)}
    base = nprocs()
    marks: dict = {}
    t = time.perf_counter()

    def watch() -> None:
        while "exit" not in marks:
            n = nprocs()
            if "half" not in marks and n <= base - args.n // 2:
                marks["half"] = time.perf_counter() - t
            if "gone" not in marks and n <= base - args.n + 20:
                marks["gone"] = time.perf_counter() - t
            time.sleep(0.05)

    th = threading.Thread(target=watch)
    th.start()
    subprocess.run([tend, "shutdown", "--socket", sock], capture_output=True, env=env, timeout=300)
    daemon.wait(timeout=300)
    marks["exit"] = time.perf_counter() - t
    th.join()
    out["shutdown"] = marks
    out["load_end"] = os.getloadavg()[0]
    return out


def show(r: dict) -> str:
    lines = [f"== {r['tend']} (load {r['load_start']:.1f} -> {r['load_end']:.1f}): all up after {r['up_s']:.1f} s"]
    for what in STATUS:
        s = r[what]
        lines.append(f"   {what:28} daemon CPU {s['cpu_ms']:6.1f} ms/request, wall median {s['median_ms']:7.1f} ms (min {s['min_ms']:.1f})")
    m = r["shutdown"]
    lines.append(f"   shutdown: half gone {m.get('half', -1):.2f} s, all gone {m.get('gone', -1):.2f} s, daemon exited {m['exit']:.2f} s")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tend", nargs="+", help="tend binaries, measured in turn")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=15, help="requests of each kind per trial")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--up-deadline", type=float, default=300)
    args = ap.parse_args()
    want = args.n * 2 + 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    marker = f"TEND_BENCH_ALTERNATE={os.getpid()}-{time.time_ns()}"
    env = dict(os.environ)
    key, value = marker.split("=", 1)
    env[key] = value
    try:
        for _ in range(args.rounds):
            for tend in args.tend:
                with tempfile.TemporaryDirectory(prefix="tend-alt-") as work:
                    try:
                        print(show(trial(tend, args, env, Path(work))), flush=True)
                    finally:
                        kill_marked(marker.encode())
    except KeyboardInterrupt:
        return 130
    finally:
        kill_marked(marker.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
