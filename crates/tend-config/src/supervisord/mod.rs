//! Supervisor's `supervisord.conf`, read as `supervisord` reads it, and
//! translated to tend's [`ProcessSpec`]s.
//!
//! Layers, each following Supervisor's code:
//! - [`ini`]: Python's `RawConfigParser` (comments, continuation lines,
//!   merged duplicate sections), with the file and line of every option;
//! - [`expand`]: Python's `%` formatting for `%(name)s` expansions;
//! - `values`: `supervisor/datatypes.py` (booleans, byte sizes, signals,
//!   `environment` pairs, log file names, addresses), with its messages;
//! - this module (`[include]`, unknown sections and options), `sections`
//!   (`[supervisord]`, the HTTP servers, `[supervisorctl]`) and `programs`
//!   (`[program:x]`, `[group:x]`, `[eventlistener:x]`): `supervisor/options.py`;
//! - `native`: the result as a `tend.toml` (`tend import`).
//!
//! Each process becomes a [`ProcessSpec`]: `startsecs` is `start_secs`;
//! `startretries` and Supervisor's +1 s per failed start are a linear
//! back-off giving up after `startretries + 1` failed starts;
//! `autorestart` true/false/unexpected is `always`/`never`/`on-failure`
//! against `exitcodes`; `stopsignal`/`stopwaitsecs` are `stop`; logs map to
//! [`tend_core::spec::LogSpec`] (AUTO files under `childlogdir`, NONE as null,
//! `/dev/stdout` as inherit); the environment is Supervisor's
//! `SUPERVISOR_*` variables, then `[supervisord] environment`, then the
//! program's. What a spec cannot hold is in [`ProcessDetails`].
//!
//! Where Supervisor stops at the first problem, this reads on and reports
//! every one. Where Supervisor silently ignores something (an unknown option
//! or section, a feature tend does not have), this adds a warning that names
//! it, at its `FILE:LINE`. `docs/migrating-from-supervisor.md` lists the
//! differences.

mod access;
pub mod expand;
pub mod ini;
mod native;
mod overrides;
mod programs;
mod sections;
mod translate;
mod values;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};
use tend_core::{Name, ProcessSpec};

use crate::diag::suggest;
use crate::{ConfigErrors, Diagnostic};
use expand::{ExpandError, Names, Val};
use ini::{Entry, Ini, Section};

pub use overrides::{OverrideError, Overrides};
pub use translate::into_config;
pub use values::LogLevel;

/// A `supervisord.conf`, read and translated.
#[derive(Debug, Clone, PartialEq)]
pub struct SupervisordConf {
    /// Absolute path of the main file.
    pub path: PathBuf,
    /// Every file read: the main file, then the `[include]`d ones in order.
    pub files: Vec<PathBuf>,
    /// `[program:x]` processes (one per `numprocs`), in file order.
    pub processes: Vec<ProcessSpec>,
    /// `[eventlistener:x]` processes, in file order.
    pub eventlisteners: Vec<EventListenerConf>,
    /// Every group: `[group:x]`, the group of each program outside them, and
    /// each event listener pool.
    pub groups: Vec<GroupConf>,
    /// Supervisor's view of each process (processes and event listeners) that
    /// a [`ProcessSpec`] does not hold, for the XML-RPC face.
    pub details: BTreeMap<Name, ProcessDetails>,
    /// `[unix_http_server]`.
    pub unix_http_server: Option<UnixHttpServer>,
    /// `[inet_http_server]`.
    pub inet_http_server: Option<InetHttpServer>,
    /// `[supervisord]`.
    pub supervisord: SupervisordSection,
    /// `[supervisorctl]` (its defaults when the section is absent).
    pub supervisorctl: SupervisorctlSection,
    /// What supervisord would accept but tend ignores or does differently.
    pub warnings: Vec<Diagnostic>,
    /// Problems that fail one program, not the file: supervisord runs the
    /// others, and so does tend (a command that does not parse: the program
    /// is there and cannot start; a second process of a name: it is left
    /// out). `tend check` reports them as errors.
    pub failures: Vec<Diagnostic>,
    /// `[include]` patterns that matched no file (supervisord logs each).
    pub unmatched_includes: Vec<String>,
    /// Whether the file has `[rpcinterface:supervisor]` (supervisord logs
    /// that it initialized it, once per HTTP server).
    pub rpcinterface: bool,
    /// tend's own `[tend:...]` access sections (supervisord ignores them).
    pub access: crate::AccessConfig,
}

