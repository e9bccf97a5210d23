//! Many daemons from one command: `tend -H web1,web2 status`, `-H @web`,
//! `-H all`. The hosts come from the hosts file
//! (`~/.config/tend/hosts.toml`, `--hosts`, `TEND_HOSTS`); every host is
//! asked in parallel, each under its own timeout, and answers (or fails) on
//! its own lines. The exit status is non-zero when any host failed, and the
//! last line says which (`docs/fleet.md`).

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;
use tend_config::hosts::{HostAuth, HostEntry, HostsFile};
use tend_core::StateName;
use tend_server::api::{LogItem, LogsQuery, StatsMode, Stream, status_path};

use crate::cli::{ClientCommand, LogsArgs, RemoteArgs};
use crate::client::host::{self, CredentialArgs, Credentials, Trust};
use crate::client::{Client, NO_BODY};
use crate::commands::{self, Batch};
use crate::output::{self, LinePrinter, Prefixer, Row};

/// The default `--timeout` with several hosts.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `-H VALUE` names hosts of the hosts file (rather than a URL).
pub fn is_selection(value: &str) -> bool {
    !value.contains("://")
}

/// The hosts file: `--hosts`/`TEND_HOSTS`, else
/// `$XDG_CONFIG_HOME/tend/hosts.toml`, else `~/.config/tend/hosts.toml`.
pub fn hosts_path(arg: Option<&std::path::Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = arg {
        return Ok(p.to_path_buf());
    }
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("tend/hosts.toml"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".config/tend/hosts.toml")),
        None => bail!("no hosts file: give --hosts FILE (HOME is not set)"),
    }
}

/// One host of the selection: its name and its client, or why there is none.
pub struct Target {
    /// The name in the hosts file.
    pub name: String,
    /// Ready to use, or the error that stands for this host's answer.
    pub client: Result<Client, String>,
}

/// `tend -H SELECTION VERB`: the whole command.
pub fn main(remote: &RemoteArgs, selection: &str, command: ClientCommand) -> ExitCode {
    let targets = match targets(remote, selection, &command) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    let failed = match run(targets, command, remote.timeout) {
        Ok(failed) => failed,
        Err(e) if output::is_broken_pipe(&e) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if failed.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "error: {} of {} failed: {}",
        failed.len(),
        crate::plural(names.len(), "host"),
        failed.join(", ")
    );
    ExitCode::FAILURE
}

/// The clients of the hosts `selection` names, each with its timeouts.
fn targets(
    remote: &RemoteArgs,
    selection: &str,
    command: &ClientCommand,
) -> anyhow::Result<Vec<Target>> {
    let path = hosts_path(remote.hosts.as_deref())?;
    let file: HostsFile = tend_config::hosts::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let entries = file.select(selection).map_err(anyhow::Error::msg)?;
    // The command line's credentials are the default of every host that
    // names none; asked for once.
    let mut shared: Option<Option<Credentials>> = None;
    let action = !matches!(
        command,
        ClientCommand::Status { .. } | ClientCommand::Pid { .. } | ClientCommand::Logs(_)
    );
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let timeout = remote.timeout.or(e.timeout).unwrap_or(DEFAULT_TIMEOUT);
        // An action waits for the processes unless a timeout was asked for.
        let io = if action && remote.timeout.is_none() && e.timeout.is_none() {
            None
        } else {
            Some(timeout)
        };
        let client = target(remote, e, &mut shared)
            .and_then(Client::for_host)
            .map(|c| c.with_timeouts(timeout, io))
            .map_err(|err| format!("{err:#}"));
        out.push(Target {
            name: e.name.clone(),
            client,
        });
    }
    Ok(out)
}

