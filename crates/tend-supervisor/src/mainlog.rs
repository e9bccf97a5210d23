//! supervisord's main log: the sentences supervisord writes for each event,
//! at the levels it writes them (`supervisor/process.py`,
//! `supervisor/supervisord.py`), made from tend's events. Pure: the daemon
//! feeds events and the time, and writes the lines this returns.
//!
//! Log monitors, alerts and tests wait for these sentences (`spawned: 'x'
//! with pid N`, `success: x entered RUNNING state, ...`, `exited: x (exit
//! status 1; not expected)`, `gave up: x entered FATAL state, ...`,
//! `stopped: x (terminated by SIGTERM)`, `waiting for x to die`), so they
//! are supervisord's word for word.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tend_config::supervisord::LogLevel;
use tend_config::{Declared, supervisord::ini::py_repr};
use tend_core::logs::Stream;
use tend_core::{Event, ExitInfo, Name, ProcessSpec, StateName};

/// How often supervisord repeats `waiting for x to stop` while a stop
/// requested through its API is under way (`Subprocess.stop_report`).
pub const STOP_REPORT_EVERY: Duration = Duration::from_secs(2);
/// How often it repeats `waiting for x, y to die` while shutting down
/// (`Supervisor.shutdown_report`).
pub const SHUTDOWN_REPORT_EVERY: Duration = Duration::from_secs(3);

/// One line of the main log: its level and its text (without the time and
/// level, which the writer adds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// supervisord's level.
    pub level: LogLevel,
    /// The message.
    pub text: String,
}

impl Line {
    fn new(level: LogLevel, text: impl Into<String>) -> Line {
        Line {
            level,
            text: text.into(),
        }
    }
}

/// supervisord's four-letter name of a level (`LevelsByName`).
pub fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Critical => "CRIT",
        LogLevel::Error => "ERRO",
        LogLevel::Warn => "WARN",
        LogLevel::Info => "INFO",
        LogLevel::Debug => "DEBG",
        LogLevel::Trace => "TRAC",
        LogLevel::Blather => "BLAT",
    }
}

/// What the sentences need to know of the processes: their specs (for
/// `startsecs`, `exitcodes` and the stop signal) and supervisord's order of
/// them (groups by priority, then file order; members in order), which is
/// the order of `waiting for ... to die`.
#[derive(Debug, Clone, Default)]
pub struct Context {
    specs: HashMap<Name, Arc<ProcessSpec>>,
    order: Vec<Name>,
    /// `(stopasgroup, killasgroup)` of a supervisord.conf program, which
    /// decide supervisord's wording of a kill (tend signals the group
    /// always; a process without them is told as the group).
    as_group: HashMap<Name, (bool, bool)>,
}

impl Context {
    /// The processes a config file declares.
    pub fn from_declared(declared: &Declared) -> Context {
        let mut groups: Vec<_> = declared.groups.iter().collect();
        // Stable: equal priorities keep the file's order.
        groups.sort_by_key(|g| g.priority);
        let mut specs = HashMap::new();
        let mut order = Vec::new();
        let mut as_group = HashMap::new();
        for g in groups {
            for p in &g.processes {
                if specs
                    .insert(p.spec.name.clone(), Arc::clone(&p.spec))
                    .is_none()
                {
                    order.push(p.spec.name.clone());
                }
                if let Some(d) = &p.program {
                    as_group.insert(p.spec.name.clone(), (d.stopasgroup, d.killasgroup));
                }
            }
        }
        Context {
            specs,
            order,
            as_group,
        }
    }