/// One `[eventlistener:x]` process.
#[derive(Debug, Clone, PartialEq)]
pub struct EventListenerConf {
    /// The process (stdout is the protocol channel).
    pub spec: ProcessSpec,
    /// The pool (the `x` of `[eventlistener:x]`), also its group.
    pub pool_name: Name,
    /// Event type names, upper case, without duplicates, in file order.
    pub events: Vec<String>,
    /// Events queued for the pool before the oldest is dropped (at least 1).
    pub buffer_size: usize,
    /// The pool's priority (default -1: started first, stopped last).
    pub priority: i32,
    /// `result_handler` as written (only Supervisor's default is supported).
    pub result_handler: String,
}

/// What made a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    /// A `[group:x]` section.
    Group,
    /// The group of a `[program:x]` that no `[group:x]` lists.
    Program,
    /// An `[eventlistener:x]` pool.
    EventListenerPool,
}

/// A group of processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConf {
    /// Its name.
    pub name: Name,
    /// Supervisor's group priority (startup and shutdown order of groups).
    pub priority: i32,
    /// Its processes, in Supervisor's order for the group.
    pub members: Vec<Name>,
    /// Where it came from.
    pub kind: GroupKind,
}

/// `[unix_http_server]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixHttpServer {
    /// Absolute socket path.
    pub file: PathBuf,
    /// Socket mode (default 0o700).
    pub chmod: u32,
    /// `user` or `user:group` owning the socket, checked to exist.
    pub chown: Option<String>,
    /// HTTP Basic credentials, if required.
    pub auth: Option<Auth>,
}

/// `[inet_http_server]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InetHttpServer {
    /// Address to bind; `0.0.0.0` for `*:port`, `:port` or `port`.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// HTTP Basic credentials, if required.
    pub auth: Option<Auth>,
    /// `tls_cert`, `tls_key`, `client_ca`, `client_cert` (tend's own
    /// options; supervisord ignores them, and serves plain HTTP).
    pub tls: Option<crate::TlsFiles>,
    /// `insecure = true` (tend's own option): serve a non-loopback address
    /// without credentials.
    pub insecure: bool,
}

/// HTTP Basic credentials of a server section.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// `password=secret`.
    Plain {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// `password={SHA}hex`: the SHA-1 of the password, in lower-case hex.
    Sha1 {
        /// The user name.
        username: String,
        /// The hex digest as written after `{SHA}`.
        hex: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Passwords stay out of logs and test output.
        match self {
            Auth::Plain { username, .. } => write!(f, "Auth::Plain({username:?}, ***)"),
            Auth::Sha1 { username, .. } => write!(f, "Auth::Sha1({username:?}, ***)"),
        }
    }
}

impl Auth {
    /// The user name.
    pub fn username(&self) -> &str {
        match self {
            Auth::Plain { username, .. } | Auth::Sha1 { username, .. } => username,
        }
    }

    /// Whether `password` is right, as Supervisor checks it: equal to a plain
    /// password, or its SHA-1 hex digest equal to the stored one (case matters).
    pub fn check(&self, password: &str) -> bool {
        match self {
            Auth::Plain { password: p, .. } => same(p.as_bytes(), password.as_bytes()),
            Auth::Sha1 { hex, .. } => {
                let digest: String = Sha1::digest(password.as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                same(hex.as_bytes(), digest.as_bytes())
            }
        }
    }

    /// Whether `username` and `password` are both right.
    pub fn matches(&self, username: &str, password: &str) -> bool {
        // Both are checked whatever the first result, so timing tells nothing.
        let user_ok = same(self.username().as_bytes(), username.as_bytes());
        let password_ok = self.check(password);
        user_ok & password_ok
    }
}

/// Equality whose time does not depend on where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Where supervisord writes its own log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MainLog {
    /// This file (absolute).
    File(PathBuf),
    /// `logfile=syslog`.
    Syslog,
}

