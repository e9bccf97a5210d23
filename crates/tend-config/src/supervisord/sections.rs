//! `[supervisord]`, `[unix_http_server]`, `[inet_http_server]` and
//! `[supervisorctl]` (`supervisor/options.py`: `ServerOptions.read_config`,
//! `server_configs_from_parser`, `ClientOptions.read_config`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::expand::Val;
use super::ini::{Ini, Section, py_strip};
use super::values::{self, LogLevel};
use super::{
    Auth, InetHttpServer, MainLog, St, SupervisorctlSection, SupervisordSection, Top,
    UnixHttpServer,
};

/// `[supervisord]`. Its `environment` is added to the shared `ENV_*` names.
pub(super) fn supervisord(ini: &Ini, st: &mut St<'_>, section: &Section) -> SupervisordSection {
    let top = Top::new();
    let host = st.host;
    let (cwd, env) = (&host.cwd, &host.env);

    let minfds = st
        .typed(ini, section, "minfds", &top, |s| {
            values::integer_in::<u64>(s, "minfds")
        })
        .unwrap_or(1024);
    let minprocs = st
        .typed(ini, section, "minprocs", &top, |s| {
            values::integer_in::<u64>(s, "minprocs")
        })
        .unwrap_or(200);
    let directory = st.typed(ini, section, "directory", &top, |s| {
        values::existing_directory(s, cwd, env)
    });
    let user = st.typed(ini, section, "user", &top, |s| {
        values::name_to_uid(s).map(|_| s.to_string())
    });
    let umask = st
        .typed(ini, section, "umask", &top, values::octal)
        .unwrap_or(0o022);
    let logfile = st
        .typed(ini, section, "logfile", &top, |s| {
            if s == "syslog" {
                Ok(MainLog::Syslog)
            } else {
                values::existing_dirpath(s, cwd, env).map(MainLog::File)
            }
        })
        .unwrap_or_else(|| MainLog::File(cwd.join("supervisord.log")));
    if logfile == MainLog::Syslog
        && let Some(e) = ini.get(section, "logfile")
    {
        st.warn_at(
            e,
            "logfile=syslog in [supervisord] is not supported: tend logs to stderr instead",
        );
    }
    let logfile_maxbytes = st
        .typed(ini, section, "logfile_maxbytes", &top, values::size)
        .unwrap_or(50 * 1024 * 1024);
    let logfile_backups = st.count(ini, section, "logfile_backups", &top, 10);
    let loglevel = st
        .typed(ini, section, "loglevel", &top, values::log_level)
        .unwrap_or(LogLevel::Info);
    let pidfile = st
        .typed(ini, section, "pidfile", &top, |s| {
            values::existing_dirpath(s, cwd, env)
        })
        .unwrap_or_else(|| cwd.join("supervisord.pid"));
    let identifier = st
        .get(ini, section, "identifier", &top)
        .map_or_else(|| "supervisor".to_string(), |g| g.value);
    let nodaemon = st.boolean(ini, section, "nodaemon", &top, false);
    let silent = st.boolean(ini, section, "silent", &top, false);
    let childlogdir = match st.typed(ini, section, "childlogdir", &top, |s| {
        values::existing_directory(s, cwd, env)
    }) {
        Some(dir) => dir,
        None => temp_dir(env),
    };
    let nocleanup = st.boolean(ini, section, "nocleanup", &top, false);
    let strip_ansi = st.boolean(ini, section, "strip_ansi", &top, false);
    if let Some(e) = ini.get(section, "profile_options") {
        st.warn_at(
            e,
            "profile_options in [supervisord] is not supported by tend: ignored",
        );
    }

    let mut environment = BTreeMap::new();
    if let Some(e) = ini.get(section, "environment") {
        let top = Top::from([("host_node_name".to_string(), Val::Str(host.node.clone()))]);
        if let Some(text) = st.expand(&e.value, e, &top, "environment") {
            match values::key_value_pairs(&text) {
                Ok(pairs) => environment.extend(pairs),
                Err(why) => st.error_at(e, format!("environment in [supervisord]: {why}")),
            }
        }
    }
    for (k, v) in &environment {
        st.env_names.insert(format!("ENV_{k}"), Val::Str(v.clone()));
    }

    SupervisordSection {
        logfile,
        logfile_maxbytes,
        logfile_backups,
        loglevel,
        pidfile,
        umask,
        nodaemon,
        silent,
        minfds,
        minprocs,
        nocleanup,
        childlogdir,
        user,
        directory,
        strip_ansi,
        environment,
        identifier,
    }
}

