//! `supervisord`'s command line: tend run as `supervisord` (a link to the
//! binary, chosen by `argv[0]` as busybox does) or as `tend supervisord
//! ARGS`. Every option of supervisord 4.3, with its meaning, parsed the way
//! Python's `getopt` parses it (clustered short options, unique prefixes of
//! long ones, supervisord's messages and exit status 2), and supervisord's
//! search for a config file when `-c` is missing
//! (`supervisor/options.py: Options.realize`, `ServerOptions`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tend_config::supervisord::{OverrideError, Overrides, ini::py_repr};

use crate::daemon::{self, Entry};

/// `supervisord -h`: supervisord's own usage text (`%s` is the program).
const HELP: &str = "supervisord -- run a set of applications as daemons.

Usage: %s [options]

Options:
-c/--configuration FILENAME -- configuration file path (searches if not given)
-n/--nodaemon -- run in the foreground (same as 'nodaemon=true' in config file)
-s/--silent -- no logs to stdout (maps to 'silent=true' in config file)
-h/--help -- print this usage message and exit
-v/--version -- print supervisord version number and exit
-u/--user USER -- run supervisord as this user (or numeric uid)
-m/--umask UMASK -- use this umask for daemon subprocess (default is 022)
-d/--directory DIRECTORY -- directory to chdir to when daemonized
-l/--logfile FILENAME -- use FILENAME as logfile path
-y/--logfile_maxbytes BYTES -- use BYTES to limit the max size of logfile
-z/--logfile_backups NUM -- number of backups to keep when max bytes reached
-e/--loglevel LEVEL -- use LEVEL as log level (debug,info,warn,error,critical)
-j/--pidfile FILENAME -- write a pid file for the daemon process to FILENAME
-i/--identifier STR -- identifier used for this instance of supervisord
-q/--childlogdir DIRECTORY -- the log directory for child process logs
-k/--nocleanup --  prevent the process from performing cleanup (removal of
                   old automatic child log files) at startup.
-a/--minfds NUM -- the minimum number of file descriptors for start success
-t/--strip_ansi -- strip ansi escape codes from process output
--minprocs NUM  -- the minimum number of processes available for start success
--profile_options OPTIONS -- run supervisord under profiler and output
                             results based on OPTIONS, which  is a comma-sep'd
                             list of 'cumulative', 'calls', and/or 'callers',
                             e.g. 'cumulative,callers')

";

/// Short options, as `getopt` takes them (a `:` after one that takes a value).
const SHORT: &str = "h?c:vnu:m:d:l:y:z:e:j:i:q:a:kts";

/// Long options in supervisord's order (`=` after one that takes a value).
const LONG: &[&str] = &[
    "help",
    "configuration=",
    "version",
    "nodaemon",
    "user=",
    "umask=",
    "directory=",
    "logfile=",
    "logfile_maxbytes=",
    "logfile_backups=",
    "loglevel=",
    "pidfile=",
    "identifier=",
    "childlogdir=",
    "minfds=",
    "minprocs=",
    "nocleanup",
    "strip_ansi",
    "profile_options=",
    "silent",
];

/// The long name each short option stands for.
fn long_of(short: char) -> Option<&'static str> {
    Some(match short {
        'h' | '?' => "help",
        'c' => "configuration",
        'v' => "version",
        'n' => "nodaemon",
        'u' => "user",
        'm' => "umask",
        'd' => "directory",
        'l' => "logfile",
        'y' => "logfile_maxbytes",
        'z' => "logfile_backups",
        'e' => "loglevel",
        'j' => "pidfile",
        'i' => "identifier",
        'q' => "childlogdir",
        'a' => "minfds",
        'k' => "nocleanup",
        't' => "strip_ansi",
        's' => "silent",
        _ => return None,
    })
}

/// One option as given: how it was spelt (`-c`, `--configuration`), its
/// long name, and its value (empty for a flag).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Opt {
    spelt: String,
    key: &'static str,
    value: String,
}

