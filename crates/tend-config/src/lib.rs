//! # tend-config: tend's two config formats, as a library
//!
//! tend reads its native `tend.toml` and Supervisor's `supervisord.conf`, and
//! both become the same [`Config`]: the daemon's settings, a
//! [`tend_core::ProcessSpec`] per process, and the processes in their groups
//! ([`Declared`]). Nothing downstream needs to know which format a process
//! came from; where the formats mean different daemon behaviour (what SIGHUP
//! does, whether Supervisor's event listeners run), the reader says so in
//! [`DaemonConfig`].
//!
//! Each reader is staged like ripgrep's arguments: a raw layer that only
//! parses syntax (TOML with spans for every key; an INI reader that follows
//! Python's `RawConfigParser`), then validation that collects *every*
//! problem as a [`Diagnostic`] at its `FILE:LINE:COL`, with a did-you-mean
//! where one fits. A supervisord.conf may also produce warnings (options
//! tend does not act on), returned beside the config in [`Loaded`].
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("tend.toml");
//! std::fs::write(&path, "[process.web]\ncommand = [\"python3\", \"-m\", \"http.server\"]\n")?;
//! let loaded = tend_config::load_any(&path)?;
//! assert_eq!(loaded.config.processes[0].name.as_str(), "web");
//! assert!(loaded.warnings.is_empty());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod access;
mod check;
mod declared;
mod diag;
pub mod http;
pub mod native;
pub mod platform;
pub mod read;
mod socket;
pub mod supervisord;
pub mod telemetry;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tend_core::ProcessSpec;

pub use access::AccessConfig;
pub use check::check_spec;
pub use declared::{Declared, GroupConfig, ProcessConfig, ReloadPlan};
pub use diag::{ConfigErrors, Diagnostic};
pub use http::{ClientCert, HttpConfig, HttpLimits, TlsFiles};
pub use native::hosts;
pub use native::{DEFAULT_LOG_DIR, DEFAULT_SOCKET, DEFAULT_SOCKET_MODE, check_log_file};
pub use native::{MAX_REPLICAS, REPLICA_VAR, replica_copy, replica_from_template};
pub use platform::{CgroupMode, HealthListen, PlatformConfig};
pub use socket::{default_socket, fallback_socket, runtime_dir};
pub use supervisord::{Auth, EventListenerConf, LogLevel};
pub use telemetry::TelemetryConfig;

/// A loaded, validated config.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Absolute path of the config file.
    pub path: PathBuf,
    /// The `[daemon]` section (or what a supervisord.conf says of the daemon).
    pub daemon: DaemonConfig,
    /// Processes in file order (event listeners last). Each spec is shared
    /// with `declared` (and, in the daemon, with the supervisor), not copied.
    pub processes: Vec<Arc<ProcessSpec>>,
    /// The same processes in their groups, with their group priorities and
    /// (from a supervisord.conf) what Supervisor's face reports of them.
    pub declared: Declared,
    /// `[eventlistener:x]` pools (their processes are in `processes` too).
    pub eventlisteners: Vec<supervisord::EventListenerConf>,
    /// Which format the file is in.
    pub format: Format,
    /// The triggers of `[task.NAME]` tables (their processes are in
    /// `processes` too, with `restart = "never"`).
    pub tasks: Vec<TaskConf>,
    /// `supervisord`'s command-line options this was read with; a reload
    /// reads the file again with them, as supervisord does.
    pub overrides: supervisord::Overrides,
    /// Who may do what (`[access]`; `[tend:...]` sections of a
    /// supervisord.conf). Read again with the rest of the file on a reload.
    pub access: AccessConfig,
    /// Where the daemon exports its own logs, metrics and spans
    /// (`[telemetry]`; a supervisord.conf has none: the `OTEL_*`
    /// environment variables serve it).
    pub telemetry: TelemetryConfig,
}

pub use tend_core::model::task::TaskConf;

/// The two config formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `tend.toml`.
    Native,
    /// Supervisor's `supervisord.conf`.
    Supervisord,
}

