//! `tend top` in a real terminal: the binary runs inside tmux (a detached
//! 160x45 session on a socket of the test's own), keys go in with
//! `send-keys`, and what the screen shows comes back from `capture-pane`,
//! against a real daemon. Waiting is polling the pane up to a deadline:
//! the terminal is another program, drawing when it gets to it.

// These tests run tmux's short-lived commands to completion.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Daemon, TEND, TestEnv};
use crate::pki::{self, Ca};

const LONG: Duration = Duration::from_secs(20);

/// A tmux server of the test's own, with one session running `tend top`.
struct Screen {
    socket: PathBuf,
}

impl Screen {
    /// `tend -c CONFIG [ARGS] top` (or `ARGS` as they are when they hold
    /// `top`, for its own arguments) in a new 160x45 session; after it exits
    /// the pane prints `top exited N` and stays, so the end can be seen.
    fn open(d: &Daemon, args: &[&str]) -> Option<Screen> {
        Screen::open_with(d, &[], args)
    }

    /// [`Screen::open`] with more environment variables for `tend top`.
    fn open_with(d: &Daemon, env: &[(&str, &str)], args: &[&str]) -> Option<Screen> {
        tend_testkit::require_program("tmux")?;
        let socket = d.dir.path().join("tmux.sock");
        let mut line = format!("TEND_TEST_MARKER={} ", d.marker);
        for (k, v) in env {
            line.push_str(&format!("{k}={v} "));
        }
        line.push_str(&format!("{TEND} -c {}", d.config.display()));
        for a in args {
            line.push(' ');
            line.push_str(a);
        }
        if !args.contains(&"top") {
            line.push_str(" top");
        }
        line.push_str("; echo \"top exited $?\"; sleep 600");
        let ok = Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .args([
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "160",
                "-y",
                "45",
            ])
            .args(["-s", "top", &line])
            .env_remove("TMUX")
            .env("TERM", "xterm-256color")
            .current_dir(d.dir.path())
            .stdin(Stdio::null())
            .status()
            .expect("run tmux");
        assert!(ok.success(), "tmux new-session failed");
        Some(Screen { socket })
    }

