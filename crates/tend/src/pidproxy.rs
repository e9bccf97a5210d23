//! `pidproxy PIDFILE COMMAND [ARGS...]`, as Supervisor's `pidproxy` works:
//! run a program that daemonizes itself (and writes its pid to PIDFILE), and
//! pass the signals supervisord sends (TERM, HUP, INT, USR1, USR2, QUIT) to
//! the pid in that file. TERM, INT and QUIT end pidproxy once passed on, so
//! supervisord sees its program stop; pidproxy also ends when its child
//! exits. Run as `pidproxy` (a link to tend) or `tend pidproxy`.

// This mode is not the daemon: it has no reaper, and waits for its one child.
#![allow(clippy::disallowed_methods)]

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, execv, fork};

/// `pidproxy`'s usage text (`%s` is the program).
const USAGE: &str = "pidproxy -- run command and proxy signals to it via its pidfile.

This executable runs a command and then monitors a pidfile.  When this
executable receives a signal, it sends the same signal to the pid
in the pidfile.

Usage: %s <pidfile name> <command> [<cmdarg1> ...]
";

/// The signals passed on, as Supervisor's pidproxy passes them.
const PASSED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGQUIT,
];

/// Runs `pidproxy ARGS` (`progname` is how it was invoked).
pub fn main(progname: &str, args: &[OsString]) -> ExitCode {
    let (Some(pidfile), Some(cmd)) = (args.first(), args.get(1)) else {
        println!("{}", USAGE.replace("%s", progname));
        return ExitCode::FAILURE;
    };
    // Supervisor's pidproxy runs `os.path.abspath(command)`: no PATH search.
    let abscmd = match std::path::absolute(cmd) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("pidproxy: {}: {e}", Path::new(cmd).display());
            return ExitCode::FAILURE;
        }
    };
    let cstr = |s: &[u8]| CString::new(s).ok();
    let Some(path) = cstr(abscmd.as_os_str().as_bytes()) else {
        eprintln!("pidproxy: the command contains a NUL byte");
        return ExitCode::FAILURE;
    };
    let Some(argv) = args[1..]
        .iter()
        .map(|a| cstr(a.as_bytes()))
        .collect::<Option<Vec<CString>>>()
    else {
        eprintln!("pidproxy: an argument contains a NUL byte");
        return ExitCode::FAILURE;
    };

    // The signals (and SIGCHLD) wait in a mask until sigwait takes them, so
    // none is lost between the spawn and the loop.
    let mut set = SigSet::empty();
    for s in PASSED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    if let Err(e) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None) {
        eprintln!("pidproxy: cannot block signals: {e}");
        return ExitCode::FAILURE;
    }
    // SAFETY: single-threaded; the child only unblocks signals and execs.
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
            let _ = execv(&path, &argv);
            // As os.spawnv's child does when exec fails.
            // SAFETY: _exit is async-signal-safe and ends the child at once.
            unsafe { nix::libc::_exit(127) }
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => {
            eprintln!("pidproxy: cannot fork: {e}");
            return ExitCode::FAILURE;
        }
    };
    let pidfile = Path::new(pidfile);
    loop {
        let Ok(sig) = set.wait() else { continue };
        if sig == Signal::SIGCHLD {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => continue,
                // Its child ended: so does pidproxy (whose exit supervisord sees).
                Ok(_) => return ExitCode::SUCCESS,
            }
        }
        pass_on(pidfile, sig);
        if matches!(sig, Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT) {
            let _ = child;
            return ExitCode::SUCCESS;
        }
    }
}

/// Sends `sig` to the pid in `pidfile`, or says it cannot read it.
fn pass_on(pidfile: &Path, sig: Signal) {
    let pid = std::fs::read_to_string(pidfile)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    match pid {
        Some(pid) => {
            let _ = kill(Pid::from_raw(pid), sig);
        }
        None => println!("Can't read child pidfile {}!", pidfile.display()),
    }
}