/// A TCP listener (`[inet_http_server]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InetListen {
    /// Address to bind (`0.0.0.0` for every interface).
    pub host: String,
    /// Port.
    pub port: u16,
    /// HTTP Basic credentials required, if any.
    pub auth: Option<supervisord::Auth>,
    /// Serve TLS with these files.
    pub tls: Option<TlsFiles>,
    /// The config says `insecure = true`: a listener on an address other
    /// machines reach may go without TLS or without credentials (with a
    /// warning at every start).
    pub insecure: bool,
}

/// The `[daemon]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// The variables of `[daemon] env` over those of `[daemon] env_file`,
    /// given to every process beneath its own (`env_file`, then `env`, win).
    /// Empty for supervisord.conf.
    pub env: std::collections::BTreeMap<String, String>,
    /// The time zone that `[task.NAME] cron` schedules are read in
    /// (`[daemon] timezone`), unless the task names its own. `None`: the
    /// system's (`TZ`, `/etc/localtime`).
    pub timezone: Option<jiff::tz::TimeZone>,
    /// Absolute socket path. Default: `tend.sock` beside the config file (or,
    /// when that folder is read-only, in [`runtime_dir`]: see
    /// [`default_socket`]); relative paths are relative to the config file's
    /// directory.
    pub socket: PathBuf,
    /// Socket file mode, default 0o600 (`socket_mode = "0660"` in TOML, an octal string or an integer).
    pub socket_mode: u32,
    /// Absolute directory of the processes' log files (relative log paths
    /// resolve under it). Default: `logs` beside the config file.
    pub log_dir: PathBuf,
    /// How tend writes its own log.
    pub log_format: LogFormat,
    /// Absolute path of tend's own log (appended to); stderr when `None`.
    pub log_file: Option<PathBuf>,
    /// `user[:group]` to own the socket (`[unix_http_server] chown`; applied as root).
    pub socket_owner: Option<String>,
    /// The group the socket file is given (`[daemon] socket_group`), so that
    /// with `socket_mode = "0660"` its members can connect. Checked to exist.
    pub socket_group: Option<String>,
    /// HTTP Basic credentials required on the socket (`[unix_http_server]`).
    pub unix_auth: Option<supervisord::Auth>,
    /// A TCP listener (`[inet_http_server]`).
    pub inet: Option<InetListen>,
    /// What `getIdentification` answers (`[supervisord] identifier`).
    pub identifier: String,
    /// Raise the open-files limit to at least this (`[supervisord] minfds`).
    pub minfds: Option<u64>,
    /// In the foreground, also write tend's own log to the terminal when it
    /// goes to `log_file` (supervisord with `nodaemon` and not `silent`):
    /// to stdout in supervisord's format, as supervisord does, else to stderr.
    pub echo_log: bool,
    /// In the foreground, print every process's output as `name | line` on
    /// stdout (`[daemon] echo_output`, on by default). Off for a
    /// supervisord.conf: its programs' output goes where the file sends it
    /// (`/dev/stdout` included), and nothing is printed twice.
    pub echo_output: bool,
    /// Fork into the background at start and return, as supervisord does
    /// unless `nodaemon=true` (or `-n`). The `supervisord` command honours
    /// it; `tend up` stays in the foreground unless given `-d`.
    pub daemonize: bool,
    /// Where the daemon changes to when it daemonizes (`[supervisord]
    /// directory`, `supervisord -d`).
    pub directory: Option<PathBuf>,
    /// The user the daemon switches to at start, before it opens anything
    /// (`[supervisord] user`, `supervisord -u`): a name or a uid.
    pub user: Option<String>,
    /// What supervisord says in its log about the file as it starts, in its
    /// words and order (written by a [`LogFormat::Supervisord`] log).
    pub start_notes: StartNotes,
    /// Write the daemon's pid here (`[supervisord] pidfile`).
    pub pidfile: Option<PathBuf>,
    /// Level of tend's own log when `RUST_LOG` does not set one (`log_level`,
    /// `[supervisord] loglevel`); `info` when `None`.
    pub log_level: Option<LogLevel>,
    /// Rotate `log_file` when a write would take it past this many bytes;
    /// 0 never rotates (`log_max_size`, `[supervisord] logfile_maxbytes`).
    pub log_max_size: u64,
    /// Rotated files of `log_file` kept (`log_backups`,
    /// `[supervisord] logfile_backups`).
    pub log_backups: u32,
    /// The daemon's umask once detached (`[supervisord] umask`, which
    /// supervisord applies when it daemonizes); children inherit it.
    pub umask: Option<u32>,
    /// Raise the processes limit (`RLIMIT_NPROC`) to at least this
    /// (`[supervisord] minprocs`).
    pub minprocs: Option<u64>,
    /// What SIGHUP does (`[daemon] on_hup`; a supervisord.conf restarts, as
    /// supervisord does).
    pub on_hup: OnHup,
    /// Whether the daemon runs Supervisor's event-listener hub, so that an
    /// `update` can add a pool (on for a supervisord.conf).
    pub event_listeners: bool,
    /// Cgroups, forwarded signals and the health listener (`[daemon]
    /// cgroup`, `forward_signals`, `[http] health`; the defaults for a
    /// supervisord.conf).
    pub platform: PlatformConfig,
    /// What `GET /` shows (Supervisor's status page for a supervisord.conf,
    /// so bookmarks keep working; the dashboard otherwise).
    pub web_root: WebRoot,
    /// TCP listeners of tend.toml's `[http]` and every listener's limits.
    pub http: HttpConfig,
    /// The other daemons the dashboard shows (tend.toml's `[[peer]]`), in
    /// file order; none for a supervisord.conf.
    pub peers: Vec<hosts::HostEntry>,
}

