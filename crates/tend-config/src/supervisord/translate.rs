//! A supervisord.conf as the daemon runs it: its processes in their groups,
//! each with what Supervisor's face reports of it, and the daemon's settings
//! with supervisord's behaviour made explicit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tend_core::{Name, ProcessSpec};

use super::{MainLog, SupervisordConf};
use crate::{
    Config, DaemonConfig, Declared, Format, GroupConfig, InetListen, LogFormat, OnHup,
    ProcessConfig,
};

/// What the daemon runs for a supervisord.conf.
pub fn into_config(conf: SupervisordConf) -> Config {
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
        None => (dir.join(crate::DEFAULT_SOCKET), 0o700, None, None),
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
        pidfile: Some(s.pidfile.clone()),
        log_level: Some(s.loglevel.directive()),
        log_max_size: s.logfile_maxbytes,
        log_backups: s.logfile_backups,
        umask: Some(s.umask),
        minprocs: Some(s.minprocs),
        // supervisord's SIGHUP stops everything and starts over.
        on_hup: OnHup::Restart,
        event_listeners: true,
        // supervisord's status page stays at `/`, for bookmarks.
        web_root: crate::WebRoot::SupervisorStatus,
        http: crate::HttpConfig::default(),
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
        access: conf.access,
    }
}