    fn tmux(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket);
        c
    }

    /// Presses each key (tmux's names: `Down`, `Enter`, `Escape`, or text),
    /// one `send-keys` each, so that none is read as part of the next
    /// (Escape then `q` would be Alt-q).
    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let ok = self
                .tmux()
                .args(["send-keys", "-t", "top", k])
                .status()
                .expect("tmux send-keys");
            assert!(ok.success(), "send-keys {k}");
            // The next key only once this one has been drawn upon: tmux
            // hands both at once otherwise, which an Escape would join.
            if *k == "Escape" {
                let before = self.text();
                let deadline = Instant::now() + Duration::from_millis(500);
                while self.text() == before && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        let ok = self
            .tmux()
            .args(["send-keys", "-t", "top", "-l", text])
            .status()
            .expect("tmux send-keys");
        assert!(ok.success(), "send-keys -l {text}");
    }

    /// What the pane shows now.
    fn text(&self) -> String {
        let out = self
            .tmux()
            .args(["capture-pane", "-p", "-t", "top"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the pane until `cond` holds (then returns it), or fails after
    /// [`LONG`] with what it showed.
    fn wait(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + LONG;
        loop {
            let text = self.text();
            if cond(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Quits with `q` and checks that top exited 0 and left the
    /// alternate screen (the shell's line is seen again).
    fn quit(&self) {
        self.quit_with("q");
    }

    /// [`Screen::quit`] with another key (`C-c`).
    fn quit_with(&self, key: &str) {
        self.keys(&[key]);
        let text = self.wait("top to exit", |t| t.contains("top exited"));
        assert!(text.contains("top exited 0"), "{text}");
        assert!(
            !text.contains("Processes"),
            "the terminal is restored:\n{text}"
        );
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = self
            .tmux()
            .arg("kill-server")
            .stderr(Stdio::null())
            .status();
    }
}

/// The table's row of `name`: its cells, without the borders and the
/// selection mark.
fn row(screen: &str, name: &str) -> Option<Vec<String>> {
    screen.lines().find_map(|l| {
        let inner = l.trim_start_matches('│').trim_end_matches('│');
        let inner = inner.strip_prefix("> ").unwrap_or(inner).trim_start();
        let cells: Vec<String> = inner.split_whitespace().map(str::to_string).collect();
        (cells.first().map(String::as_str) == Some(name)
            && cells
                .get(1)
                .is_some_and(|s| s.chars().all(|c| c.is_ascii_lowercase())))
        .then_some(cells)
    })
}

/// The names of the table's rows, top to bottom.
fn order(screen: &str, names: &[&str]) -> Vec<String> {
    let mut found: Vec<(usize, String)> = names
        .iter()
        .filter_map(|n| {
            screen
                .lines()
                .position(|l| row(l, n).is_some())
                .map(|i| (i, n.to_string()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, n)| n).collect()
}

fn state_of(screen: &str, name: &str) -> Option<String> {
    row(screen, name).and_then(|r| r.get(1).cloned())
}

const SLEEPERS: &str = r#"
[process.alpha]
command = ["sleep", "600"]
priority = 20

[process.beta]
command = ["sleep", "600"]
priority = 30

[process.gamma]
command = ["sleep", "600"]
priority = 10
"#;

#[test]
fn top_shows_the_processes_and_x_stops_the_selected_one() {
    let d = Daemon::start(SLEEPERS);
    let Some(s) = Screen::open(&d, &[]) else {
        return;
    };
    let text = s.wait("three running rows", |t| {
        ["alpha", "beta", "gamma"]
            .iter()
            .all(|n| state_of(t, n).as_deref() == Some("running"))
    });
    assert!(text.contains("connected"), "{text}");
    let alpha = row(&text, "alpha").expect("alpha's row");
    assert_eq!(alpha[2], d.pid("alpha").to_string(), "the pid: {alpha:?}");
    // CPU % and memory come from two samples of the resources, a second apart.
    let text = s.wait("alpha's CPU % and memory", |t| {
        row(t, "alpha").is_some_and(|r| {
            let n = r.len();
            n > 2 && r[n - 2].parse::<f64>().is_ok() && r[n - 1].ends_with(['K', 'M'])
        })
    });
    // The daemon's order: gamma (10), alpha (20), beta (30); the second is alpha.
    assert_eq!(
        order(&text, &["alpha", "beta", "gamma"]),
        ["gamma", "alpha", "beta"]
    );
    s.keys(&["Down", "x"]);
    let text = s.wait("alpha stopped", |t| {
        state_of(t, "alpha").as_deref() == Some("stopped")
    });
    assert!(
        text.contains("alpha: stopped"),
        "the daemon's answer:\n{text}"
    );
    assert_eq!(d.state("alpha"), "stopped");
    assert_eq!(state_of(&text, "beta").as_deref(), Some("running"));
    s.keys(&["s"]);
    s.wait("alpha running again", |t| {
        state_of(t, "alpha").as_deref() == Some("running")
    });
    s.quit();
}

#[test]
fn slash_filters_the_rows_and_o_sorts_them() {
    let d = Daemon::start(SLEEPERS);
    let Some(s) = Screen::open(&d, &[]) else {
        return;
    };
    let all = ["alpha", "beta", "gamma"];
    s.wait("three rows", |t| order(t, &all).len() == 3);
    s.keys(&["/"]);
    s.type_text("ph");
    let text = s.wait("the filter to leave alpha alone", |t| {
        order(t, &all) == ["alpha"]
    });
    assert!(text.contains("filter: ph"), "{text}");
    s.keys(&["Enter"]);
    // Normal keys again; clear the filter: / then Escape.
    s.keys(&["/", "Escape"]);
    s.wait("every row back", |t| order(t, &all).len() == 3);
    s.keys(&["o"]);
    s.wait("sorted by name", |t| {
        t.contains("sort: name") && order(t, &all) == ["alpha", "beta", "gamma"]
    });
    s.keys(&["O"]);
    s.wait("sorted by name, reversed", |t| {
        t.contains("(reversed)") && order(t, &all) == ["gamma", "beta", "alpha"]
    });
    s.quit();
}

#[test]
fn the_log_pane_follows_a_line_written_after_top_started_and_search_finds_an_old_one() {
    // `talker` prints a needle and then enough lines to push it out of the
    // pane; USR1 makes it print a line, once top shows it.
    let d = Daemon::start(
        r#"
[process.talker]
command = ["sh", "-c", "echo needle-early; i=0; while [ $i -lt 120 ]; do echo filler $i; i=$((i+1)); done; trap 'echo got-usr1-now' USR1; while :; do sleep 1 & wait $!; done"]
"#,
    );
    crate::harness::wait_until("the filler lines", LONG, || {
        d.tend(&["logs", "-n", "1", "talker"])
            .stdout
            .contains("filler 119")
    });
    let Some(s) = Screen::open(&d, &[]) else {
        return;
    };
    // The lines may be drawn before the process list has come (the pane is
    // then "all processes"): wait for talker's pane with them.
    let text = s.wait("talker's last lines in the pane", |t| {
        t.contains("filler 119") && t.contains("Logs: talker (following)")
    });
    assert!(
        !text.contains("needle-early"),
        "the needle is out of sight:\n{text}"
    );
    // A signal by key: the prompt, the name, Enter.
    s.keys(&["k"]);
    s.wait("the signal prompt", |t| {
        t.contains("signal to send to talker")
    });
    s.type_text("USR1");
    s.keys(&["Enter"]);
    let text = s.wait("the line written after top started", |t| {
        t.contains("got-usr1-now")
    });
    assert!(
        text.contains("talker: sent USR1") || text.contains("sent"),
        "{text}"
    );
    // Search backwards for the needle: the pane scrolls to it.
    s.keys(&["?"]);
    s.type_text("needle");
    s.keys(&["Enter"]);
    let text = s.wait("the needle found", |t| t.contains("needle-early"));
    assert!(text.contains("search: needle"), "{text}");
    assert!(text.contains("lines back"), "scrolled back:\n{text}");
    // End follows again: the newest line is back.
    s.keys(&["End"]);
    s.wait("following again", |t| {
        t.contains("(following, search: needle)") && t.contains("got-usr1-now")
    });
    // PgUp scrolls back a page; `a` shows every process's lines.
    s.keys(&["PPage"]);
    s.wait("a page back", |t| t.contains("lines back, End follows"));
    s.keys(&["End", "a"]);
    s.wait("every process's lines", |t| {
        t.contains("Logs: all processes (following")
    });
    s.quit();
}

#[test]
fn t_shows_the_dependency_tree_over_a_host_url() {
    let d = Daemon::start(
        r#"
[process.db]
command = ["sleep", "600"]

[process.web]
command = ["sleep", "600"]
depends_on = ["db"]
"#,
    );
    // Through --host, as a remote daemon is reached.
    let host = format!("unix://{}", d.socket.display());
    let Some(s) = Screen::open(&d, &["--host", &host]) else {
        return;
    };
    s.wait("both running", |t| {
        state_of(t, "web").as_deref() == Some("running")
            && state_of(t, "db").as_deref() == Some("running")
    });
    s.keys(&["t"]);
    let text = s.wait("the tree", |t| t.contains("└─ db ("));
    assert!(text.contains("Dependencies"), "{text}");
    let web = text
        .lines()
        .position(|l| l.contains("│> web") || l.contains("│  web"));
    let db = text.lines().position(|l| l.contains("└─ db ("));
    assert!(web < db && web.is_some(), "db is under web:\n{text}");
    s.keys(&["t"]);
    s.wait("the table again", |t| t.contains(" Processes "));
    s.quit();
}

#[test]
fn h_opens_the_help_over_the_screen_and_a_key_closes_it() {
    let d = Daemon::start(SLEEPERS);
    let Some(s) = Screen::open(&d, &[]) else {
        return;
    };
    let text = s.wait("the table", |t| order(t, &["alpha"]).len() == 1);
    assert!(
        text.contains("q quit") && text.contains("h help"),
        "the help line:\n{text}"
    );
    s.keys(&["h"]);
    let text = s.wait("the help overlay", |t| t.contains("tend top: keys"));
    assert!(text.contains("send a signal"), "{text}");
    s.keys(&["x"]);
    s.wait("the help closed", |t| !t.contains("tend top: keys"));
    // The x closed the help and stopped nothing.
    assert_eq!(d.state("alpha"), "running");
    // A resize is drawn at once, to the new width.
    let ok = s
        .tmux()
        .args(["resize-window", "-t", "top", "-x", "100", "-y", "30"])
        .status()
        .expect("tmux resize-window");
    assert!(ok.success(), "resize-window");
    s.wait("the screen drawn 100 wide", |t| {
        t.lines()
            .find(|l| l.starts_with("┌ Processes"))
            .is_some_and(|l| l.chars().count() == 100)
    });
    // Ctrl-C quits too, and restores the terminal.
    s.quit_with("C-c");
}

#[test]
fn sigterm_ends_top_with_the_terminal_restored() {
    let d = Daemon::start(SLEEPERS);
    let Some(s) = Screen::open(&d, &[]) else {
        return;
    };
    s.wait("the table", |t| order(t, &["alpha"]).len() == 1);
    let out = s
        .tmux()
        .args(["display-message", "-p", "-t", "top", "#{pane_pid}"])
        .output()
        .expect("tmux display-message");
    let shell: i32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("the pane's pid");
    // The pane's shell runs top as its child.
    let top = crate::harness::children(shell as u32)
        .into_iter()
        .find(|p| crate::harness::cmdline(*p).contains(" top"))
        .expect("tend top's pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(top as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let text = s.wait("top to exit", |t| t.contains("top exited"));
    assert!(text.contains("top exited 143"), "{text}");
    assert!(
        !text.contains("Processes"),
        "the terminal is restored:\n{text}"
    );
}

fn connected(t: &str) -> bool {
    t.contains(" connected ") && !t.contains("disconnected")
}

#[test]
fn a_lost_daemon_shows_disconnected_and_top_reconnects_by_itself() {
    let mut d = Daemon::start(SLEEPERS);
    let Some(s) = Screen::open(&d, &[]) else {
        return;
    };
    s.wait("connected", |t| {
        connected(t) && order(t, &["alpha"]).len() == 1
    });
    d.ok(&["shutdown"]);
    d.wait_exit(LONG);
    let text = s.wait("disconnected", |t| t.contains("disconnected"));
    // The last known rows stay on the screen.
    assert!(row(&text, "alpha").is_some(), "{text}");
    // The daemon again, on the same socket.
    let log = std::fs::File::create(d.dir.path().join("daemon2.log")).expect("log");
    let out = std::fs::File::create(d.dir.path().join("daemon2.out")).expect("out");
    let child = d
        .command(&["up"])
        .stdout(out)
        .stderr(log)
        .spawn()
        .expect("tend up");
    d.child = Some(child);
    let text = s.wait("connected again, with the new runs", |t| {
        connected(t) && state_of(t, "alpha").as_deref() == Some("running")
    });
    let alpha = row(&text, "alpha").expect("alpha");
    assert_eq!(
        alpha[2],
        d.pid("alpha").to_string(),
        "the new run's pid: {alpha:?}"
    );
    s.quit();
}

/// Over TLS to a daemon's TCP listener, with a bearer token: the same
/// screen, and the keys act there too.
#[test]
fn top_watches_and_drives_a_daemon_over_tls() {
    const TOKEN: &str = "top-token-0123456789";
    let env = TestEnv::new("");
    let dir = env.dir.path().to_path_buf();
    let ca = Ca::new("tend top test CA");
    let ca_file = ca.write(&dir.join("ca.pem"));
    ca.leaf(&dir, "server", "tend", &["127.0.0.1"], false);
    std::fs::write(
        &env.config,
        format!(
            "[http]\nlisten = [\"127.0.0.1:0\"]\ntls_cert = \"server.pem\"\ntls_key = \"server.key\"\n\n\
             [access.token.ops]\nhash = \"{{PLAIN}}{TOKEN}\"\nroles = [\"admin\"]\n\n\
             [process.web]\ncommand = [\"sleep\", \"600\"]\n"
        ),
    )
    .expect("write config");
    let mut d = Daemon::start_in(env);
    let url = pki::wait_urls(&mut d, 1).remove(0);
    assert!(url.starts_with("https://"), "{url}");
    let ca_s = ca_file.display().to_string();
    let Some(s) = Screen::open_with(
        &d,
        &[("TEND_TOKEN", TOKEN)],
        &["--host", &url, "--ca", &ca_s],
    ) else {
        return;
    };
    let text = s.wait("web running over TLS", |t| {
        connected(t) && state_of(t, "web").as_deref() == Some("running")
    });
    assert!(text.contains(&url), "the header names the daemon:\n{text}");
    s.keys(&["x"]);
    s.wait("web stopped by the key", |t| {
        state_of(t, "web").as_deref() == Some("stopped")
    });
    assert_eq!(d.state("web"), "stopped");
    s.quit();
    drop(s);

    // One host of a hosts file, named with -H, is the same; several are refused.
    let hosts = dir.join("hosts.toml");
    std::fs::write(
        &hosts,
        format!(
            "[host.one]\nurl = \"{url}\"\nca = \"ca.pem\"\ntoken = \"{TOKEN}\"\n\n\
             [host.two]\nurl = \"{url}\"\nca = \"ca.pem\"\ntoken = \"{TOKEN}\"\n"
        ),
    )
    .expect("write hosts");
    let hosts_s = hosts.display().to_string();
    let run = d.tend(&["--hosts", &hosts_s, "-H", "one,two", "top"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("tend top watches one daemon"), "{run}");
    let Some(s) = Screen::open(&d, &["--hosts", &hosts_s, "-H", "one"]) else {
        return;
    };
    let text = s.wait("web, stopped, through the hosts file", |t| {
        connected(t) && state_of(t, "web").as_deref() == Some("stopped")
    });
    assert!(
        text.contains("tend top one "),
        "the header names the host:\n{text}"
    );
    s.quit();
}

#[test]
fn patterns_limit_top_to_the_processes_they_match() {
    let d = Daemon::start(SLEEPERS);
    let Some(s) = Screen::open(&d, &["top", "'al*'"]) else {
        return;
    };
    let text = s.wait("alpha alone", |t| {
        connected(t) && state_of(t, "alpha").as_deref() == Some("running")
    });
    assert_eq!(
        order(&text, &["alpha", "beta", "gamma"]),
        ["alpha"],
        "{text}"
    );
    assert!(text.contains("[al*]"), "the header says so:\n{text}");
    s.quit();
}

#[test]
fn top_without_a_terminal_says_what_to_use_instead() {
    let d = Daemon::start(SLEEPERS);
    let run = d.tend(&["top"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr.contains("tend top needs a terminal") && run.stderr.contains("tend status"),
        "{run}"
    );
    let run = d.tend(&["top", "web["]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("bad pattern \"web[\""), "{run}");
}