/// What `GET /` shows on the daemon's HTTP listeners.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WebRoot {
    /// A redirect to tend's dashboard at `/ui/`.
    #[default]
    Dashboard,
    /// Supervisor's status page (`/index.html`).
    SupervisorStatus,
}

/// What supervisord logs about its config file as it starts, in its words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartNotes {
    /// Logged as the log opens: `No file matches via include "..."`
    /// (warnings), `Included extra file "..." during parsing` (infos).
    pub parse: Vec<(LogLevel, String)>,
    /// Logged as the HTTP servers open: `RPC interface 'supervisor'
    /// initialized` and `Server 'unix_http_server' running without any HTTP
    /// authentication checking`, per server.
    pub servers: Vec<(LogLevel, String)>,
}

/// What the daemon does on SIGHUP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnHup {
    /// Apply the changes of the config file, leave the rest running (`tend reload`).
    #[default]
    Reload,
    /// Stop everything, read the config file again and start over
    /// (supervisord's SIGHUP and `supervisorctl reload`).
    Restart,
}

/// What `getIdentification` answers for a native config.
pub const DEFAULT_IDENTIFIER: &str = "tend";

/// The format of tend's own log (`[daemon] log_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
    /// supervisord's lines, word for word: `2026-12-03 10:15:01,234 INFO
    /// spawned: 'x' with pid 123`, the same sentences for the same events at
    /// the same levels (CRIT ERRO WARN INFO DEBG TRAC BLAT), and at `debug`
    /// the processes' output. What a supervisord.conf gets.
    Supervisord,
}

/// A config and what its reader had to say without refusing it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The config.
    pub config: Config,
    /// Warnings (`FILE:LINE:COL: warning: ...` when printed); none for native files.
    pub warnings: Vec<Diagnostic>,
    /// Problems that fail one program and not the file, as supervisord
    /// fails only that program (`FILE:LINE:COL: error: ...` when printed;
    /// the config runs without it, or with it unable to start).
    pub failures: Vec<Diagnostic>,
}

