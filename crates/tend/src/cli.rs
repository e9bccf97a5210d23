//! The command line, as clap derive types.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// The help's opening: what tend is.
const ABOUT: &str = "tend: a process supervisor. It starts your programs, keeps them running \
(restarts with back-off, readiness and health checks, dependencies), keeps their logs, and is \
driven from this command line, a JSON API, a web UI or supervisorctl.";

/// tend: a process supervisor.
#[derive(Debug, Parser)]
#[command(
    name = "tend",
    version,
    about = ABOUT,
    after_help = "Start with `tend check` and `tend up`; see `tend help COMMAND` for each command.",
    max_term_width = 100
)]
pub struct Cli {
    /// The config file.
    #[arg(
        short = 'c',
        long = "config",
        global = true,
        default_value = "tend.toml",
        value_name = "FILE"
    )]
    pub config: PathBuf,

    /// The daemon's socket (default: `[daemon] socket` of the config file).
    /// With `up`, the daemon listens there instead.
    #[arg(long, global = true, env = "TEND_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// How client verbs reach the daemon, and who they say they are.
    #[command(flatten)]
    pub remote: RemoteArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The daemon a client verb talks to (default: the config's Unix socket)
/// and the credentials it sends.
#[derive(Debug, clap::Args)]
pub struct RemoteArgs {
    /// The daemon to talk to: `https://HOST:PORT`, `http://127.0.0.1:PORT`
    /// (plain HTTP to this machine only, unless --insecure) or
    /// `unix:///PATH`; or hosts of the hosts file, in parallel: `web1,web2`,
    /// `@GROUP`, `all`.
    #[arg(
        short = 'H',
        long,
        global = true,
        env = "TEND_HOST",
        value_name = "URL|HOSTS"
    )]
    pub host: Option<String>,
    /// The hosts file that -H names come from (default:
    /// `~/.config/tend/hosts.toml`).
    #[arg(long, global = true, env = "TEND_HOSTS", value_name = "FILE")]
    pub hosts: Option<PathBuf>,
    /// Give up on a host after this long: to connect, to finish TLS, to
    /// answer a query (default 5s with -H names; actions then wait as long as
    /// the processes take unless this is given). With `shutdown`: how long to
    /// wait for the daemon to exit (default 2m).
    #[arg(long, global = true, value_parser = parse_duration, value_name = "DUR")]
    pub timeout: Option<std::time::Duration>,
    /// Check the daemon's certificate against the CA certificates in FILE
    /// (PEM) instead of the system's.
    #[arg(long, global = true, env = "TEND_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Accept exactly the daemon certificate whose SHA-256 this is
    /// (`sha256:` and 64 hex digits, as `openssl x509 -fingerprint -sha256`
    /// prints it), whoever signed it.
    #[arg(
        long,
        global = true,
        env = "TEND_PIN",
        value_name = "sha256:HEX",
        conflicts_with = "ca"
    )]
    pub pin: Option<String>,
    /// Allow plain HTTP to a daemon on another machine (everything crosses
    /// the network in clear text, passwords too).
    #[arg(long, global = true)]
    pub insecure: bool,
    /// Log in as USER; the password comes from TEND_PASSWORD or is asked
    /// for on the terminal (`USER:PASSWORD` works, but shows in the process
    /// list).
    #[arg(long, global = true, env = "TEND_USER", value_name = "USER")]
    pub user: Option<String>,
    /// Send the bearer token in FILE (else TEND_TOKEN, when set).
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// A client certificate (PEM) to present, for mutual TLS (with --key).
    #[arg(
        long,
        global = true,
        env = "TEND_CERT",
        value_name = "FILE",
        requires = "key"
    )]
    pub cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(
        long,
        global = true,
        env = "TEND_KEY",
        value_name = "FILE",
        requires = "cert"
    )]
    pub key: Option<PathBuf>,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the supervisor daemon for the config file (in the foreground unless -d).
    Up {
        /// Detach: return once the daemon accepts connections.
        #[arg(short = 'd', long)]
        detach: bool,
        /// Act as an init (PID 1) even when not PID 1: ignore the signals
        /// tend does not handle; orphans are reaped either way.
        #[arg(long)]
        init: bool,
    },
    /// Check the config file and report every problem (and every warning).
    Check {
        /// Print the result as JSON: `{"file", "ok", "processes", "errors", "warnings"}`.
        #[arg(long)]
        json: bool,
        /// Instead, tell what this identity may do under the config, right
        /// by right: an HTTP user (`alice`), `token:NAME`, `uid:N`,
        /// `unix-user:NAME` or `anonymous`.
        #[arg(long, value_name = "WHO")]
        who: Option<String>,
    },
    /// Print an argon2id hash of a password, for `[access.user.NAME]
    /// password` (the password is read from the terminal, or from the first
    /// line of standard input).
    Passwd {
        /// Make a new random bearer token instead: print it and its hash,
        /// for `[access.token.NAME] hash`.
        #[arg(long)]
        token: bool,
    },
    /// Print a supervisord.conf as the equivalent native tend.toml.
    Import {
        /// The supervisord.conf to translate.
        #[arg(value_name = "SUPERVISORD_CONF")]
        file: PathBuf,
    },
    /// Print a shell completion script (load it with, e.g., `source <(tend completions bash)`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write a man page per command (tend.1, tend-status.1, ...) into DIR
    /// (e.g. `sudo tend man /usr/local/share/man/man1`).
    Man {
        /// The directory to write the pages into (created if missing).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Run as supervisord, with supervisord's command line (`-c FILE`, `-n`,
    /// ...; `tend supervisord -h` lists them). Also what a `supervisord`
    /// link to tend runs.
    #[command(disable_help_flag = true)]
    Supervisord {
        /// supervisord's options.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<std::ffi::OsString>,
    },
    /// Supervisor's pidproxy: run COMMAND and pass the signals it gets to
    /// the pid in PIDFILE. Also what a `pidproxy` link to tend runs.
    #[command(disable_help_flag = true)]
    Pidproxy {
        /// `PIDFILE COMMAND [ARGS...]`.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<std::ffi::OsString>,
    },
    /// Make `supervisord` and `pidproxy` in DIR links to this tend, so that
    /// scripts and units that run them run tend.
    InstallSupervisorLinks {
        /// Where to put the links (e.g. /usr/local/bin).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Replace files of those names that are not links to tend.
        #[arg(long)]
        force: bool,
    },
    /// The verbs that talk to a running daemon.
    #[command(flatten)]
    Client(ClientCommand),
}