/// `[supervisord]`, every option with Supervisor's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisordSection {
    /// `logfile` (default `supervisord.log` in the working directory).
    pub logfile: MainLog,
    /// `logfile_maxbytes` (50 MB).
    pub logfile_maxbytes: u64,
    /// `logfile_backups` (10).
    pub logfile_backups: u32,
    /// `loglevel` (info).
    pub loglevel: LogLevel,
    /// `pidfile` (default `supervisord.pid` in the working directory).
    pub pidfile: PathBuf,
    /// `umask` (0o022).
    pub umask: u32,
    /// `nodaemon` (false: supervisord detaches).
    pub nodaemon: bool,
    /// `silent` (false).
    pub silent: bool,
    /// `minfds` (1024): the open-files limit to raise to.
    pub minfds: u64,
    /// `minprocs` (200).
    pub minprocs: u64,
    /// `nocleanup` (false).
    pub nocleanup: bool,
    /// `childlogdir` (the temporary directory): where AUTO logs go.
    pub childlogdir: PathBuf,
    /// `user`.
    pub user: Option<String>,
    /// `directory`: where supervisord changes to when it detaches.
    pub directory: Option<PathBuf>,
    /// `strip_ansi` (false).
    pub strip_ansi: bool,
    /// `environment`, given to every process under its own.
    pub environment: BTreeMap<String, String>,
    /// `identifier` (`supervisor`).
    pub identifier: String,
}

/// `[supervisorctl]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorctlSection {
    /// `serverurl` (`http://localhost:9001`); a `unix://` path is made absolute.
    pub serverurl: String,
    /// `username`.
    pub username: Option<String>,
    /// `password` (clear text).
    pub password: Option<String>,
    /// `prompt` (`supervisor`).
    pub prompt: String,
    /// `history_file`.
    pub history_file: Option<PathBuf>,
}

/// Supervisor's settings of one process that [`ProcessSpec`] does not hold
/// (the fields of `supervisor.getAllConfigInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessDetails {
    /// `program:x` or `eventlistener:x`.
    pub section: String,
    /// `command` after expansion, as one string.
    pub command: String,
    /// The priority of its group.
    pub group_priority: i32,
    /// Its own `priority` as Supervisor reads it (999 by default, also for
    /// event listeners, whose pool defaults to -1). [`ProcessSpec::priority`]
    /// is the one tend orders by.
    pub process_priority: i32,
    /// `startretries`.
    pub startretries: u32,
    /// `stopasgroup`.
    pub stopasgroup: bool,
    /// `killasgroup`.
    pub killasgroup: bool,
    /// `serverurl` when not AUTO.
    pub serverurl: Option<String>,
    /// The uid of `user`.
    pub uid: Option<u32>,
    /// `stdout_*`.
    pub stdout: ChannelConf,
    /// `stderr_*` (logfile `None` with `redirect_stderr`).
    pub stderr: ChannelConf,
    /// Which of the processes of a section with `numprocs` > 1 this is
    /// (`None` for the one process of any other section).
    pub numbered: Option<Numbered>,
}

/// One of the processes `numprocs` makes of a section (what `tend import`
/// needs to write them as one table with `replicas`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbered {
    /// Its `process_num`.
    pub process_num: i128,
    /// `numprocs_start`.
    pub start: i128,
    /// `numprocs`.
    pub numprocs: i64,
    /// Each conversion `%(process_num)` is written with in the section's
    /// options other than `process_name` (`d`, `02d`, `s`), in order, once.
    pub formats: Vec<String>,
}

/// The `stdout_*` or `stderr_*` options of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelConf {
    /// The log file; `None` for NONE (and syslog).
    pub logfile: Option<PathBuf>,
    /// The log file was `AUTO`.
    pub auto: bool,
    /// `*_logfile_maxbytes`.
    pub maxbytes: u64,
    /// `*_logfile_backups`.
    pub backups: u32,
    /// `*_capture_maxbytes`.
    pub capture_maxbytes: u64,
    /// `*_events_enabled`.
    pub events_enabled: bool,
    /// `*_syslog`.
    pub syslog: bool,
}

/// Reads the file at `path` and everything it includes.
pub fn load(path: &Path) -> Result<SupervisordConf, ConfigErrors> {
    load_with(path, &Overrides::default())
}

/// [`load`], with `supervisord`'s command-line options over the file's
/// `[supervisord]` section.
pub fn load_with(path: &Path, overrides: &Overrides) -> Result<SupervisordConf, ConfigErrors> {
    let mut budget = crate::read::Budget::new();
    match crate::read::read_bytes(path, &mut budget) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => parse_within(path, &text, budget, overrides),
            Err(e) => Err(ConfigErrors::single(
                path,
                format!(
                    "{} is not UTF-8 text (invalid byte at offset {})",
                    path.display(),
                    e.utf8_error().valid_up_to()
                ),
            )),
        },
        Err(e) => Err(ConfigErrors::single(
            path,
            format!("could not read config file {}: {e}", path.display()),
        )),
    }
}