/// Python's `getopt.getopt(args, SHORT, LONG)`: the options, then the
/// arguments after them; or `getopt`'s message.
fn getopt(args: &[String]) -> Result<(Vec<Opt>, Vec<String>), String> {
    let mut opts = Vec::new();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        if !arg.starts_with('-') || arg == "-" {
            break;
        }
        i += 1;
        if arg == "--" {
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let (has_arg, full) = long_has_args(name)?;
            let value = if has_arg {
                match inline {
                    Some(v) => v,
                    None => {
                        let v = args
                            .get(i)
                            .ok_or_else(|| format!("option --{full} requires argument"))?;
                        i += 1;
                        v.clone()
                    }
                }
            } else if inline.is_some() {
                return Err(format!("option --{full} must not have an argument"));
            } else {
                String::new()
            };
            let key = LONG
                .iter()
                .map(|l| l.trim_end_matches('='))
                .find(|l| *l == full)
                .ok_or_else(|| format!("option --{full} not recognized"))?;
            opts.push(Opt {
                spelt: format!("--{full}"),
                key,
                value,
            });
        } else {
            let mut rest: &str = &arg[1..];
            while let Some(c) = rest.chars().next() {
                rest = &rest[c.len_utf8()..];
                let has_arg = short_has_arg(c)?;
                let value = if has_arg {
                    let v = if rest.is_empty() {
                        let v = args
                            .get(i)
                            .ok_or_else(|| format!("option -{c} requires argument"))?;
                        i += 1;
                        v.clone()
                    } else {
                        rest.to_string()
                    };
                    rest = "";
                    v
                } else {
                    String::new()
                };
                let key = long_of(c).ok_or_else(|| format!("option -{c} not recognized"))?;
                opts.push(Opt {
                    spelt: format!("-{c}"),
                    key,
                    value,
                });
            }
        }
    }
    Ok((opts, args[i..].to_vec()))
}

/// `getopt.short_has_arg`.
fn short_has_arg(c: char) -> Result<bool, String> {
    for (i, s) in SHORT.char_indices() {
        if s == c && c != ':' {
            return Ok(SHORT[i + s.len_utf8()..].starts_with(':'));
        }
    }
    Err(format!("option -{c} not recognized"))
}

/// `getopt.long_has_args`: an exact name, or a unique prefix of one.
fn long_has_args(name: &str) -> Result<(bool, String), String> {
    let possible: Vec<&str> = LONG
        .iter()
        .copied()
        .filter(|l| l.starts_with(name))
        .collect();
    if possible.is_empty() {
        return Err(format!("option --{name} not recognized"));
    }
    if possible.contains(&name) {
        return Ok((false, name.to_string()));
    }
    if possible.contains(&format!("{name}=").as_str()) {
        return Ok((true, name.to_string()));
    }
    match possible.as_slice() {
        [one] => Ok((one.ends_with('='), one.trim_end_matches('=').to_string())),
        _ => Err(format!("option --{name} not a unique prefix")),
    }
}

/// Python's `os.path.dirname`.
fn py_dirname(p: &str) -> &str {
    let head = match p.rfind('/') {
        Some(i) => &p[..=i],
        None => "",
    };
    if !head.is_empty() && head.bytes().any(|b| b != b'/') {
        head.trim_end_matches('/')
    } else {
        head
    }
}

/// Python's `os.path.join` of two parts.
fn py_join(a: &str, b: &str) -> String {
    if a.is_empty() || b.starts_with('/') {
        b.to_string()
    } else if a.ends_with('/') {
        format!("{a}{b}")
    } else {
        format!("{a}/{b}")
    }
}

