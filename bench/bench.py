#!/usr/bin/env python3
"""tend vs supervisord, side by side, in one run.

Started by bench/run.sh, which builds tend, prepares the supervisor venv and
compiles bench/child.c and bench/spawn_floor.c; run this under that venv's
python (it imports supervisor's XML-RPC transport). Every figure is measured
for both daemons in the same run, on the same machine, one daemon after the
other or alternating, because the machines these run on are shared and noisy:
the ratio holds, an absolute time from another day does not.

The method behind each figure is described in bench/README.md and
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import importlib.metadata
import json
import os
import platform
import random
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from pathlib import Path

from supervisor.xmlrpc import SupervisorTransport

POLL = 0.005  # seconds between /proc polls while waiting for children
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(msg, flush=True)


class BenchError(Exception):
    """A measurement could not be taken (a daemon died, a deadline passed)."""


# ---------------------------------------------------------------- /proc helpers


def children(pid: int) -> list[int]:
    """Direct children of `pid`, across all its threads."""
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                kids.extend(int(k) for k in f.read().split())
        except OSError:
            pass
    return kids


def comm(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def zombie(pid: int) -> bool:
    """Whether `pid` is a zombie, or gone (only its parent's wait is missing)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        out.extend(kids)
        todo.extend(kids)
    return out


def memory(pid: int) -> dict:
    """VmRSS and VmHWM from status, Pss from smaps_rollup, in KiB."""
    m: dict = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                m[key] = int(value.split()[0])
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    m["Pss"] = int(line.split()[1])
    except OSError:
        pass
    return m


def cpu(pid: int) -> dict:
    """CPU used so far by `pid`: utime+stime (clock ticks, so 10 ms steps at
    CLK_TCK=100), the scheduler's exact run time (ns, summed over threads), and
    context switches (how often it woke up, roughly)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    run_ns = switches = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                run_ns += int(f.read().split()[0])
            with open(f"/proc/{pid}/task/{t}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
        except OSError:
            pass
    return {"ticks_ms": ticks * 1000 / CLK_TCK, "run_ns": run_ns, "switches": switches}


def kill_tree(pid: int) -> None:
    """SIGKILL a daemon and everything below it (the failure path only)."""
    for _ in range(5):
        pids = descendants(pid)
        for p in [pid, *pids]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not pids:
            return
        time.sleep(0.1)


# ----------------------------------------------------------------- statistics


def wait_blocking(proc: subprocess.Popen, limit: float) -> int:
    """Waits for `proc` in a blocking waitpid, killing it after `limit`
    seconds. Never `Popen.wait(timeout=...)` or `subprocess.run(timeout=...)`
    where the time is measured: with a timeout, Python polls with sleeps
    that double from 0.5 ms (to 50 ms), so the wait ends 0.5, 1.5, 3.5, 7.5,
    15.5 ms... after the start, and a 7.6 ms command measures 15.5 ms."""
    timer = threading.Timer(limit, proc.kill)
    timer.start()
    try:
        return proc.wait()
    finally:
        timer.cancel()


def run_blocking(cmd: list[str], limit: float, **kw) -> subprocess.CompletedProcess:
    """`subprocess.run` with the wait of [`wait_blocking`]."""
    with subprocess.Popen(cmd, **kw) as proc:
        timer = threading.Timer(limit, proc.kill)
        timer.start()
        try:
            out, err = proc.communicate()
        finally:
            timer.cancel()
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def p90(xs: list[float]) -> float:
    """Nearest-rank 90th percentile."""
    s = sorted(xs)
    return s[max(0, -(-9 * len(s) // 10) - 1)]


# ---------------------------------------------------------------- the daemons


class Daemon:
    """One daemon under test, in its own scratch directory."""

    kind = ""

    def __init__(self, args, workdir: Path, sleepers: int, victim: Path | None = None, startsecs: int = 0):
        self.args = args
        self.dir = workdir
        self.sleepers = sleepers
        self.victim = victim  # log file of the bench child, if there is one
        self.startsecs = startsecs
        self.proc: subprocess.Popen | None = None
        self.t0 = 0.0
        workdir.mkdir(parents=True, exist_ok=True)
        self.write_config()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def launch(self) -> None:
        out = open(self.dir / "daemon.out", "wb")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(self.command(), cwd=self.dir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        out.close()

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            tail = (self.dir / "daemon.out").read_text(errors="replace")[-2000:]
            raise BenchError(f"{self.kind} exited early (status {self.proc and self.proc.returncode}):\n{tail}")

    def wait_exec(self, n: int, timeout: float = 600) -> float:
        """Seconds from launch until `n` children of the daemon have exec'd
        `sleep` (their /proc comm says so), polled every 5 ms. The same method
        for both daemons, and independent of what either one reports."""
        confirmed: set[int] = set()
        deadline = time.monotonic() + timeout
        while True:
            for k in children(self.pid):
                if k not in confirmed and comm(k) == "sleep":
                    confirmed.add(k)
            if len(confirmed) >= n:
                return time.monotonic() - self.t0
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"{self.kind}: only {len(confirmed)} of {n} sleepers exec'd after {timeout}s")
            time.sleep(POLL)

    def wait_reported(self, n: int, interval: float, timeout: float = 600) -> float:
        """Seconds from launch until the daemon's own status says `n` are
        running (for supervisord: RUNNING, which waits out startsecs)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.running_count() >= n:
                    return time.monotonic() - self.t0
            except (OSError, xmlrpc.client.Error, ValueError, subprocess.SubprocessError):
                pass  # not listening yet
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"{self.kind}: fewer than {n} reported running after {timeout}s")
            time.sleep(interval)

    def stop(self) -> float:
        """Stops the daemon and all its children; returns how long it took."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        t = time.monotonic()
        try:
            self.ask_to_stop()
            wait_blocking(self.proc, 180)
        except (subprocess.SubprocessError, OSError, xmlrpc.client.Error) as e:
            log(f"  {self.kind}: clean stop failed ({e}); killing it")
            kill_tree(self.pid)
            self.proc.wait()
        return time.monotonic() - t

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            kill_tree(self.pid)
            self.proc.wait()


class Tend(Daemon):
    kind = "tend"

    @property
    def conf(self) -> Path:
        return self.dir / "tend.toml"

    def write_config(self) -> None:
        lines = ["[daemon]", 'socket = "tend.sock"', ""]
        for i in range(1, self.sleepers + 1):
            lines += [f"[process.s{i:04}]", 'command = ["sleep", "100000"]']
            if self.args.null_output:
                lines += ['logs = { stdout = "null", stderr = "null" }']
            lines += [""]
        if self.victim is not None:
            lines += [
                "[process.victim]",
                f"command = [{json.dumps(str(self.args.child))}, {json.dumps(str(self.victim))}]",
                "",
                # The bench kills the child 50-250 ms after it started; with
                # the default min_uptime (1s) each kill would be a quick death
                # and back off. Every run here is healthy, so 10 ms is honest.
                "[process.victim.backoff]",
                'min_uptime = "10ms"',
                "",
            ]
        self.conf.write_text("\n".join(lines))

    def command(self) -> list[str]:
        return [str(self.args.tend), "up", "-c", str(self.conf)]

    def cli(self, *argv: str) -> list[str]:
        return [str(self.args.tend), *argv, "-c", str(self.conf)]

    def status(self) -> list[dict]:
        r = subprocess.run(self.cli("status", "--json"), capture_output=True, timeout=30)
        if r.returncode != 0:
            raise ValueError(r.stderr.decode(errors="replace"))
        return json.loads(r.stdout)

    def running_count(self) -> int:
        return sum(1 for p in self.status() if p.get("state") == "running")

    def ask_to_stop(self) -> None:
        r = run_blocking(self.cli("shutdown"), 180, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise subprocess.CalledProcessError(r.returncode, r.args, r.stdout, r.stderr)

    def status_commands(self) -> dict[str, list[str]]:
        return {
            "tend status": self.cli("status"),
            "tend status --json": self.cli("status", "--json"),
            # Without -c the client does not read the config file: the
            # difference is what parsing the file costs the client.
            "tend status --socket": [str(self.args.tend), "status", "--socket", str(self.dir / "tend.sock")],
        }


class Supervisord(Daemon):
    kind = "supervisord"

    @property
    def conf(self) -> Path:
        return self.dir / "supervisord.conf"

    def write_config(self) -> None:
        fds = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        (self.dir / "childlogs").mkdir(exist_ok=True)
        lines = [
            "[supervisord]",
            "nodaemon=true",
            "logfile=%(here)s/supervisord.log",
            "pidfile=%(here)s/supervisord.pid",
            "childlogdir=%(here)s/childlogs",
            f"minfds={min(fds, 1 << 20)}",
            "",
            "[unix_http_server]",
            "file=%(here)s/supervisor.sock",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            "serverurl=unix://%(here)s/supervisor.sock",
            "",
        ]
        for i in range(1, self.sleepers + 1):
            lines += [f"[program:s{i:04}]", "command=sleep 100000", f"startsecs={self.startsecs}"]
            if self.args.null_output:
                lines += ["stdout_logfile=NONE", "stderr_logfile=NONE"]
            lines += [""]
        if self.victim is not None:
            lines += [
                "[program:victim]",
                f"command={self.args.child} {self.victim}",
                "startsecs=0",
                "autorestart=true",
                "",
            ]
        self.conf.write_text("\n".join(lines))

    def command(self) -> list[str]:
        return [str(self.args.venv / "bin" / "supervisord"), "-n", "-c", str(self.conf)]

    def rpc(self):
        transport = SupervisorTransport(None, None, f"unix://{self.dir / 'supervisor.sock'}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def running_count(self) -> int:
        return sum(1 for p in self.rpc().supervisor.getAllProcessInfo() if p["statename"] == "RUNNING")

    def ask_to_stop(self) -> None:
        os.kill(self.pid, signal.SIGTERM)

    def status_commands(self) -> dict[str, list[str]]:
        return {"supervisorctl status": [str(self.args.venv / "bin" / "supervisorctl"), "-c", str(self.conf), "status"]}


class Floor(Daemon):
    """bench/spawn_floor.c: a bare fork+exec (and restart) loop in C, the
    floor of this machine for both start-up and restart latency."""

    kind = "floor"

    def write_config(self) -> None:
        pass

    def command(self) -> list[str]:
        if self.victim is not None:
            return [str(self.args.floor), "1", str(self.args.child), str(self.victim)]
        sleep = shutil.which("sleep") or "/bin/sleep"
        return [str(self.args.floor), str(self.sleepers), sleep, "100000"]

    def running_count(self) -> int:
        return sum(1 for k in children(self.pid) if comm(k) == "sleep")

    def ask_to_stop(self) -> None:
        os.kill(self.pid, signal.SIGTERM)


# ------------------------------------------------------------- measurements


def startup(d: Daemon, n: int, timeout: float = 600) -> dict:
    d.launch()
    exec_s = d.wait_exec(n, timeout)
    reported_s = d.wait_reported(n, interval=0.02)
    return {"exec_s": exec_s, "reported_s": reported_s}


def exec_count(d: Daemon) -> int:
    return sum(1 for k in children(d.pid) if comm(k) == "sleep")


class LineWatcher:
    """Waits for a line to be appended to a file: inotify where there is one,
    a 1 ms poll otherwise. Only *that* a line arrived matters here; when the
    child started is the timestamp the child wrote into it."""

    IN_MODIFY = 0x2

    def __init__(self, path: Path):
        self.path = path
        self.fd = -1
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
            if fd >= 0 and libc.inotify_add_watch(fd, str(path).encode(), self.IN_MODIFY) >= 0:
                self.fd = fd
            elif fd >= 0:
                os.close(fd)
        except (OSError, AttributeError):
            pass

    def lines(self) -> list[tuple[int, int]]:
        with open(self.path) as f:
            return [(int(a), int(b)) for a, b in (line.split() for line in f if line.endswith("\n"))]

    def wait_for_more(self, count: int, timeout: float) -> list[tuple[int, int]]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.lines()
            if len(got) > count:
                return got
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"no new line in {self.path} after {timeout}s")
            if self.fd >= 0:
                select.select([self.fd], [], [], min(left, 0.1))
                try:
                    os.read(self.fd, 65536)
                except BlockingIOError:
                    pass
            else:
                time.sleep(0.001)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)


def restart_latency(ds: list[Daemon], kills: int, rng: random.Random) -> dict:
    """Kill -9 each daemon's bench child `kills` times; latency = the
    successor's own CLOCK_REALTIME at the top of main() minus CLOCK_REALTIME
    just before kill(). With several daemons, their kills alternate, so that
    the machine's noise hits all of them alike."""
    watchers: dict[str, LineWatcher] = {}
    lines: dict[str, list[tuple[int, int]]] = {}
    lat_ms: dict[str, list[float]] = {d.kind: [] for d in ds}
    try:
        for d in ds:
            assert d.victim is not None
            d.launch()
            if d.sleepers:
                d.wait_exec(d.sleepers)
                d.wait_reported(d.sleepers + 1, interval=0.05)
            deadline = time.monotonic() + 60
            while not d.victim.exists():
                d.check_alive()
                if time.monotonic() > deadline:
                    raise BenchError(f"{d.kind}: the bench child never started")
                time.sleep(POLL)
            watchers[d.kind] = LineWatcher(d.victim)
            lines[d.kind] = watchers[d.kind].wait_for_more(0, 10)
        for i in range(kills):
            for d in ds if i % 2 == 0 else reversed(ds):
                # A random pause so the kills do not phase-lock with any
                # periodic loop in the daemon (supervisord's 1 s tick); it also
                # keeps every run above tend's min_uptime (10 ms here).
                time.sleep(rng.uniform(0.05, 0.25))
                got = lines[d.kind]
                pid = got[-1][0]
                if ppid(pid) != d.pid:
                    raise BenchError(f"{d.kind}: pid {pid} from the child log is not the daemon's child")
                count = len(got)
                t_kill = time.time_ns()
                os.kill(pid, signal.SIGKILL)
                got = lines[d.kind] = watchers[d.kind].wait_for_more(count, 15)
                new_pid, started_ns = got[count]
                if new_pid == pid:
                    raise BenchError(f"{d.kind}: the same pid logged twice")
                lat_ms[d.kind].append((started_ns - t_kill) / 1e6)
    finally:
        for w in watchers.values():
            w.close()
    out = {}
    for d in ds:
        check = {}
        if isinstance(d, Tend):
            st = [p for p in d.status() if p["name"] == "victim"][0]
            check = {k: st.get(k) for k in ("state", "restarts", "quick_deaths")}
            if st.get("restarts") != kills:
                log(f"  WARNING: tend counts {st.get('restarts')} restarts, expected {kills}")
        elif isinstance(d, Supervisord):
            info = d.rpc().supervisor.getProcessInfo("victim")
            check = {"state": info["statename"]}
        xs = lat_ms[d.kind]
        out[d.kind] = {"samples_ms": xs, "median_ms": median(xs), "p90_ms": p90(xs), "max_ms": max(xs), "check": check}
    return out


