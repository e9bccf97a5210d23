//! The client verbs: each talks to the daemon and prints a result.

use std::io::{BufRead, BufReader, IsTerminal};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tend_core::{Name, Outcome, ProcessSpec, ProcessStatus, RestartPolicy, Signal};
use tend_server::api::{
    ActionItem, ActionResponse, LogItem, LogsQuery, NameResponse, ReopenResponse, STATS_AUTO_MAX,
    ShutdownResponse, SignalRequest, StartRequest, StatsMode, Stream, TargetsRequest,
    VersionResponse, status_path,
};

use crate::cli::{AddArgs, LogsArgs, RestartArg};
use crate::client::{Client, ClientError, NO_BODY};
use crate::output::{LinePrinter, Out, Prefixer, status_table};

/// What `tend status` asks of `stats`: nothing for the table (`None`);
/// with `--json`, usage for any number with `--stats`, never with
/// `--no-stats`, otherwise while that is cheap.
pub fn stats_mode(json: bool, stats: bool, no_stats: bool) -> Option<StatsMode> {
    json.then_some(match (stats, no_stats) {
        (true, _) => StatsMode::Yes,
        (false, true) => StatsMode::No,
        (false, false) => StatsMode::Auto,
    })
}

/// `GET /v1/status` for `patterns`, with `stats=` for `--json`.
pub fn status_query(patterns: &[String], json: Option<StatsMode>) -> String {
    let mut path = status_path(patterns);
    let value = match json {
        None | Some(StatsMode::No) => return path,
        Some(StatsMode::Yes) => "true",
        Some(StatsMode::Auto) => "auto",
    };
    path.push(if path.contains('?') { '&' } else { '?' });
    path.push_str("stats=");
    path.push_str(value);
    path
}

/// Says on standard error that `stats=auto` left usage out (more than
/// [`STATS_AUTO_MAX`] processes up), and how to have it.
pub fn stats_note(json: Option<StatsMode>, up: usize, host: Option<&str>) {
    if json == Some(StatsMode::Auto) && up > STATS_AUTO_MAX {
        let on = host.map(|h| format!("{h}: ")).unwrap_or_default();
        eprintln!(
            "{on}note: {up} processes are up, more than {STATS_AUTO_MAX}: what each uses \
             (stats) is left out; --stats reads it anyway (~35 µs a process)"
        );
    }
}

/// `tend status [--json [--stats|--no-stats]] [PATTERN...]`; `json` is
/// what `--json` asks of `stats`, `None` for the table.
pub fn status(
    client: &Client,
    json: Option<StatsMode>,
    patterns: &[String],
    out: &mut Out,
) -> anyhow::Result<ExitCode> {
    let path = status_query(patterns, json);
    let resp = match client.call_raw("GET", &path, NO_BODY) {
        Ok(r) => r,
        Err(e @ ClientError::Unreachable { .. }) => {
            // LSB's "status unknown", as supervisorctl's status says it.
            out.flush()?;
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_STATUS_UNKNOWN));
        }
        Err(e) => return Err(e.into()),
    };
    let list: Vec<crate::output::Row<'_>> =
        serde_json::from_slice(&resp.body).context("cannot decode the daemon's status answer")?;
    if json.is_some() {
        // The API's array, byte for byte.
        out.write_all(&resp.body)?;
        out.write_all(b"\n")?;
        let up = list
            .iter()
            .filter(|r| r.state.is_up() && r.pid.is_some())
            .count();
        stats_note(json, up, None);
    } else {
        out.write_all(status_table(&list).as_bytes())?;
        telemetry_notice(client);
    }
    Ok(status_exit(&list))
}

/// `tend status`'s exit status when some process is not where it should
/// be (LSB's "program is not running", as supervisorctl uses it).
pub const EXIT_STATUS_TROUBLE: u8 = 3;
/// `tend status`'s exit status when the daemon cannot be reached (LSB's
/// "status unknown").
pub const EXIT_STATUS_UNKNOWN: u8 = 4;

