//! The guard: a tiny process that outlives the daemon by a moment, so that
//! no descendant outlives the daemon, even after `kill -9`.
//!
//! `PR_SET_PDEATHSIG` reaches only the daemon's direct children: a shell's
//! `sleep`, `npm`'s `node`, a worker a server forked, stay alive when the
//! daemon dies without stopping them, re-parented to init. The guard closes
//! that gap without relying on any code of the daemon running after a
//! SIGKILL:
//!
//! - It is forked from the daemon when the launcher is made, before any
//!   spawn, and holds the read end of a pipe whose only write end stays in
//!   the daemon (close-on-exec, and closed in every child before its exec).
//!   The kernel closes that end when the daemon exits, however it dies, and
//!   the guard's blocking `read` returns 0 at once.
//! - The daemon tells it each process group it spawns and each one that has
//!   emptied (8-byte records, each one `write(2)`, atomic on a pipe), and
//!   says goodbye when it ends cleanly.
//! - On end of file without a goodbye, the guard writes `1` to the daemon's
//!   `cgroup.kill` (every process in the daemon's cgroup subtree, whatever
//!   became of its process groups), sends SIGKILL to every process group it
//!   was told of (what runs without a cgroup), waits (a second at most) for
//!   the subtree to empty, removes it, and exits.
//!
//! The guard runs in a forked copy of the daemon, a multi-threaded program:
//! until it exits it makes only raw system calls on memory set aside before
//! the fork (no allocation, no lock, no unwinding), like the spawn's child.
//! It leaves the daemon's session (a Ctrl-C or a terminal's hang-up does not
//! reach it), ignores the signals a group or a terminal sends, and keeps no
//! descriptor of the daemon's but the pipe and the `cgroup.kill` file.
//!
//! Its cost: one process (a copy-on-write fork: its own memory is a stack, a
//! table of 4-byte group ids and the pages the fork copies), one pipe, and
//! one 8-byte write per spawn and per emptied group.

use std::ffi::c_int;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// A process group was spawned.
const ADD: u32 = 1;
/// A process group has emptied.
const DEL: u32 = 2;
/// The daemon ends cleanly: exit without killing anything.
const QUIT: u32 = 3;

/// Process groups the guard can keep (a table set aside before the fork).
const CAPACITY: usize = 1 << 16;

/// The daemon's end of the guard.
#[derive(Debug)]
pub(crate) struct Guard {
    tx: OwnedFd,
    pid: libc::pid_t,
    /// A write failed (the guard is gone or stuck): said once.
    broken: bool,
}