fn target(
    remote: &RemoteArgs,
    e: &HostEntry,
    shared: &mut Option<Option<Credentials>>,
) -> anyhow::Result<crate::client::Host> {
    let url = host::parse_url(&e.url, e.insecure || remote.insecure)
        .with_context(|| format!("{}: url", e.at))?;
    let mut h = crate::client::Host::unix("").with_url(url);
    h.ca = match (&e.ca, &e.pin, &remote.ca, &remote.pin) {
        (Some(ca), _, _, _) => Trust::Ca(ca.clone()),
        (None, Some(pin), _, _) => {
            Trust::Pin(host::parse_pin(pin).with_context(|| format!("[host.{}] pin", e.name))?)
        }
        (None, None, Some(ca), _) => Trust::Ca(ca.clone()),
        (None, None, None, Some(pin)) => Trust::Pin(host::parse_pin(pin)?),
        (None, None, None, None) => Trust::System,
    };
    h.credentials = match &e.auth {
        Some(auth) => Some(login(&e.name, auth)?),
        None => match shared {
            Some(c) => c.clone(),
            None => {
                let c = host::credentials(CredentialArgs {
                    user: remote.user.as_deref(),
                    password_env: std::env::var("TEND_PASSWORD").ok(),
                    token_env: std::env::var("TEND_TOKEN").ok(),
                    token_file: remote.token_file.as_deref(),
                })?;
                *shared = Some(c.clone());
                c
            }
        },
    };
    h.client_cert = e
        .client_cert
        .clone()
        .or_else(|| remote.cert.clone().zip(remote.key.clone()));
    Ok(h)
}

/// The credentials `[host.NAME]` names.
fn login(name: &str, auth: &HostAuth) -> anyhow::Result<Credentials> {
    Ok(match auth {
        HostAuth::Token(t) => Credentials::Bearer(t.clone()),
        HostAuth::TokenFile(f) => host::credentials(CredentialArgs {
            token_file: Some(f),
            ..CredentialArgs::default()
        })?
        .with_context(|| format!("[host.{name}] token_file: no token"))?,
        HostAuth::TokenCommand(cmd) => Credentials::Bearer(
            run_secret(cmd).with_context(|| format!("[host.{name}] token_command"))?,
        ),
        HostAuth::User {
            user,
            password_command,
        } => {
            let password = match password_command {
                Some(cmd) => {
                    run_secret(cmd).with_context(|| format!("[host.{name}] password_command"))?
                }
                None => {
                    return host::credentials(CredentialArgs {
                        user: Some(user),
                        password_env: std::env::var("TEND_PASSWORD").ok(),
                        ..CredentialArgs::default()
                    })?
                    .context("no credentials");
                }
            };
            Credentials::Basic {
                user: user.clone(),
                password,
            }
        }
    })
}

/// Runs `cmd` and returns the first line it prints.
// The client, not the daemon: no reaper runs here, waiting for this child is
// this function's job.
#[allow(clippy::disallowed_methods)]
fn run_secret(cmd: &[String]) -> anyhow::Result<String> {
    let (program, args) = cmd.split_first().context("an empty command")?;
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {program:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({})", out.status);
    }
    let text =
        String::from_utf8(out.stdout).with_context(|| format!("{cmd:?} printed non-UTF-8"))?;
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        bail!("{cmd:?} printed nothing");
    }
    Ok(line.to_string())
}

/// What one host did: its output, or its error.
type Answer = Result<(Vec<u8>, bool), String>;

/// Runs `f` against every host in parallel; the answers in host order.
fn fan_out<T: Send>(
    targets: &[Target],
    f: impl Fn(&Client) -> Result<T, String> + Sync,
) -> Vec<Result<T, String>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = targets
            .iter()
            .map(|t| {
                let f = &f;
                s.spawn(move || match &t.client {
                    Ok(c) => f(c),
                    Err(e) => Err(e.clone()),
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("the request panicked".into()))
            })
            .collect()
    })
}