/// Whether `path` is a supervisord.conf: its name ends in `.conf` or `.ini`,
/// or (unless it ends in `.toml`) its first line that is not blank or a
/// comment is an INI section header that is not one of tend's
/// (`[daemon]`, `[http]`, `[process.x]`, `[group.x]`, `[task.x]`, `[access...]`,
/// `[telemetry]`).
pub fn is_supervisord(path: &Path, text: Option<&str>) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some("conf" | "ini") => return true,
        Some("toml") => return false,
        _ => {}
    }
    let Some(text) = text else { return false };
    let Some(first) = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with(';') && !l.starts_with('#'))
    else {
        return false;
    };
    first.starts_with('[')
        && !first.starts_with("[[")
        && first.contains(']')
        && !first.starts_with("[process.")
        && !first.starts_with("[group.")
        && !first.starts_with("[task.")
        && !first.starts_with("[access")
        && !first.starts_with("[telemetry]")
        && !first.starts_with("[daemon]")
        && !first.starts_with("[http]")
}

/// Reads either format (see [`is_supervisord`]).
///
/// The file is read once to tell its format, within the bounds of [`read`]
/// (a regular file of at most [`read::MAX_FILE_BYTES`]); one that is not is
/// refused here with its reason.
pub fn load_any(path: &Path) -> Result<Loaded, ConfigErrors> {
    load_any_with(path, &supervisord::Overrides::default())
}

/// [`load_any`], with `supervisord`'s command-line options over a
/// supervisord.conf's `[supervisord]` (a native file takes none).
pub fn load_any_with(
    path: &Path,
    overrides: &supervisord::Overrides,
) -> Result<Loaded, ConfigErrors> {
    let text = match read::read_text(path, &mut read::Budget::new()) {
        Ok(t) => Some(t),
        Err(e @ (read::ReadError::NotAFile(_) | read::ReadError::TooLarge)) => {
            return Err(ConfigErrors::single(
                path,
                format!("cannot read config file {}: {e}", path.display()),
            ));
        }
        Err(_) => None,
    };
    if is_supervisord(path, text.as_deref()) {
        let conf = supervisord::load_with(path, overrides)?;
        let warnings = conf.warnings.clone();
        let failures = conf.failures.clone();
        let mut config = supervisord::into_config(conf);
        config.overrides = overrides.clone();
        Ok(Loaded {
            config,
            warnings,
            failures,
        })
    } else {
        Ok(Loaded {
            config: native::load(path)?,
            warnings: Vec::new(),
            failures: Vec::new(),
        })
    }
}

/// A warning as `tend check` prints it.
pub fn render_warning(d: &Diagnostic) -> String {
    format!(
        "{}:{}:{}: warning: {}",
        d.file.display(),
        d.line,
        d.col,
        d.message
    )
}

/// A failure of one program as `tend check` prints it.
pub fn render_failure(d: &Diagnostic) -> String {
    format!(
        "{}:{}:{}: error: {}",
        d.file.display(),
        d.line,
        d.col,
        d.message
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_told_by_name_then_content() {
        let p = Path::new;
        assert!(is_supervisord(p("/etc/supervisord.conf"), None));
        assert!(is_supervisord(p("a.ini"), Some("[process.x]")));
        assert!(!is_supervisord(p("tend.toml"), Some("[supervisord]")));
        assert!(is_supervisord(p("config"), Some("; hi\n\n[supervisord]\n")));
        assert!(is_supervisord(
            p("config"),
            Some("[program:x]\ncommand=true")
        ));
        assert!(!is_supervisord(
            p("config"),
            Some("[process.web]\ncommand=\"x\"")
        ));
        assert!(!is_supervisord(p("config"), Some("# c\n[daemon]\n")));
        assert!(!is_supervisord(p("config"), Some("[http]\nlisten = []\n")));
        assert!(!is_supervisord(p("config"), Some("[group.a]\n")));
        assert!(!is_supervisord(
            p("config"),
            Some("[http]\nhealth = \":8080\"\n")
        ));
        assert!(!is_supervisord(p("config"), Some("x = 1\n[supervisord]")));
        assert!(!is_supervisord(p("config"), None));
    }
}