impl Guard {
    /// Forks the guard. `cgroup` is the daemon's cgroup subtree (its
    /// `cgroup.kill` is opened now), if processes run in cgroups.
    pub(crate) fn start(cgroup: Option<&Path>) -> io::Result<Guard> {
        let kill: Option<OwnedFd> = match cgroup {
            Some(dir) => std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.kill"))
                .ok()
                .map(OwnedFd::from),
            None => None,
        };
        let tidy = cgroup.and_then(Tidy::open);
        let mut fds = [0 as c_int; 2];
        // SAFETY: pipe2 writes two descriptors into the array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just made and are owned here alone.
        let (rx, tx) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut table: Vec<u32> = Vec::with_capacity(CAPACITY);
        let table_ptr = table.as_mut_ptr();
        let kill_raw = kill.as_ref().map_or(-1, AsRawFd::as_raw_fd);
        let rx_raw = rx.as_raw_fd();
        let tidy_raw = tidy.as_ref().map(Tidy::raw);
        // SAFETY: in the child, `guard_main` makes only raw system calls on
        // memory that exists in its copy of the address space (the table,
        // its stack) and never returns; the parent goes on as usual.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: see above; `table_ptr` has room for CAPACITY entries.
            unsafe { guard_main(rx_raw, kill_raw, tidy_raw, table_ptr, CAPACITY) }
        }
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        drop((rx, kill, tidy, table));
        // A stuck guard must never block the daemon.
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let fl = libc::fcntl(tx.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(tx.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        Ok(Guard {
            tx,
            pid,
            broken: false,
        })
    }

    /// The guard's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    /// A group was spawned: kill it should the daemon die.
    pub(crate) fn watch(&mut self, pgid: u32) {
        self.send(ADD, pgid);
    }

    /// A group has emptied: forget it (its id may be reused).
    pub(crate) fn unwatch(&mut self, pgid: u32) {
        self.send(DEL, pgid);
    }

    fn send(&mut self, op: u32, pgid: u32) {
        let mut rec = [0u8; 8];
        rec[..4].copy_from_slice(&op.to_ne_bytes());
        rec[4..].copy_from_slice(&pgid.to_ne_bytes());
        // SAFETY: writes 8 bytes from a local array to our descriptor.
        let n = unsafe { libc::write(self.tx.as_raw_fd(), rec.as_ptr().cast(), rec.len()) };
        if n != 8 && !self.broken {
            self.broken = true;
            tracing::warn!(
                error = %io::Error::last_os_error(),
                "the guard that kills tend's processes should tend die is gone or stuck"
            );
        }
    }
}

impl Drop for Guard {
    /// The daemon ends cleanly: the guard leaves without killing anything.
    fn drop(&mut self) {
        self.send(QUIT, 0);
        // It exits at once; reap it unless the daemon's reaper got there first.
        let mut status = 0;
        // SAFETY: waits for our own child; ECHILD if it was reaped already.
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
    }
}

/// What the guard needs to remove the daemon's cgroup subtree once it is
/// empty, opened (and the name made) before the fork.
struct Tidy {
    /// The subtree's `cgroup.events`, to wait for `populated 0`.
    events: OwnedFd,
    /// The subtree itself, to list and remove its children.
    dir: OwnedFd,
    /// Its parent, to remove the subtree.
    parent: OwnedFd,
    /// The subtree's name in its parent.
    name: std::ffi::CString,
}

/// [`Tidy`] as the child reads it: raw descriptors and a pointer.
#[derive(Clone, Copy)]
struct TidyRaw {
    events: c_int,
    dir: c_int,
    parent: c_int,
    name: *const libc::c_char,
}

impl Tidy {
    fn open(dir: &Path) -> Option<Tidy> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::OpenOptionsExt;
        let open_dir = |p: &Path| {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY)
                .open(p)
                .ok()
                .map(OwnedFd::from)
        };
        Some(Tidy {
            events: std::fs::File::open(dir.join("cgroup.events")).ok()?.into(),
            dir: open_dir(dir)?,
            parent: open_dir(dir.parent()?)?,
            name: std::ffi::CString::new(dir.file_name()?.as_bytes()).ok()?,
        })
    }

    fn raw(&self) -> TidyRaw {
        TidyRaw {
            events: self.events.as_raw_fd(),
            dir: self.dir.as_raw_fd(),
            parent: self.parent.as_raw_fd(),
            name: self.name.as_ptr(),
        }
    }
}

/// Waits (a second at most) until the subtree is empty, then removes its
/// children and itself, as a clean exit of the daemon would have.
///
/// # Safety
///
/// Raw system calls on descriptors of the guard's own; `t.name` points at a
/// NUL-terminated string that lives in the guard's (copied) memory.
unsafe fn tidy(t: TidyRaw) {
    // SAFETY (whole body): the function's contract.
    unsafe {
        let mut buf = [0u8; 256];
        for _ in 0..200 {
            let n = libc::pread(t.events, buf.as_mut_ptr().cast(), buf.len(), 0);
            if n <= 0 {
                return;
            }
            let got = &buf[..usize::try_from(n).unwrap_or(0).min(buf.len())];
            if got.windows(11).any(|w| w == b"populated 0") {
                break;
            }
            let pause = libc::timespec {
                tv_sec: 0,
                tv_nsec: 5_000_000,
            };
            libc::nanosleep(&pause, std::ptr::null_mut());
        }
        // The children first (each process's cgroup), then the subtree.
        let mut ents = [0u8; 4096];
        loop {
            let n = libc::syscall(libc::SYS_getdents64, t.dir, ents.as_mut_ptr(), ents.len());
            if n <= 0 {
                break;
            }
            let n = usize::try_from(n).unwrap_or(0).min(ents.len());
            let mut off = 0;
            // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name.
            // Reads that cannot index out of bounds (nothing may panic here).
            let at = |i: usize| ents.get(i).copied().unwrap_or(0);
            while off + 19 < n {
                let reclen = usize::from(u16::from_ne_bytes([at(off + 16), at(off + 17)]));
                let kind = at(off + 18);
                let name = ents.as_ptr().add(off + 19).cast::<libc::c_char>();
                let dot = at(off + 19) == b'.'
                    && (at(off + 20) == 0 || (at(off + 20) == b'.' && at(off + 21) == 0));
                if kind == libc::DT_DIR && !dot {
                    libc::unlinkat(t.dir, name, libc::AT_REMOVEDIR);
                }
                if reclen == 0 {
                    break;
                }
                off += reclen;
            }
        }
        libc::unlinkat(t.parent, t.name, libc::AT_REMOVEDIR);
    }
}