/// Runs the verb on every host; returns the hosts that failed.
fn run(
    targets: Vec<Target>,
    command: ClientCommand,
    timeout: Option<Duration>,
) -> anyhow::Result<Vec<String>> {
    let mut stdout = output::stdout();
    // Verbs whose `--json` is one document per host: one array for all.
    let one_document = match &command {
        ClientCommand::Pid { json, .. } | ClientCommand::Reload { json } => *json,
        ClientCommand::Logs(a) => a.files && a.json,
        _ => false,
    };
    let failed = match command {
        // A screen for one daemon: one host of the file, as a URL would be.
        ClientCommand::Top { interval, patterns } => match targets.as_slice() {
            [one] => {
                let client = one.client.clone().map_err(anyhow::Error::msg)?;
                let options = crate::top::Options {
                    at: one.name.clone(),
                    interval,
                    patterns,
                };
                if crate::top::run(client, options)? == ExitCode::SUCCESS {
                    Vec::new()
                } else {
                    vec![one.name.clone()]
                }
            }
            _ => anyhow::bail!(
                "tend top watches one daemon: -H names {} hosts",
                targets.len()
            ),
        },
        ClientCommand::Status {
            json,
            stats,
            no_stats,
            patterns,
        } => status(
            &targets,
            commands::stats_mode(json, stats, no_stats),
            &patterns,
            &mut stdout,
        )?,
        other if one_document => {
            let answers = fan_out(&targets, |c| verb(c, &other, timeout));
            json_array(&targets, answers, &mut stdout)?
        }
        // Merged: the lines, or their JSON (`--reopen` answers per host).
        ClientCommand::Logs(args) if !args.reopen && !args.files => {
            logs(&targets, args, &mut stdout)?
        }
        ClientCommand::Restart {
            one_at_a_time: true,
            wait_ready,
            ready_timeout,
            patterns,
        } => rolling(
            &targets,
            &patterns,
            wait_ready.then_some(ready_timeout),
            &mut stdout,
        )?,
        other => {
            let answers = fan_out(&targets, |c| verb(c, &other, timeout));
            print_answers(&targets, answers, &mut stdout)?
        }
    };
    stdout.flush()?;
    Ok(failed)
}

/// One host's run of a verb, into a buffer.
fn verb(client: &Client, command: &ClientCommand, timeout: Option<Duration>) -> Answer {
    let mut buf = Vec::new();
    let r = match command {
        ClientCommand::Start { patterns, no_deps } => {
            commands::start(client, patterns.clone(), *no_deps, &mut buf)
        }
        ClientCommand::Stop { patterns } => {
            commands::batch(client, Batch::Stop, patterns.clone(), &mut buf)
        }
        ClientCommand::Restart { patterns, .. } => {
            commands::batch(client, Batch::Restart, patterns.clone(), &mut buf)
        }
        ClientCommand::Signal { signal, patterns } => {
            commands::signal(client, *signal, patterns.clone(), &mut buf)
        }
        ClientCommand::Pid { name, json } => commands::pid(client, name.clone(), *json, &mut buf),
        ClientCommand::Add(args) => commands::add(client, args.clone(), &mut buf),
        ClientCommand::Remove { name } => commands::remove(client, name, &mut buf),
        ClientCommand::Scale { name, replicas } => {
            commands::scale(client, name, *replicas, &mut buf)
        }
        ClientCommand::Reload { json } => commands::reload(client, *json, &mut buf),
        ClientCommand::Shutdown => commands::shutdown(
            client,
            timeout.unwrap_or(commands::SHUTDOWN_TIMEOUT),
            &mut buf,
        ),
        ClientCommand::Logs(args) => commands::logs(client, args.clone(), &mut buf),
        ClientCommand::Status {
            json,
            stats,
            no_stats,
            patterns,
        } => commands::status(
            client,
            commands::stats_mode(*json, *stats, *no_stats),
            patterns,
            &mut buf,
        ),
        ClientCommand::Top { .. } => Err(anyhow::anyhow!("tend top watches one daemon")),
    };
    match r {
        Ok(code) => Ok((buf, code == ExitCode::SUCCESS)),
        Err(e) => Err(commands::describe(&e)),
    }
}

