#!/usr/bin/env python3
"""Log capture, side by side, in one run (issue 16's writer).

A service runs `yes <99 x> | head -c BYTES` in a `sh -c`: 100-byte lines, in
the 8 KiB writes of `head`, as fast as the output is taken. Its stdout goes

  - straight to a file (`> file`), the machine's floor for the bytes;
  - into a pipe read by `cat > file`, the floor for a pipe reader;
  - to a log file under supervisord 4.3 (`stdout_logfile`, no rotation);
  - to a log file under tend (`logs.stdout`, `max_size = 0`).

Three cases: one writer; N writers at once (default 10), each into a file of
its own; N writers at once into one shared file (whose lines must stay whole).
Each case runs every variant REPS times in a round, the order alternating from
round to round, ROUNDS rounds; the figures are medians per variant.

For each run: the writers' wall time (each `sh -c` reads the clock before
`yes` and after `head`, and the run's time is from the first start to the
last end), the daemon's CPU from /proc/PID/task/*/schedstat (exact ns, every
thread) from just before the start to the moment every byte is in the file
(for `cat`, the CPU of the `cat` processes, from wait4: the floor reader's),
and bytes lost (expected minus the file sizes). With a shared file, every line
is checked to be whole (99 x and a newline).

Usage: bench/logs.py --tend target/release/tend --venv DIR [--bytes N]
       [--reps 3] [--rounds 3] [--procs 10] [--cases one,own,shared]
Run it by hand, after `cargo build --release -p tend`, with any venv that has
supervisor 4.3 (bench/run.sh makes bench/.venv); it writes bench/out/logs.md
and bench/out/logs.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LINE = b"x" * 99 + b"\n"
POLL = 0.01


def log(msg: str) -> None:
    print(msg, flush=True)


class BenchError(Exception):
    pass


def run_ns(pid: int) -> int:
    """CPU time of every thread of `pid` so far, in ns (schedstat)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def writer_script(nbytes: int, times: Path) -> str:
    x = "x" * 99
    # `date` runs in every variant alike; its cost is in each figure.
    return f'a=$(date +%s%N); yes {x} | head -c {nbytes}; b=$(date +%s%N); echo "$a $b" >> {times}'


def read_times(times: Path, n: int) -> tuple[float, float]:
    """The run's wall time (first start to last end), and how far apart the
    writers started (the spawning's share of it)."""
    pairs = [tuple(int(v) for v in line.split()) for line in times.read_text().splitlines() if line.strip()]
    if len(pairs) != n:
        raise BenchError(f"{times}: {len(pairs)} writers reported, expected {n}")
    starts = [a for a, _ in pairs]
    return (max(b for _, b in pairs) - min(starts)) / 1e9, (max(starts) - min(starts)) / 1e9


