//! One entry point for both config formats: `tend up -c FILE`, `tend check`
//! and the daemon's reloads read a native `tend.toml` or a `supervisord.conf`
//! through [`load_any`], which decides by the name and the content, and get
//! the same [`Config`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tend_core::{Name, ProcessSpec};

use tend_server::compat::{ChannelInfo, Declared, GroupConfig, ProcessConfig};

use super::supervisord::{self, ChannelConf, MainLog, SupervisordConf};
use super::{Config, ConfigErrors, DaemonConfig, Diagnostic, Format, InetListen, LogFormat};

/// A config and what its reader had to say without refusing it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The config.
    pub config: Config,
    /// Warnings (`FILE:LINE:COL: warning: ...` when printed); none for native files.
    pub warnings: Vec<Diagnostic>,
}

/// Whether `path` is a supervisord.conf: its name ends in `.conf` or `.ini`,
/// or (unless it ends in `.toml`) its first line that is not blank or a
/// comment is an INI section header that is not one of tend's
/// (`[daemon]`, `[process.x]`, `[group.x]`).
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
        && !first.starts_with("[daemon]")
}

/// Reads either format (see [`is_supervisord`]).
pub fn load_any(path: &Path) -> Result<Loaded, ConfigErrors> {
    let text = std::fs::read_to_string(path).ok();
    if is_supervisord(path, text.as_deref()) {
        let conf = supervisord::load(path)?;
        let warnings = conf.warnings.clone();
        Ok(Loaded {
            config: from_supervisord(conf),
            warnings,
        })
    } else {
        Ok(Loaded {
            config: super::load(path)?,
            warnings: Vec::new(),
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

fn channel(c: &ChannelConf) -> ChannelInfo {
    ChannelInfo {
        logfile: c.logfile.clone(),
        maxbytes: c.maxbytes,
        backups: c.backups,
        capture_maxbytes: c.capture_maxbytes,
        events_enabled: c.events_enabled,
        syslog: c.syslog,
    }
}

/// What the daemon runs for a supervisord.conf.
pub fn from_supervisord(conf: SupervisordConf) -> Config {
    let dir = conf
        .path
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    let mut processes: Vec<Arc<ProcessSpec>> = conf.processes.into_iter().map(Arc::new).collect();
    processes.extend(conf.eventlisteners.iter().map(|l| Arc::new(l.spec.clone())));
    let mut by_name: HashMap<&Name, &Arc<ProcessSpec>> = HashMap::new();
    for s in &processes {
        by_name.entry(&s.name).or_insert(s);
    }

    let mut groups = Vec::new();
    for g in &conf.groups {
        let mut members = Vec::new();
        for name in &g.members {
            let (Some(spec), Some(d)) = (by_name.get(name), conf.details.get(name)) else {
                continue;
            };
            members.push(Arc::new(ProcessConfig::new(
                Arc::clone(spec),
                d.command.clone(),
                d.process_priority,
                d.startretries,
                d.killasgroup,
                d.serverurl.clone(),
                d.uid,
                channel(&d.stdout),
                channel(&d.stderr),
            )));
        }
        groups.push(GroupConfig {
            name: g.name.clone(),
            priority: g.priority,
            processes: members,
        });
    }

    let s = &conf.supervisord;
    let (socket, socket_mode, socket_owner, unix_auth) = match &conf.unix_http_server {
        Some(u) => (u.file.clone(), u.chmod, u.chown.clone(), u.auth.clone()),
        // tend's CLI needs a socket even where supervisorctl would use TCP.
        None => (dir.join(super::DEFAULT_SOCKET), 0o700, None, None),
    };
    let daemon = DaemonConfig {
        socket,
        socket_mode,
        log_dir: s.childlogdir.clone(),
        log_format: LogFormat::Text,
        log_file: match &s.logfile {
            MainLog::File(p) => Some(p.clone()),
            MainLog::Syslog => None,
        },
        socket_owner,
        unix_auth,
        inet: conf.inet_http_server.as_ref().map(|i| InetListen {
            host: i.host.clone(),
            port: i.port,
            auth: i.auth.clone(),
        }),
        identifier: s.identifier.clone(),
        minfds: Some(s.minfds),
        echo_log: !s.silent,
        pidfile: Some(s.pidfile.clone()),
        log_level: Some(s.loglevel.directive()),
        log_max_size: s.logfile_maxbytes,
        log_backups: s.logfile_backups,
        umask: Some(s.umask),
        minprocs: Some(s.minprocs),
    };
    Config {
        path: conf.path.clone(),
        daemon,
        processes,
        declared: Declared { groups },
        eventlisteners: conf.eventlisteners,
        format: Format::Supervisord,
        tasks: Vec::new(),
    }
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
        assert!(!is_supervisord(p("config"), Some("[group.a]\n")));
        assert!(!is_supervisord(p("config"), Some("x = 1\n[supervisord]")));
        assert!(!is_supervisord(p("config"), None));
    }
}