    /// supervisord's `process group ` in `killing x (pid N) ...with signal`.
    fn group_words(&self, name: &Name, kill: bool) -> &'static str {
        let (stop, killg) = self.as_group.get(name).copied().unwrap_or((true, true));
        if (kill && killg) || (!kill && stop) {
            "process group "
        } else {
            ""
        }
    }

    /// Every process known, in order.
    pub fn processes(&self) -> Vec<Arc<ProcessSpec>> {
        self.order
            .iter()
            .filter_map(|n| self.specs.get(n).cloned())
            .collect()
    }

    /// A process added on its own (through the API), after the others.
    pub fn add(&mut self, spec: Arc<ProcessSpec>) {
        if self
            .specs
            .insert(spec.name.clone(), Arc::clone(&spec))
            .is_none()
        {
            self.order.push(spec.name.clone());
        }
    }

    fn spec(&self, name: &Name) -> Option<&ProcessSpec> {
        self.specs.get(name).map(|s| &**s)
    }

    /// `exitcodes`: an exit with one of these is expected.
    fn expected(&self, name: &Name, exit: ExitInfo) -> bool {
        match exit {
            ExitInfo::Code(c) => self.spec(name).map_or(c == 0, |s| s.is_success(c)),
            ExitInfo::Signal(_) => false,
        }
    }
}

/// Python's `signame`: `SIGTERM`, `SIGPOLL` for 29, `signal 40` for a
/// real-time signal other than the first and the last.
pub fn signame(n: i32) -> String {
    if n == 29 {
        return "SIGPOLL".to_string();
    }
    if n == nix::libc::SIGRTMIN() {
        return "SIGRTMIN".to_string();
    }
    if n == nix::libc::SIGRTMAX() {
        return "SIGRTMAX".to_string();
    }
    match tend_core::Signal::from_number(n) {
        Some(s) if !s.name().starts_with("RTMIN") && s.name().parse::<i32>().is_err() => {
            format!("SIG{}", s.name())
        }
        _ => format!("signal {n}"),
    }
}

/// `decode_wait_status`'s message: `exit status 3`, `terminated by SIGTERM`.
pub fn exit_message(exit: ExitInfo) -> String {
    match exit {
        ExitInfo::Code(c) => format!("exit status {c}"),
        ExitInfo::Signal(s) => format!("terminated by {}", signame(s.number())),
    }
}

/// Python's `repr` of bytes: `b'hi\n\xff'`.
pub fn py_bytes_repr(data: &[u8]) -> String {
    let quote = if data.contains(&b'\'') && !data.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::with_capacity(data.len() + 3);
    out.push('b');
    out.push(char::from(quote));
    for &b in data {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b if b == quote => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(char::from(quote));
    out
}

/// supervisord's debug line for what a process wrote (`POutputDispatcher._log`
/// at `loglevel=debug`): `'x' stdout output:` and the text, or
/// `Undecodable: b'...'` when it is not UTF-8. The text ends with the
/// process's own newline; the writer adds one more, as supervisord does.
pub fn output_line(name: &Name, stream: Stream, data: &[u8]) -> Line {
    let channel = match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    };
    let text = match std::str::from_utf8(data) {
        Ok(t) => t.to_string(),
        Err(_) => format!("Undecodable: {}", py_bytes_repr(data)),
    };
    Line::new(
        LogLevel::Debug,
        format!("{} {channel} output:\n{text}", py_repr(name.as_str())),
    )
}

/// supervisord's debug line for what an event listener wrote on its
/// protocol channel (`PEventListenerDispatcher.handle_read_event`): the
/// bytes as Python prints them, `b'READY\n'`.
pub fn listener_output_line(name: &Name, data: &[u8]) -> Line {
    Line::new(
        LogLevel::Debug,
        format!(
            "{} stdout output:\n{}",
            py_repr(name.as_str()),
            py_bytes_repr(data)
        ),
    )
}

/// What is remembered of one process.
#[derive(Debug, Clone, Default)]
struct Track {
    /// The state as supervisord would have it.
    state: Option<StateName>,
    pid: u32,
    /// A stop asked through the API is under way, reported every 2 s.
    next_stop_report: Option<Instant>,
}

/// The main log's memory: each process's state and pid, whether the daemon
/// is shutting down, and when the next periodic report is due.
#[derive(Debug, Default)]
pub struct MainLog {
    procs: HashMap<Name, Track>,
    shutting_down: bool,
    next_shutdown_report: Option<Instant>,
    /// Processes in a respawn loop (tend's own line says so once).
    looping: HashSet<Name>,
}

