//! A supervisord.conf as the daemon runs it: its processes in their groups,
//! each with what Supervisor's face reports of it, and the daemon's settings
//! with supervisord's behaviour made explicit.

use std::collections::HashMap;
use std::sync::Arc;

use tend_core::{Name, ProcessSpec};

use super::{LogLevel, MainLog, SupervisordConf};
use crate::{
    Config, DaemonConfig, Declared, Format, GroupConfig, InetListen, LogFormat, OnHup,
    ProcessConfig, StartNotes,
};

/// What the daemon runs for a supervisord.conf.
pub fn into_config(conf: SupervisordConf) -> Config {
    let start_notes = start_notes(&conf);
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
            members.push(Arc::new(ProcessConfig::with_program(
                Arc::clone(spec),
                Arc::new(d.clone()),
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
        None => (crate::default_socket(&conf.path), 0o700, None, None),
    };
    let daemon = DaemonConfig {
        socket,
        socket_mode,
        log_dir: s.childlogdir.clone(),
        log_format: LogFormat::Supervisord,
        log_file: match &s.logfile {
            MainLog::File(p) => Some(p.clone()),
            MainLog::Syslog => None,
        },
        socket_owner,
        socket_group: None,
        unix_auth,
        inet: conf.inet_http_server.as_ref().map(|i| InetListen {
            host: i.host.clone(),
            port: i.port,
            auth: i.auth.clone(),
            tls: i.tls.clone(),
            insecure: i.insecure,
        }),
        identifier: s.identifier.clone(),
        minfds: Some(s.minfds),
        echo_log: !s.silent,
        // The programs' output goes where the file sends it, and only there.
        echo_output: false,
        daemonize: !s.nodaemon,
        directory: s.directory.clone(),
        user: s.user.clone(),
        start_notes,
        pidfile: Some(s.pidfile.clone()),
        log_level: Some(s.loglevel),
        log_max_size: s.logfile_maxbytes,
        log_backups: s.logfile_backups,
        umask: Some(s.umask),
        minprocs: Some(s.minprocs),
        // supervisord's SIGHUP stops everything and starts over.
        on_hup: OnHup::Restart,
        event_listeners: true,
        platform: crate::PlatformConfig::default(),
        // supervisord's status page stays at `/`, for bookmarks.
        web_root: crate::WebRoot::SupervisorStatus,
        http: crate::HttpConfig::default(),
        peers: Vec::new(),
        env: std::collections::BTreeMap::new(),
    };
    Config {
        path: conf.path.clone(),
        daemon,
        processes,
        declared: Declared { groups },
        eventlisteners: conf.eventlisteners,
        format: Format::Supervisord,
        tasks: Vec::new(),
        overrides: Default::default(),
        access: conf.access,
        telemetry: crate::TelemetryConfig::default(),
    }
}

/// What supervisord logs about `conf` as it starts (`make_logger`'s parse
/// warnings and infos, `make_http_servers`' lines: TCP first, then the socket).
fn start_notes(conf: &SupervisordConf) -> StartNotes {
    let mut parse: Vec<(LogLevel, String)> = conf
        .unmatched_includes
        .iter()
        .map(|p| {
            (
                LogLevel::Warn,
                format!("No file matches via include \"{p}\""),
            )
        })
        .collect();
    parse.extend(conf.files.iter().skip(1).map(|f| {
        (
            LogLevel::Info,
            format!("Included extra file \"{}\" during parsing", f.display()),
        )
    }));
    let mut servers = Vec::new();
    let mut server = |section: &str, auth: bool| {
        if conf.rpcinterface {
            servers.push((
                LogLevel::Info,
                "RPC interface 'supervisor' initialized".to_string(),
            ));
        }
        if !auth {
            servers.push((
                LogLevel::Critical,
                format!("Server '{section}' running without any HTTP authentication checking"),
            ));
        }
    };
    if let Some(i) = &conf.inet_http_server {
        server("inet_http_server", i.auth.is_some());
    }
    if let Some(u) = &conf.unix_http_server {
        server("unix_http_server", u.auth.is_some());
    }
    StartNotes { parse, servers }
}