/// Each host's lines as `HOST: line`, its error as `HOST: error: ...` on
/// standard error.
fn print_answers(
    targets: &[Target],
    answers: Vec<Answer>,
    out: &mut dyn Write,
) -> anyhow::Result<Vec<String>> {
    let mut failed = Vec::new();
    for (t, a) in targets.iter().zip(answers) {
        match a {
            Ok((buf, ok)) => {
                for line in buf.split_inclusive(|b| *b == b'\n') {
                    write!(out, "{}: ", t.name)?;
                    out.write_all(line)?;
                    if !line.ends_with(b"\n") {
                        out.write_all(b"\n")?;
                    }
                }
                if !ok {
                    failed.push(t.name.clone());
                }
            }
            Err(e) => {
                out.flush()?;
                eprintln!("{}: error: {e}", t.name);
                failed.push(t.name.clone());
            }
        }
    }
    Ok(failed)
}

/// The JSON each host printed (one document, or one per line) as one
/// array: an array's elements and single objects each get `host`; a host's
/// error goes to standard error, as with `status --json`.
fn json_array(
    targets: &[Target],
    answers: Vec<Answer>,
    out: &mut dyn Write,
) -> anyhow::Result<Vec<String>> {
    use serde_json::Value;
    let mut all: Vec<Value> = Vec::new();
    let mut failed = Vec::new();
    let mut errors = Vec::new();
    for (t, a) in targets.iter().zip(answers) {
        let host = Value::String(t.name.clone());
        let (buf, ok) = match a {
            Ok(x) => x,
            Err(e) => {
                errors.push(format!("{}: error: {e}", t.name));
                failed.push(t.name.clone());
                continue;
            }
        };
        if !ok {
            failed.push(t.name.clone());
        }
        for line in buf
            .split(|b| *b == b'\n')
            .filter(|l| !l.trim_ascii().is_empty())
        {
            let items = match serde_json::from_slice::<Value>(line) {
                Ok(Value::Array(items)) => items,
                Ok(v) => vec![v],
                Err(_) => {
                    // Not JSON (a message): shown as the host's line.
                    errors.push(format!("{}: {}", t.name, String::from_utf8_lossy(line)));
                    continue;
                }
            };
            for item in items {
                all.push(match item {
                    Value::Object(mut m) => {
                        m.insert("host".into(), host.clone());
                        Value::Object(m)
                    }
                    v => serde_json::json!({ "host": host, "value": v }),
                });
            }
        }
    }
    serde_json::to_writer(&mut *out, &all)?;
    out.write_all(b"\n")?;
    out.flush()?;
    for e in errors {
        eprintln!("{e}");
    }
    Ok(failed)
}

/// `status` on every host: one table with a HOST column, or one JSON array
/// with `host` on each element.
fn status(
    targets: &[Target],
    json: Option<StatsMode>,
    patterns: &[String],
    out: &mut dyn Write,
) -> anyhow::Result<Vec<String>> {
    let path = commands::status_query(patterns, json);
    let answers = fan_out(targets, |c| {
        c.call_raw("GET", &path, NO_BODY)
            .map(|r| r.body)
            .map_err(|e| e.to_string())
    });
    let mut failed = Vec::new();
    let mut errors = Vec::new();
    let mut bodies = Vec::new();
    for (t, a) in targets.iter().zip(answers) {
        match a {
            Ok(body) => bodies.push((t.name.as_str(), body)),
            Err(e) => {
                errors.push(format!("{}: error: {e}", t.name));
                failed.push(t.name.clone());
            }
        }
    }
    if json.is_some() {
        let mut all = Vec::new();
        for (host, body) in &bodies {
            let list: Vec<serde_json::Map<String, serde_json::Value>> =
                match serde_json::from_slice(body) {
                    Ok(l) => l,
                    Err(e) => {
                        errors.push(format!("{host}: error: cannot decode its status: {e}"));
                        failed.push((*host).to_string());
                        continue;
                    }
                };
            let up = list
                .iter()
                .filter(|m| {
                    m.get("pid").is_some_and(|p| !p.is_null())
                        && m.get("state")
                            .and_then(|v| StateName::deserialize(v).ok())
                            .is_some_and(StateName::is_up)
                })
                .count();
            commands::stats_note(json, up, Some(host));
            for mut item in list {
                item.insert(
                    "host".into(),
                    serde_json::Value::String((*host).to_string()),
                );
                all.push(item);
            }
        }
        serde_json::to_writer(&mut *out, &all)?;
        out.write_all(b"\n")?;
    } else {
        let mut hosts: Vec<&str> = Vec::new();
        let mut rows: Vec<Row<'_>> = Vec::new();
        for (host, body) in &bodies {
            match serde_json::from_slice::<Vec<Row<'_>>>(body) {
                Ok(list) => {
                    hosts.extend(std::iter::repeat_n(*host, list.len()));
                    rows.extend(list);
                }
                Err(e) => {
                    errors.push(format!("{host}: error: cannot decode its status: {e}"));
                    failed.push((*host).to_string());
                }
            }
        }
        out.write_all(output::status_table_hosts(Some(&hosts), &rows).as_bytes())?;
    }
    out.flush()?;
    for e in errors {
        eprintln!("{e}");
    }
    Ok(failed)
}

