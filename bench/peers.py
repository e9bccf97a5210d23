#!/usr/bin/env python3
"""The aggregating dashboard with many peers (issue 13): one daemon whose
tend.toml names PEERS `[[peer]]` daemons, each with PROCS processes.

Usage: bench/peers.py [--peers 20] [--procs 10] [--changes 20] [--idle 10]

Measures, on this machine:

- the home daemon with nobody watching: CPU and wake-ups (context switches
  of all its threads) over --idle seconds: it holds no connection to any peer;
- how long until every peer is reachable once a viewer opens
  `/v1/events?peers=1` (what the dashboard does);
- the home daemon with the viewer watching and nothing changing: CPU,
  wake-ups, RSS;
- --changes times: a process of one peer is stopped (or started) on the
  peer; the time from the peer's own event (its `time`, when the peer
  published it, read on a direct stream to the peer; same machine, same
  clock) to the arrival of the home daemon's `peer_process` event here;
- a burst: every process of every peer restarted at once; the home daemon's
  CPU until its stream has shown every one running again.

Uses only the standard library. The daemons get plain HTTP on 127.0.0.1 and
a bearer token. Every process it starts carries a marker in its
environment; at the end (or on failure, or Ctrl-C) whatever still carries it
is killed, and nothing else. Prints a Markdown table for docs/benchmarks.md.
"""

import argparse
import datetime
import http.client
import json
import os
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = f"bench-peers-{os.getpid()}"
MARKER = ("TEND_BENCH_PEERS", f"{os.getpid()}-{time.time_ns()}")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def cleanup():
    """Kills whatever carries the marker (never this script)."""
    needle = f"{MARKER[0]}={MARKER[1]}".encode()
    for _ in range(5):
        pids = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        pids.append(int(pid))
            except OSError:
                pass
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.2)


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def request(conn, method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    if r.status >= 300:
        raise RuntimeError(f"{method} {path}: {r.status} {data[:200]!r}")
    return json.loads(data) if data else None


def sse(conn_factory, path, token, out, stop):
    """Reads an event stream; puts (arrival, wall-clock ns, event) on `out`."""
    conn = conn_factory()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    if r.status != 200:
        out.put((time.monotonic_ns(), {"kind": "error", "status": r.status}))
        return
    while not stop.is_set():
        line = r.fp.readline()
        if not line:
            out.put((time.monotonic_ns(), {"kind": "ended"}))
            return
        if line.startswith(b"data: "):
            try:
                out.put((time.time_ns(), json.loads(line[6:])))
            except ValueError:
                pass


def usage(pid):
    """CPU ns (utime+stime), wake-ups (context switches), RSS KiB of `pid`."""
    tick = os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) * 1_000_000_000 // tick
    wakes = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        wakes += int(line.split()[1])
        except OSError:
            pass
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return cpu, wakes, rss


def rfc3339_ns(s):
    """Nanoseconds since the epoch of a UTC RFC 3339 time (`...T10:26:48.031Z`)."""
    frac = ""
    if "." in s:
        s, rest = s.split(".", 1)
        frac = "".join(c for c in rest if c.isdigit())
    dt = datetime.datetime.strptime(s.rstrip("Z") + "+0000", "%Y-%m-%dT%H:%M:%S%z")
    return int(dt.timestamp()) * 1_000_000_000 + int((frac + "000000000")[:9])


