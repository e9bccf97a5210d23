//! A thin, safe wrapper over a level-triggered `epoll` instance.
//!
//! The log reader keeps every output pipe in one of these, and the reaper
//! every child's pidfd, and each registers only the epoll descriptor itself
//! with tokio: a thousand quiet children cost one reactor registration each,
//! and no task.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// An epoll instance (close-on-exec).
#[derive(Debug)]
pub(crate) struct Epoll(OwnedFd);

/// One readiness report: the token the descriptor was added with.
pub(crate) type Event = libc::epoll_event;

/// The token of an event.
pub(crate) fn token(ev: &Event) -> u64 {
    ev.u64
}

/// An empty event buffer slot.
pub(crate) const EMPTY: Event = libc::epoll_event { events: 0, u64: 0 };

impl Epoll {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Watches `fd` for input (level-triggered); hang-ups and errors are
    /// always reported.
    pub(crate) fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        let ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        self.ctl(libc::EPOLL_CTL_ADD, fd, ev)
    }

    /// Stops watching `fd`. Needed before closing it: a forked child that has
    /// not exec'd yet may still hold a copy, which would keep it in the set.
    pub(crate) fn delete(&self, fd: BorrowedFd<'_>) {
        // A failure means the descriptor was not in the set, which is what
        // we want anyway.
        let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, EMPTY);
    }

    fn ctl(&self, op: libc::c_int, fd: BorrowedFd<'_>, mut ev: Event) -> io::Result<()> {
        // SAFETY: both descriptors are valid for the call; `ev` outlives it.
        let r = unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd.as_raw_fd(), &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The descriptors ready now, without waiting.
    pub(crate) fn poll(&self, events: &mut [Event]) -> io::Result<usize> {
        let max = i32::try_from(events.len()).unwrap_or(i32::MAX);
        // SAFETY: `events` is valid for `max` entries for the whole call.
        let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), max, 0) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }
}

/// The epoll instance as tokio sees it: shared, so it stays open for as long
/// as tokio has it registered, whoever else lets go of it.
pub(crate) struct Registered(pub(crate) Arc<Epoll>);

impl AsRawFd for Registered {
    fn as_raw_fd(&self) -> RawFd {
        self.0.0.as_raw_fd()
    }
}

impl Registered {
    /// Registers the epoll instance with the current tokio runtime, for input.
    pub(crate) fn register(epoll: Arc<Epoll>) -> io::Result<AsyncFd<Registered>> {
        // SAFETY: `Registered` owns a reference to the epoll descriptor, so it
        // stays open and the same for the whole life of the `AsyncFd`.
        unsafe { AsyncFd::register_with_interest(Registered(epoll), Interest::READABLE) }
            .map_err(|e| e.into_parts().1)
    }
}

/// Sets `O_NONBLOCK` on `fd`.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = nix::fcntl::OFlag::from_bits_retain(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    Ok(())
}

/// One `read(2)`.
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    nix::unistd::read(fd, buf).map_err(io::Error::from)
}