/// `restart --one-at-a-time [--wait-ready]`: host after host, stopping at
/// the first where the restart fails or the processes do not become ready.
fn rolling(
    targets: &[Target],
    patterns: &[String],
    wait: Option<Duration>,
    out: &mut dyn Write,
) -> anyhow::Result<Vec<String>> {
    for (i, t) in targets.iter().enumerate() {
        let answer = match &t.client {
            Ok(c) => {
                let mut buf = Vec::new();
                // A restart answers once the processes are past `starting`:
                // one that never becomes ready keeps it from answering.
                let restarting = match wait {
                    Some(limit) => c.clone().with_io_timeout(Some(limit)),
                    None => c.clone(),
                };
                match commands::batch(&restarting, Batch::Restart, patterns.to_vec(), &mut buf) {
                    Ok(code) if code == ExitCode::SUCCESS => match wait {
                        Some(limit) => match wait_ready(c, patterns, limit) {
                            Ok(()) => {
                                let _ = writeln!(buf, "ready");
                                Ok((buf, true))
                            }
                            Err(e) => {
                                print_answers(std::slice::from_ref(t), vec![Ok((buf, true))], out)?;
                                buf = Vec::new();
                                Err(format!("{e:#}"))
                            }
                        },
                        None => Ok((buf, true)),
                    },
                    Ok(_) => Ok((buf, false)),
                    Err(e) => match (wait, e.downcast_ref::<crate::client::ClientError>()) {
                        (Some(limit), Some(crate::client::ClientError::Timeout { .. })) => {
                            Err(format!(
                                "the restart did not finish within {}: {} not ready",
                                tend_core::duration::format(limit),
                                patterns.join(", ")
                            ))
                        }
                        _ => Err(commands::describe(&e)),
                    },
                }
            }
            Err(e) => Err(e.clone()),
        };
        let failed = print_answers(std::slice::from_ref(t), vec![answer], out)?;
        if !failed.is_empty() {
            let rest: Vec<&str> = targets[i + 1..].iter().map(|t| t.name.as_str()).collect();
            out.flush()?;
            if rest.is_empty() {
                eprintln!("{}: the rolling restart stops here", t.name);
            } else {
                eprintln!(
                    "{}: the rolling restart stops here; not restarted: {}",
                    t.name,
                    rest.join(", ")
                );
            }
            return Ok(failed);
        }
        out.flush()?;
    }
    Ok(Vec::new())
}