def settle(pids: list[int], timeout: float = 3.0) -> None:
    """Waits until none of the daemons has run for 50 ms (their schedstat run
    times stand still), at most `timeout`. supervisord keeps working for a
    while after supervisorctl has its answer; a command timed meanwhile would
    share the two CPUs with it and measure that instead of itself."""
    def run_ns() -> list[int]:
        out = []
        for pid in pids:
            try:
                out.append(cpu(pid)["run_ns"])
            except (OSError, KeyError, ValueError):
                out.append(0)
        return out

    deadline = time.monotonic() + timeout
    before = run_ns()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = run_ns()
        if now == before:
            return
        before = now


def time_commands(cmds: dict[str, list[str]], runs: int, expect: int, quiet: list[int]) -> dict:
    """Wall time of each command (fork to exit, output to /dev/null), the
    commands interleaved so that noise hits all of them alike, each started
    once the daemons in `quiet` are idle."""
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for name, cmd in cmds.items():
        # One checked run first: a failing command would time its error path,
        # and the output must list the last process.
        r = subprocess.run(cmd, capture_output=True, timeout=60)
        if r.returncode != 0 or (b"s%04d" % expect) not in r.stdout:
            raise BenchError(f"{name} failed ({r.returncode}): {r.stderr[-500:]!r}")
    for i in range(runs):
        order = list(cmds.items())
        if i % 2:
            order.reverse()
        for name, cmd in order:
            settle(quiet)
            t = time.perf_counter()
            run_blocking(cmd, 60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[name].append((time.perf_counter() - t) * 1000)
    return {k: {"samples_ms": v, "median_ms": median(v), "p90_ms": p90(v)} for k, v in times.items()}


# ------------------------------------------------------------------- report


def machine(args) -> dict:
    def sh(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) // 1024} MiB"
    commit = sh("git", "-C", str(args.repo), "rev-parse", "--short", "HEAD")
    if sh("git", "-C", str(args.repo), "status", "--porcelain"):
        commit += " (with uncommitted changes in the working tree)"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory": mem,
        "kernel": platform.release(),
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
        "tend_commit": commit,
        "tend_version": sh(str(args.tend), "--version"),
        "tend_built": datetime.datetime.fromtimestamp(args.tend.stat().st_mtime, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "supervisor": importlib.metadata.version("supervisor"),
        "python": platform.python_version(),
        "ulimit_n": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }


def ms(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f} ms"
    if x >= 10:
        return f"{x:.1f} ms"
    return f"{x:.2f} ms"


def secs(x: float) -> str:
    return f"{x:.2f} s" if x < 10 else f"{x:.1f} s"


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def render(r: dict, args) -> str:
    m = r["machine"]
    n = args.n
    rows = []
    # The targets: issue 2's at 1,000; issue 16's at ten times that.
    big = n >= 10_000
    T = {
        "restart": 2,
        "up": "within 1.5x of the floor" if big else "under 1 s",
        "rss_mib": 60 if big else 15e6 / 2**20,
        "idle_ms": 0 if big else 1,
        "status_ms": 60 if big else 15,
        "stop_s": 3 if big else None,
    }

    def row(figure, sup, tend, target, met):
        rows.append(f"| {figure} | {sup} | {tend} | {target} | {met} |")

    def verdict(ok: bool) -> str:
        return "yes" if ok else "**no**"

    def sup_or(d: dict | None, key: str, fmt) -> str:
        return fmt(d[key]) if d and key in d else "did not finish"

    rl = r["restart"]
    for key, label in (("alone", "restart latency, median (p90)"), ("with_sleepers", f"restart latency with {n:,} idle sleepers, median (p90)")):
        if key in rl:
            s, t = rl[key].get("supervisord"), rl[key]["tend"]
            sup = f"{ms(s['median_ms'])} ({ms(s['p90_ms'])})" if s else "n/a"
            row(label, sup, f"{ms(t['median_ms'])} ({ms(t['p90_ms'])})", "under 2 ms", verdict(t["median_ms"] < T["restart"]))
            if "floor" in rl[key]:
                f = rl[key]["floor"]
                row("the floor: a bare C restart loop (bench/spawn_floor.c), median (p90)", "", f"{ms(f['median_ms'])} ({ms(f['p90_ms'])})", "", "")
    su = r["startup"]
    failed = su.get("supervisord_failed")
    s_exec = median([x["exec_s"] for x in su["supervisord"]]) if su["supervisord"] else None
    t_exec = median([x["exec_s"] for x in su["tend"]])
    f_exec = median([x["exec_s"] for x in su["floor"]])
    up_ok = t_exec < 1.5 * f_exec if big else t_exec < 1
    sup_up = secs(s_exec) if s_exec is not None else f"not in {failed['deadline_s']:.0f} s ({failed['execd']:,} exec'd)" if failed else "n/a"
    row(f"up until {n:,} running (exec'd), median of {len(su['tend'])}", sup_up, f"{secs(t_exec)} ({t_exec / f_exec:.2f}x the floor)", T["up"], verdict(up_ok))
    if su["supervisord"]:
        s_rep = median([x["reported_s"] for x in su["supervisord"]])
    t_rep = median([x["reported_s"] for x in su["tend"]])
    row(f"up until its own status says {n:,} running", secs(s_rep) if su["supervisord"] else "", secs(t_rep), "", "")
    row(f"the floor: a bare C fork+exec loop starting {n:,} (bench/spawn_floor.c)", "", secs(f_exec), "", "")
    if "supervisord_startsecs1" in su:
        x = su["supervisord_startsecs1"]
        row(f"up until {n:,} running, supervisord default startsecs=1 (exec'd / RUNNING)", f"{secs(x['exec_s'])} / {secs(x['reported_s'])}", "n/a", "", "")
    mem = r["memory"]
    ms_ = mem.get("supervisord")
    row(
        f"daemon RSS with {n:,} children (Pss)",
        f"{mib(ms_['VmRSS'])} ({mib(ms_.get('Pss', 0))})" if ms_ else "did not finish",
        f"{mib(mem['tend']['VmRSS'])} ({mib(mem['tend'].get('Pss', 0))})",
        f"under {T['rss_mib']:.0f} MiB" if big else "under 15 MB",
        verdict(mem["tend"]["VmRSS"] / 1024 < T["rss_mib"]),
    )
    idle = r["idle"]
    s, t = idle.get("supervisord"), idle["tend"]
    row(
        f"CPU over {args.idle:g} idle s, {n:,} children (wake-ups)",
        f"{ms(s['run_ns'] / 1e6)} ({s['switches']:,})" if s else "did not finish",
        f"{ms(t['run_ns'] / 1e6)} ({t['switches']:,})",
        "0 wake-ups" if big else "under 1 ms",
        verdict(t["switches"] == 0 if big else t["run_ns"] / 1e6 < 1 * args.idle / 30),
    )
    st = r["status"]
    sup = ms(st["supervisorctl status"]["median_ms"]) if "supervisorctl status" in st else "did not finish"
    for k in ("tend status", "tend status --json", "tend status --socket"):
        row(f"`{k}` of {n:,}, median (vs `supervisorctl status`)", sup, ms(st[k]["median_ms"]), f"under {T['status_ms']} ms", verdict(st[k]["median_ms"] < T["status_ms"]))
    stops = r["stop"]
    if stops["tend"]:
        t_stop = median(stops["tend"])
        s_stop = median(stops["supervisord"]) if stops["supervisord"] else None
        f_stop = median(stops["floor"]) if stops["floor"] else None
        row(
            f"shutdown until none of {n:,} is left, median",
            secs(s_stop) if s_stop is not None else "did not finish",
            f"{secs(t_stop)}" + (f" (floor {secs(f_stop)})" if f_stop is not None else ""),
            f"under {T['stop_s']} s" if T["stop_s"] else "",
            verdict(t_stop < T["stop_s"]) if T["stop_s"] else "",
        )

    out = [
        "# tend vs supervisord: results",
        "",
        f"Run on {m['date']}: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, Linux {m['kernel']}, "
        f"load average {' '.join(m['loadavg_at_start'])} at the start, {' '.join(m['loadavg_at_end'])} at the end.",
        f"tend {m['tend_commit']} ({m['tend_version']}), release build of {m['tend_built']}; supervisor {m['supervisor']} on Python {m['python']}; ulimit -n {m['ulimit_n']}.",
        "",
        "| figure | supervisord | tend | tend target | target met |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "## Details",
        "",
    ]
    for key in ("alone", "with_sleepers"):
        if key in rl:
            for kind in rl[key]:
                x = rl[key][kind]
                out.append(
                    f"- restart latency ({key.replace('_', ' ')}), {kind}: {len(x['samples_ms'])} kills, "
                    f"median {ms(x['median_ms'])}, p90 {ms(x['p90_ms'])}, max {ms(x['max_ms'])}; state after: {x['check']}"
                )
    for kind in ("supervisord", "tend", "floor"):
        xs = su[kind]
        if not xs:
            continue
        out.append(
            f"- start-up, {kind}: exec'd {', '.join(secs(x['exec_s']) for x in xs)}; "
            f"own status {', '.join(secs(x['reported_s']) for x in xs)}; "
            f"stop of {n:,} took {', '.join(secs(x) for x in r['stop'][kind])}"
        )
    for kind in [k for k in ("supervisord", "tend") if k in mem]:
        a, b = mem[kind], r["memory_after_status"][kind]
        out.append(
            f"- memory, {kind}: VmRSS {mib(a['VmRSS'])}, Pss {mib(a.get('Pss', 0))}, peak VmHWM {mib(a['VmHWM'])}, "
            f"threads {a['Threads']}; after the status runs VmRSS {mib(b['VmRSS'])}, VmHWM {mib(b['VmHWM'])}"
        )
    for kind in [k for k in ("supervisord", "tend") if k in idle]:
        x = idle[kind]
        out.append(
            f"- idle {args.idle:g} s, {kind}: run time {x['run_ns'] / 1e6:.3f} ms (schedstat), "
            f"utime+stime {x['ticks_ms']:.0f} ms (clock ticks, {1000 / CLK_TCK:.0f} ms steps), {x['switches']} context switches"
        )
    for k, x in st.items():
        out.append(f"- `{k}`: {len(x['samples_ms'])} runs, median {ms(x['median_ms'])}, p90 {ms(x['p90_ms'])}")
    out += ["", f"Total run time {r['elapsed_s']:.0f} s. Raw samples in results.json.", ""]
    return "\n".join(out)


# --------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tend", type=Path, required=True, help="the tend binary (run.sh sets it)")
    ap.add_argument("--venv", type=Path, required=True, help="the venv with supervisor (run.sh sets it)")
    ap.add_argument("--child", type=Path, required=True, help="the compiled bench/child.c (run.sh sets it)")
    ap.add_argument("--out", type=Path, required=True, help="where results go (run.sh sets it)")
    ap.add_argument("--repo", type=Path, required=True, help="the repository (for its git commit) (run.sh sets it)")
    ap.add_argument("--floor", type=Path, required=True, help="the compiled bench/spawn_floor.c (run.sh sets it)")
    ap.add_argument("--scratch", type=Path, help="an empty scratch directory (default: a new one in /tmp)")
    ap.add_argument("--n", type=int, default=1000, help="sleepers (default 1000)")
    ap.add_argument("--reps", type=int, default=3, help="start-up repetitions per daemon (default 3)")
    ap.add_argument("--kills", type=int, default=50, help="kills for tend's restart latency (default 50)")
    ap.add_argument("--sup-kills", type=int, default=25, help="kills for supervisord's, ~1 s each (default 25)")
    ap.add_argument("--idle", type=float, default=30, help="idle window in seconds (default 30)")
    ap.add_argument("--status-runs", type=int, default=20, help="runs of each status command (default 20)")
    ap.add_argument("--no-startsecs1", action="store_true", help="skip the supervisord startsecs=1 start-up")
    ap.add_argument("--null-output", action="store_true", help='sleepers\' output to "null" (NONE under supervisord)')
    ap.add_argument("--sup-deadline", type=float, default=600, help="supervisord's start-up gives up after this many seconds (default 600)")
    ap.add_argument("--no-scale", action="store_true", help="skip restart latency with 1,000 idle sleepers")
    ap.add_argument("--quick", action="store_true", help="a smoke run: few repetitions, short idle window")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.quick:
        args.reps, args.kills, args.sup_kills, args.idle, args.status_runs = 1, 10, 4, 5, 5
        args.no_startsecs1 = args.no_scale = True

    began = time.monotonic()
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="tend-bench-"))
    live: list[Daemon] = []
    results: dict = {
        "machine": machine(args),
        "startup": {"tend": [], "supervisord": [], "floor": []},
        "stop": {"tend": [], "supervisord": [], "floor": []},
        "restart": {},
    }
    n = args.n

    def new(cls, name, **kw) -> Daemon:
        d = cls(args, scratch / name, **kw)
        live.append(d)
        return d

    def stop(d: Daemon, record: bool = False) -> None:
        # Once the daemon is gone its children can no longer be found through
        # it, so note them first, and check afterwards that none survived: a
        # leftover would keep running and skew what is measured next.
        before = {p: comm(p) for p in descendants(d.pid)}
        took = d.stop()
        if record:
            results["stop"][d.kind].append(took)
        left = [p for p, c in before.items() if c is not None and comm(p) == c and not zombie(p)]
        if left:
            log(f"  WARNING: {d.kind} left {len(left)} process(es) behind after stopping; killing them")
            for p in left:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    try:
        log(f"== scratch {scratch}")
        # -- a. start-up, alternating; the last pair stays up for c, d, e.
        kept: dict[str, Daemon] = {}
        # supervisord may not get there at all (10,000 processes): then it
        # has a deadline, its one try is recorded, and it sits out the rest.
        sup_ok = True
        results["startup"]["supervisord_failed"] = None
        for rep in range(args.reps):
            last = rep == args.reps - 1
            order = [Floor, Tend, Supervisord] if rep % 2 == 0 else [Supervisord, Tend, Floor]
            for cls in order:
                if cls is Supervisord and not sup_ok:
                    continue
                d = new(cls, f"{cls.kind}-startup-{rep}", sleepers=n)
                try:
                    x = startup(d, n, args.sup_deadline if cls is Supervisord else 600)
                except BenchError as e:
                    if cls is not Supervisord:
                        raise
                    got = exec_count(d)
                    log(f"  start-up supervisord rep {rep + 1}: {e} ({got} exec'd); it sits out the rest")
                    results["startup"]["supervisord_failed"] = {"deadline_s": args.sup_deadline, "execd": got}
                    sup_ok = False
                    d.kill()
                    continue
                results["startup"][d.kind].append(x)
                log(f"  start-up {d.kind:<11} rep {rep + 1}: {n} exec'd in {secs(x['exec_s'])}, own status says running at {secs(x['reported_s'])}")
                if last and cls is not Floor:
                    kept[d.kind] = d
                else:
                    stop(d, record=True)
        tend = kept["tend"]
        both = [d for d in (tend, kept.get("supervisord")) if d is not None]

        # -- c. memory, once both have settled.
        time.sleep(2)
        results["memory"] = {d.kind: memory(d.pid) for d in both}
        log(f"  memory: {results['memory']}")

        # -- d. idle CPU, both daemons in the same window; this process sleeps.
        log(f"== idle for {args.idle:g} s")
        before = {d.kind: cpu(d.pid) for d in both}
        time.sleep(args.idle)
        after = {d.kind: cpu(d.pid) for d in both}
        results["idle"] = {k: {f: after[k][f] - before[k][f] for f in before[k]} for k in before}
        log(f"  idle: {results['idle']}")

        # -- e. status of n.
        log(f"== status, {args.status_runs} runs each")
        cmds = {}
        for d in both:
            cmds.update(d.status_commands())
        results["status"] = time_commands(cmds, args.status_runs, n, [d.pid for d in both])
        for k, v in results["status"].items():
            log(f"  {k}: median {ms(v['median_ms'])}")
        results["memory_after_status"] = {d.kind: memory(d.pid) for d in both}

        for d in both:
            stop(d, record=True)
            log(f"  stopped {d.kind} in {secs(results['stop'][d.kind][-1])}")

        if not args.no_startsecs1 and sup_ok:
            d = new(Supervisord, "supervisord-startsecs1", sleepers=n, startsecs=1)
            x = startup(d, n, args.sup_deadline)
            results["startup"]["supervisord_startsecs1"] = x
            log(f"  start-up supervisord startsecs=1: exec'd {secs(x['exec_s'])}, RUNNING {secs(x['reported_s'])}")
            stop(d)

        # -- b. restart latency. tend and the floor side by side, kills
        # alternating; supervisord (about 1 s a kill) on its own.
        variants = [("alone", 0)] + ([] if args.no_scale else [("with_sleepers", n)])
        for key, sleepers in variants:
            results["restart"][key] = {}
            groups = [([Tend] + ([Floor] if not sleepers else []), args.kills)]
            if sup_ok or not sleepers:
                groups.append(([Supervisord], args.sup_kills))
            for classes, kills in groups:
                names = " and ".join(c.kind for c in classes)
                log(f"== restart latency {key}, {names}, {kills} kills each")
                ds = [new(c, f"{c.kind}-restart-{key}", sleepers=sleepers, victim=scratch / f"{c.kind}-{key}.log") for c in classes]
                for kind, x in restart_latency(ds, kills, rng).items():
                    results["restart"][key][kind] = x
                    log(f"  {kind}: median {ms(x['median_ms'])}, p90 {ms(x['p90_ms'])}, max {ms(x['max_ms'])}")
                for d in ds:
                    stop(d)
    except BenchError as e:
        log(f"error: {e}")
        return 1
    finally:
        for d in live:
            d.kill()

    results["elapsed_s"] = time.monotonic() - began
    results["machine"]["loadavg_at_end"] = open("/proc/loadavg").read().split()[:3]
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    md = render(results, args)
    (args.out / "results.md").write_text(md)
    print()
    print(md)
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
