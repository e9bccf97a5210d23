//! What a process owes the system when it is PID 1 (of a container, or of a
//! PID namespace of its own): the OS side of `tend up --init`.
//!
//! - **Reaping.** Every orphan of the namespace is re-parented to PID 1.
//!   The launcher's reap-all mode ([`super::LaunchOptions::reap_all`])
//!   reaps them all already, so nothing is left as a zombie.
//! - **Signals.** The kernel gives PID 1 no default actions: a signal it has
//!   no handler for is dropped, so a program that relies on SIGTERM's
//!   default never stops as PID 1. The daemon handles what it means to
//!   (TERM, INT, QUIT, HUP, USR1, USR2) and, with [`ignore_unasked_signals`],
//!   ignores the rest explicitly, so that it behaves the same as PID 1 and
//!   as `tend up --init` under another init (`docker run --init`): a stray
//!   SIGALRM or SIGUSR1 never kills it. Children get every disposition back
//!   to the default before exec (see `spawn/child.rs`), so nothing of this
//!   reaches them.
//! - **Its end.** When PID 1 exits, the kernel kills every process of its
//!   namespace, so no guard is needed there (see `guard.rs`).

use crate::model::signal::Signal;

/// Whether this process is PID 1 of its PID namespace.
pub fn is_pid1() -> bool {
    std::process::id() == 1
}

/// Signals whose default action ends the process and that are not faults of
/// the process itself (SIGSEGV and friends must keep their default, or a
/// crash would loop): what an init ignores unless it asked for them.
const ENDING: [libc::c_int; 14] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGPIPE,
    libc::SIGALRM,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGIO,
    libc::SIGPWR,
    libc::SIGXCPU,
    libc::SIGXFSZ,
];

/// Sets every signal that would end this process by default to "ignore",
/// except those in `handled` (the daemon installs handlers for them next),
/// and the real-time signals too. Returns the signals it set.
///
/// Call it early, before handlers are installed: a handler installed
/// afterwards replaces the disposition as usual.
pub fn ignore_unasked_signals(handled: &[Signal]) -> Vec<libc::c_int> {
    let mut set = Vec::new();
    let rt = libc::SIGRTMIN()..=libc::SIGRTMAX();
    for sig in ENDING.into_iter().chain(rt) {
        if handled.iter().any(|h| h.number() == sig) {
            continue;
        }
        // SAFETY: a zeroed sigaction with SIG_IGN is a valid disposition;
        // glibc refuses its two internal signals with EINVAL, which is fine.
        let ok = unsafe {
            let mut ign: libc::sigaction = std::mem::zeroed();
            ign.sa_sigaction = libc::SIG_IGN;
            libc::sigaction(sig, &ign, std::ptr::null_mut()) == 0
        };
        if ok {
            set.push(sig);
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_and_child_exits_are_never_ignored() {
        for sig in [
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGILL,
            libc::SIGFPE,
            libc::SIGABRT,
            libc::SIGCHLD,
            libc::SIGKILL,
            libc::SIGSTOP,
        ] {
            assert!(!ENDING.contains(&sig), "{sig}");
        }
    }
}
