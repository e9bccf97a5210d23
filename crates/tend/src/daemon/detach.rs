//! `tend up -d`: detach from the terminal and report readiness back.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::ExitCode;

use tend_config::Config;
use tracing::error;

use tend_config::LogLevel;
use tend_config::supervisord::ini::py_repr;

use super::{Entry, become_user, own_log, run};

/// `tend.log` beside the config file.
fn default_log_file(config: &std::path::Path) -> std::path::PathBuf {
    config
        .parent()
        .unwrap_or_else(|| std::path::Path::new("/"))
        .join("tend.log")
}

/// Detaches and returns once the daemon accepts connections (or failed).
///
/// Forks before any runtime or thread exists: the daemon is a grandchild in a
/// new session with stdio on /dev/null; it reports `ready PID` or `error MSG`
/// through a pipe and closes it, and the original process relays that:
/// `tend up -d` says where the daemon is, `supervisord` says nothing, as
/// supervisord's parent exits quietly.
pub(crate) fn detach(mut config: Config, entry: &Entry, mut up: super::Up) -> ExitCode {
    up.detached = true;
    let socket = config.daemon.socket.clone();
    // Detached, stderr is /dev/null: tend's own log goes to a file, beside
    // the config unless `[daemon] log_file` says where (`tend up` only:
    // supervisord's own logfile default is the config's business).
    let log_file = match entry {
        Entry::Tend => Some(
            config
                .daemon
                .log_file
                .get_or_insert_with(|| default_log_file(&config.path))
                .clone(),
        ),
        Entry::Supervisord { .. } => config.daemon.log_file.clone(),
    };
    // supervisord drops its privileges before it daemonizes.
    let mut notes = match become_user(&config) {
        Ok(n) => n,
        Err(e) => return entry.fail(&e),
    };
    let (read_end, write_end) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return entry.fail(&format!("cannot create a pipe: {e}")),
    };
    // SAFETY: the process is single-threaded here (no runtime has been built,
    // nothing has spawned a thread), so the child may run arbitrary code.
    match unsafe { nix::unistd::fork() } {
        Err(e) => entry.fail(&format!("cannot fork: {e}")),
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(write_end);
            // The intermediate child exits at once; reap it so it is no zombie.
            let _ = nix::sys::wait::waitpid(child, None);
            let mut msg = String::new();
            let _ = std::fs::File::from(read_end).read_to_string(&mut msg);
            match msg.strip_prefix("ready ") {
                Some(pid) => {
                    if let Entry::Tend = entry {
                        println!(
                            "tend started (pid {}), socket {}, log {}",
                            pid.trim(),
                            socket.display(),
                            log_file
                                .as_deref()
                                .unwrap_or(std::path::Path::new("/dev/null"))
                                .display()
                        );
                    }
                    ExitCode::SUCCESS
                }
                None => {
                    let msg = msg.strip_prefix("error ").unwrap_or(&msg).trim();
                    if msg.is_empty() {
                        entry.fail("the daemon exited before it was ready")
                    } else {
                        entry.fail(msg)
                    }
                }
            }
        }
        Ok(nix::unistd::ForkResult::Child) => {
            drop(read_end);
            let _ = nix::unistd::setsid();
            // SAFETY: still single-threaded, as above.
            match unsafe { nix::unistd::fork() } {
                Ok(nix::unistd::ForkResult::Child) => {}
                Ok(nix::unistd::ForkResult::Parent { .. }) => std::process::exit(0),
                Err(e) => {
                    report(&write_end, &format!("error cannot fork: {e}"));
                    std::process::exit(1);
                }
            }
            // supervisord changes its directory and sets its umask when it
            // daemonizes (not with `nodaemon`): so does `tend up -d`.
            notes.daemonized.push((
                LogLevel::Info,
                "daemonizing the supervisord process".to_string(),
            ));
            if let Some(dir) = &config.daemon.directory {
                notes.daemonized.push(match std::env::set_current_dir(dir) {
                    Ok(()) => (
                        LogLevel::Info,
                        format!("set current directory: {}", py_repr(&dir.to_string_lossy())),
                    ),
                    Err(e) => (
                        LogLevel::Critical,
                        format!("can't chdir into {}: {e}", py_repr(&dir.to_string_lossy())),
                    ),
                });
            }
            if let Some(mask) = config.daemon.umask {
                nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask & 0o777));
            }
            if let Err(e) = null_stdio() {
                report(
                    &write_end,
                    &format!("error cannot redirect stdio to /dev/null: {e}"),
                );
                std::process::exit(1);
            }
            let own_log = match own_log::init_logging(&config.daemon, false) {
                Ok(l) => l,
                Err(e) => {
                    report(&write_end, &format!("error {e}"));
                    std::process::exit(1);
                }
            };
            match run(config, Some(write_end), own_log, false, notes, up) {
                Ok(code) => std::process::exit(i32::from(code)),
                // `run` reported the error through the pipe if it was not ready yet.
                Err(e) => {
                    error!("{}", super::describe(&e));
                    std::process::exit(1)
                }
            }
        }
    }
}

pub(super) fn report(pipe: &OwnedFd, msg: &str) {
    let mut f = match pipe.try_clone() {
        Ok(fd) => std::fs::File::from(fd),
        Err(_) => return,
    };
    let _ = f.write_all(msg.as_bytes());
}

fn null_stdio() -> std::io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)?;
    nix::unistd::dup2_stderr(&null)?;
    Ok(())
}