/// Waits until every process `patterns` names is running and ready; fails
/// at once on one that gave up (fatal, exited, stopped), else after `limit`.
///
/// It watches the daemon's event stream (`GET /v1/events`, its snapshot
/// then each change) rather than asking for the status again and again: it
/// learns of readiness the moment the daemon does, and costs the daemon
/// nothing while nothing changes. A keep-alive every few seconds lets the
/// reader notice the deadline on a quiet stream.
pub fn wait_ready(client: &Client, patterns: &[String], limit: Duration) -> anyhow::Result<()> {
    // A pattern that matches nothing is the status call's clear error.
    let resp = client.call_raw("GET", &status_path(patterns), NO_BODY)?;
    let list: Vec<tend_core::ProcessStatus> =
        serde_json::from_slice(&resp.body).context("cannot decode the status answer")?;
    let mut seen: std::collections::BTreeMap<String, tend_core::ProcessStatus> =
        list.into_iter().map(|p| (p.name.to_string(), p)).collect();
    if verdict(&seen, limit, false)?.is_none() {
        return Ok(());
    }
    let mut path = format!(
        "/v1/events?snapshot=1&heartbeat={}",
        READY_HEARTBEAT.as_secs()
    );
    for p in patterns {
        path.push_str("&names=");
        tend_server::api::percent_encode_into(p, &mut path);
    }
    let deadline = Instant::now() + limit;
    let (tx, rx) = mpsc::sync_channel::<Result<tend_core::ProcessStatus, String>>(64);
    let client = client.clone();
    // The reader blocks on the socket; it ends at the next keep-alive after
    // the deadline (or when this side stops listening).
    std::thread::spawn(move || read_statuses(&client, &path, deadline, &tx));
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Ok(p)) => {
                let name = p.name.to_string();
                if seen.contains_key(&name) {
                    seen.insert(name, p);
                }
                if verdict(&seen, limit, false)?.is_none() {
                    return Ok(());
                }
            }
            Ok(Err(e)) => bail!(e),
            Err(_) => {
                verdict(&seen, limit, true)?;
                return Ok(());
            }
        }
    }
}

/// How often the daemon sends a keep-alive to a `--wait-ready` reader.
const READY_HEARTBEAT: Duration = Duration::from_secs(5);

/// Whether the processes are all ready (`None`), one is still on its way
/// (its name; with `late` that is the timeout's error), or one gave up.
fn verdict(
    seen: &std::collections::BTreeMap<String, tend_core::ProcessStatus>,
    limit: Duration,
    late: bool,
) -> anyhow::Result<Option<String>> {
    let mut waiting = None;
    for p in seen.values() {
        match p.state {
            StateName::Running if p.ready => {}
            StateName::Fatal | StateName::Exited | StateName::Stopped => {
                let why = p
                    .error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                bail!(
                    "{} did not become ready: it is {}{why}",
                    p.name,
                    p.state.as_str()
                );
            }
            s => waiting = Some((p.name.to_string(), s)),
        }
    }
    match waiting {
        Some((name, state)) if late => bail!(
            "{name} did not become ready within {} (it is {})",
            tend_core::duration::format(limit),
            state.as_str()
        ),
        Some((name, _)) => Ok(Some(name)),
        None => Ok(None),
    }
}

/// Reads the event stream at `path`, sending the status each event carries
/// (and each of the snapshot's), until `deadline` or until nobody listens.
fn read_statuses(
    client: &Client,
    path: &str,
    deadline: Instant,
    tx: &mpsc::SyncSender<Result<tend_core::ProcessStatus, String>>,
) {
    let body = match client.stream(path) {
        Ok(b) => b,
        Err(e) => {
            let _ = tx.send(Err(e.to_string()));
            return;
        }
    };
    let mut reader = BufReader::new(body);
    let mut line = String::new();
    let mut sse = crate::client::sse::Sse::default();
    while Instant::now() < deadline {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => {
                let _ = tx.send(Err("the daemon ended its event stream".into()));
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(format!("the event stream broke: {e}")));
                return;
            }
            Ok(_) => {}
        }
        let Some(data) = sse.line(&line) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&data) else {
            continue;
        };
        let mut statuses = Vec::new();
        if v["kind"] == "snapshot" {
            if let Some(list) = v["processes"].as_array() {
                statuses.extend(list.iter().cloned());
            }
        } else if v["status"].is_object() {
            statuses.push(v["status"].clone());
        }
        for s in statuses {
            let Ok(p) = serde_json::from_value::<tend_core::ProcessStatus>(s) else {
                continue;
            };
            if tx.send(Ok(p)).is_err() {
                return;
            }
        }
    }
}

