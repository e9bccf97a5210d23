#!/usr/bin/env python3
"""The web UI's speed and weight, tend beside supervisord, with 1,000 processes.

Run by hand (not by the tests, not by CI), after `cargo build --release -p tend`:

    python3 bench/web.py                     # tend's target/release/tend, bench/.venv's supervisord
    python3 bench/web.py --tend PATH --supervisord PATH --n 1000 --clients 100

Needs Debian's chromium (driven through the DevTools protocol over a pipe:
requests on fd 3, answers on fd 4). What it measures, for each daemon:

- first paint: a fresh page load of the dashboard (tend, /ui/) and of
  Supervisor's status page (both daemons, /index.html), in Chromium:
  `first-contentful-paint` from the Paint Timing API, and until the page is
  complete (for tend's dashboard: until its script is live on the stream).
  Median of 5 loads.
- state change visible: with the dashboard open, one child is sent SIGKILL;
  the page notes (MutationObserver) when its row's restart count changes.
  Latency = the page's Date.now() minus the wall time just before kill().
  20 kills, 100-300 ms apart, different processes. supervisord's page has no
  live view (a person presses Refresh): no figure.
- 100 open dashboards: 100 clients each open what one dashboard opens when it
  loads (the page, /v1/events from the page's id, /v1/resources; the log
  stream opens only when the log view is used) and
  keep the streams open. The daemon's VmRSS before and after, and its CPU
  (schedstat, ns) and wake-ups (context switches) over 30 s in which nothing
  changes.

tend gets a tend.toml (the Unix socket; the browser reaches it through a small
TCP forwarder in this script, which is not the daemon); supervisord gets a
supervisord.conf with [inet_http_server]. Every process this starts carries
BENCH_WEB_MARKER in its environment and is killed at the end.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = f"BENCH_WEB_MARKER={os.getpid()}"


def log(msg: str) -> None:
    print(msg, flush=True)


# ------------------------------------------------------------------ Chromium


class Chromium:
    def __init__(self, exe: str, width: int = 1280, height: int = 900) -> None:
        self.profile = tempfile.mkdtemp(prefix="bench-web-chrome-")
        cmd_r, cmd_w = os.pipe()
        out_r, out_w = os.pipe()

        def fds() -> None:
            # Out of the way first: a pipe may itself be fd 3 or 4, and
            # dup2 onto itself would keep its close-on-exec flag.
            a = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(out_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--window-size={width},{height}", "--remote-debugging-pipe",
             f"--user-data-dir={self.profile}", "about:blank"],
            # close_fds runs after preexec_fn and would close 3 and 4 again.
            preexec_fn=fds, close_fds=False, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(cmd_r)
        os.close(out_w)
        self.w = os.fdopen(cmd_w, "wb", buffering=0)
        self.r = os.fdopen(out_r, "rb", buffering=0)
        self.buf = b""
        self.id = 0
        t = self.call("Target.createTarget", {"url": "about:blank"}, session=None)
        a = self.call("Target.attachToTarget", {"targetId": t["targetId"], "flatten": True}, session=None)
        self.session = a["sessionId"]
        self.call("Page.enable", {})
        self.call("Runtime.enable", {})

    def _read(self) -> dict:
        while b"\0" not in self.buf:
            chunk = self.r.read(65536)
            if not chunk:
                raise RuntimeError("chromium went away")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, params: dict, session: str | None = "page") -> dict:
        self.id += 1
        msg = {"id": self.id, "method": method, "params": params}
        if session is not None:
            msg["sessionId"] = self.session
        self.w.write(json.dumps(msg).encode() + b"\0")
        while True:
            v = self._read()
            if v.get("id") == self.id:
                if "error" in v:
                    raise RuntimeError(f"{method}: {v['error']}")
                return v.get("result", {})

    def eval(self, expr: str):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, cond: str, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if self.eval(f"!!({cond})"):
                    return
            except RuntimeError:
                pass
            time.sleep(0.005)
        raise RuntimeError(f"timed out waiting for {cond}")

    def close(self) -> None:
        try:
            self.call("Browser.close", {}, session=None)
        except Exception:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def load(chrome: Chromium, url: str, done: str) -> tuple[float, float]:
    """(first contentful paint, until `done`), in ms from the navigation's start."""
    chrome.call("Page.navigate", {"url": "about:blank"})
    chrome.wait("location.href === 'about:blank'")
    chrome.call("Page.navigate", {"url": url})
    chrome.wait(f"location.href.startsWith({json.dumps(url)}) && document.readyState === 'complete' && ({done})", 60)
    fcp = chrome.eval("(performance.getEntriesByName('first-contentful-paint')[0] || {startTime: -1}).startTime")
    if fcp is None or fcp < 0:
        time.sleep(0.2)
        fcp = chrome.eval("(performance.getEntriesByName('first-contentful-paint')[0] || {startTime: -1}).startTime")
    total = chrome.eval("window.__done || performance.now()")
    return float(fcp), float(total)


