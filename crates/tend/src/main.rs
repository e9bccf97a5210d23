//! `tend`: the command-line client and the daemon of the tend process supervisor.

mod access_cmds;
mod cli;
mod client;
mod commands;
use tend_config as config;
mod daemon;
mod fleet;
mod links;
mod output;
mod pidproxy;
mod socket;
mod supervisord;
mod top;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, ClientCommand, Command};
use crate::client::Client;
use crate::commands::Batch;

/// Exit status for a config file with errors (also clap's for usage errors).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    // Run as `supervisord` or `pidproxy` (a link to tend, as busybox's
    // applets), or as `tend supervisord ARGS` / `tend pidproxy ARGS`: those
    // take the original command line, not tend's.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let argv0 = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = Path::new(&argv0)
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    match base.as_str() {
        "supervisord" => return supervisord::main(&argv0, &args[1..]),
        "pidproxy" => return pidproxy::main(&argv0, &args[1..]),
        _ => {}
    }
    match args.get(1).and_then(|a| a.to_str()) {
        Some("supervisord") => {
            return supervisord::main(&format!("{argv0} supervisord"), &args[2..]);
        }
        Some("pidproxy") => return pidproxy::main(&format!("{argv0} pidproxy"), &args[2..]),
        _ => {}
    }
    let Cli {
        config,
        socket,
        remote,
        command,
    } = Cli::parse();
    let command = match command {
        Command::Up { detach, init } => return up(&config, socket.as_deref(), detach, init),
        Command::Check { who, json } => return check(&config, who.as_deref(), json),
        Command::Completions { shell } => return completions(shell),
        Command::Man { dir } => return report(man(&dir)),
        Command::Passwd { token } => return report(access_cmds::passwd(token)),
        Command::Import { file } => return import(&file),
        Command::Supervisord { args } => {
            return supervisord::main(&format!("{argv0} supervisord"), &args);
        }
        Command::Pidproxy { args } => return pidproxy::main(&format!("{argv0} pidproxy"), &args),
        Command::InstallSupervisorLinks { dir, force } => return links::install(&dir, force),
        Command::Client(c) => c,
    };
    if let Some(selection) = remote.host.as_deref().filter(|h| fleet::is_selection(h)) {
        return fleet::main(&remote, selection, command);
    }
    let mut out = output::stdout();
    let timeout = remote.timeout;
    let result = host(&remote, socket.as_deref(), &config)
        .and_then(Client::for_host)
        .map(|client| match (timeout, &command) {
            // With shutdown, the timeout is how long to wait for the exit.
            (Some(t), c) if !matches!(c, ClientCommand::Shutdown) => {
                client.with_timeouts(t, Some(t))
            }
            _ => client,
        })
        .and_then(|client| client_verb(&client, command, timeout, &mut out))
        .and_then(|code| {
            out.flush()?;
            Ok(code)
        });
    match result {
        Ok(code) => code,
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = out.flush();
            eprintln!("error: {}", commands::describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The daemon the client verbs talk to: `--host`, or the Unix socket
/// (`--socket`, `TEND_SOCKET`, the config's); with the credentials the
/// command line and the environment give.
fn host(
    remote: &cli::RemoteArgs,
    socket: Option<&Path>,
    config: &Path,
) -> anyhow::Result<client::Host> {
    use client::host::{self, CredentialArgs, Trust};
    let mut host = match &remote.host {
        Some(url) => client::Host::unix("").with_url(host::parse_url(url, remote.insecure)?),
        None => client::Host::unix(socket::discover(socket, config)?),
    };
    let ca = match (&remote.ca, &remote.pin) {
        (Some(file), _) => Trust::Ca(file.clone()),
        (None, Some(pin)) => Trust::Pin(host::parse_pin(pin)?),
        (None, None) => Trust::System,
    };
    let credentials = host::credentials(CredentialArgs {
        user: remote.user.as_deref(),
        password_env: std::env::var("TEND_PASSWORD").ok(),
        token_env: std::env::var("TEND_TOKEN").ok(),
        token_file: remote.token_file.as_deref(),
    })?;
    host.ca = ca;
    host.credentials = credentials;
    host.client_cert = remote.cert.clone().zip(remote.key.clone());
    Ok(host)
}

fn client_verb(
    client: &Client,
    command: ClientCommand,
    timeout: Option<std::time::Duration>,
    out: &mut output::Out,
) -> anyhow::Result<ExitCode> {
    match command {
        ClientCommand::Status {
            json,
            stats,
            no_stats,
            patterns,
        } => commands::status(
            client,
            commands::stats_mode(json, stats, no_stats),
            &patterns,
            out,
        ),
        ClientCommand::Start { patterns, no_deps } => {
            commands::start(client, patterns, no_deps, out)
        }
        ClientCommand::Stop { patterns } => commands::batch(client, Batch::Stop, patterns, out),
        ClientCommand::Restart {
            patterns,
            wait_ready,
            ready_timeout,
            ..
        } => {
            let code = commands::batch(client, Batch::Restart, patterns.clone(), out)?;
            if wait_ready && code == ExitCode::SUCCESS {
                fleet::wait_ready(client, &patterns, ready_timeout)?;
                writeln!(out, "ready")?;
            }
            Ok(code)
        }
        ClientCommand::Signal { signal, patterns } => {
            commands::signal(client, signal, patterns, out)
        }
        ClientCommand::Logs(args) => commands::logs(client, args, out),
        ClientCommand::Top { interval, patterns } => top::run(
            client.clone(),
            top::Options {
                at: client.at(),
                interval,
                patterns,
            },
        ),
        ClientCommand::Pid { name, json } => commands::pid(client, name, json, out),
        ClientCommand::Add(args) => commands::add(client, args, out),
        ClientCommand::Remove { name } => commands::remove(client, &name, out),
        ClientCommand::Scale { name, replicas } => commands::scale(client, &name, replicas, out),
        ClientCommand::Reload { json } => commands::reload(client, json, out),
        ClientCommand::Shutdown => {
            commands::shutdown(client, timeout.unwrap_or(commands::SHUTDOWN_TIMEOUT), out)
        }
    }
}

/// Loads either format, printing the reader's warnings and the failures
/// of single programs (the rest of the file runs, as under supervisord).
fn load(path: &Path) -> Result<(config::Config, usize), ExitCode> {
    match config::load_any(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{}", config::render_warning(w));
            }
            for f in &loaded.failures {
                eprintln!("{}", config::render_failure(f));
            }
            Ok((loaded.config, loaded.failures.len()))
        }
        Err(errors) => {
            eprintln!("{errors}");
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

fn import(path: &Path) -> ExitCode {
    match config::supervisord::load(path) {
        Ok(conf) => {
            for w in &conf.warnings {
                eprintln!("{}", config::render_warning(w));
            }
            print!("{}", config::supervisord::to_native_toml(&conf));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn up(path: &Path, socket: Option<&Path>, detach: bool, init: bool) -> ExitCode {
    // First, while tend has one thread: systemd's variables leave the
    // environment, so that no child inherits them.
    let up = daemon::Up::new(init);
    let mut config = match load(path) {
        Ok((c, _)) => c,
        Err(code) => return code,
    };
    // Clients look at --socket and TEND_SOCKET first; the daemon listens where they look.
    if let Some(socket) = socket {
        match std::path::absolute(socket) {
            Ok(p) => config.daemon.socket = p,
            Err(e) => {
                eprintln!("error: bad --socket {}: {e}", socket.display());
                return ExitCode::FAILURE;
            }
        }
    }
    if detach {
        daemon::detach(config, &daemon::Entry::Tend, up)
    } else {
        daemon::foreground(config, &daemon::Entry::Tend, up)
    }
}

/// `tend check`: every problem; a program that cannot run (which the
/// daemon would run the file without) makes it fail too. With `--who`,
/// what that caller may do instead.
fn check(path: &Path, who: Option<&str>, json: bool) -> ExitCode {
    if json && who.is_none() {
        return check_json(path);
    }
    match (load(path), who) {
        (Ok((c, _)), Some(who)) => report(access_cmds::who(&c, who)),
        (Ok((c, 0)), None) => {
            println!(
                "{}: OK ({})",
                path.display(),
                plural(c.processes.len(), "process")
            );
            ExitCode::SUCCESS
        }
        (Ok((c, failed)), None) => {
            println!(
                "{}: {} run; {failed} program problem(s) above (supervisord and tend run the rest)",
                path.display(),
                plural(c.processes.len(), "process")
            );
            ExitCode::FAILURE
        }
        (Err(code), _) => code,
    }
}

/// `tend check --json`: the same verdict as one JSON object on stdout.
fn check_json(path: &Path) -> ExitCode {
    let (ok, processes, errors, warnings) = match config::load_any(path) {
        Ok(loaded) => (
            true,
            loaded.config.processes.len(),
            Vec::new(),
            loaded.warnings.iter().map(config::render_warning).collect(),
        ),
        Err(errors) => (
            false,
            0,
            errors
                .to_string()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>(),
            Vec::new(),
        ),
    };
    let v = serde_json::json!({
        "file": path.display().to_string(),
        "ok": ok,
        "processes": processes,
        "errors": errors,
        "warnings": warnings,
    });
    println!("{v}");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CONFIG)
    }
}

/// "1 process", "2 processes".
pub(crate) fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else if word.ends_with('s') {
        format!("{n} {word}es")
    } else {
        format!("{n} {word}s")
    }
}

/// `tend completions SHELL`
fn completions(shell: clap_complete::Shell) -> ExitCode {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "tend", &mut std::io::stdout());
    ExitCode::SUCCESS
}

/// `tend man DIR`: tend.1 and a page per command (tend-status.1, ...).
fn man(dir: &Path) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let cmd = Cli::command();
    clap_mangen::generate_to(cmd, dir)
        .with_context(|| format!("cannot write into {}", dir.display()))?;
    println!("man pages written to {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// The exit code of a local verb, its error printed.
fn report(r: anyhow::Result<ExitCode>) -> ExitCode {
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