/// Where supervisord looks for its config file without `-c`, in order:
/// beside its installation (`argv[0]/../..`), then the working directory,
/// then `/etc`.
fn search_paths(argv0: &str) -> Vec<String> {
    let here = py_dirname(py_dirname(argv0));
    vec![
        py_join(&py_join(here, "etc"), "supervisord.conf"),
        py_join(here, "supervisord.conf"),
        "supervisord.conf".to_string(),
        "etc/supervisord.conf".to_string(),
        "/etc/supervisord.conf".to_string(),
        "/etc/supervisor/supervisord.conf".to_string(),
    ]
}

/// Python's `str()` of a list of strings: `['a', 'b']`.
fn py_list(items: &[String]) -> String {
    let parts: Vec<String> = items.iter().map(|s| py_repr(s)).collect();
    format!("[{}]", parts.join(", "))
}

/// Runs tend as `supervisord ARGS` (`progname` is how it was invoked).
pub fn main(progname: &str, args: &[OsString]) -> ExitCode {
    let entry = Entry::Supervisord {
        progname: progname.to_string(),
    };
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let usage = |msg: &str| entry.fail(msg);
    let (opts, positional) = match getopt(&args) {
        Ok(r) => r,
        Err(msg) => return usage(&msg),
    };
    if !positional.is_empty() {
        return usage(&format!(
            "positional arguments are not supported: {}",
            py_list(&positional)
        ));
    }
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => return usage(&format!("cannot find the working directory: {e}")),
    };
    let mut configfile: Option<String> = None;
    let mut overrides = Overrides::default();
    for o in &opts {
        match o.key {
            "help" => {
                print!("{}", HELP.replace("%s", progname));
                return ExitCode::SUCCESS;
            }
            "version" => {
                println!("{}", tend_supervisor::SUPERVISOR_VERSION);
                return ExitCode::SUCCESS;
            }
            "configuration" => {
                if configfile.is_some() {
                    return usage(&format!(
                        "conflicting command line option {}",
                        py_repr(&o.spelt)
                    ));
                }
                configfile = Some(o.value.clone());
            }
            key => match overrides.set(key, &o.value, &cwd) {
                Ok(()) => {}
                Err(OverrideError::Conflict) => {
                    return usage(&format!(
                        "conflicting command line option {}",
                        py_repr(&o.spelt)
                    ));
                }
                Err(OverrideError::Invalid(why)) => {
                    return usage(&format!(
                        "invalid value for {} {}: {why}",
                        o.spelt,
                        py_repr(&o.value)
                    ));
                }
                Err(OverrideError::Unknown) => {
                    return usage(&format!("option {} not recognized", o.spelt));
                }
            },
        }
    }
    let path = match configfile {
        Some(p) => PathBuf::from(p),
        None => {
            if nix::unistd::Uid::current().is_root() {
                eprintln!(
                    "{progname}: UserWarning: Supervisord is running as root and it is searching for its configuration file in default locations (including its current working directory); you probably want to specify a \"-c\" argument specifying an absolute path to a configuration file for improved security."
                );
            }
            let paths = search_paths(progname);
            match paths.iter().find(|p| Path::new(p).exists()) {
                Some(p) => PathBuf::from(p),
                None => {
                    return usage(&format!(
                        "No config file found at default paths ({}); use the -c option to specify a config file at a different path",
                        paths.join(", ")
                    ));
                }
            }
        }
    };
    if !path.exists() {
        return usage(&format!("could not find config file {}", path.display()));
    }
    let config = match tend_config::load_any_with(&path, &overrides) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{}", tend_config::render_warning(w));
            }
            for f in &loaded.failures {
                eprintln!("{}", tend_config::render_failure(f));
            }
            loaded.config
        }
        Err(errors) => return usage(&errors.to_string()),
    };
    if let Some(user) = &overrides.user
        && let Err(e) = check_user(user)
    {
        return usage(&e);
    }
    // Still one thread: systemd's variables leave the environment here.
    let up = daemon::Up::new(false);
    if config.daemon.daemonize {
        daemon::detach(config, &entry, up)
    } else {
        daemon::foreground(config, &entry, up)
    }
}