/// 0 when every process shown is fine; [`EXIT_STATUS_TROUBLE`] when one has
/// given up (`fatal`) or is crash-looping (`backoff`), so that `tend status`
/// works as a health check. Stopped, exited and waiting processes are where
/// someone (a user, their policy, their dependencies) put them.
fn status_exit(list: &[crate::output::Row<'_>]) -> ExitCode {
    let trouble = list.iter().any(|p| {
        matches!(
            p.state,
            tend_core::StateName::Fatal | tend_core::StateName::Backoff
        )
    });
    if trouble {
        ExitCode::from(EXIT_STATUS_TROUBLE)
    } else {
        ExitCode::SUCCESS
    }
}

/// After the table, on stderr: what OTLP export dropped and why it fails,
/// when it does (nothing when telemetry is off, works, or the daemon is
/// older than `/v1/telemetry`).
fn telemetry_notice(client: &Client) {
    let Ok(r) =
        client.call::<tend_server::metrics::TelemetryReport>("GET", "/v1/telemetry", NO_BODY)
    else {
        return;
    };
    let dropped: u64 = r.signals.iter().map(|s| s.dropped).sum();
    if dropped == 0 && r.failing.is_none() {
        return;
    }
    let each: Vec<String> = r
        .signals
        .iter()
        .filter(|s| s.dropped > 0)
        .map(|s| format!("{} {}", s.signal, s.dropped))
        .collect();
    let mut line = format!("telemetry: {dropped} dropped");
    if !each.is_empty() {
        line.push_str(&format!(" ({})", each.join(", ")));
    }
    if let Some(why) = &r.failing {
        line.push_str(&format!("; export fails: {why}"));
    }
    eprintln!("{line}");
}

/// The batch verbs and how each reports success.
#[derive(Debug, Clone, Copy)]
pub enum Batch {
    /// `tend start`
    Start,
    /// `tend stop`
    Stop,
    /// `tend restart`
    Restart,
}

impl Batch {
    fn path(self) -> &'static str {
        match self {
            Batch::Start => "/v1/start",
            Batch::Stop => "/v1/stop",
            Batch::Restart => "/v1/restart",
        }
    }

    fn done(self) -> &'static str {
        match self {
            Batch::Start => "started",
            Batch::Stop => "stopped",
            Batch::Restart => "restarted",
        }
    }
}

/// `tend start|stop|restart PATTERN...`
pub fn batch(
    client: &Client,
    verb: Batch,
    patterns: Vec<String>,
    out: &mut Out,
) -> anyhow::Result<ExitCode> {
    let resp: ActionResponse = client.call(
        "POST",
        verb.path(),
        Some(&TargetsRequest { targets: patterns }),
    )?;
    report(&resp.results, verb.done(), out)
}

/// `tend start [--no-deps] PATTERN...`
pub fn start(
    client: &Client,
    patterns: Vec<String>,
    no_deps: bool,
    out: &mut Out,
) -> anyhow::Result<ExitCode> {
    let req = StartRequest {
        targets: patterns,
        no_deps,
    };
    let resp: ActionResponse = client.call("POST", Batch::Start.path(), Some(&req))?;
    report(&resp.results, Batch::Start.done(), out)
}

/// `tend signal SIG PATTERN...`
pub fn signal(
    client: &Client,
    signal: Signal,
    patterns: Vec<String>,
    out: &mut Out,
) -> anyhow::Result<ExitCode> {
    let req = SignalRequest {
        targets: patterns,
        signal,
    };
    let resp: ActionResponse = client.call("POST", "/v1/signal", Some(&req))?;
    report(&resp.results, &format!("sent {signal}"), out)
}