/// The verbs that talk to a running daemon.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Show processes (all, or those matching the patterns).
    Status {
        /// Print the JSON array the API returns. It has what each process
        /// that is up uses (`stats`) when it lists at most 256 of them.
        #[arg(long)]
        json: bool,
        /// With `--json`: read what each process uses however many are
        /// listed (~35 µs of the kernel's per process: 0.4 s for 10,000).
        #[arg(long, requires = "json", conflicts_with = "no_stats")]
        stats: bool,
        /// With `--json`: leave what each process uses out.
        #[arg(long, requires = "json")]
        no_stats: bool,
        /// Names, globs (`web-*`), `GROUP:*` or `all`.
        #[arg(value_name = "PATTERN")]
        patterns: Vec<String>,
    },
    /// Start processes (and the stopped processes they depend on, first).
    Start {
        /// Do not start their stopped dependencies: wait for them instead.
        #[arg(long)]
        no_deps: bool,
        /// Names, globs (`web-*`), `GROUP:*` or `all`.
        #[arg(value_name = "PATTERN", required = true)]
        patterns: Vec<String>,
    },
    /// Stop processes (they stay stopped until started).
    Stop {
        /// Names, globs (`web-*`), `GROUP:*` or `all`.
        #[arg(value_name = "PATTERN", required = true)]
        patterns: Vec<String>,
    },
    /// Stop, then start processes.
    Restart {
        /// With several hosts: one host after the other, not all at once;
        /// stop at the first host where it fails.
        #[arg(long)]
        one_at_a_time: bool,
        /// Wait until the restarted processes are ready (running, and their
        /// readiness check passed) before the next host; stop at the first
        /// host where they do not become ready.
        #[arg(long, requires = "one_at_a_time")]
        wait_ready: bool,
        /// How long --wait-ready waits on each host.
        #[arg(long, default_value = "1m", value_parser = parse_duration, value_name = "DUR")]
        ready_timeout: std::time::Duration,
        /// Names, globs (`web-*`), `GROUP:*` or `all`.
        #[arg(value_name = "PATTERN", required = true)]
        patterns: Vec<String>,
    },
    /// Send a signal to processes.
    Signal {
        /// `HUP`, `SIGHUP`, `hup` or a number.
        #[arg(value_name = "SIG", value_parser = parse_signal)]
        signal: tend_core::Signal,
        /// Names, globs (`web-*`), `GROUP:*` or `all`.
        #[arg(value_name = "PATTERN", required = true)]
        patterns: Vec<String>,
    },
    /// Show the output of processes: the last lines, merged in time order.
    Logs(LogsArgs),
    /// A live view in the terminal: the processes (state, uptime, CPU,
    /// memory...), their logs as they come, the dependency tree; keys to
    /// start, stop, restart and signal them (`h` inside lists the keys).
    Top {
        /// Read CPU and memory this often while something runs (1s at the
        /// least); `0`: only when an event or a key asks for it.
        #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DUR")]
        interval: std::time::Duration,
        /// Only these processes: names, globs (`web-*`), `GROUP:*` (default:
        /// every process; one added later that matches shows up too).
        #[arg(value_name = "PATTERN")]
        patterns: Vec<String>,
    },
    /// Print the daemon's pid, or a process's pid.
    Pid {
        /// Print `{"pid": N}` (`{"name", "pid"}` for a process; `pid` is null when it is not running).
        #[arg(long)]
        json: bool,
        /// A process name.
        name: Option<String>,
    },
    /// Add a process to the running daemon (with --save, to its config file too).
    Add(Box<AddArgs>),
    /// Read the config file again and apply it: add new processes, remove
    /// dropped ones, replace changed ones; unchanged ones are not touched.
    Reload {
        /// Print the daemon's answer as JSON: `{"added", "changed", "removed"}`.
        #[arg(long)]
        json: bool,
    },
    /// Stop a process and remove it from the running daemon.
    Remove {
        /// The process name.
        name: String,
    },
    /// Run N copies of a replicated process (`replicas` in its table), until
    /// the next reload: adds NAME-i or stops and removes the last ones.
    Scale {
        /// The replicated process (`web` for web-0, web-1, ...).
        name: String,
        /// How many copies to run.
        replicas: u32,
    },
    /// Stop every process and the daemon (waits --timeout, 2m by default,
    /// for it to exit).
    Shutdown,
}