impl MainLog {
    /// A log that has seen nothing yet.
    pub fn new() -> MainLog {
        MainLog::default()
    }

    /// The lines for one event at `now`.
    pub fn lines(&mut self, ev: &Event, ctx: &Context, now: Instant) -> Vec<Line> {
        let mut out = Vec::new();
        match ev {
            Event::Spawned { name, pid } => {
                let t = self.procs.entry(name.clone()).or_default();
                t.pid = *pid;
                out.push(Line::new(
                    LogLevel::Info,
                    format!("spawned: '{name}' with pid {pid}"),
                ));
            }
            Event::SpawnFailed { error, .. } => {
                out.push(Line::new(LogLevel::Info, format!("spawnerr: {error}")));
            }
            Event::Exited {
                name,
                exit,
                expected,
                ..
            } => {
                let t = self.procs.entry(name.clone()).or_default();
                t.next_stop_report = None;
                let msg = exit_message(*exit);
                let exit_expected = ctx.expected(name, *exit);
                if *expected {
                    // The end of a stop (supervisord: `killing` was set).
                    let level = if exit_expected {
                        LogLevel::Info
                    } else {
                        LogLevel::Warn
                    };
                    out.push(Line::new(level, format!("stopped: {name} ({msg})")));
                } else if t.state == Some(StateName::Starting) {
                    // It did not stay up `startsecs`: STARTING -> BACKOFF.
                    out.push(Line::new(
                        LogLevel::Warn,
                        format!("exited: {name} ({msg}; not expected)"),
                    ));
                } else if exit_expected {
                    out.push(Line::new(
                        LogLevel::Info,
                        format!("exited: {name} ({msg}; expected)"),
                    ));
                } else {
                    out.push(Line::new(
                        LogLevel::Warn,
                        format!("exited: {name} ({msg}; not expected)"),
                    ));
                }
                out.push(Line::new(
                    LogLevel::Debug,
                    "received SIGCHLD indicating a child quit",
                ));
            }
            Event::StateChanged { name, from, to } => {
                self.state_changed(name, *from, *to, ctx, now, &mut out);
            }
            Event::Killed { name, pid } => {
                out.push(Line::new(
                    LogLevel::Warn,
                    format!("killing '{name}' ({pid}) with SIGKILL"),
                ));
                out.push(Line::new(
                    LogLevel::Debug,
                    format!(
                        "killing {name} (pid {pid}) {}with signal SIGKILL",
                        ctx.group_words(name, true)
                    ),
                ));
            }
            Event::Removed { name } => {
                self.procs.remove(name);
                self.looping.remove(name);
            }
            Event::CheckFailed { name, reason } => {
                out.push(Line::new(
                    LogLevel::Warn,
                    format!("{name}: {reason}; restarting it"),
                ));
            }
            Event::RespawnLoop { name, floor_ms } if self.looping.insert(name.clone()) => {
                out.push(Line::new(
                        LogLevel::Warn,
                        format!(
                            "{name}: exits as soon as it starts; respawning it no more than once every {}",
                            tend_core::duration::format(Duration::from_millis(*floor_ms))
                        ),
                    ));
            }
            Event::RespawnLoopEnded { name, spawns } if self.looping.remove(name) => {
                out.push(Line::new(
                    LogLevel::Info,
                    format!("{name}: out of its respawn loop after {spawns} quick runs"),
                ));
            }
            _ => {}
        }
        out
    }