/// Same as [`load`], from text; `[include]` globs are still read from disk,
/// relative to `path`'s directory. `%(ENV_X)s` comes from this process's
/// environment, relative paths from its working directory.
pub fn parse(path: &Path, text: &str) -> Result<SupervisordConf, ConfigErrors> {
    let left = crate::read::MAX_TOTAL_BYTES.saturating_sub(text.len() as u64);
    parse_within(
        path,
        text,
        crate::read::Budget::with(left),
        &Overrides::default(),
    )
}

/// [`parse`] with what the `[include]`d files may still take, and
/// `supervisord`'s command-line options over `[supervisord]`.
fn parse_within(
    path: &Path,
    text: &str,
    budget: crate::read::Budget,
    overrides: &Overrides,
) -> Result<SupervisordConf, ConfigErrors> {
    let cwd = std::env::current_dir().map_err(|e| {
        ConfigErrors::single(path, format!("cannot find the working directory: {e}"))
    })?;
    let host = Host {
        env: std::env::vars().collect(),
        cwd,
        node: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    parse_with_budget(path, text, &host, budget, overrides)
}

/// `tend import`: the equivalent native `tend.toml` (`docs/config.md`).
/// Settings with no native spelling yet (HTTP servers, event listeners,
/// Supervisor's linear back-off) are written as comments.
pub fn to_native_toml(conf: &SupervisordConf) -> String {
    native::to_native_toml(conf)
}

/// What Supervisor takes from the machine: its environment (`%(ENV_X)s`, `~`,
/// the temporary directory), working directory and node name.
#[derive(Debug, Clone)]
pub(super) struct Host {
    pub(super) env: BTreeMap<String, String>,
    pub(super) cwd: PathBuf,
    pub(super) node: String,
}

/// More processes than this from one section is a mistake, not a config.
const MAX_NUMPROCS: i64 = 10_000;

/// Options of `[program:x]` (and the base of `[eventlistener:x]`).
const PROGRAM_OPTIONS: &[&str] = &[
    "command",
    "process_name",
    "numprocs",
    "numprocs_start",
    "priority",
    "autostart",
    "autorestart",
    "startsecs",
    "startretries",
    "exitcodes",
    "stopsignal",
    "stopwaitsecs",
    "stopasgroup",
    "killasgroup",
    "user",
    "redirect_stderr",
    "stdout_logfile",
    "stdout_logfile_maxbytes",
    "stdout_logfile_backups",
    "stdout_capture_maxbytes",
    "stdout_events_enabled",
    "stdout_syslog",
    "stderr_logfile",
    "stderr_logfile_maxbytes",
    "stderr_logfile_backups",
    "stderr_capture_maxbytes",
    "stderr_events_enabled",
    "stderr_syslog",
    "environment",
    "directory",
    "umask",
    "serverurl",
];
const EVENTLISTENER_OPTIONS: &[&str] = &["events", "buffer_size", "result_handler"];
const FCGI_OPTIONS: &[&str] = &["socket", "socket_backlog", "socket_owner", "socket_mode"];
const SUPERVISORD_OPTIONS: &[&str] = &[
    "logfile",
    "logfile_maxbytes",
    "logfile_backups",
    "loglevel",
    "pidfile",
    "umask",
    "nodaemon",
    "silent",
    "minfds",
    "minprocs",
    "nocleanup",
    "childlogdir",
    "user",
    "directory",
    "strip_ansi",
    "environment",
    "identifier",
    "profile_options",
];
const UNIX_OPTIONS: &[&str] = &["file", "chmod", "chown", "username", "password"];
const INET_OPTIONS: &[&str] = &[
    "port",
    "username",
    "password",
    // tend's own (supervisord reads only the three above and ignores these).
    "tls_cert",
    "tls_key",
    "client_ca",
    "client_cert",
    "insecure",
];
const CTL_OPTIONS: &[&str] = &[
    "serverurl",
    "username",
    "password",
    "prompt",
    "history_file",
];
const GROUP_OPTIONS: &[&str] = &["programs", "priority"];
const INCLUDE_OPTIONS: &[&str] = &["files"];

/// Supervisor's event type names (`supervisor/events.py: EventTypes`).
const EVENT_TYPES: &[&str] = &[
    "EVENT",
    "PROCESS_STATE",
    "PROCESS_STATE_STOPPED",
    "PROCESS_STATE_EXITED",
    "PROCESS_STATE_STARTING",
    "PROCESS_STATE_STOPPING",
    "PROCESS_STATE_BACKOFF",
    "PROCESS_STATE_FATAL",
    "PROCESS_STATE_RUNNING",
    "PROCESS_STATE_UNKNOWN",
    "PROCESS_COMMUNICATION",
    "PROCESS_COMMUNICATION_STDOUT",
    "PROCESS_COMMUNICATION_STDERR",
    "PROCESS_LOG",
    "PROCESS_LOG_STDOUT",
    "PROCESS_LOG_STDERR",
    "REMOTE_COMMUNICATION",
    "SUPERVISOR_STATE_CHANGE",
    "SUPERVISOR_STATE_CHANGE_RUNNING",
    "SUPERVISOR_STATE_CHANGE_STOPPING",
    "TICK",
    "TICK_5",
    "TICK_60",
    "TICK_3600",
    "PROCESS_GROUP",
    "PROCESS_GROUP_ADDED",
    "PROCESS_GROUP_REMOVED",
];

const DEFAULT_RESULT_HANDLER: &str = "supervisor.dispatchers:default_handler";
const MAIN_RPC_FACTORY: &str = "supervisor.rpcinterface:make_main_rpcinterface";

/// Paths that are the supervisor's own output streams rather than files.
const STDOUT_PATHS: &[&str] = &["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"];
const STDERR_PATHS: &[&str] = &["/dev/stderr", "/dev/fd/2", "/proc/self/fd/2"];

/// Expansion names of one section or process, on top of the shared ones.
type Top = BTreeMap<String, Val>;

/// The reading state: the machine, the diagnostics, and the expansion names
/// shared by every section. The merged [`Ini`] is kept apart so that its
/// entries can be borrowed while diagnostics are recorded.
struct St<'h> {
    host: &'h Host,
    /// Problems, by file index and line; rendered at the end.
    errors: Vec<(usize, usize, String)>,
    warnings: Vec<(usize, usize, String)>,
    /// Problems that fail one program and leave the rest of the file to run.
    failures: Vec<(usize, usize, String)>,
    /// `ENV_X` for supervisord's environment, then `[supervisord] environment`.
    env_names: Top,
    /// `{"here": dir}` of each file, by file index.
    heres: Vec<Top>,
    /// `[include]` patterns that matched nothing.
    unmatched: Vec<String>,
    /// What the `[include]`d files may still take.
    budget: crate::read::Budget,
}