/// `tempfile.gettempdir()`: `TMPDIR`, `TEMP` or `TMP` if it is a directory, else `/tmp`.
fn temp_dir(env: &BTreeMap<String, String>) -> PathBuf {
    ["TMPDIR", "TEMP", "TMP"]
        .iter()
        .filter_map(|k| env.get(*k))
        .map(PathBuf::from)
        .find(|p| p.is_absolute() && p.is_dir())
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

/// `[unix_http_server]` and `[inet_http_server]` (Supervisor takes every
/// section whose name starts so; tend serves one of each), and the URL
/// children get as `SUPERVISOR_SERVER_URL` by default.
pub(super) fn servers(
    ini: &Ini,
    st: &mut St<'_>,
) -> (
    Option<UnixHttpServer>,
    Option<InetHttpServer>,
    Option<String>,
) {
    let top = Top::new();
    let host = st.host;
    let mut unix = None;
    let mut inet = None;
    let mut inet_url = None;
    for section in &ini.sections {
        let is_unix = section.name.starts_with("unix_http_server");
        let is_inet = section.name.starts_with("inet_http_server");
        if !is_unix && !is_inet {
            continue;
        }
        if (is_unix && unix.is_some()) || (is_inet && inet.is_some()) {
            st.warn(
                section.file,
                section.line,
                format!(
                    "[{}]: tend serves one {} server; this one is ignored",
                    section.name,
                    if is_unix { "unix" } else { "inet" }
                ),
            );
            continue;
        }
        let auth = auth(ini, st, section);
        if is_unix {
            let Some(file) = st.get(ini, section, "file", &top) else {
                if ini.get(section, "file").is_none() {
                    st.error(
                        section.file,
                        section.line,
                        format!("section [{}] has no file value", section.name),
                    );
                }
                continue;
            };
            let entry = file.entry;
            let file = values::normalize_path(py_strip(&file.value), &host.cwd, &host.env);
            if let Err(why) = crate::native::check_socket_dir(std::path::Path::new(&file)) {
                st.error_at(entry, why);
            }
            let chmod = st
                .get(ini, section, "chmod", &top)
                .and_then(|g| match values::octal(&g.value) {
                    Ok(m) if m <= 0o7777 => Some(m),
                    _ => {
                        st.error_at(g.entry, format!("Invalid chmod value {}", g.value));
                        None
                    }
                })
                .unwrap_or(0o700);
            let chown = st
                .get(ini, section, "chown", &top)
                .and_then(|g| match values::user_group(&g.value) {
                    Ok(_) => Some(g.value),
                    Err(_) => {
                        st.error_at(g.entry, format!("Invalid sockchown value {}", g.value));
                        None
                    }
                });
            unix = Some(UnixHttpServer {
                file,
                chmod,
                chown,
                auth,
            });
        } else {
            let Some(port) = st.get(ini, section, "port", &top) else {
                if ini.get(section, "port").is_none() {
                    st.error(
                        section.file,
                        section.line,
                        format!("section [{}] has no port value", section.name),
                    );
                }
                continue;
            };
            let tls = tls(ini, st, section);
            let insecure = st.boolean(ini, section, "insecure", &top, false);
            match values::inet_address(&port.value) {
                Ok((host, port)) => {
                    inet_url = Some(format!(
                        "http://{}:{port}",
                        if host.is_empty() { "localhost" } else { &host }
                    ));
                    inet = Some(InetHttpServer {
                        host: if host.is_empty() {
                            "0.0.0.0".to_string()
                        } else {
                            host
                        },
                        port,
                        auth,
                        tls,
                        insecure,
                    });
                }
                Err(why) => {
                    st.error_at(port.entry, format!("port in [{}]: {why}", section.name));
                }
            }
        }
    }
    // Supervisor's fallback for SUPERVISOR_SERVER_URL prefers the unix socket.
    let url = match &unix {
        Some(u) => Some(format!("unix://{}", u.file.display())),
        None => inet_url,
    };
    (unix, inet, url)
}

/// tend's TLS options of `[inet_http_server]` (supervisord ignores them):
/// `tls_cert` and `tls_key` (both or neither), `client_ca`, `client_cert =
/// required | optional`. Paths are read as supervisord reads its own:
/// `%(here)s` expanded, relative to the working directory.
fn tls(ini: &Ini, st: &mut St<'_>, section: &Section) -> Option<crate::TlsFiles> {
    let top = Top::new();
    let host = st.host;
    let path = |st: &mut St<'_>, key: &str| {
        st.get(ini, section, key, &top).map(|g| {
            (
                values::normalize_path(py_strip(&g.value), &host.cwd, &host.env),
                g.entry,
            )
        })
    };
    let cert = path(st, "tls_cert");
    let key = path(st, "tls_key");
    let client_ca = path(st, "client_ca");
    let client_cert = match st.get(ini, section, "client_cert", &top) {
        None => crate::ClientCert::Required,
        Some(g) => match g.value.trim().to_ascii_lowercase().as_str() {
            "required" => crate::ClientCert::Required,
            "optional" => crate::ClientCert::Optional,
            other => {
                st.error_at(
                    g.entry,
                    format!(
                        "client_cert in [{}] is {other:?}: expected required or optional",
                        section.name
                    ),
                );
                crate::ClientCert::Required
            }
        },
    };
    match (cert, key) {
        (Some((cert, _)), Some((key, _))) => Some(crate::TlsFiles {
            cert,
            key,
            client_ca: client_ca.map(|(p, _)| p),
            client_cert,
        }),
        (None, None) => {
            if let Some((_, entry)) = client_ca {
                st.error_at(
                    entry,
                    format!("client_ca in [{}] needs tls_cert and tls_key", section.name),
                );
            }
            None
        }
        (Some((_, entry)), None) | (None, Some((_, entry))) => {
            st.error_at(
                entry,
                format!("[{}] needs both tls_cert and tls_key for TLS", section.name),
            );
            None
        }
    }
}

