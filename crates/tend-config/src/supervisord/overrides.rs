//! `supervisord`'s command-line options that set `[supervisord]` options
//! (`supervisor/options.py: ServerOptions.__init__`): each value is checked
//! as supervisord checks it, with its message, and wins over the file's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::values::{self, LogLevel};
use super::{MainLog, SupervisordSection};

/// The `[supervisord]` options given on `supervisord`'s command line
/// (`-n`, `-u USER`, `-m UMASK`, ...); `None` (or `false` for a flag) where
/// the file decides. A flag can only be turned on, as in supervisord.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `-n`/`--nodaemon`.
    pub nodaemon: bool,
    /// `-s`/`--silent`.
    pub silent: bool,
    /// `-k`/`--nocleanup`.
    pub nocleanup: bool,
    /// `-t`/`--strip_ansi`.
    pub strip_ansi: bool,
    /// `-u`/`--user`.
    pub user: Option<String>,
    /// `-m`/`--umask`.
    pub umask: Option<u32>,
    /// `-d`/`--directory` (absolute).
    pub directory: Option<PathBuf>,
    /// `-l`/`--logfile` (absolute, or `syslog`).
    pub logfile: Option<String>,
    /// `-y`/`--logfile_maxbytes`.
    pub logfile_maxbytes: Option<u64>,
    /// `-z`/`--logfile_backups`.
    pub logfile_backups: Option<u32>,
    /// `-e`/`--loglevel`.
    pub loglevel: Option<LogLevel>,
    /// `-j`/`--pidfile` (absolute).
    pub pidfile: Option<PathBuf>,
    /// `-i`/`--identifier`.
    pub identifier: Option<String>,
    /// `-q`/`--childlogdir` (absolute).
    pub childlogdir: Option<PathBuf>,
    /// `-a`/`--minfds`.
    pub minfds: Option<u64>,
    /// `--minprocs`.
    pub minprocs: Option<u64>,
    /// `--profile_options` (accepted and ignored: there is no Python
    /// profiler to run).
    pub profile_options: Option<String>,
}

/// What went wrong with one option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideError {
    /// The option was given before (supervisord: `conflicting command line
    /// option`).
    Conflict,
    /// The value is bad; supervisord's message.
    Invalid(String),
    /// Not one of the options this sets.
    Unknown,
}