/// An option's text after expansion, with the entry it came from.
struct Got<'e> {
    value: String,
    entry: &'e Entry,
}

impl St<'_> {
    fn error(&mut self, file: usize, line: usize, message: impl Into<String>) {
        self.errors.push((file, line, message.into()));
    }

    fn warn(&mut self, file: usize, line: usize, message: impl Into<String>) {
        self.warnings.push((file, line, message.into()));
    }

    fn fail(&mut self, file: usize, line: usize, message: impl Into<String>) {
        self.failures.push((file, line, message.into()));
    }

    fn error_at(&mut self, e: &Entry, message: impl Into<String>) {
        self.error(e.file, e.line, message);
    }

    fn warn_at(&mut self, e: &Entry, message: impl Into<String>) {
        self.warn(e.file, e.line, message);
    }

    /// `text` (from `entry`) expanded with `top`, the entry's file's
    /// `here`, and the shared names; `None` (error recorded) on failure.
    /// `what` names the option in Supervisor's message.
    fn expand(&mut self, text: &str, entry: &Entry, top: &Top, what: &str) -> Option<String> {
        let mut layer = top.clone();
        if let Some(here) = self.heres.get(entry.file) {
            layer.extend(here.clone());
        }
        let names = Names::new(&self.env_names, &layer);
        match expand::expand(text, &names) {
            Ok(v) => Some(v),
            Err(e) => {
                let mut message = e.message(text, what, &names);
                if let ExpandError::Unknown(key) = &e
                    && let Some(s) = suggest(key, names.sorted())
                {
                    message.push_str(&format!(" (did you mean {s:?}?)"));
                }
                self.error_at(entry, message);
                None
            }
        }
    }

    /// Option `key` of `section` (or `[DEFAULT]`), expanded; `None` when
    /// absent or when its expansion failed.
    fn get<'e>(
        &mut self,
        ini: &'e Ini,
        section: &'e Section,
        key: &str,
        top: &Top,
    ) -> Option<Got<'e>> {
        let entry = ini.get(section, key)?;
        let what = format!("{}.{}", section.name, key);
        let value = self.expand(&entry.value, entry, top, &what)?;
        Some(Got { value, entry })
    }

    /// [`St::get`] then `conv`; a conversion error is recorded at the option.
    fn typed<T>(
        &mut self,
        ini: &Ini,
        section: &Section,
        key: &str,
        top: &Top,
        conv: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let got = self.get(ini, section, key, top)?;
        match conv(&got.value) {
            Ok(v) => Some(v),
            Err(why) => {
                self.error_at(got.entry, format!("{key} in [{}]: {why}", section.name));
                None
            }
        }
    }

    /// A boolean option.
    fn boolean(
        &mut self,
        ini: &Ini,
        section: &Section,
        key: &str,
        top: &Top,
        default: bool,
    ) -> bool {
        self.typed(ini, section, key, top, values::boolean)
            .unwrap_or(default)
    }

    /// A count or number of seconds that Supervisor also takes below zero,
    /// where it acts as zero: clamped, with a warning.
    fn count(&mut self, ini: &Ini, section: &Section, key: &str, top: &Top, default: u32) -> u32 {
        let Some(n) = self.typed(ini, section, key, top, values::integer) else {
            return default;
        };
        if n < 0
            && let Some(e) = ini.get(section, key)
        {
            self.warn_at(
                e,
                format!("{key} = {n} in [{}] is taken as 0", section.name),
            );
        }
        u32::try_from(n.max(0)).unwrap_or(u32::MAX)
    }
}