/// A line (or a piece of one: a prompt without its newline) of a process.
struct Piece {
    name: String,
    stream: Stream,
    bytes: Vec<u8>,
    partial: bool,
    continues: bool,
}

/// Prints `piece` of `host` as `host/name | ...`.
fn print_piece(printer: &mut LinePrinter, buf: &mut Vec<u8>, host: &str, piece: &Piece) {
    let label = format!("{host}/{}", piece.name);
    printer.line(
        buf,
        &label,
        piece.stream,
        &piece.bytes,
        piece.partial,
        piece.continues,
    );
}

/// One line of a host's log stream, or the end of that stream.
enum Event {
    Line {
        host: usize,
        time: jiff::Timestamp,
        line: Box<Piece>,
    },
    /// A line as the API's object (`--json`), with `host` added.
    Json {
        host: usize,
        time: jiff::Timestamp,
        value: serde_json::Value,
    },
    Lagged(usize, u64),
    Failed(usize, String),
}

/// `logs [-f]` from every host, as `host/name | line`: without -f sorted by
/// time, with -f as the lines arrive (each written as soon as it is read,
/// whichever host it comes from). With `--json`: one array of the API's
/// objects with `host` on each, sorted by time; with -f one object a line,
/// as they arrive.
fn logs(targets: &[Target], args: LogsArgs, out: &mut dyn Write) -> anyhow::Result<Vec<String>> {
    // The names first, for the width of the prefix (and a clear error for a
    // pattern that matches nothing), as with one host.
    let path = status_path(&args.patterns);
    let names = fan_out(targets, |c| {
        let list: Vec<tend_core::ProcessStatus> =
            c.call("GET", &path, NO_BODY).map_err(|e| e.to_string())?;
        Ok(list
            .into_iter()
            .map(|p| p.name.to_string())
            .collect::<Vec<_>>())
    });
    let mut failed = Vec::new();
    let mut labels = Vec::new();
    let mut live = Vec::new();
    for (i, (t, n)) in targets.iter().zip(names).enumerate() {
        match n {
            Ok(names) => {
                labels.extend(names.iter().map(|n| format!("{}/{n}", t.name)));
                live.push(i);
            }
            Err(e) => {
                eprintln!("{}: error: {e}", t.name);
                failed.push(t.name.clone());
            }
        }
    }
    let mut printer = LinePrinter::new(Prefixer::new(
        labels.iter().map(String::as_str),
        std::io::stdout().is_terminal(),
    ));
    let query = LogsQuery {
        patterns: args.patterns.clone(),
        n: Some(args.lines),
        stream: if args.stderr {
            Some(Stream::Stderr)
        } else if args.stdout {
            Some(Stream::Stdout)
        } else {
            None
        },
        since: args.since.clone(),
        follow: args.follow,
    };
    let qpath = query.path();
    let (tx, rx) = mpsc::sync_channel::<Event>(1024);
    let mut lines: Vec<(jiff::Timestamp, usize, Box<Piece>)> = Vec::new();
    let mut jsons: Vec<(jiff::Timestamp, usize, serde_json::Value)> = Vec::new();
    let mut buf = Vec::with_capacity(64 * 1024);
    std::thread::scope(|s| -> anyhow::Result<()> {
        for &i in &live {
            let tx = tx.clone();
            let Ok(client) = &targets[i].client else {
                continue;
            };
            let qpath = &qpath;
            s.spawn(move || {
                let host = (args.json).then(|| targets[i].name.as_str());
                if let Err(e) = read_stream(client, qpath, i, args.follow, host, &tx) {
                    let _ = tx.send(Event::Failed(i, e));
                }
            });
        }
        drop(tx);
        let mut out_err = None;
        for ev in rx {
            match ev {
                Event::Line { host, time, line } => {
                    if args.follow {
                        print_piece(&mut printer, &mut buf, &targets[host].name, &line);
                    } else {
                        lines.push((time, host, line));
                    }
                }
                Event::Json { host, time, value } => {
                    if args.follow {
                        serde_json::to_writer(&mut buf, &value)?;
                        buf.push(b'\n');
                    } else {
                        jsons.push((time, host, value));
                    }
                }
                Event::Lagged(host, n) => {
                    eprintln!(
                        "{}: {n} batches of lines were skipped (reading too slowly)",
                        targets[host].name
                    );
                }
                Event::Failed(host, e) => {
                    let _ = out.write_all(&buf);
                    buf.clear();
                    let _ = out.flush();
                    eprintln!("{}: error: {e}", targets[host].name);
                    failed.push(targets[host].name.clone());
                }
            }
            if args.follow && !buf.is_empty() {
                if let Err(e) = out.write_all(&buf).and_then(|()| out.flush()) {
                    // Stdout is gone (a closed pipe): stop reading.
                    out_err = Some(e);
                    break;
                }
                buf.clear();
            }
        }
        if let Some(e) = out_err {
            // The readers block on their sockets; leave without them.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            return Err(e.into());
        }
        Ok(())
    })?;
    if args.json {
        if !args.follow {
            jsons.sort_by_key(|(time, ..)| *time);
            let skip = jsons.len().saturating_sub(args.lines);
            let all: Vec<serde_json::Value> =
                jsons.into_iter().skip(skip).map(|(_, _, v)| v).collect();
            serde_json::to_writer(&mut *out, &all)?;
            out.write_all(b"\n")?;
        }
        return Ok(failed);
    }
    // Stable: lines of one time keep their host's order.
    lines.sort_by_key(|(time, ..)| *time);
    let skip = lines.len().saturating_sub(args.lines);
    for (_, host, line) in lines.into_iter().skip(skip) {
        print_piece(&mut printer, &mut buf, &targets[host].name, &line);
    }
    printer.finish(&mut buf);
    out.write_all(&buf)?;
    Ok(failed)
}

