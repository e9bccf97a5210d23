#!/usr/bin/env python3
"""GET /metrics of a tend daemon with N idle processes: how long a scrape
takes, what it costs the daemon in CPU, how big it is, and that the daemon
does not wake up between scrapes.

    bench/metrics_scrape.py [--tend target/release/tend] [--procs 1000] [--scrapes 50] [--save PREFIX]

Run by hand (not by the tests): build the release binary first
(`cargo build --release -p tend`). Only the standard library is used. Every
figure is printed with the machine's load average, since the machines this
runs on are shared: the time of a scrape is wall time, its CPU time is the
daemon's (all threads, from /proc/PID/stat), and wake-ups are context
switches of the daemon's threads (/proc/PID/task/*/status) over a quiet
window.
"""
import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def get(sock_path: str, path: str, accept: str) -> bytes:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    s.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\nAccept: {accept}\r\n\r\n".encode())
    chunks = []
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        chunks.append(b)
    s.close()
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.0 200") and not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"scrape failed: {head[:200]!r}")
    return body


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def switches(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def threads(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tend", default="target/release/tend")
    ap.add_argument("--procs", type=int, default=1000)
    ap.add_argument("--scrapes", type=int, default=50)
    ap.add_argument("--quiet", type=float, default=15.0, help="seconds of no scrapes for the wake-up count")
    ap.add_argument("--save", metavar="PREFIX", help="write the last scrape of each format to PREFIX.0.0.4 and PREFIX.OpenMetrics (to compare two builds' output)")
    args = ap.parse_args()
    tend = str(Path(args.tend).resolve())
    tick = os.sysconf("SC_CLK_TCK")
    with tempfile.TemporaryDirectory(prefix="tend-metrics-") as d:
        d = Path(d)
        conf = d / "tend.toml"
        with conf.open("w") as f:
            for i in range(args.procs):
                f.write(f'[process.s{i}]\ncommand = ["sleep", "100000"]\n')
        daemon = subprocess.Popen(
            [tend, "-c", str(conf), "up"],
            stdout=open(d / "out.log", "w"),
            stderr=open(d / "err.log", "w"),
            start_new_session=True,
        )
        try:
            sock = str(d / "tend.sock")
            deadline = time.time() + 300
            while True:
                if daemon.poll() is not None:
                    raise SystemExit((d / "err.log").read_text())
                try:
                    text = get(sock, "/metrics", "text/plain").decode()
                    line = next(l for l in text.splitlines() if l.startswith('tend_processes{state="running"}'))
                    if int(line.split()[1]) == args.procs:
                        break
                except (OSError, StopIteration):
                    pass
                if time.time() > deadline:
                    raise SystemExit("the processes did not all start")
                time.sleep(0.5)
            time.sleep(2)
            for accept, name in [("text/plain", "0.0.4"), ("application/openmetrics-text; version=1.0.0", "OpenMetrics")]:
                times = []
                before = cpu_ticks(daemon.pid)
                size = 0
                for _ in range(args.scrapes):
                    t = time.perf_counter()
                    body = get(sock, "/metrics", accept)
                    times.append((time.perf_counter() - t) * 1000)
                    size = len(body)
                cpu_ms = (cpu_ticks(daemon.pid) - before) * 1000 / tick / args.scrapes
                if args.save:
                    Path(f"{args.save}.{name}").write_bytes(body)
                times.sort()
                lines = body.count(b"\n")
                print(
                    f"{name}: {args.procs} processes, {size / 1024:.0f} KiB, {lines} lines; "
                    f"scrape median {statistics.median(times):.1f} ms, p90 {times[int(len(times) * 0.9) - 1]:.1f} ms, "
                    f"max {times[-1]:.1f} ms; daemon CPU {cpu_ms:.1f} ms per scrape"
                )
            # The blocking thread a scrape used lingers 10 s, then exits.
            time.sleep(12)
            a = switches(daemon.pid)
            t = threads(daemon.pid)
            time.sleep(args.quiet)
            b = switches(daemon.pid)
            print(f"quiet {args.quiet:.0f} s after the scrapes: {b - a} context switches of the daemon, {t} thread(s)")
            print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