/// [`parse`] with the machine given, for tests.
#[cfg(test)]
pub(super) fn parse_with(
    path: &Path,
    text: &str,
    host: &Host,
) -> Result<SupervisordConf, ConfigErrors> {
    parse_with_budget(
        path,
        text,
        host,
        crate::read::Budget::new(),
        &Overrides::default(),
    )
}

/// [`parse_with`] within `budget` for the `[include]`d files, with
/// `supervisord`'s command-line options.
fn parse_with_budget(
    path: &Path,
    text: &str,
    host: &Host,
    budget: crate::read::Budget,
    overrides: &Overrides,
) -> Result<SupervisordConf, ConfigErrors> {
    let abs = values::normalize_path(&path.to_string_lossy(), &host.cwd, &BTreeMap::new());
    let main_dir = abs
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    let mut st = St {
        host,
        errors: Vec::new(),
        warnings: Vec::new(),
        failures: Vec::new(),
        env_names: host
            .env
            .iter()
            .map(|(k, v)| (format!("ENV_{k}"), Val::Str(v.clone())))
            .collect(),
        heres: vec![here(&main_dir)],
        unmatched: Vec::new(),
        budget,
    };
    let mut ini = Ini::new();
    for e in ini.read(path.to_path_buf(), text) {
        st.error(e.file, e.line, e.message);
    }
    let mut files = vec![abs.clone()];
    read_includes(&mut ini, &mut st, &main_dir, &mut files);
    let ini = ini;

    let Some(section) = ini.section("supervisord") else {
        st.error(0, 1, ".ini file does not include supervisord section");
        return Err(finish(&ini, st).0);
    };
    let mut supervisord = sections::supervisord(&ini, &mut st, section);
    overrides.apply(&mut supervisord);
    let (unix_http_server, inet_http_server, auto_url) = sections::servers(&ini, &mut st);
    let supervisorctl = sections::supervisorctl(&ini, &mut st);
    check_sections(&ini, &mut st);
    let access = access::read(&ini, &mut st);
    let made = programs::read_all(&ini, &mut st, &supervisord, auto_url.as_deref());
    let rpcinterface = ini.section("rpcinterface:supervisor").is_some();
    let unmatched_includes = std::mem::take(&mut st.unmatched);

    let (errors, warnings, failures) = finish(&ini, st);
    if !errors.errors.is_empty() {
        return Err(errors);
    }
    Ok(SupervisordConf {
        path: abs,
        files,
        processes: made.processes,
        eventlisteners: made.eventlisteners,
        groups: made.groups,
        details: made.details,
        unix_http_server,
        inet_http_server,
        supervisord,
        supervisorctl,
        warnings,
        failures,
        unmatched_includes,
        rpcinterface,
        access,
    })
}