fn read_stream(
    client: &Client,
    path: &str,
    host: usize,
    follow: bool,
    json: Option<&str>,
    tx: &mpsc::SyncSender<Event>,
) -> Result<(), String> {
    let body = client.stream(path).map_err(|e| e.to_string())?;
    let mut reader = BufReader::with_capacity(64 * 1024, body);
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("the log stream broke: {e}"))?;
        if n == 0 && follow {
            return Err("the log stream ended (did the daemon go away?)".into());
        }
        if n == 0 {
            return Ok(());
        }
        let ev = match serde_json::from_slice::<LogItem>(&line) {
            Ok(LogItem::Line(item)) if json.is_some() => {
                let mut value: serde_json::Value = serde_json::from_slice(&line)
                    .map_err(|e| format!("cannot decode a line of the log stream: {e}"))?;
                if let (Some(m), Some(name)) = (value.as_object_mut(), json) {
                    m.insert("host".into(), serde_json::Value::String(name.to_string()));
                }
                Event::Json {
                    host,
                    time: item.time,
                    value,
                }
            }
            Ok(LogItem::Line(item)) => Event::Line {
                host,
                time: item.time,
                line: Box::new(Piece {
                    bytes: item
                        .bytes()
                        .unwrap_or_else(|| item.line_b64.clone().unwrap_or_default().into_bytes()),
                    stream: item.stream,
                    partial: item.partial,
                    continues: item.continues,
                    name: item.name,
                }),
            },
            Ok(LogItem::Lagged { lagged }) => Event::Lagged(host, lagged),
            Err(e) => return Err(format!("cannot decode a line of the log stream: {e}")),
        };
        if tx.send(ev).is_err() {
            return Ok(());
        }
    }
}
