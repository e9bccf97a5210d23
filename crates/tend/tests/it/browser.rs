//! A real headless Chromium driven through the DevTools protocol over a
//! pipe (`--remote-debugging-pipe`: requests on fd 3, answers on fd 4, each
//! a JSON message ended by a NUL byte). No driver, no WebSocket, no crate.
//!
//! Chromium comes from Debian's package (`scripts/test` installs it); without
//! it a browser test fails under `CI=true` and is a counted skip elsewhere.

// This test binary has no reaper: waiting for the browser is its job.
#![allow(clippy::disallowed_methods)]

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long one protocol call may take.
const CALL: Duration = Duration::from_secs(30);

/// Where screenshots are kept: `target/browser-artifacts/`.
pub fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("repo")
        .join("target/browser-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// One headless Chromium with one page.
pub struct Browser {
    child: Child,
    to: File,
    from: mpsc::Receiver<Value>,
    /// Events that arrived while waiting for an answer.
    events: VecDeque<Value>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

/// A pipe whose ends close on exec: another test's child never inherits it.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array, which we then own.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both are fresh descriptors owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Browser {
    /// Starts Chromium, or `None` when it is not installed (see the module docs).
    pub fn launch() -> Option<Browser> {
        let exe = ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .find_map(|p| which(p));
        if !tend_testkit::require(
            exe.is_some(),
            "chromium is not installed (scripts/test installs it: apt-get install chromium)",
        ) {
            return None;
        }
        let exe = exe.expect("checked");
        let profile = tempfile::tempdir().expect("profile dir");
        // fd 3: what Chromium reads; fd 4: what it writes.
        let (cmd_r, cmd_w) = pipe();
        let (out_r, out_w) = pipe();
        let (cmd_r_fd, out_w_fd) = (cmd_r.as_raw_fd(), out_w.as_raw_fd());
        let mut cmd = Command::new(exe);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1280,900",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only fcntl and dup2 between fork and exec, both
        // async-signal-safe. The copies above 10 first: a pipe end may itself
        // be fd 3 or 4, and dup2 onto itself would keep close-on-exec.
        unsafe {
            cmd.pre_exec(move || {
                let a = libc::fcntl(cmd_r_fd, libc::F_DUPFD_CLOEXEC, 10);
                let b = libc::fcntl(out_w_fd, libc::F_DUPFD_CLOEXEC, 10);
                if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn chromium");
        drop(cmd_r);
        drop(out_w);
        let (tx, rx) = mpsc::channel();
        let reader = File::from(out_r);
        std::thread::spawn(move || {
            let mut r = BufReader::new(reader);
            loop {
                let mut msg = Vec::new();
                match r.read_until(0, &mut msg) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        msg.pop();
                        if let Ok(v) = serde_json::from_slice::<Value>(&msg)
                            && tx.send(v).is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
        let mut b = Browser {
            child,
            to: File::from(cmd_w),
            from: rx,
            events: VecDeque::new(),
            next_id: 1,
            session: String::new(),
            _profile: profile,
        };
        let target = b.call_on(None, "Target.createTarget", json!({"url": "about:blank"}));
        let id = target["targetId"].as_str().expect("targetId").to_string();
        let att = b.call_on(
            None,
            "Target.attachToTarget",
            json!({"targetId": id, "flatten": true}),
        );
        b.session = att["sessionId"].as_str().expect("sessionId").to_string();
        b.call("Page.enable", json!({}));
        b.call("Runtime.enable", json!({}));
        Some(b)
    }

    fn call_on(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("json");
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to chromium");
        let deadline = Instant::now() + CALL;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .from
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("chromium did not answer {method} in {CALL:?}"));
            if v["id"].as_u64() == Some(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
            self.events.push_back(v);
            if self.events.len() > 10_000 {
                self.events.pop_front();
            }
        }
    }

    /// A protocol call on the page.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let s = self.session.clone();
        self.call_on(Some(&s), method, params)
    }

    /// Sends `headers` with every request of the page (HTTP Basic auth).
    pub fn headers(&mut self, headers: Value) {
        self.call("Network.enable", json!({}));
        self.call("Network.setExtraHTTPHeaders", json!({"headers": headers}));
    }

    /// Loads `url` and waits until the document is complete.
    pub fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
        self.wait(
            &format!("{url} to load"),
            Duration::from_secs(20),
            "document.readyState === 'complete' && location.href !== 'about:blank'",
        );
    }

    /// The value of a JavaScript expression (promises are awaited).
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expr}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Polls `cond` (JavaScript, truthy when done) until it holds or `timeout`.
    pub fn wait(&mut self, what: &str, timeout: Duration, cond: &str) {
        let deadline = Instant::now() + timeout;
        let expr =
            format!("(() => {{ try {{ return !!({cond}); }} catch (e) {{ return false; }} }})()");
        loop {
            let r = self.call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true}),
            );
            if r["result"]["value"] == json!(true) {
                return;
            }
            if Instant::now() >= deadline {
                let url = self.eval("location.href");
                panic!("timed out after {timeout:?} waiting for {what} (at {url})");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A real mouse click at the middle of the first element matching `selector`.
    pub fn click(&mut self, selector: &str) {
        let sel = serde_json::to_string(selector).expect("json");
        let rect = self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); if (!e) return null; \
             e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
             return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        ));
        let (Some(x), Some(y)) = (rect[0].as_f64(), rect[1].as_f64()) else {
            panic!("nothing to click: {selector}");
        };
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }

    /// Saves a screenshot of the page as `target/browser-artifacts/NAME.png`.
    pub fn screenshot(&mut self, name: &str) -> PathBuf {
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let data = r["data"].as_str().expect("png data");
        let bytes = tend_server::api::base64_decode(data).expect("base64");
        let path = artifacts().join(format!("{name}.png"));
        std::fs::write(&path, bytes).expect("write screenshot");
        path
    }

    /// Emulates a phone-sized screen (or the desktop again with `None`).
    pub fn viewport(&mut self, size: Option<(u32, u32)>) {
        match size {
            Some((w, h)) => self.call(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": w, "height": h, "deviceScaleFactor": 2, "mobile": true}),
            ),
            None => self.call("Emulation.clearDeviceMetricsOverride", json!({})),
        };
    }

    /// Emulates `prefers-color-scheme: dark` (or light).
    pub fn dark(&mut self, dark: bool) {
        let v = if dark { "dark" } else { "light" };
        self.call(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": v}]}),
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.call_on(None, "Browser.close", json!({}));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// A TCP port on 127.0.0.1 that forwards every connection to a Unix socket,
/// so the browser reaches a daemon that listens only on its socket (until
/// tend.toml has TCP listeners). Threads end with the test process.
pub fn tcp_to_unix(socket: &Path) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let socket = socket.to_path_buf();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(tcp) = conn else { continue };
            let Ok(unix) = std::os::unix::net::UnixStream::connect(&socket) else {
                continue;
            };
            let (Ok(mut t2), Ok(mut u2)) = (tcp.try_clone(), unix.try_clone()) else {
                continue;
            };
            let (mut t1, mut u1) = (tcp, unix);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut t1, &mut u1);
                let _ = u1.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u2, &mut t2);
                let _ = t2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

/// Reads a whole HTTP response (for a quick look at a status and headers).
pub fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