def daemon_pid(sock_path, token=None):
    r = request(UnixConnection(sock_path), "GET", "/v1/version")
    return r["pid"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", type=int, default=20)
    ap.add_argument("--procs", type=int, default=10)
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--idle", type=float, default=10.0)
    a = ap.parse_args()

    tend = os.environ.get("TEND_BIN") or os.path.join(ROOT, "target/release/tend")
    if not os.path.exists(tend):
        log("== building tend (release)")
        subprocess.run(["cargo", "build", "--release", "-p", "tend", "--quiet"], cwd=ROOT, check=True)
    os.environ[MARKER[0]] = MARKER[1]
    work = tempfile.mkdtemp(prefix="peers-bench.")
    try:
        run(a, tend, work)
    finally:
        cleanup()
        shutil.rmtree(work, ignore_errors=True)


def run(a, tend, work):
    base = 21000 + os.getpid() % 4000
    peers = []
    log(f"== starting {a.peers} peer daemons x {a.procs} processes")
    for i in range(a.peers):
        d = os.path.join(work, f"p{i}")
        os.makedirs(d)
        port = base + i
        with open(os.path.join(d, "tend.toml"), "w") as f:
            f.write(f'[http]\nlisten = ["127.0.0.1:{port}"]\n\n')
            f.write(f'[access.token.bench]\nhash = "{{PLAIN}}{TOKEN}"\nroles = ["admin"]\n\n')
            for j in range(a.procs):
                f.write(f'[process.w{j}]\ncommand = ["sleep", "100000"]\nstop.timeout = "2s"\n'
                        'logs = { stdout = "null", stderr = "null" }\n')
        subprocess.run([tend, "-c", "tend.toml", "up", "-d"], cwd=d, check=True,
                       stdout=subprocess.DEVNULL)
        peers.append((f"p{i}", port, d))
    home = os.path.join(work, "home")
    os.makedirs(home)
    with open(os.path.join(home, "tend.toml"), "w") as f:
        for name, port, _ in peers:
            f.write(f'[[peer]]\nname = "{name}"\nurl = "http://127.0.0.1:{port}"\ntoken = "{TOKEN}"\n\n')
        f.write('[process.local]\ncommand = ["sleep", "100000"]\nlogs = { stdout = "null", stderr = "null" }\n')
    subprocess.run([tend, "-c", "tend.toml", "up", "-d"], cwd=home, check=True, stdout=subprocess.DEVNULL)
    home_sock = os.path.join(home, "tend.sock")
    hpid = daemon_pid(home_sock)
    home_conn = lambda: UnixConnection(home_sock, timeout=60)
    peer_conn = lambda port: (lambda: http.client.HTTPConnection("127.0.0.1", port, timeout=60))

    # Every peer process running.
    deadline = time.monotonic() + 120
    for name, port, _ in peers:
        while True:
            st = request(peer_conn(port)(), "GET", "/v1/status", token=TOKEN)
            if sum(p["state"] == "running" for p in st) == a.procs:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: its processes did not all start")
            time.sleep(0.1)
    time.sleep(1)
    res = {}

    log(f"== home daemon, nobody watching, {a.idle:.0f} s")
    c0, w0, rss0 = usage(hpid)
    time.sleep(a.idle)
    c1, w1, rss1 = usage(hpid)
    res["idle_unwatched"] = (c1 - c0, w1 - w0, rss1)
    watched = request(home_conn(), "GET", "/v1/peers")["watched"]
    assert watched is False, "nobody watches"

    log("== a viewer opens /v1/events?peers=1")
    stop = threading.Event()
    local = queue.Queue()
    t_open = time.monotonic_ns()
    threading.Thread(target=sse, args=(home_conn, "/v1/events?peers=1", None, local, stop), daemon=True).start()
    reachable = set()
    deadline = time.monotonic() + 60
    while len(reachable) < a.peers:
        t, ev = local.get(timeout=max(0.1, deadline - time.monotonic()))
        if ev.get("kind") in ("peer", "peer_process") and ev["peer"]["state"] == "reachable":
            reachable.add(ev["peer"]["name"])
    res["all_reachable_ms"] = (time.monotonic_ns() - t_open) / 1e6
    time.sleep(1)
    while not local.empty():
        local.get_nowait()

    log(f"== home daemon, watched, nothing changing, {a.idle:.0f} s")
    c0, w0, _ = usage(hpid)
    time.sleep(a.idle)
    c1, w1, rss = usage(hpid)
    res["idle_watched"] = (c1 - c0, w1 - w0, rss)

    log(f"== {a.changes} changes on peers, peer's event -> home's event")
    direct = {}
    for name, port, _ in peers:
        q = queue.Queue()
        threading.Thread(target=sse, args=(peer_conn(port), "/v1/events", TOKEN, q, stop), daemon=True).start()
        direct[name] = q
    time.sleep(1)
    lat = []
    for k in range(a.changes):
        name, port, _ = peers[k % a.peers]
        verb, want = ("stop", "stopped") if (k // a.peers) % 2 == 0 else ("start", "running")
        proc = "w0"
        request(peer_conn(port)(), "POST", f"/v1/{verb}", {"targets": [proc]}, token=TOKEN)
        t_peer = t_home = None
        deadline = time.monotonic() + 20
        while t_peer is None:
            _, ev = direct[name].get(timeout=max(0.1, deadline - time.monotonic()))
            if ev.get("name") == proc and (ev.get("status") or {}).get("state") == want:
                # When the peer published it (its clock is this machine's).
                t_peer = rfc3339_ns(ev["time"])
        while t_home is None:
            t, ev = local.get(timeout=max(0.1, deadline - time.monotonic()))
            if (ev.get("kind") == "peer_process" and ev["peer"]["name"] == name
                    and (ev.get("process") or {}).get("name") == proc
                    and ev["process"]["state"] == want):
                t_home = t
        lat.append((t_home - t_peer) / 1e6)
    # Whatever was stopped runs again.
    for name, port, _ in peers:
        request(peer_conn(port)(), "POST", "/v1/start", {"targets": ["all"]}, token=TOKEN)
    time.sleep(2)
    while not local.empty():
        local.get_nowait()
    res["latency_ms"] = lat

    total = a.peers * a.procs
    log(f"== burst: restart all {total} peer processes at once")
    c0, w0, _ = usage(hpid)
    t0 = time.monotonic_ns()
    threads = [threading.Thread(target=request, args=(peer_conn(port)(), "POST", "/v1/restart",
                                                      {"targets": ["all"]}, TOKEN)) for _, port, _ in peers]
    for t in threads:
        t.start()
    running = set()
    stopped_seen = set()
    deadline = time.monotonic() + 120
    while len(running) < total:
        t, ev = local.get(timeout=max(0.1, deadline - time.monotonic()))
        p = ev.get("process") or {}
        if ev.get("kind") != "peer_process" or not p:
            continue
        key = (ev["peer"]["name"], p["name"])
        if p["state"] != "running":
            stopped_seen.add(key)
        elif key in stopped_seen:
            running.add(key)
    t1 = time.monotonic_ns()
    c1, w1, rss_burst = usage(hpid)
    for t in threads:
        t.join()
    res["burst"] = ((t1 - t0) / 1e6, c1 - c0, w1 - w0, rss_burst)
    stop.set()
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    subprocess.run([tend, "-c", "tend.toml", "shutdown"], cwd=home, stdout=subprocess.DEVNULL)
    for _, _, d in peers:
        subprocess.run([tend, "-c", "tend.toml", "shutdown"], cwd=d, stdout=subprocess.DEVNULL)

    lat = sorted(res["latency_ms"])
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    iu, iw, b = res["idle_unwatched"], res["idle_watched"], res["burst"]
    print(f"| {a.peers} peers x {a.procs} processes (load average {load}, {os.cpu_count()} CPUs) | |")
    print("|---|---|")
    print(f"| home daemon, nobody watching, {a.idle:.0f} s | {iu[0] / 1e6:.1f} ms CPU, {iu[1]} wake-ups, RSS {iu[2]} KiB |")
    print(f"| a viewer opens: every peer reachable after | {res['all_reachable_ms']:.0f} ms |")
    print(f"| watched, nothing changing, {a.idle:.0f} s | {iw[0] / 1e6:.1f} ms CPU, {iw[1]} wake-ups, RSS {iw[2]} KiB |")
    print(f"| a peer's state change -> the home stream ({len(lat)} changes) | median {statistics.median(lat):.1f} ms, p90 {p(0.9):.1f} ms, max {lat[-1]:.1f} ms |")
    print(f"| burst: {total} restarts on the peers, all shown running again after | {b[0]:.0f} ms; home daemon {b[1] / 1e6:.0f} ms CPU, {b[2]} wake-ups, RSS {b[3]} KiB |")


if __name__ == "__main__":
    main()