/// The guard, in the forked child. See the module docs for its rules.
///
/// # Safety
///
/// Runs in a forked child of a multi-threaded process: only raw system
/// calls. `table` has room for `cap` entries.
unsafe fn guard_main(
    rx: c_int,
    kill: c_int,
    tidy_fds: Option<TidyRaw>,
    table: *mut u32,
    cap: usize,
) -> ! {
    // SAFETY (whole body): system calls on our own descriptors and on
    // memory of this (copied) address space.
    unsafe {
        libc::setsid();
        let mut ign: libc::sigaction = std::mem::zeroed();
        ign.sa_sigaction = libc::SIG_IGN;
        for sig in [
            libc::SIGHUP,
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGTERM,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGPIPE,
            libc::SIGALRM,
            libc::SIGTSTP,
            libc::SIGTTIN,
            libc::SIGTTOU,
        ] {
            libc::sigaction(sig, &ign, std::ptr::null_mut());
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::prctl(
            libc::PR_SET_NAME,
            c"tend-guard".as_ptr() as libc::c_ulong,
            0,
            0,
            0,
        );
        // stdin and stdout on /dev/null (nothing waits on them because of
        // us); stderr stays for the one line it may write.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
        }
        let t = tidy_fds;
        let mut keep = [
            rx,
            kill,
            t.map_or(-1, |t| t.events),
            t.map_or(-1, |t| t.dir),
            t.map_or(-1, |t| t.parent),
        ];
        close_all_but(&mut keep);

        let mut n = 0usize;
        let mut buf = [0u8; 4096];
        loop {
            let r = libc::read(rx, buf.as_mut_ptr().cast(), buf.len());
            if r == 0 {
                break;
            }
            if r < 0 {
                if *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                break;
            }
            let got = usize::try_from(r).unwrap_or(0).min(buf.len());
            for rec in buf[..got].chunks_exact(8) {
                let op = u32::from_ne_bytes([rec[0], rec[1], rec[2], rec[3]]);
                let pg = u32::from_ne_bytes([rec[4], rec[5], rec[6], rec[7]]);
                match op {
                    ADD if n < cap => {
                        *table.add(n) = pg;
                        n += 1;
                    }
                    DEL => {
                        let mut i = 0;
                        while i < n {
                            if *table.add(i) == pg {
                                n -= 1;
                                *table.add(i) = *table.add(n);
                                break;
                            }
                            i += 1;
                        }
                    }
                    QUIT => libc::_exit(0),
                    _ => {}
                }
            }
        }
        // The daemon is gone without a goodbye: nothing of it may stay.
        if kill >= 0 {
            libc::write(kill, c"1".as_ptr().cast(), 1);
        }
        for i in 0..n {
            if let Ok(pg) = libc::pid_t::try_from(*table.add(i))
                && pg > 1
            {
                libc::kill(-pg, libc::SIGKILL);
            }
        }
        let msg = b"tend: the daemon died without stopping its processes; its guard killed them\n";
        libc::write(2, msg.as_ptr().cast(), msg.len());
        if let Some(t) = tidy_fds {
            tidy(t);
        }
        libc::_exit(0)
    }
}

/// Closes every descriptor from 3 up except those in `keep` (-1 for none);
/// sorts `keep` in place.
///
/// # Safety
///
/// Closes descriptors: only for the guard's own (copied) table.
unsafe fn close_all_but(keep: &mut [c_int]) {
    // An insertion sort: no allocation in the guard.
    for i in 1..keep.len() {
        let mut j = i;
        while j > 0 && keep[j - 1] > keep[j] {
            keep.swap(j - 1, j);
            j -= 1;
        }
    }
    let mut from: c_int = 3;
    for &keep in keep.iter() {
        if keep >= from {
            if keep > from {
                // SAFETY: see the function's contract.
                unsafe { close_range(from, keep - 1) };
            }
            from = keep + 1;
        }
    }
    // SAFETY: as above.
    unsafe { close_range(from, c_int::MAX) };
}

/// `close_range(first, last)`, or a loop over the first thousand numbers
/// where the kernel has no such call.
///
/// # Safety
///
/// Closes descriptors: only for the guard's own table.
unsafe fn close_range(first: c_int, last: c_int) {
    // SAFETY: the caller's contract.
    unsafe {
        let r = libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            last as libc::c_uint,
            0 as libc::c_uint,
        );
        if r != 0 {
            for fd in first..last.min(1024).saturating_add(1) {
                libc::close(fd);
            }
        }
    }
}