def wait_for(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(POLL)


def lines_whole(p: Path) -> bool:
    """Every line of the file is exactly LINE."""
    with open(p, "rb") as f:
        while True:
            block = f.read(len(LINE) * 100_000)
            if not block:
                return True
            if len(block) % len(LINE) or block != LINE * (len(block) // len(LINE)):
                return False


def wait_complete(files: list[Path], expected: int, timeout: float = 120) -> None:
    """Until the files hold `expected` bytes in all, or stop growing for 2 s."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while True:
        got = sum(size(p) for p in files)
        if got >= expected:
            return
        if got != last:
            last, since = got, time.monotonic()
        elif time.monotonic() - since > 2:
            return
        if time.monotonic() > deadline:
            return
        time.sleep(POLL)


# --------------------------------------------------------------- the variants


class Variant:
    name = ""

    def __init__(self, args, work: Path, procs: int, shared: bool):
        self.args, self.dir, self.procs, self.shared = args, work / self.name, procs, shared
        self.dir.mkdir(parents=True, exist_ok=True)
        self.times = self.dir / "times"
        # The many-writer cases write the same total as the one writer.
        self.nbytes = args.bytes if procs == 1 else args.bytes // procs

    def files(self) -> list[Path]:
        if self.shared:
            return [self.dir / "shared.log"]
        return [self.dir / f"w{i:02}.log" for i in range(self.procs)]

    def setup(self) -> None:
        pass

    def teardown(self) -> None:
        pass

    def daemon_pid(self) -> int | None:
        return None

    def start(self) -> list[subprocess.Popen]:
        raise NotImplementedError

    def reap(self, procs: list[subprocess.Popen]) -> float | None:
        """Waits for what `start` started; the CPU of the readers (ms) where
        the variant has readers of its own (`cat`), else None."""
        for p in procs:
            p.wait()
        return None

    def run(self) -> dict:
        # Both daemons open a process's log file when its output starts (tend
        # at the first line, supervisord at the spawn), so removing it is safe.
        for p in self.files():
            p.unlink(missing_ok=True)
        self.times.write_text("")
        pid = self.daemon_pid()
        cpu0 = run_ns(pid) if pid else 0
        procs = self.start()
        wait_for(lambda: len(self.times.read_text().splitlines()) >= self.procs, 300, f"{self.name} writers")
        reader_cpu = self.reap(procs)
        expected = self.nbytes * self.procs
        wait_complete(self.files(), expected)
        cpu = (run_ns(pid) - cpu0) / 1e6 if pid else reader_cpu
        got = sum(size(p) for p in self.files())
        wall, spread = read_times(self.times, self.procs)
        out = {"wall_s": wall, "start_spread_s": spread, "cpu_ms": cpu, "lost": expected - got}
        if self.shared:
            out["whole"] = lines_whole(self.files()[0])
        return out


class Direct(Variant):
    name = "file"

    def start(self):
        script = writer_script(self.nbytes, self.times)
        return [
            subprocess.Popen(["sh", "-c", f"{script}"], stdout=open(f, "ab"))
            for f in (self.files() * self.procs if self.shared else self.files())
        ]


class Cat(Variant):
    name = "cat"

    def start(self):
        script = writer_script(self.nbytes, self.times)
        out, self.cats = [], []
        for f in self.files() * self.procs if self.shared else self.files():
            w = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE)
            # `cat >> f`: O_APPEND, as a log file is opened.
            with open(f, "ab") as sink:
                self.cats.append(subprocess.Popen(["cat"], stdin=w.stdout, stdout=sink))
            w.stdout.close()
            out.append(w)
        return out

    def reap(self, procs):
        for p in procs:
            p.wait()
        # Reaped here, not by Popen, for each cat's own CPU (the floor's
        # reader's, as the daemons' CPU is theirs).
        total = 0.0
        for c in self.cats:
            _, _, ru = os.wait4(c.pid, 0)
            c.returncode = 0
            total += (ru.ru_utime + ru.ru_stime) * 1000
        return total


class Supervisord(Variant):
    name = "supervisord"

    def setup(self):
        d = self.dir
        conf = [
            "[unix_http_server]", f"file={d}/s.sock",
            "[supervisord]", f"logfile={d}/supervisord.log", f"pidfile={d}/supervisord.pid", "nodaemon=true",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "[supervisorctl]", f"serverurl=unix://{d}/s.sock",
        ]
        files = self.files() * self.procs if self.shared else self.files()
        for i, f in enumerate(files):
            conf += [
                f"[program:w{i:02}]",
                "command=sh -c '" + writer_script(self.nbytes, self.times).replace("%", "%%") + "'",
                "autostart=false", "autorestart=false", "startsecs=0",
                f"stdout_logfile={f}", "stdout_logfile_maxbytes=0", "stdout_logfile_backups=0",
            ]
        (d / "supervisord.conf").write_text("\n".join(conf) + "\n")
        self.proc = subprocess.Popen(
            [str(self.args.venv / "bin" / "supervisord"), "-c", str(d / "supervisord.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: (d / "s.sock").exists(), 30, "supervisord's socket")

    def ctl(self, *argv: str) -> None:
        subprocess.run(
            [str(self.args.venv / "bin" / "supervisorctl"), "-c", str(self.dir / "supervisord.conf"), *argv],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def daemon_pid(self):
        return self.proc.pid

    def start(self):
        self.ctl("start", "all")
        return []

    def teardown(self):
        self.ctl("shutdown")
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Tend(Variant):
    name = "tend"

    def setup(self):
        d = self.dir
        conf = ["[daemon]", f'socket = "{d}/t.sock"', f'log_dir = "{d}"', ""]
        files = self.files() * self.procs if self.shared else self.files()
        for i, f in enumerate(files):
            conf += [
                f"[process.w{i:02}]",
                f"command = {json.dumps(['sh', '-c', writer_script(self.nbytes, self.times)])}",
                "autostart = false",
                'restart = "never"',
                f"[process.w{i:02}.logs]",
                f'stdout = "{f}"',
                "max_size = 0",
                "",
            ]
        self.conf = d / "tend.toml"
        self.conf.write_text("\n".join(conf))
        self.proc = subprocess.Popen(
            [str(self.args.tend), "up", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: (d / "t.sock").exists(), 30, "tend's socket")

    def cli(self, *argv: str) -> None:
        subprocess.run([str(self.args.tend), *argv, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def daemon_pid(self):
        return self.proc.pid

    def start(self):
        self.cli("start", "all")
        return []

    def teardown(self):
        self.cli("shutdown")
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


VARIANTS = [Direct, Cat, Supervisord, Tend]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tend", type=Path, required=True)
    ap.add_argument("--venv", type=Path, required=True, help="a venv with supervisor 4.3")
    ap.add_argument("--bytes", type=int, default=200_000_000, help="bytes in all per run (split among the writers)")
    ap.add_argument("--reps", type=int, default=3, help="runs of each variant per round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, alternating the order")
    ap.add_argument("--procs", type=int, default=10, help="writers in the many-writer cases")
    ap.add_argument("--cases", default="one,own,shared")
    ap.add_argument("--variants", default="file,cat,supervisord,tend")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tend-logs-"))
    cases = {"one": (1, False), "own": (args.procs, False), "shared": (args.procs, True)}
    wanted = [v for v in VARIANTS if v.name in args.variants.split(",")]
    load0 = open("/proc/loadavg").read().split()[:3]
    began = time.monotonic()
    results: dict = {}
    live: list[Variant] = []
    try:
        for case in args.cases.split(","):
            procs, shared = cases[case]
            log(f"== {case}: {procs} writer(s){' into one file' if shared else ''}")
            results[case] = {v.name: [] for v in wanted}
            vs = []
            for cls in wanted:
                v = cls(args, work / case, procs, shared)
                v.setup()
                live.append(v)
                vs.append(v)
            for rnd in range(args.rounds):
                order = vs if rnd % 2 == 0 else list(reversed(vs))
                for v in order:
                    for _ in range(args.reps):
                        r = v.run()
                        results[case][v.name].append(r)
                        log(f"  {v.name:<12} {r}")
            for v in vs:
                v.teardown()
                live.remove(v)
    except BenchError as e:
        log(f"error: {e}")
        return 1
    finally:
        for v in live:
            try:
                v.teardown()
            except Exception:  # noqa: BLE001 - the failure path only
                pass
        shutil.rmtree(work, ignore_errors=True)
    load1 = open("/proc/loadavg").read().split()[:3]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    head = (
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, tend {commit}, {os.cpu_count()} CPUs, "
        f"load average {' '.join(load0)} at the start and {' '.join(load1)} at the end, "
        f"{args.bytes:,} bytes in all per run, {args.rounds} rounds of {args.reps} runs, {time.monotonic() - began:.0f} s"
    )
    md = [head, "", "| case | variant | writer wall time | reader CPU (daemon, or cat) | bytes lost | lines whole |", "|---|---|---|---|---|---|"]
    for case, by in results.items():
        for name, runs in by.items():
            w, c = med([r["wall_s"] for r in runs]), med([r["cpu_ms"] for r in runs])
            lost = max(r["lost"] for r in runs)
            whole = "" if "whole" not in runs[0] else ("yes" if all(r["whole"] for r in runs) else "**no**")
            md.append(f"| {case} | {name} | {w:.3f} s | {'-' if c is None else f'{c:.0f} ms'} | {lost} | {whole} |")
    text = "\n".join(md) + "\n"
    (args.out / "logs.md").write_text(text)
    (args.out / "logs.json").write_text(json.dumps({"head": head, "results": results}, indent=1))
    print()
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