/// Prints a line per process of a batch's answer; fails when one failed.
pub(crate) fn report(
    results: &[ActionItem],
    done: &str,
    out: &mut Out,
) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for r in results {
        match (&r.outcome, &r.error) {
            (_, Some(err)) => {
                failed = true;
                // Library errors often start with the name already.
                let reason = err.strip_prefix(&format!("{}: ", r.name)).unwrap_or(err);
                writeln!(out, "{}: ERROR {reason}", r.name)?;
            }
            (Some(Outcome::AlreadyRunning), None) if r.dependency => {
                writeln!(out, "{}: already running (a dependency)", r.name)?
            }
            (Some(Outcome::AlreadyRunning), None) => writeln!(out, "{}: already running", r.name)?,
            (Some(_), None) if r.dependency => writeln!(out, "{}: started (a dependency)", r.name)?,
            (Some(Outcome::AlreadyStopped), None) => writeln!(out, "{}: already stopped", r.name)?,
            _ if !r.ok => {
                failed = true;
                writeln!(out, "{}: ERROR unknown failure", r.name)?;
            }
            _ => writeln!(out, "{}: {done}", r.name)?,
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `tend pid [--json] [NAME]`
pub fn pid(
    client: &Client,
    name: Option<String>,
    json: bool,
    out: &mut Out,
) -> anyhow::Result<ExitCode> {
    let Some(name) = name else {
        let v: VersionResponse = client.call("GET", "/v1/version", NO_BODY)?;
        if json {
            writeln!(out, "{}", serde_json::json!({ "pid": v.pid }))?;
        } else {
            writeln!(out, "{}", v.pid)?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    let list: Vec<ProcessStatus> =
        client.call("GET", &status_path(std::slice::from_ref(&name)), NO_BODY)?;
    let Some(p) = list.iter().find(|p| p.name.as_str() == name) else {
        bail!("no such process: {name}");
    };
    if json {
        // Not running is an answer here, not a failure: `pid` is null.
        writeln!(out, "{}", serde_json::json!({ "name": name, "pid": p.pid }))?;
        return Ok(ExitCode::SUCCESS);
    }
    match p.pid {
        Some(pid) => {
            writeln!(out, "{pid}")?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            out.flush()?;
            eprintln!("{name}: not running");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `tend add NAME [...] -- CMD ARGS...`
pub fn add(client: &Client, args: Box<AddArgs>, out: &mut Out) -> anyhow::Result<ExitCode> {
    let save = args.save;
    let spec = build_spec(*args)?;
    let mut body = serde_json::to_value(&spec).context("cannot encode the process spec")?;
    // Without `logs` the daemon puts the output where it puts the config's
    // (files under its log directory).
    if let Some(obj) = body.as_object_mut() {
        obj.remove("logs");
    }
    let path = if save {
        "/v1/processes?save=true"
    } else {
        "/v1/processes"
    };
    let resp: NameResponse = client.call("POST", path, Some(&body))?;
    // The answer comes once it is added and, with autostart, spawned: a
    // program that cannot be started at all is fatal by now. Say so.
    let list: Vec<ProcessStatus> = client
        .call(
            "GET",
            &status_path(std::slice::from_ref(&resp.name)),
            NO_BODY,
        )
        .unwrap_or_default();
    if let Some(p) = list
        .iter()
        .find(|p| p.name.as_str() == resp.name && p.state == tend_core::StateName::Fatal)
    {
        writeln!(out, "{}: added, but it cannot start", resp.name)?;
        out.flush()?;
        let why = p.error.as_deref().unwrap_or("it gave up");
        eprintln!("error: {}: {why}", resp.name);
        return Ok(ExitCode::FAILURE);
    }
    if save {
        writeln!(out, "{}: added and saved in the config file", resp.name)?;
    } else {
        writeln!(out, "{}: added", resp.name)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn build_spec(args: AddArgs) -> anyhow::Result<ProcessSpec> {
    let name = Name::new(args.name.as_str())
        .with_context(|| format!("invalid process name {:?}", args.name))?;
    let mut spec = ProcessSpec::new(name, args.command);
    if let Some(group) = args.in_group {
        spec.group =
            Name::new(group.as_str()).with_context(|| format!("invalid group name {group:?}"))?;
    }
    if let Some(cwd) = args.cwd {
        // The daemon has its own working directory; a relative path means ours.
        spec.cwd = Some(
            std::path::absolute(&cwd).with_context(|| format!("bad --cwd {}", cwd.display()))?,
        );
    }
    spec.env.extend(args.env);
    spec.user = args.user;
    spec.unix_group = args.group;
    if let Some(p) = args.priority {
        spec.priority = p;
    }
    if let Some(r) = args.restart {
        spec.restart = match r {
            RestartArg::Always => RestartPolicy::Always,
            RestartArg::OnFailure => RestartPolicy::OnFailure,
            RestartArg::Never => RestartPolicy::Never,
        };
    }
    spec.autostart = !args.no_autostart;
    if let Some(sig) = args.stop_signal {
        spec.stop.signal = sig;
    }
    if let Some(t) = args.stop_timeout {
        spec.stop.timeout = t;
    }
    spec.validate()?;
    Ok(spec)
}

/// `tend remove NAME`
pub fn remove(client: &Client, name: &str, out: &mut Out) -> anyhow::Result<ExitCode> {
    let mut path = String::from("/v1/processes/");
    tend_server::api::percent_encode_into(name, &mut path);
    let resp: NameResponse = client.call("DELETE", &path, NO_BODY)?;
    writeln!(out, "{}: removed", resp.name)?;
    Ok(ExitCode::SUCCESS)
}

/// `tend scale NAME N`: run N copies of a replicated process.
pub fn scale(
    client: &Client,
    name: &str,
    replicas: u32,
    out: &mut Out,
) -> anyhow::Result<ExitCode> {
    let body = tend_server::more::ScaleRequest {
        name: name.to_string(),
        replicas,
    };
    let resp: tend_server::more::ScaleResponse = client.call("POST", "/v1/scale", Some(&body))?;
    write!(out, "{}: {} -> {} replicas", resp.name, resp.from, resp.to)?;
    if !resp.added.is_empty() {
        write!(out, "; added {}", resp.added.join(", "))?;
    }
    if !resp.removed.is_empty() {
        write!(out, "; removed {}", resp.removed.join(", "))?;
    }
    writeln!(out)?;
    Ok(ExitCode::SUCCESS)
}

/// `tend reload [--json]`: the daemon reads its config file again and applies it.
pub fn reload(client: &Client, json: bool, out: &mut Out) -> anyhow::Result<ExitCode> {
    if json {
        let resp = client.call_raw("POST", "/v1/reload", NO_BODY)?;
        out.write_all(&resp.body)?;
        out.write_all(b"\n")?;
        return Ok(ExitCode::SUCCESS);
    }
    let resp: tend_server::api::ReloadResponse = client.call("POST", "/v1/reload", NO_BODY)?;
    let mut any = false;
    for (what, names) in [
        ("added", &resp.added),
        ("changed", &resp.changed),
        ("removed", &resp.removed),
    ] {
        if !names.is_empty() {
            writeln!(out, "{what}: {}", names.join(", "))?;
            any = true;
        }
    }
    if !any {
        writeln!(out, "no changes")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// How long `tend shutdown` waits for the daemon to exit, by default.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(120);

/// `tend shutdown`: asks the daemon to stop and waits until it has exited.
pub fn shutdown(client: &Client, timeout: Duration, out: &mut Out) -> anyhow::Result<ExitCode> {
    let deadline = Instant::now() + timeout;
    // A pidfd of the daemon, found through the socket's peer credentials
    // (which the kernel translates into our pid namespace), lets us wait for
    // the exit itself rather than poll.
    let pidfd = daemon_pidfd(client);
    let _: ShutdownResponse = client.call("POST", "/v1/shutdown", NO_BODY)?;
    let gone = match &pidfd {
        Some(fd) => wait_readable(fd, deadline),
        None => wait_unreachable(client, deadline),
    };
    if !gone {
        bail!(
            "the daemon is still running after {}",
            tend_core::duration::format(timeout)
        );
    }
    writeln!(out, "tend stopped")?;
    Ok(ExitCode::SUCCESS)
}

fn daemon_pidfd(client: &Client) -> Option<OwnedFd> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let stream = std::os::unix::net::UnixStream::connect(client.unix_socket()?).ok()?;
    let pid = getsockopt(&stream, PeerCredentials).ok()?.pid();
    if pid <= 0 {
        return None;
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits until `fd` is readable (a pidfd is, once the process exits).
fn wait_readable(fd: &OwnedFd, deadline: Instant) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) if n > 0 => return true,
            Ok(_) if Instant::now() >= deadline => return false,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

fn wait_unreachable(client: &Client, deadline: Instant) -> bool {
    while Instant::now() < deadline {
        if !client.is_reachable() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// `tend logs [-f] [-n N] [--stderr|--stdout] [--since WHEN] [PATTERN...]`
pub fn logs(client: &Client, args: LogsArgs, out: &mut Out) -> anyhow::Result<ExitCode> {
    if args.reopen {
        return reopen(client, out);
    }
    if args.files {
        return log_files(client, &args.patterns, args.json, out);
    }
    // The status answer gives the width of the names (and a clear error for
    // a pattern that matches nothing) before the first line arrives.
    let list: Vec<ProcessStatus> = client.call("GET", &status_path(&args.patterns), NO_BODY)?;
    let mut printer = LinePrinter::new(Prefixer::new(
        list.iter().map(|p| p.name.as_str()),
        std::io::stdout().is_terminal(),
    ));
    let query = LogsQuery {
        patterns: args.patterns,
        n: Some(args.lines),
        stream: if args.stderr {
            Some(Stream::Stderr)
        } else if args.stdout {
            Some(Stream::Stdout)
        } else {
            None
        },
        since: args.since,
        follow: args.follow,
    };
    let body = client.stream(&query.path())?;
    let mut reader = BufReader::with_capacity(64 * 1024, body);
    let mut line = Vec::with_capacity(1024);
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| client.protocol(format!("the log stream broke: {e}")))?;
        if n == 0 {
            break;
        }
        if args.json {
            // The API's objects, one per line, as they came.
            buf.extend_from_slice(&line);
            if !line.ends_with(b"\n") {
                buf.push(b'\n');
            }
        } else {
            print_item(&mut printer, args.timestamps, &line, &mut buf, out)?;
        }
        // Follow mode shows each batch as soon as the daemon has sent it.
        if buf.len() >= 64 * 1024 || reader.buffer().is_empty() {
            out.write_all(&buf)?;
            buf.clear();
            if args.follow {
                out.flush()?;
            }
        }
    }
    printer.finish(&mut buf);
    out.write_all(&buf)?;
    Ok(ExitCode::SUCCESS)
}

/// Formats one item of the log stream into `buf`.
fn print_item(
    printer: &mut LinePrinter,
    timestamps: bool,
    line: &[u8],
    buf: &mut Vec<u8>,
    out: &mut Out,
) -> anyhow::Result<()> {
    match serde_json::from_slice::<LogItem>(line) {
        Ok(LogItem::Line(item)) => {
            if timestamps {
                // Seconds with milliseconds, always in UTC: sortable and the
                // same width; once per line, not per piece of one.
                printer.next_stamp = Some(format!("{:.3} ", item.time));
            }
            let bytes = item.bytes().unwrap_or_else(|| {
                // Not base64: show what came rather than nothing.
                item.line_b64.clone().unwrap_or_default().into_bytes()
            });
            printer.line(
                buf,
                &item.name,
                item.stream,
                &bytes,
                item.partial,
                item.continues,
            );
        }
        Ok(LogItem::Lagged { lagged }) => {
            out.write_all(buf)?;
            buf.clear();
            out.flush()?;
            eprintln!("tend: {lagged} batches of lines were skipped (reading too slowly)");
        }
        Err(e) => bail!("cannot decode a line of the log stream: {e}"),
    }
    Ok(())
}

/// `tend logs --files [--json] [PATTERN...]`
fn log_files(
    client: &Client,
    patterns: &[String],
    json: bool,
    out: &mut Out,
) -> anyhow::Result<ExitCode> {
    let path = tend_server::api::log_files_path(patterns);
    if json {
        let resp = client.call_raw("GET", &path, NO_BODY)?;
        out.write_all(&resp.body)?;
        out.write_all(b"\n")?;
        return Ok(ExitCode::SUCCESS);
    }
    let list: Vec<tend_server::api::LogFilesItem> = client.call("GET", &path, NO_BODY)?;
    let width = list.iter().map(|i| i.name.len()).max().unwrap_or(0);
    for i in &list {
        match &i.stderr {
            None => writeln!(out, "{:width$}  stdout+stderr {}", i.name, i.stdout)?,
            Some(err) => {
                writeln!(out, "{:width$}  stdout {}", i.name, i.stdout)?;
                writeln!(out, "{:width$}  stderr {err}", i.name)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `tend logs --reopen`
fn reopen(client: &Client, out: &mut Out) -> anyhow::Result<ExitCode> {
    let resp: ReopenResponse = client.call("POST", "/v1/logs/reopen", NO_BODY)?;
    if resp.errors.is_empty() {
        writeln!(out, "log files reopened")?;
        return Ok(ExitCode::SUCCESS);
    }
    for e in &resp.errors {
        writeln!(out, "{}: ERROR {}", e.path, e.error)?;
    }
    Ok(ExitCode::FAILURE)
}

/// Turns a client error into the CLI's message.
pub fn describe(e: &anyhow::Error) -> String {
    match e.downcast_ref::<ClientError>() {
        Some(c) => c.to_string(),
        None => format!("{e:#}"),
    }
}
