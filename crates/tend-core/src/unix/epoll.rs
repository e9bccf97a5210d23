//! A level-triggered `epoll` set (on `nix::sys::epoll`), and its glue to
//! tokio.
//!
//! The log reader keeps every output pipe in one of these, and the reaper
//! every child's pidfd, and each registers only the epoll descriptor itself
//! with tokio: a quiet child costs a slot in a set, not a reactor
//! registration and a task of its own.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::epoll::{self as nix_epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// An epoll instance (close-on-exec).
#[derive(Debug)]
pub(crate) struct Epoll(nix_epoll::Epoll);

/// One readiness report: the token the descriptor was added with.
pub(crate) type Event = EpollEvent;

/// The token of an event.
pub(crate) fn token(ev: &Event) -> u64 {
    ev.data()
}

/// The descriptor was hung up (for a pipe: every writer closed it).
pub(crate) fn hung_up(ev: &Event) -> bool {
    ev.events().contains(EpollFlags::EPOLLHUP)
}

/// An empty event buffer slot.
pub(crate) const EMPTY: Event = EpollEvent::new(EpollFlags::empty(), 0);

impl Epoll {
    pub(crate) fn new() -> io::Result<Self> {
        Ok(Epoll(nix_epoll::Epoll::new(
            EpollCreateFlags::EPOLL_CLOEXEC,
        )?))
    }

    /// Watches `fd` for input (level-triggered); hang-ups and errors are
    /// always reported.
    pub(crate) fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        Ok(self
            .0
            .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))?)
    }

    /// Turns the input reports of `fd` (added with `token`) on or off. A
    /// hang-up or an error is reported either way: a pipe whose reports are
    /// off still says when its writers are gone.
    pub(crate) fn watch(&self, fd: BorrowedFd<'_>, token: u64, input: bool) -> io::Result<()> {
        let flags = if input {
            EpollFlags::EPOLLIN
        } else {
            EpollFlags::empty()
        };
        Ok(self.0.modify(fd, &mut EpollEvent::new(flags, token))?)
    }

    /// Stops watching `fd`. Needed before closing it: a forked child that has
    /// not exec'd yet may still hold a copy, which would keep it in the set.
    pub(crate) fn delete(&self, fd: BorrowedFd<'_>) {
        // A failure means the descriptor was not in the set, which is what
        // we want anyway.
        let _ = self.0.delete(fd);
    }

    /// The descriptors ready now, without waiting.
    pub(crate) fn poll(&self, events: &mut [Event]) -> io::Result<usize> {
        Ok(self.0.wait(events, EpollTimeout::ZERO)?)
    }
}

/// A one-shot timer on the monotonic clock that an epoll set can watch (a
/// `timerfd`, non-blocking): for waits far shorter than the millisecond of
/// tokio's timer wheel, as the log reader's holds (see `runtime/logs.rs`).
#[derive(Debug)]
pub(crate) struct Timer(TimerFd);

impl Timer {
    pub(crate) fn new() -> io::Result<Self> {
        Ok(Timer(TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?))
    }

    /// The descriptor, readable from the moment the timer fires until
    /// [`Timer::clear`].
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    /// Fires once, `after` from now (at least a nanosecond: zero would
    /// disarm it).
    pub(crate) fn arm(&self, after: Duration) -> io::Result<()> {
        let after = after.max(Duration::from_nanos(1));
        Ok(self.0.set(
            Expiration::OneShot(TimeSpec::from_duration(after)),
            TimerSetTimeFlags::empty(),
        )?)
    }

    /// Takes the firing, so that the descriptor is no longer readable.
    pub(crate) fn clear(&self) {
        // Not fired yet (EAGAIN) is as good: nothing to take.
        let _ = self.0.wait();
    }
}

/// The epoll instance as tokio sees it: shared, so it stays open for as long
/// as tokio has it registered, whoever else lets go of it.
pub(crate) struct Registered(pub(crate) Arc<Epoll>);

impl AsRawFd for Registered {
    fn as_raw_fd(&self) -> RawFd {
        self.0.0.0.as_raw_fd()
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