    fn state_changed(
        &mut self,
        name: &Name,
        from: StateName,
        to: StateName,
        ctx: &Context,
        now: Instant,
        out: &mut Vec<Line>,
    ) {
        let shutting_down = self.shutting_down;
        let t = self.procs.entry(name.clone()).or_default();
        // tend's `waiting` (for dependencies) is supervisord's STOPPED.
        let to = if to == StateName::Waiting {
            StateName::Stopped
        } else {
            to
        };
        t.state = Some(to);
        match (from, to) {
            (StateName::Starting, StateName::Running) => {
                let secs = ctx.spec(name).map_or(1, |s| s.start_secs.as_secs());
                out.push(Line::new(
                    LogLevel::Info,
                    format!(
                        "success: {name} entered RUNNING state, process has stayed up for > than {secs} seconds (startsecs)"
                    ),
                ));
            }
            (_, StateName::Fatal) => out.push(Line::new(
                LogLevel::Info,
                format!("gave up: {name} entered FATAL state, too many start retries too quickly"),
            )),
            (StateName::Starting | StateName::Running, StateName::Stopping) => {
                let sig = ctx
                    .spec(name)
                    .map_or(tend_core::Signal::TERM, |s| s.stop.signal);
                out.push(Line::new(
                    LogLevel::Debug,
                    format!(
                        "killing {name} (pid {}) {}with signal {}",
                        t.pid,
                        ctx.group_words(name, false),
                        signame(sig.number())
                    ),
                ));
                // Shutting down, supervisord reports everything at once
                // (`waiting for a, b to die`) instead.
                if !shutting_down {
                    out.push(Line::new(
                        LogLevel::Info,
                        format!("waiting for {name} to stop"),
                    ));
                    t.next_stop_report = Some(now + STOP_REPORT_EVERY);
                }
            }
            (StateName::Backoff, StateName::Stopped) => out.push(Line::new(
                LogLevel::Debug,
                format!("Attempted to kill {name}, which is in BACKOFF state."),
            )),
            _ => {}
        }
        if to != StateName::Stopping {
            t.next_stop_report = None;
        }
    }

    /// The daemon starts shutting down: from now on, `waiting for ... to
    /// die` every 3 s instead of each process's `waiting for x to stop`.
    pub fn shutting_down(&mut self, now: Instant) {
        self.shutting_down = true;
        self.next_shutdown_report = Some(now);
        for t in self.procs.values_mut() {
            t.next_stop_report = None;
        }
    }

    /// The daemon is running normally again (a restart read the file again).
    pub fn running(&mut self) {
        self.shutting_down = false;
        self.next_shutdown_report = None;
    }

    /// When the next periodic report is due, if one is.
    pub fn next_report(&self) -> Option<Instant> {
        self.procs
            .values()
            .filter_map(|t| t.next_stop_report)
            .chain(self.next_shutdown_report)
            .min()
    }

    /// The periodic reports due at `now`: `waiting for x to stop` for a
    /// stop under way, `waiting for a, b to die` (and each one's state at
    /// `blather`) while shutting down.
    pub fn reports(&mut self, ctx: &Context, now: Instant) -> Vec<Line> {
        let mut out = Vec::new();
        let mut due: Vec<&Name> = Vec::new();
        for (name, t) in &mut self.procs {
            if let Some(at) = t.next_stop_report
                && at <= now
            {
                t.next_stop_report = Some(now + STOP_REPORT_EVERY);
                due.push(name);
            }
        }
        let mut due: Vec<Name> = due.into_iter().cloned().collect();
        due.sort_by_key(|n| ctx.order.iter().position(|o| o == n));
        for name in due {
            out.push(Line::new(
                LogLevel::Info,
                format!("waiting for {name} to stop"),
            ));
        }
        if let Some(at) = self.next_shutdown_report
            && at <= now
        {
            let unstopped = self.unstopped(ctx);
            if unstopped.is_empty() {
                self.next_shutdown_report = None;
            } else {
                self.next_shutdown_report = Some(now + SHUTDOWN_REPORT_EVERY);
                let names: Vec<&str> = unstopped.iter().map(|(n, _)| n.as_str()).collect();
                out.push(Line::new(
                    LogLevel::Info,
                    format!("waiting for {} to die", names.join(", ")),
                ));
                for (name, state) in unstopped {
                    out.push(Line::new(
                        LogLevel::Blather,
                        format!("{name} state: {}", sup_state(state)),
                    ));
                }
            }
        }
        out
    }

