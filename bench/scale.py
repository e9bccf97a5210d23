#!/usr/bin/env python3
"""Scale figures beyond bench.py's 1,000 (issue 16), run by hand.

Subcommands (each prints a markdown table and writes bench/out/scale-NAME.json):

  storm     N processes (default 1,000) that each crash every second (`sleep 1;
            exit 1`, restarted at once), for D seconds (default 60): the
            daemon's CPU, RSS and open descriptors every 5 s, and the wall
            time of `tend status --json` every second (and of a bare
            `GET /v1/status` over the socket, without a client process). (Not run under
            supervisord: its 1 s loop restarts each at most once a second,
            so it would not be the same storm.)
  pileup    N processes (default 1,000) that crash at once and at once again
            (`exit 1` with nothing before it, restarted at once), until R
            restarts in all: the most descriptors the daemon held (sampled
            every 2 ms), against the 3 a running process needs. The attack
            of the issue: spawning starving pipe clean-up.
  restarts  one process restarted R times (default 100,000: `true`,
            min_uptime 0, floor 10 ms, the least allowed: 100,000 take 17 min): RSS and descriptors at each tenth, restarts/s.
  check     `tend check` of a tend.toml of 40,000 and 80,000 processes, and of
            a supervisord.conf of 80,000.
  events    the engine's event stream: S subscribers (default 100) while all
            of N processes (default 10,000) restart
            (crates/tend-core/examples/event_storm.rs).

Usage: bench/scale.py SUBCOMMAND --tend target/release/tend [options]
Every process started carries TEND_BENCH_SCALE=<marker> and is killed at
the end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MARKER = f"TEND_BENCH_SCALE={os.getpid()}-{time.time_ns()}"


def log(msg: str) -> None:
    print(msg, flush=True)


def env() -> dict:
    e = dict(os.environ)
    k, v = MARKER.split("=", 1)
    e[k] = v
    e.pop("RUST_LOG", None)
    return e


def marked() -> list[int]:
    k, v = MARKER.split("=", 1)
    want = f"{k}={v}".encode()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                if want in f.read().split(b"\0"):
                    out.append(int(d))
        except OSError:
            pass
    return out


def cleanup() -> None:
    for _ in range(5):
        pids = marked()
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


def run_ns(pid: int) -> int:
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def loadavg() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def commit() -> str:
    return subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


class Tend:
    def __init__(self, tend: Path, work: Path, body: str):
        self.tend, self.dir = tend, work
        work.mkdir(parents=True, exist_ok=True)
        self.conf = work / "tend.toml"
        self.conf.write_text(f'[daemon]\nsocket = "{work}/t.sock"\nlog_dir = "{work}/logs"\n\n' + body)
        self.out = open(work / "daemon.out", "wb")
        self.proc = subprocess.Popen([str(tend), "up", "-c", str(self.conf)], stdout=self.out, stderr=subprocess.STDOUT, env=env())
        deadline = time.monotonic() + 60
        while not (work / "t.sock").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"tend did not start: {(work / 'daemon.out').read_text()[-2000:]}")
            time.sleep(0.02)

    def cli(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.tend), *argv, "-c", str(self.conf)], capture_output=True, timeout=timeout, env=env())

    def status(self) -> list[dict]:
        r = self.cli("status", "--json")
        return json.loads(r.stdout) if r.returncode == 0 else []

    def timed_status(self) -> float:
        t = time.perf_counter()
        with subprocess.Popen([str(self.tend), "status", "--json", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env()) as p:
            p.wait()
        return (time.perf_counter() - t) * 1000

    def socket_status(self) -> float:
        """Wall time of `GET /v1/status` straight over the socket, in ms: the
        daemon's answer without starting a client process (which, on a machine
        saturated by the storm itself, mostly waits for a CPU)."""
        import socket

        t = time.perf_counter()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(self.dir / "t.sock"))
            s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            body = b""
            while chunk := s.recv(1 << 20):
                body += chunk
        ms = (time.perf_counter() - t) * 1000
        if not body.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"GET /v1/status: {body[:200]!r}")
        return ms

    def stop(self) -> None:
        try:
            self.cli("shutdown", timeout=120)
            self.proc.wait(timeout=120)
        except (subprocess.TimeoutExpired, OSError):
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- storm


def storm(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="tend-storm-"))
    body = "".join(
        f'[process.c{i:04}]\ncommand = ["sh", "-c", "sleep 1; exit 1"]\nlogs = {{ stdout = "null", stderr = "null" }}\n'
        f'[process.c{i:04}.backoff]\nmin_uptime = "500ms"\n\n'
        for i in range(args.n)
    )
    t = Tend(args.tend, work, body)
    pid = t.proc.pid
    # Until all are up once.
    deadline = time.monotonic() + 120
    while sum(1 for p in t.status() if p.get("restarts", 0) >= 1) < args.n and time.monotonic() < deadline:
        time.sleep(0.5)
    samples, status_ms, socket_ms = [], [], []
    t0 = time.monotonic()
    cpu0, last = run_ns(pid), t0
    next_sample = t0
    while time.monotonic() - t0 < args.duration:
        now = time.monotonic()
        if now >= next_sample:
            cpu = run_ns(pid)
            st = t.status()
            samples.append({
                "t_s": round(now - t0, 1),
                "cpu_ms_per_s": (cpu - cpu0) / 1e6 / max(now - last, 1e-9) if samples else None,
                "rss_kib": rss_kib(pid),
                "fds": fds(pid),
                "restarts": sum(p.get("restarts", 0) for p in st),
            })
            cpu0, last = cpu, now
            next_sample += 5
        status_ms.append(t.timed_status())
        socket_ms.append(t.socket_status())
        time.sleep(max(0, 1 - (time.monotonic() - now)))
    t.stop()
    rate = (samples[-1]["restarts"] - samples[0]["restarts"]) / max(samples[-1]["t_s"] - samples[0]["t_s"], 1)
    return {"n": args.n, "duration_s": args.duration, "samples": samples, "status_ms": status_ms, "socket_ms": socket_ms, "restarts_per_s": rate}


def render_storm(r: dict) -> str:
    out = [f"{r['n']:,} processes crashing every second, {r['duration_s']} s: {r['restarts_per_s']:.0f} restarts/s",
           "", "| t | daemon CPU | RSS | descriptors | restarts so far |", "|---|---|---|---|---|"]
    for s in r["samples"]:
        cpu = "" if s["cpu_ms_per_s"] is None else f"{s['cpu_ms_per_s']:.0f} ms/s"
        out.append(f"| {s['t_s']} s | {cpu} | {s['rss_kib'] / 1024:.1f} MiB | {s['fds']:,} | {s['restarts']:,} |")
    st = r["status_ms"]
    out += ["", f"`tend status --json` throughout ({len(st)} runs): median {statistics.median(st):.1f} ms, max {max(st):.1f} ms"]
    if r.get("socket_ms"):
        so = r["socket_ms"]
        out += ["", f"`GET /v1/status` over the socket, no client process ({len(so)} runs): median {statistics.median(so):.1f} ms, max {max(so):.1f} ms"]
    return "\n".join(out)


# ---------------------------------------------------------------- pileup


def pileup(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="tend-pileup-"))
    body = "".join(
        f'[process.c{i:04}]\ncommand = ["sh", "-c", "exit 1"]\n[process.c{i:04}.backoff]\nmin_uptime = "0s"\nfloor = "10ms"\n\n'
        for i in range(args.n)
    )
    t = Tend(args.tend, work, body)
    pid = t.proc.pid
    peak, stop = [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], fds(pid))
            time.sleep(0.002)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.monotonic()
    total = 0
    while time.monotonic() - t0 < args.duration:
        st = t.status()
        total = sum(p.get("restarts", 0) for p in st)
        if total >= args.restarts:
            break
        time.sleep(0.2)
    took = time.monotonic() - t0
    errors = (work / "daemon.out").read_text(errors="replace").count("Too many open files")
    stop.set()
    th.join()
    t.stop()
    return {"n": args.n, "restarts": total, "seconds": took, "peak_fds": peak[0], "emfile_messages": errors}


def render_pileup(r: dict) -> str:
    return (f"{r['n']:,} processes crashing at once and again: {r['restarts']:,} restarts in {r['seconds']:.1f} s "
            f"({r['restarts'] / max(r['seconds'], 1e-9):,.0f}/s); the daemon held at most {r['peak_fds']:,} descriptors "
            f"(3 per process is {3 * r['n']:,}); \"Too many open files\" in its log: {r['emfile_messages']}")


# ---------------------------------------------------------------- restarts


def restarts(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="tend-restarts-"))
    # The lowest respawn floor (10 ms; 100 ms by default, 10 restarts a second).
    body = '[process.r]\ncommand = ["true"]\n[process.r.backoff]\nmin_uptime = "0s"\nfloor = "10ms"\n'
    t = Tend(args.tend, work, body)
    pid = t.proc.pid
    marks = [args.restarts * k // 10 for k in range(1, 11)]
    samples = []
    t0 = time.monotonic()
    while marks and time.monotonic() - t0 < args.duration:
        st = t.status()
        n = st[0].get("restarts", 0) if st else 0
        if n >= marks[0]:
            samples.append({"restarts": n, "t_s": round(time.monotonic() - t0, 1), "rss_kib": rss_kib(pid), "fds": fds(pid)})
            marks.pop(0)
        time.sleep(0.05)
    t.stop()
    return {"samples": samples}


def render_restarts(r: dict) -> str:
    out = ["| restarts | time | RSS | descriptors |", "|---|---|---|---|"]
    for s in r["samples"]:
        out.append(f"| {s['restarts']:,} | {s['t_s']} s | {s['rss_kib'] / 1024:.1f} MiB | {s['fds']} |")
    if len(r["samples"]) > 1:
        a, b = r["samples"][0], r["samples"][-1]
        out.append("")
        out.append(f"{(b['restarts'] - a['restarts']) / max(b['t_s'] - a['t_s'], 1e-9):,.0f} restarts/s")
    return "\n".join(out)


# ---------------------------------------------------------------- check


def check(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="tend-check-"))
    out = {}
    for n in args.sizes:
        p = work / f"tend-{n}.toml"
        with open(p, "w") as f:
            f.write(f'[daemon]\nsocket = "{work}/t.sock"\n\n')
            for i in range(n):
                f.write(f'[process.p{i:06}]\ncommand = ["sleep", "100000"]\n\n')
        out[f"tend.toml {n:,}"] = timed([str(args.tend), "check", "-c", str(p)], args.reps)
    n = max(args.sizes)
    p = work / "supervisord.conf"
    with open(p, "w") as f:
        f.write(f"[supervisord]\n[unix_http_server]\nfile={work}/s.sock\n")
        for i in range(n):
            f.write(f"[program:p{i:06}]\ncommand=sleep 100000\n")
    out[f"supervisord.conf {n:,}"] = timed([str(args.tend), "check", "-c", str(p)], args.reps)
    return out


def timed(cmd: list[str], reps: int) -> dict:
    """Wall time and CPU time (user + system, from wait4) of `cmd`: on a
    loaded machine the wall time is mostly waiting for a CPU."""
    xs, cpu = [], []
    for _ in range(reps):
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env())
        err = p.stderr.read() if p.stderr else b""
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        xs.append(time.perf_counter() - t)
        cpu.append(ru.ru_utime + ru.ru_stime)
        if p.returncode != 0:
            raise SystemExit(f"{cmd} failed: {err[-500:]!r}")
    return {"samples_s": xs, "median_s": statistics.median(xs), "cpu_s": cpu, "median_cpu_s": statistics.median(cpu)}


def render_check(r: dict) -> str:
    out = ["| `tend check` of | wall, median | CPU (user+sys), median |", "|---|---|---|"]
    for k, v in r.items():
        out.append(f"| {k} processes | {v['median_s']:.2f} s | {v['median_cpu_s']:.2f} s |")
    return "\n".join(out)


# ---------------------------------------------------------------- events


def events(args) -> dict:
    ex = args.example
    if ex is None:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "tend-core", "--example", "event_storm"], check=True, cwd=HERE.parent)
        ex = HERE.parent / "target" / "release" / "examples" / "event_storm"
    runs = []
    for _ in range(args.reps):
        r = subprocess.run([str(ex), str(args.n), str(args.subs)], capture_output=True, text=True, env=env(), timeout=1800)
        if r.returncode != 0:
            raise SystemExit(f"event_storm failed: {r.stderr[-2000:]}")
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
        log(f"  {runs[-1]}")
    return {"runs": runs}


def render_events(r: dict) -> str:
    out = ["| restart of all | events per subscriber (min-max) | missed (Lagged), all subscribers | last event after the restart returned | peak RSS |", "|---|---|---|---|---|"]
    for x in r["runs"]:
        out.append(f"| {x['processes']:,} in {x['restart_s']:.2f} s | {x['events_min']:,}-{x['events_max']:,} | {x['lagged_total']:,} ({x['subscribers_lagging']} of {x['subscribers']} lagged) | {x['last_event_after_restart_ms']:.0f} ms | {x['vm_hwm_kib'] / 1024:.1f} MiB |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["storm", "pileup", "restarts", "check", "events"])
    ap.add_argument("--tend", type=Path, default=HERE.parent / "target" / "release" / "tend")
    ap.add_argument("--n", type=int)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--restarts", type=int)
    ap.add_argument("--subs", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[40_000, 80_000])
    ap.add_argument("--example", type=Path, help="a built event_storm (default: build it)")
    args = ap.parse_args()
    defaults = {"storm": (1000, None), "pileup": (1000, 100_000), "restarts": (1, 100_000), "events": (10_000, None), "check": (None, None)}
    n, r = defaults[args.what]
    args.n = args.n or n
    args.restarts = args.restarts or r
    if args.what == "pileup" and args.duration == 60:
        args.duration = 300
    if args.what == "restarts" and args.duration == 60:
        args.duration = 3600
    head = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, tend {commit()}, {os.cpu_count()} CPUs, load average {loadavg()} at the start"
    log(f"== {args.what}: {head}")
    try:
        result = {"storm": storm, "pileup": pileup, "restarts": restarts, "check": check, "events": events}[args.what](args)
    finally:
        cleanup()
    head += f", {loadavg()} at the end"
    md = head + "\n\n" + {"storm": render_storm, "pileup": render_pileup, "restarts": render_restarts, "check": render_check, "events": render_events}[args.what](result) + "\n"
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / f"scale-{args.what}.json").write_text(json.dumps({"head": head, "result": result}, indent=1))
    (HERE / "out" / f"scale-{args.what}.md").write_text(md)
    print()
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