/// `username` and `password`: both or neither; `{SHA}hex` is a SHA-1 digest.
fn auth(ini: &Ini, st: &mut St<'_>, section: &Section) -> Option<Auth> {
    let top = Top::new();
    let username = st.get(ini, section, "username", &top);
    let password = st.get(ini, section, "password", &top);
    match (username, password) {
        (None, None) => None,
        (Some(u), Some(p)) => Some(match p.value.strip_prefix("{SHA}") {
            Some(hex) => {
                if hex.len() != 40 || !hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
                    st.warn_at(
                        p.entry,
                        format!(
                            "password in [{}] is {{SHA}} followed by something that is not 40 lower-case hex digits: no password will match it (in supervisord either)",
                            section.name
                        ),
                    );
                }
                Auth::Sha1 {
                    username: u.value,
                    hex: hex.to_string(),
                }
            }
            None => Auth::Plain {
                username: u.value,
                password: p.value,
            },
        }),
        (u, p) => {
            let at = u.or(p).map(|g| (g.entry.file, g.entry.line));
            let (file, line) = at.unwrap_or((section.file, section.line));
            st.error(
                file,
                line,
                format!(
                    "Section [{}] contains incomplete authentication: If a username or a password is specified, both the username and password must be specified",
                    section.name
                ),
            );
            None
        }
    }
}

/// `[supervisorctl]`, or its defaults.
pub(super) fn supervisorctl(ini: &Ini, st: &mut St<'_>) -> SupervisorctlSection {
    let mut ctl = SupervisorctlSection {
        serverurl: "http://localhost:9001".to_string(),
        username: None,
        password: None,
        prompt: "supervisor".to_string(),
        history_file: None,
    };
    let Some(section) = ini.section("supervisorctl") else {
        return ctl;
    };
    let top = Top::new();
    let host = st.host;
    if let Some(url) = st.get(ini, section, "serverurl", &top) {
        ctl.serverurl = match url.value.strip_prefix("unix://") {
            Some(path) => format!(
                "unix://{}",
                values::normalize_path(path, &host.cwd, &host.env).display()
            ),
            None => url.value,
        };
    }
    ctl.username = st.get(ini, section, "username", &top).map(|g| g.value);
    ctl.password = st.get(ini, section, "password", &top).map(|g| g.value);
    if let Some(prompt) = st.get(ini, section, "prompt", &top) {
        ctl.prompt = prompt.value;
    }
    ctl.history_file = st
        .get(ini, section, "history_file", &top)
        .filter(|g| !g.value.is_empty())
        .map(|g| values::normalize_path(&g.value, &host.cwd, &host.env));
    ctl
}