    /// Processes not in a stopped state (supervisord's
    /// `get_unstopped_processes`), in supervisord's order.
    fn unstopped(&self, ctx: &Context) -> Vec<(Name, StateName)> {
        let mut names: Vec<(Name, StateName)> = self
            .procs
            .iter()
            .filter_map(|(n, t)| {
                let s = t.state?;
                (!matches!(s, StateName::Stopped | StateName::Exited | StateName::Fatal))
                    .then(|| (n.clone(), s))
            })
            .collect();
        names.sort_by_key(|(n, _)| {
            (
                ctx.order.iter().position(|o| o == n).unwrap_or(usize::MAX),
                n.clone(),
            )
        });
        names
    }
}

fn sup_state(s: StateName) -> &'static str {
    match s {
        StateName::Stopped | StateName::Waiting => "STOPPED",
        StateName::Starting => "STARTING",
        StateName::Running => "RUNNING",
        StateName::Backoff => "BACKOFF",
        StateName::Stopping => "STOPPING",
        StateName::Exited => "EXITED",
        StateName::Fatal => "FATAL",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::new(s).expect("name")
    }

    fn ctx(specs: Vec<ProcessSpec>) -> Context {
        Context::from_declared(&Declared::from_specs(specs))
    }

    fn texts(lines: &[Line]) -> Vec<(&'static str, &str)> {
        lines
            .iter()
            .map(|l| (level_name(l.level), l.text.as_str()))
            .collect()
    }

    fn spec(n: &str, start_secs: u64) -> ProcessSpec {
        let mut s = ProcessSpec::new(name(n), vec!["x".into()]);
        s.start_secs = Duration::from_secs(start_secs);
        s
    }

    #[test]
    fn a_process_that_starts_runs_and_exits() {
        let c = ctx(vec![spec("web", 1)]);
        let mut log = MainLog::new();
        let now = Instant::now();
        let ev = |e: Event, log: &mut MainLog| log.lines(&e, &c, now);
        let x = name("web");
        assert!(
            ev(
                Event::StateChanged {
                    name: x.clone(),
                    from: StateName::Stopped,
                    to: StateName::Starting
                },
                &mut log
            )
            .is_empty()
        );
        assert_eq!(
            texts(&ev(
                Event::Spawned {
                    name: x.clone(),
                    pid: 42
                },
                &mut log
            )),
            [("INFO", "spawned: 'web' with pid 42")]
        );
        assert_eq!(
            texts(&ev(
                Event::StateChanged {
                    name: x.clone(),
                    from: StateName::Starting,
                    to: StateName::Running
                },
                &mut log
            )),
            [(
                "INFO",
                "success: web entered RUNNING state, process has stayed up for > than 1 seconds (startsecs)"
            )]
        );
        assert_eq!(
            texts(&ev(
                Event::Exited {
                    name: x.clone(),
                    pid: 42,
                    exit: ExitInfo::Code(0),
                    expected: false
                },
                &mut log
            )),
            [
                ("INFO", "exited: web (exit status 0; expected)"),
                ("DEBG", "received SIGCHLD indicating a child quit")
            ]
        );
    }

    #[test]
    fn a_failed_start_a_bad_exit_and_a_stop() {
        let c = ctx(vec![spec("a", 1)]);
        let mut log = MainLog::new();
        let now = Instant::now();
        let x = name("a");
        let sc = |from, to| Event::StateChanged {
            name: x.clone(),
            from,
            to,
        };
        log.lines(&sc(StateName::Stopped, StateName::Starting), &c, now);
        let exited = |code| Event::Exited {
            name: x.clone(),
            pid: 1,
            exit: ExitInfo::Code(code),
            expected: false,
        };
        assert_eq!(
            texts(&log.lines(&exited(0), &c, now))[0],
            ("WARN", "exited: a (exit status 0; not expected)")
        );
        assert_eq!(
            texts(&log.lines(&sc(StateName::Starting, StateName::Fatal), &c, now)),
            [(
                "INFO",
                "gave up: a entered FATAL state, too many start retries too quickly"
            )]
        );
        log.lines(&sc(StateName::Fatal, StateName::Starting), &c, now);
        log.lines(&sc(StateName::Starting, StateName::Running), &c, now);
        assert_eq!(
            texts(&log.lines(&exited(3), &c, now))[0],
            ("WARN", "exited: a (exit status 3; not expected)")
        );
        log.lines(&sc(StateName::Exited, StateName::Starting), &c, now);
        log.lines(
            &Event::Spawned {
                name: x.clone(),
                pid: 7,
            },
            &c,
            now,
        );
        log.lines(&sc(StateName::Starting, StateName::Running), &c, now);
        assert_eq!(
            texts(&log.lines(&sc(StateName::Running, StateName::Stopping), &c, now)),
            [
                (
                    "DEBG",
                    "killing a (pid 7) process group with signal SIGTERM"
                ),
                ("INFO", "waiting for a to stop")
            ]
        );
        assert_eq!(log.next_report(), Some(now + STOP_REPORT_EVERY));
        assert_eq!(
            texts(&log.reports(&c, now + STOP_REPORT_EVERY)),
            [("INFO", "waiting for a to stop")]
        );
        let stopped = Event::Exited {
            name: x.clone(),
            pid: 7,
            exit: ExitInfo::Signal(tend_core::Signal::TERM),
            expected: true,
        };
        assert_eq!(
            texts(&log.lines(&stopped, &c, now))[0],
            ("WARN", "stopped: a (terminated by SIGTERM)")
        );
        assert_eq!(log.next_report(), None);
    }

    #[test]
    fn shutting_down_reports_every_process_not_stopped() {
        let c = ctx(vec![spec("b", 1), spec("a", 1)]);
        let mut log = MainLog::new();
        let now = Instant::now();
        for n in ["a", "b"] {
            log.lines(
                &Event::StateChanged {
                    name: name(n),
                    from: StateName::Starting,
                    to: StateName::Running,
                },
                &c,
                now,
            );
        }
        log.shutting_down(now);
        let lines = log.reports(&c, now);
        assert_eq!(
            texts(&lines),
            [
                ("INFO", "waiting for b, a to die"),
                ("BLAT", "b state: RUNNING"),
                ("BLAT", "a state: RUNNING")
            ]
        );
        // A process being stopped while shutting down is not reported alone.
        let l = log.lines(
            &Event::StateChanged {
                name: name("a"),
                from: StateName::Running,
                to: StateName::Stopping,
            },
            &c,
            now,
        );
        assert_eq!(l.len(), 1);
        assert!(log.reports(&c, now + Duration::from_secs(1)).is_empty());
        assert_eq!(log.next_report(), Some(now + SHUTDOWN_REPORT_EVERY));
    }

    #[test]
    fn output_is_decoded_or_escaped_as_python_does() {
        let x = name("ok");
        assert_eq!(
            output_line(&x, Stream::Stdout, b"hi\n").text,
            "'ok' stdout output:\nhi\n"
        );
        assert_eq!(
            output_line(&x, Stream::Stderr, b"hi\n\xff\xfex\n").text,
            "'ok' stderr output:\nUndecodable: b'hi\\n\\xff\\xfex\\n'"
        );
        assert_eq!(py_bytes_repr(b"it's"), "b\"it's\"");
        assert_eq!(py_bytes_repr(b"'\""), "b'\\'\"'");
        assert_eq!(py_bytes_repr(b"\x1b[0m\\"), "b'\\x1b[0m\\\\'");
        assert_eq!(
            listener_output_line(&name("l"), b"READY\n").text,
            "'l' stdout output:\nb'READY\\n'"
        );
    }

    #[test]
    fn signal_names_are_pythons() {
        assert_eq!(signame(15), "SIGTERM");
        assert_eq!(signame(29), "SIGPOLL");
        assert_eq!(signame(34), "SIGRTMIN");
        assert_eq!(signame(40), "signal 40");
        assert_eq!(signame(64), "SIGRTMAX");
        assert_eq!(signame(32), "signal 32");
    }
}