# ------------------------------------------------------------------ /proc


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_ns(pid: int) -> tuple[int, int]:
    """(run time in ns over every thread, context switches)."""
    run = switches = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            a, _, c = Path(f"/proc/{pid}/task/{t}/schedstat").read_text().split()
            run += int(a)
            for line in Path(f"/proc/{pid}/task/{t}/status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    switches += int(line.split()[1])
        except FileNotFoundError:
            pass
    return run, switches


def children(pid: int) -> list[int]:
    out = []
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            out += [int(x) for x in Path(f"/proc/{pid}/task/{t}/children").read_text().split()]
        except FileNotFoundError:
            pass
    return out


def kill_marked() -> None:
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            env = Path(f"/proc/{p}/environ").read_bytes().split(b"\0")
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
        if MARKER.encode() in env:
            try:
                os.kill(int(p), signal.SIGKILL)
            except ProcessLookupError:
                pass


# ------------------------------------------------------------------ HTTP


def forward(tcp_port_out: list, unix_path: str) -> None:
    """127.0.0.1:PORT -> the Unix socket, for the browser."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(256)
    tcp_port_out.append(srv.getsockname()[1])

    def pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    while True:
        c, _ = srv.accept()
        u = socket.socket(socket.AF_UNIX)
        try:
            u.connect(unix_path)
        except OSError:  # the daemon is gone (a page still reconnecting)
            c.close()
            continue
        threading.Thread(target=pump, args=(c, u), daemon=True).start()
        threading.Thread(target=pump, args=(u, c), daemon=True).start()


def unix_request(path: str, req: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(req.encode())
    return s


def read_response(s: socket.socket) -> bytes:
    s.settimeout(30)
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            return out
        out += d


# ------------------------------------------------------------------ daemons


def wait_for(cond, what: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out: {what}")


def start_tend(exe: str, n: int, d: Path) -> subprocess.Popen:
    conf = ["[daemon]", 'log_level = "warn"']
    for i in range(n):
        conf += [f"[process.p{i:04}]", 'command = ["sleep", "100000"]', 'stop.timeout = "2s"',
                 'backoff = { min_uptime = "10ms", initial = "10ms" }']
    (d / "tend.toml").write_text("\n".join(conf) + "\n")
    env = dict(os.environ, BENCH_WEB_MARKER=str(os.getpid()))
    p = subprocess.Popen([exe, "-c", str(d / "tend.toml"), "up"], cwd=d, env=env,
                         stdout=subprocess.DEVNULL, stderr=open(d / "tend.err", "w"))
    wait_for(lambda: len(children(p.pid)) >= n, "tend's children")
    return p


def start_supervisord(exe: str, n: int, d: Path, port: int) -> subprocess.Popen:
    conf = [
        "[supervisord]", f"logfile={d}/sd.log", f"pidfile={d}/sd.pid", f"childlogdir={d}", "loglevel=warn",
        "minfds=8192",
        "[inet_http_server]", f"port=127.0.0.1:{port}",
        "[rpcinterface:supervisor]", "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
    ]
    for i in range(n):
        conf += [f"[program:p{i:04}]", "command=sleep 100000", "startsecs=0"]
    (d / "supervisord.conf").write_text("\n".join(conf) + "\n")
    env = dict(os.environ, BENCH_WEB_MARKER=str(os.getpid()))
    p = subprocess.Popen([exe, "-n", "-c", str(d / "supervisord.conf")], cwd=d, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: len(children(p.pid)) >= n, "supervisord's children", 300)
    return p


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ------------------------------------------------------------------ measures


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def p90(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.9))] if xs else float("nan")


def first_paints(chrome: Chromium, url: str, done: str, reps: int) -> tuple[list, list]:
    fcp, total = [], []
    for _ in range(reps):
        a, b = load(chrome, url, done)
        fcp.append(a)
        total.append(b)
    return fcp, total


def state_change_latency(chrome: Chromium, tend: subprocess.Popen, port: int, kills: int) -> list[float]:
    chrome.call("Page.navigate", {"url": f"http://127.0.0.1:{port}/ui/"})
    chrome.wait("window.tend && window.tend.ready && document.querySelector('#conn').textContent === 'live'", 60)
    # The page records when each row's restart count changes.
    chrome.eval("""(() => { window.__seen = {};
      new MutationObserver((ms) => { for (const m of ms) {
        const td = m.target.nodeType === 1 ? m.target : m.target.parentElement;
        const c = td && td.closest && td.closest('[data-k="restarts"]');
        if (c) { const n = c.closest('tr').dataset.name; if (!(n in window.__seen)) window.__seen[n] = Date.now(); } } })
      .observe(document.querySelector('#table'), {subtree: true, childList: true, characterData: true}); })()""")
    out = []
    names = random.sample(range(1000), kills)
    for i in names:
        name = f"p{i:04}"
        st = json.loads(read_response(unix_request(
            str(SOCK), f"GET /v1/status?pattern={name} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).split(b"\r\n\r\n", 1)[1])
        pid = st[0]["pid"]
        t0 = time.time() * 1000
        os.kill(pid, signal.SIGKILL)
        chrome.wait(f"window.__seen[{json.dumps(name)}]", 10)
        out.append(chrome.eval(f"window.__seen[{json.dumps(name)}]") - t0)
        time.sleep(random.uniform(0.1, 0.3))
    return out


def open_dashboards(port_sock: str, clients: int) -> list[socket.socket]:
    """What `clients` dashboards open and keep open."""
    held = []
    for _ in range(clients):
        page = read_response(unix_request(port_sock, "GET /ui/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        i = page.find(b'data-last-event-id="')
        last = page[i + 20: page.find(b'"', i + 20)].decode()
        held.append(unix_request(port_sock, f"GET /v1/events?last_event_id={last} HTTP/1.1\r\nHost: x\r\n\r\n"))
        read_response(unix_request(port_sock, "GET /v1/resources HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    # Drain what each stream sent first, then leave them be.
    for s in held:
        s.setblocking(False)
        try:
            while s.recv(65536):
                pass
        except BlockingIOError:
            pass
    return held


SOCK: Path = Path()


def main() -> int:
    global SOCK
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tend", default=str(ROOT / "target/release/tend"))
    ap.add_argument("--supervisord", default=str(ROOT / "bench/.venv/bin/supervisord"))
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--idle", type=float, default=30.0)
    ap.add_argument("--json", default=str(ROOT / "bench/out/web.json"))
    a = ap.parse_args()
    res: dict = {"n": a.n, "clients": a.clients, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    tmp = Path(tempfile.mkdtemp(prefix="bw-", dir="/tmp"))
    chrome = Chromium(a.chromium)
    try:
        # --- tend
        td = tmp / "tend"
        td.mkdir()
        tend = start_tend(a.tend, a.n, td)
        SOCK = td / "tend.sock"
        wait_for(lambda: SOCK.exists(), "tend's socket")
        time.sleep(1)
        port: list = []
        threading.Thread(target=forward, args=(port, str(SOCK)), daemon=True).start()
        wait_for(lambda: port, "forwarder")
        tport = port[0]
        log(f"tend up with {a.n} processes (pid {tend.pid})")
        fcp, total = first_paints(chrome, f"http://127.0.0.1:{tport}/ui/",
                                  "window.tend && window.tend.ready && document.querySelector('#conn').textContent === 'live' && (window.__done = performance.now())", a.reps)
        res["tend_dashboard_fcp_ms"], res["tend_dashboard_live_ms"] = fcp, total
        log(f"tend /ui/: first paint {median(fcp):.0f} ms, live {median(total):.0f} ms")
        fcp, total = first_paints(chrome, f"http://127.0.0.1:{tport}/index.html", "true", a.reps)
        res["tend_status_page_fcp_ms"], res["tend_status_page_ms"] = fcp, total
        log(f"tend /index.html: first paint {median(fcp):.0f} ms, complete {median(total):.0f} ms")
        lat = state_change_latency(chrome, tend, tport, a.kills)
        res["tend_state_change_ms"] = lat
        log(f"tend: state change visible after {median(lat):.1f} ms (p90 {p90(lat):.1f})")
        chrome.call("Page.navigate", {"url": "about:blank"})
        time.sleep(2)
        rss0 = rss_kib(tend.pid)
        held = open_dashboards(str(SOCK), a.clients)
        time.sleep(2)
        rss1 = rss_kib(tend.pid)
        c0, w0 = cpu_ns(tend.pid)
        time.sleep(a.idle)
        c1, w1 = cpu_ns(tend.pid)
        res.update(tend_rss_before_kib=rss0, tend_rss_with_clients_kib=rss1,
                   tend_idle_cpu_ns=c1 - c0, tend_idle_wakeups=w1 - w0, idle_s=a.idle)
        log(f"tend with {a.clients} open dashboards: RSS {rss0} -> {rss1} KiB (+{(rss1 - rss0) / 1024:.1f} MiB); "
            f"{(c1 - c0) / 1e6:.2f} ms CPU, {w1 - w0} wake-ups over {a.idle:.0f} idle s")
        for s in held:
            s.close()
        tend.send_signal(signal.SIGTERM)
        tend.wait(60)
        # --- supervisord
        if Path(a.supervisord).exists():
            sd_dir = tmp / "sup"
            sd_dir.mkdir()
            sport = free_port()
            sd = start_supervisord(a.supervisord, a.n, sd_dir, sport)
            time.sleep(2)
            log(f"supervisord up with {a.n} processes (pid {sd.pid})")
            fcp, total = first_paints(chrome, f"http://127.0.0.1:{sport}/index.html", "true", a.reps)
            res["supervisord_status_page_fcp_ms"], res["supervisord_status_page_ms"] = fcp, total
            log(f"supervisord /index.html: first paint {median(fcp):.0f} ms, complete {median(total):.0f} ms")
            rss = rss_kib(sd.pid)
            c0, w0 = cpu_ns(sd.pid)
            time.sleep(a.idle)
            c1, w1 = cpu_ns(sd.pid)
            res.update(supervisord_rss_kib=rss, supervisord_idle_cpu_ns=c1 - c0, supervisord_idle_wakeups=w1 - w0)
            log(f"supervisord: RSS {rss} KiB; {(c1 - c0) / 1e6:.1f} ms CPU, {w1 - w0} wake-ups over {a.idle:.0f} idle s "
                "(its pages hold no connection open)")
            sd.send_signal(signal.SIGTERM)
            try:
                sd.wait(120)
            except subprocess.TimeoutExpired:
                sd.kill()
    finally:
        chrome.close()
        kill_marked()
        shutil.rmtree(tmp, ignore_errors=True)
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    log(f"raw samples in {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