/// `tend logs`.
#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    /// Keep printing new lines as they come, until interrupted.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// How many of the last lines to print (over all the processes together).
    #[arg(short = 'n', long = "lines", default_value_t = 20, value_name = "N")]
    pub lines: usize,
    /// Only standard error.
    #[arg(long, conflicts_with = "stdout")]
    pub stderr: bool,
    /// Only standard output.
    #[arg(long)]
    pub stdout: bool,
    /// Only lines since then: a duration ago (`10m`, `1h`) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<String>,
    /// Reopen every log file (after logrotate moved them) instead of printing.
    #[arg(long, conflicts_with_all = ["follow", "lines", "stderr", "stdout", "since", "patterns", "files"])]
    pub reopen: bool,
    /// Prefix each line with the time the daemon read it (RFC 3339).
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Print where each process's output is written instead of the lines.
    #[arg(long, conflicts_with_all = ["follow", "lines", "stderr", "stdout", "since", "timestamps"])]
    pub files: bool,
    /// Print each line as the API's JSON object (one per line).
    #[arg(long)]
    pub json: bool,
    /// Names, globs (`web-*`), `GROUP:*` or `all` (default: every process).
    #[arg(value_name = "PATTERN")]
    pub patterns: Vec<String>,
}

/// `tend add`.
#[derive(Debug, Clone, clap::Args)]
pub struct AddArgs {
    /// The process name.
    pub name: String,
    /// Working directory (default: the daemon's).
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// An environment variable (repeatable).
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Run as this user.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Run with this primary Unix group (as `group` in the config file).
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// The process group it belongs to, for `GROUP:*` patterns (default: its own name).
    #[arg(long, value_name = "GROUP")]
    pub in_group: Option<String>,
    /// Lower starts first and stops last.
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    pub priority: Option<i32>,
    /// When an exit leads to a restart.
    #[arg(long, value_enum, value_name = "POLICY")]
    pub restart: Option<RestartArg>,
    /// Do not start it now.
    #[arg(long)]
    pub no_autostart: bool,
    /// First signal sent to stop it.
    #[arg(long, value_name = "SIG", value_parser = parse_signal)]
    pub stop_signal: Option<tend_core::Signal>,
    /// Wait this long after the stop signal, then SIGKILL.
    #[arg(long, value_parser = parse_duration, value_name = "DUR")]
    pub stop_timeout: Option<std::time::Duration>,
    /// Also write it into the config file (a tend.toml), keeping the file's
    /// comments and layout. Without it, the process lasts until the daemon
    /// restarts, and `tend status` shows it as added.
    #[arg(long)]
    pub save: bool,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Restart policies as typed on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RestartArg {
    /// After every exit.
    Always,
    /// After a failure.
    OnFailure,
    /// Never.
    Never,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    tend_core::duration::parse(s).map_err(|e| e.to_string())
}

/// Checks a `--since` value here for a usage error; the daemon reads it again.
fn parse_since(s: &str) -> Result<String, String> {
    if s.parse::<jiff::Timestamp>().is_ok() || tend_core::duration::parse(s).is_ok() {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is neither a duration (10m, 1h) nor an RFC 3339 time (2026-01-02T10:00:00Z)"
        ))
    }
}

fn parse_signal(s: &str) -> Result<tend_core::Signal, String> {
    s.parse()
        .map_err(|e: tend_core::signal::UnknownSignal| e.to_string())
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected K=V, found {s:?}")),
    }
}