impl Overrides {
    /// Sets the option `key` (its long name without dashes, such as
    /// `umask`) from the text given on the command line, checked as
    /// supervisord checks it. Relative paths are taken from `cwd`.
    pub fn set(&mut self, key: &str, value: &str, cwd: &Path) -> Result<(), OverrideError> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let invalid = OverrideError::Invalid;
        fn put<T>(slot: &mut Option<T>, v: T) -> Result<(), OverrideError> {
            if slot.is_some() {
                return Err(OverrideError::Conflict);
            }
            *slot = Some(v);
            Ok(())
        }
        fn flag(slot: &mut bool) -> Result<(), OverrideError> {
            if *slot {
                return Err(OverrideError::Conflict);
            }
            *slot = true;
            Ok(())
        }
        let abs = |p: PathBuf| if p.is_absolute() { p } else { cwd.join(p) };
        match key {
            "nodaemon" => flag(&mut self.nodaemon),
            "silent" => flag(&mut self.silent),
            "nocleanup" => flag(&mut self.nocleanup),
            "strip_ansi" => flag(&mut self.strip_ansi),
            "user" => put(&mut self.user, value.to_string()),
            "umask" => {
                let v = values::octal(value).map_err(invalid)?;
                put(&mut self.umask, v)
            }
            "directory" => {
                let v = values::existing_directory(value, cwd, &env).map_err(invalid)?;
                put(&mut self.directory, abs(v))
            }
            "logfile" => {
                let v = values::existing_dirpath(value, cwd, &env).map_err(invalid)?;
                let v = if value == "syslog" {
                    value.to_string()
                } else {
                    abs(v).to_string_lossy().into_owned()
                };
                put(&mut self.logfile, v)
            }
            "logfile_maxbytes" => {
                let v = values::size(value).map_err(invalid)?;
                put(&mut self.logfile_maxbytes, v)
            }
            "logfile_backups" => {
                let n = values::integer(value).map_err(invalid)?;
                put(
                    &mut self.logfile_backups,
                    u32::try_from(n.max(0)).unwrap_or(u32::MAX),
                )
            }
            "loglevel" => {
                let v = values::log_level(value).map_err(invalid)?;
                put(&mut self.loglevel, v)
            }
            "pidfile" => {
                let v = values::existing_dirpath(value, cwd, &env).map_err(invalid)?;
                put(&mut self.pidfile, abs(v))
            }
            "identifier" => put(&mut self.identifier, value.to_string()),
            "childlogdir" => {
                let v = values::existing_directory(value, cwd, &env).map_err(invalid)?;
                put(&mut self.childlogdir, abs(v))
            }
            "minfds" => {
                let v = values::integer_in::<u64>(value, "minfds").map_err(invalid)?;
                put(&mut self.minfds, v)
            }
            "minprocs" => {
                let v = values::integer_in::<u64>(value, "minprocs").map_err(invalid)?;
                put(&mut self.minprocs, v)
            }
            "profile_options" => put(&mut self.profile_options, value.to_string()),
            _ => Err(OverrideError::Unknown),
        }
    }

    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        *self == Overrides::default()
    }

    /// The file's `[supervisord]` with the command line's values over it.
    pub(super) fn apply(&self, s: &mut SupervisordSection) {
        s.nodaemon |= self.nodaemon;
        s.silent |= self.silent;
        s.nocleanup |= self.nocleanup;
        s.strip_ansi |= self.strip_ansi;
        if let Some(v) = &self.user {
            s.user = Some(v.clone());
        }
        if let Some(v) = self.umask {
            s.umask = v;
        }
        if let Some(v) = &self.directory {
            s.directory = Some(v.clone());
        }
        if let Some(v) = &self.logfile {
            s.logfile = if v == "syslog" {
                MainLog::Syslog
            } else {
                MainLog::File(PathBuf::from(v))
            };
        }
        if let Some(v) = self.logfile_maxbytes {
            s.logfile_maxbytes = v;
        }
        if let Some(v) = self.logfile_backups {
            s.logfile_backups = v;
        }
        if let Some(v) = self.loglevel {
            s.loglevel = v;
        }
        if let Some(v) = &self.pidfile {
            s.pidfile = v.clone();
        }
        if let Some(v) = &self.identifier {
            s.identifier = v.clone();
        }
        if let Some(v) = &self.childlogdir {
            s.childlogdir = v.clone();
        }
        if let Some(v) = self.minfds {
            s.minfds = v;
        }
        if let Some(v) = self.minprocs {
            s.minprocs = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_as_supervisord_checks_them() {
        let cwd = Path::new("/");
        let mut o = Overrides::default();
        assert_eq!(
            o.set("umask", "x", cwd),
            Err(OverrideError::Invalid(
                "x can not be converted to an octal type".into()
            ))
        );
        assert_eq!(o.set("umask", "077", cwd), Ok(()));
        assert_eq!(o.umask, Some(0o77));
        assert_eq!(o.set("umask", "022", cwd), Err(OverrideError::Conflict));
        assert_eq!(o.set("nodaemon", "", cwd), Ok(()));
        assert_eq!(o.set("nodaemon", "", cwd), Err(OverrideError::Conflict));
        assert_eq!(
            o.set("directory", "/no/such/dir", cwd),
            Err(OverrideError::Invalid(
                "/no/such/dir is not an existing directory".into()
            ))
        );
        assert_eq!(
            o.set("loglevel", "loud", cwd),
            Err(OverrideError::Invalid(
                "bad logging level name 'loud'".into()
            ))
        );
        assert_eq!(o.set("logfile", "syslog", cwd), Ok(()));
        assert_eq!(o.set("pidfile", "x.pid", Path::new("/tmp")), Ok(()));
        assert_eq!(o.pidfile, Some(PathBuf::from("/tmp/x.pid")));
        assert_eq!(o.set("what", "", cwd), Err(OverrideError::Unknown));
    }
}