fn here(dir: &Path) -> Top {
    BTreeMap::from([(
        "here".to_string(),
        Val::Str(dir.to_string_lossy().into_owned()),
    )])
}

/// `[include] files`: space-separated globs relative to the main file's
/// directory, each read in sorted order. Included files cannot include more.
fn read_includes(ini: &mut Ini, st: &mut St<'_>, main_dir: &Path, files: &mut Vec<PathBuf>) {
    let Some(section) = ini.section("include").cloned() else {
        return;
    };
    let Some(entry) = ini.get(&section, "files").cloned() else {
        st.error(
            section.file,
            section.line,
            ".ini file has [include] section, but no files setting",
        );
        return;
    };
    let top = BTreeMap::from([("host_node_name".to_string(), Val::Str(st.host.node.clone()))]);
    let Some(value) = st.expand(&entry.value, &entry, &top, "include.files") else {
        return;
    };
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        // Python's glob skips dot files unless the pattern names the dot.
        require_literal_leading_dot: true,
    };
    for pattern in values::split_whitespace(&value) {
        let full = main_dir.join(pattern);
        let full_str = full.to_string_lossy().into_owned();
        let mut matches: Vec<PathBuf> = match glob::glob_with(&full_str, options) {
            Ok(paths) => paths.filter_map(Result::ok).collect(),
            Err(e) => {
                st.error_at(
                    &entry,
                    format!("invalid pattern {full_str:?} in [include] files: {e}"),
                );
                continue;
            }
        };
        if matches.is_empty() {
            st.warn_at(
                &entry,
                format!("No file matches via include \"{full_str}\""),
            );
            st.unmatched.push(full_str);
            continue;
        }
        matches.sort_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
        for file in matches {
            let text = match crate::read::read_bytes(&file, &mut st.budget) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => text,
                    Err(_) => {
                        st.error_at(
                            &entry,
                            format!("included file {} is not UTF-8 text", file.display()),
                        );
                        continue;
                    }
                },
                // Not a regular file, too large: supervisord would hang or
                // grow without end; a clear error instead of a skip.
                Err(
                    e @ (crate::read::ReadError::NotAFile(_)
                    | crate::read::ReadError::TooLarge
                    | crate::read::ReadError::BudgetSpent),
                ) => {
                    st.error_at(
                        &entry,
                        format!("cannot read included file {}: {e}", file.display()),
                    );
                    continue;
                }
                Err(e) => {
                    // Python's RawConfigParser.read skips files it cannot open.
                    st.warn_at(
                        &entry,
                        format!(
                            "cannot read included file {} (supervisord skips it too): {e}",
                            file.display()
                        ),
                    );
                    continue;
                }
            };
            let index = ini.files.len();
            let dir = file
                .parent()
                .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
            st.heres.push(here(&dir));
            for e in ini.read(file.clone(), &text) {
                st.error(e.file, e.line, e.message);
            }
            files.push(file);
            if let Some(nested) = ini
                .section("include")
                .and_then(|s| s.entries.iter().find(|e| e.file == index))
            {
                st.warn_at(
                    nested,
                    "[include] in an included file is not read (supervisord does not support nested includes either)",
                );
            }
        }
    }
}