/// supervisord's `name_to_uid` check of `-u`.
fn check_user(user: &str) -> Result<(), String> {
    use nix::unistd::{Uid, User};
    match user.trim().parse::<u32>() {
        Ok(uid) => match User::from_uid(Uid::from_raw(uid)) {
            Ok(Some(_)) => Ok(()),
            _ => Err(format!("Invalid user id {user}")),
        },
        Err(_) => match User::from_name(user) {
            Ok(Some(_)) => Ok(()),
            _ => Err(format!("Invalid user name {user}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn parsed(s: &str) -> Result<Vec<(String, String)>, String> {
        getopt(&args(s)).map(|(o, rest)| {
            let mut v: Vec<(String, String)> = o
                .into_iter()
                .map(|o| (o.key.to_string(), o.value))
                .collect();
            v.extend(rest.into_iter().map(|r| ("ARG".to_string(), r)));
            v
        })
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn options_are_read_as_pythons_getopt_reads_them() {
        assert_eq!(
            parsed("-n -c /etc/s.conf"),
            Ok(pairs(&[("nodaemon", ""), ("configuration", "/etc/s.conf")]))
        );
        // Clustered, attached, long with = or apart, unique prefixes.
        assert_eq!(
            parsed("-nkc/x -m077 --user=root --logfile /l --conf c --minp 5"),
            Ok(pairs(&[
                ("nodaemon", ""),
                ("nocleanup", ""),
                ("configuration", "/x"),
                ("umask", "077"),
                ("user", "root"),
                ("logfile", "/l"),
                ("configuration", "c"),
                ("minprocs", "5"),
            ]))
        );
        // An exact name wins over the longer names it begins.
        assert_eq!(
            parsed("--logfile=x --logfile_backups=2"),
            Ok(pairs(&[("logfile", "x"), ("logfile_backups", "2")]))
        );
        // Options end at the first argument that is not one, or at `--`.
        assert_eq!(
            parsed("-n x -k"),
            Ok(pairs(&[("nodaemon", ""), ("ARG", "x"), ("ARG", "-k")]))
        );
        assert_eq!(
            parsed("-n -- -k"),
            Ok(pairs(&[("nodaemon", ""), ("ARG", "-k")]))
        );
        assert_eq!(
            parsed("-c -c x"),
            Ok(pairs(&[("configuration", "-c"), ("ARG", "x")]))
        );
        assert_eq!(parsed("-?"), Ok(pairs(&[("help", "")])));
    }

    #[test]
    fn bad_options_get_getopts_messages() {
        assert_eq!(parsed("-x"), Err("option -x not recognized".into()));
        assert_eq!(parsed("--foo"), Err("option --foo not recognized".into()));
        assert_eq!(
            parsed("--no"),
            Err("option --no not a unique prefix".into())
        );
        assert_eq!(parsed("-c"), Err("option -c requires argument".into()));
        assert_eq!(
            parsed("--configuration"),
            Err("option --configuration requires argument".into())
        );
        assert_eq!(
            parsed("--nodaemon=1"),
            Err("option --nodaemon must not have an argument".into())
        );
    }

    #[test]
    fn the_config_is_searched_where_supervisord_searches() {
        assert_eq!(
            search_paths("/usr/bin/supervisord"),
            [
                "/usr/etc/supervisord.conf",
                "/usr/supervisord.conf",
                "supervisord.conf",
                "etc/supervisord.conf",
                "/etc/supervisord.conf",
                "/etc/supervisor/supervisord.conf"
            ]
        );
        assert_eq!(
            search_paths("supervisord")[..2],
            ["etc/supervisord.conf", "supervisord.conf"]
        );
        assert_eq!(py_dirname("/"), "/");
        assert_eq!(py_dirname("/usr"), "/");
        assert_eq!(py_dirname("a/b"), "a");
        assert_eq!(py_list(&["a".into(), "it's".into()]), "['a', \"it's\"]");
    }
}