/// Sections and options supervisord ignores: warnings, so that a typo does
/// not pass unseen.
fn check_sections(ini: &Ini, st: &mut St<'_>) {
    const KNOWN_SECTIONS: &[&str] = &[
        "supervisord",
        "supervisorctl",
        "include",
        "unix_http_server",
        "inet_http_server",
        "rpcinterface:supervisor",
        "program:NAME",
        "group:NAME",
        "eventlistener:NAME",
        "fcgi-program:NAME",
        "ctlplugin:NAME",
        "tend:role:NAME",
        "tend:user:NAME",
        "tend:token:NAME",
        "tend:unix:group:NAME",
    ];
    let program_like: Vec<&str> = PROGRAM_OPTIONS
        .iter()
        .chain(EVENTLISTENER_OPTIONS)
        .copied()
        .collect();
    for section in &ini.sections {
        let name = section.name.as_str();
        let known: Option<Vec<&str>> = match name {
            "supervisord" => Some(SUPERVISORD_OPTIONS.to_vec()),
            "supervisorctl" => Some(CTL_OPTIONS.to_vec()),
            "include" => Some(INCLUDE_OPTIONS.to_vec()),
            n if n.starts_with("unix_http_server") => Some(UNIX_OPTIONS.to_vec()),
            n if n.starts_with("inet_http_server") => Some(INET_OPTIONS.to_vec()),
            n if n.starts_with("program:") => Some(PROGRAM_OPTIONS.to_vec()),
            n if n.starts_with("eventlistener:") => Some(program_like.clone()),
            n if n.starts_with("group:") => Some(GROUP_OPTIONS.to_vec()),
            n if n.starts_with("fcgi-program:") => {
                st.warn(
                    section.file,
                    section.line,
                    format!("[{name}] is not supported by tend: its processes are not run"),
                );
                None
            }
            // tend's own sections: read (and checked) by `access`.
            n if access::is_tend(n) => None,
            n if n.starts_with("rpcinterface:") => {
                rpcinterface(ini, st, section);
                None
            }
            n if n.starts_with("ctlplugin:") => {
                st.warn(
                    section.file,
                    section.line,
                    format!("[{name}] (a supervisorctl plugin) is not supported by tend: ignored"),
                );
                None
            }
            _ => {
                let hint = suggest(name, KNOWN_SECTIONS.iter().copied())
                    .map(|s| format!(" (did you mean [{s}]?)"))
                    .unwrap_or_default();
                st.warn(
                    section.file,
                    section.line,
                    format!(
                        "unknown section [{name}]: supervisord ignores it, and so does tend{hint}"
                    ),
                );
                None
            }
        };
        let Some(known) = known else { continue };
        for entry in &section.entries {
            if !known.contains(&entry.key.as_str()) {
                let hint = suggest(&entry.key, known.iter().copied())
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                st.warn_at(
                    entry,
                    format!(
                        "unknown option {:?} in [{name}]: supervisord ignores it, and so does tend{hint}",
                        entry.key
                    ),
                );
            }
        }
    }
    // [DEFAULT] options reach every section; only a name no section knows is suspect.
    let everything: Vec<&str> = [
        PROGRAM_OPTIONS,
        EVENTLISTENER_OPTIONS,
        FCGI_OPTIONS,
        SUPERVISORD_OPTIONS,
        UNIX_OPTIONS,
        INET_OPTIONS,
        CTL_OPTIONS,
        GROUP_OPTIONS,
        INCLUDE_OPTIONS,
    ]
    .concat();
    for entry in &ini.defaults {
        if !everything.contains(&entry.key.as_str()) {
            let hint = suggest(&entry.key, everything.iter().copied())
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            st.warn_at(
                entry,
                format!(
                    "unknown option {:?} in [DEFAULT]: no section uses it{hint}",
                    entry.key
                ),
            );
        }
    }
}

/// `[rpcinterface:x]`: tend serves Supervisor's own interface whatever the
/// file says; other interfaces are Python plugins it cannot load.
fn rpcinterface(ini: &Ini, st: &mut St<'_>, section: &Section) {
    let factory = ini.get(section, "supervisor.rpcinterface_factory");
    if section.name == "rpcinterface:supervisor" {
        if let Some(e) = factory
            && e.value != MAIN_RPC_FACTORY
        {
            st.warn_at(
                e,
                format!(
                    "tend always serves Supervisor's own XML-RPC interface; the factory {:?} is not loaded",
                    e.value
                ),
            );
        }
        return;
    }
    st.warn(
        section.file,
        section.line,
        format!(
            "[{}] is not supported by tend (it cannot load Python RPC plugins): ignored",
            section.name
        ),
    );
}

/// Errors, warnings and failures as diagnostics, each list in file order,
/// without repeats (a section with `numprocs` reports a problem once, not
/// once per process).
fn finish(ini: &Ini, st: St<'_>) -> (ConfigErrors, Vec<Diagnostic>, Vec<Diagnostic>) {
    let render = |mut list: Vec<(usize, usize, String)>| -> Vec<Diagnostic> {
        list.sort_by_key(|(file, line, _)| (*file, *line));
        let mut seen = std::collections::HashSet::new();
        list.into_iter()
            .filter(|d| seen.insert(d.clone()))
            .map(|(file, line, message)| Diagnostic {
                file: ini.files.get(file).cloned().unwrap_or_default(),
                line,
                col: 1,
                message,
            })
            .collect()
    };
    (
        ConfigErrors {
            errors: render(st.errors),
        },
        render(st.warnings),
        render(st.failures),
    )
}
