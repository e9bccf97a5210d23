//! cgroup v2: a cgroup of its own for each process, under tend's.
//!
//! # Where
//!
//! tend finds its own cgroup from `/proc/self/cgroup` (the `0::PATH` line)
//! and the cgroup2 mount from `/proc/self/mountinfo` (a mount's *root* may be
//! a subtree, as in a container without a cgroup namespace), never from a
//! path written in the code. Under it (or under `[daemon] cgroup = PATH`) it
//! makes the daemon's subtree `S`, and in `S` one cgroup per process:
//!
//! ```text
//! BASE/                    tend's cgroup when it started (a systemd unit, a container, a session)
//!   NAME.daemon/           tend itself, only when it had to leave BASE to enable controllers
//!   NAME/                  S (NAME is unique per daemon: tend-HASH of its socket path)
//!     web.proc/            one per process (the suffix keeps names apart from the kernel's files)
//!     worker.proc/
//! ```
//!
//! `S` holds processes only, so writing `1` to `S/cgroup.kill` kills every
//! process of the daemon, whatever became of its process groups: the daemon's
//! guard does that when the daemon dies (see `guard.rs`), and the next `tend
//! up` with the same socket does it to what an earlier daemon left behind, as
//! systemd does with a unit's leftovers.
//!
//! # Joining
//!
//! The parent opens the process's cgroup directory before the clone, and
//! `clone3` with `CLONE_INTO_CGROUP` (Linux 5.7) makes the child in it. Where
//! that is missing, the child writes `0` to its `cgroup.procs` (which moves
//! the writer) as its very first step, with a raw `write(2)`; either way no
//! code of the program ever runs outside the cgroup. The clone is the fast
//! way besides: moving a process takes the kernel's thread-group lock for
//! writing, which waits for an RCU grace period when nothing else moved
//! lately, 10-15 ms on an idle machine, on every restart.
//!
//! # Controllers
//!
//! Grouping, `cgroup.kill`, `cgroup.events` and `cpu.stat` need no
//! controller. Limits do: `memory` (`memory_max`, `memory_high`), `cpu`
//! (`cpu_max`), `pids` (`pids_max`), `io` (`io_weight`). A controller can be
//! enabled for `S`'s children only if every cgroup above has it in its
//! `cgroup.subtree_control`, and (the kernel's "no internal processes" rule)
//! a cgroup with controllers for its children holds no process itself. So
//! when tend is the only process of `BASE` (a systemd unit with
//! `Delegate=yes`, a container with its own cgroup namespace), it moves
//! itself into the leaf `BASE/NAME.daemon` and enables what `BASE` offers;
//! otherwise (a login session) it uses what is enabled already, which is
//! usually nothing: processes still get their cgroups, without limits, and
//! the daemon warns once for each limit it cannot apply.

use std::collections::{HashMap, HashSet};
use std::ffi::c_int;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use crate::model::name::Name;
use crate::model::resources::{CPU_PERIOD_USEC, ProcessStats, ResourceLimits, StatsSource};
use crate::unix::procfs::ProcFs;

/// Whether, and under which cgroup, processes get cgroups of their own
/// (`[daemon] cgroup`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CgroupMode {
    /// No cgroups: process groups only (an embedder's default).
    #[default]
    Off,
    /// Under tend's own cgroup, found from `/proc/self`; without a writable
    /// cgroup v2 there, process groups only, with one warning (the daemon's
    /// default).
    Auto,
    /// Under this cgroup: a path on a cgroup2 mount
    /// (`/sys/fs/cgroup/tend`), or a path inside the cgroup v2 hierarchy
    /// (`/tend`, `/system.slice/tend.service/procs`). Made if missing. What
    /// it holds when tend starts is killed as leftovers of an earlier run.
    Path(PathBuf),
}

/// What the cgroup setup found and did, for the daemon to report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CgroupStatus {
    /// The daemon's subtree `S`, when processes get cgroups.
    pub dir: Option<PathBuf>,
    /// Controllers enabled for the processes' cgroups.
    pub controllers: Vec<String>,
    /// Processes an earlier daemon left in `S`, killed at start.
    pub leftovers_killed: usize,
    /// Where tend moved itself to enable controllers, if it did.
    pub moved_to: Option<PathBuf>,
    /// Why processes get no cgroups although they were asked for.
    pub problem: Option<String>,
}

/// The controllers tend sets limits with.
const WANTED: [&str; 4] = ["cpu", "io", "memory", "pids"];

/// How long the setup waits for leftovers to die after `cgroup.kill`.
const LEFTOVER_WAIT: Duration = Duration::from_secs(2);

// --- finding tend's cgroup -------------------------------------------------

/// One cgroup2 mount of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// The directory of the hierarchy mounted there (`/` unless a subtree
    /// was bind-mounted).
    pub(crate) root: String,
    /// Where it is mounted.
    pub(crate) point: PathBuf,
}

/// The cgroup2 mounts in `mountinfo`'s text, in its order.
pub(crate) fn cgroup2_mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            if post.split_whitespace().next()? != "cgroup2" {
                return None;
            }
            let fields: Vec<&str> = pre.split_whitespace().collect();
            Some(Mount {
                root: unescape(fields.get(3)?),
                point: PathBuf::from(unescape(fields.get(4)?)),
            })
        })
        .collect()
}

/// mountinfo's octal escapes (`\040` for a space) undone.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..=i + 3].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let n = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(n);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup v2 path in `/proc/self/cgroup`'s text (the `0::` line).
pub(crate) fn own_cgroup(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::trim_end)
}

/// tend's own cgroup as a directory, and the mount point of its hierarchy,
/// from the texts of `/proc/self/cgroup` and `/proc/self/mountinfo`.
pub(crate) fn locate(proc_cgroup: &str, mountinfo: &str) -> Result<(PathBuf, PathBuf), String> {
    let path = own_cgroup(proc_cgroup)
        .ok_or("no cgroup v2 hierarchy (no 0:: line in /proc/self/cgroup)")?;
    let inside = Path::new(path);
    if !inside.is_absolute() || inside.components().any(|c| c == Component::ParentDir) {
        // A cgroup outside our cgroup namespace shows as /../..: not ours to use.
        return Err(format!(
            "tend's cgroup {path:?} is outside its cgroup namespace"
        ));
    }
    let mounts = cgroup2_mounts(mountinfo);
    if mounts.is_empty() {
        return Err("no cgroup2 file system is mounted".into());
    }
    mounts
        .iter()
        .filter_map(|m| {
            let rel = inside.strip_prefix(&m.root).ok()?;
            Some((m.root.len(), m.point.join(rel), m.point.clone()))
        })
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, dir, point)| (dir, point))
        .ok_or_else(|| {
            format!(
                "tend's cgroup {path} is not under any cgroup2 mount ({})",
                mounts
                    .iter()
                    .map(|m| m.point.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// Reads `/proc/self/cgroup` and `/proc/self/mountinfo` and locates tend's
/// cgroup (see [`locate`]).
fn locate_self() -> Result<(PathBuf, PathBuf), String> {
    let cg = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let mi = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    locate(&cg, &mi)
}

/// Whether `path` is on a cgroup2 file system.
fn on_cgroup2(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// The first existing ancestor of `path` (itself included).
fn existing_ancestor(path: &Path) -> Option<&Path> {
    path.ancestors().find(|p| p.exists())
}

// --- small file helpers ------------------------------------------------------

fn read(path: &Path) -> io::Result<String> {
    fs::read_to_string(path)
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    // One write(2) of the whole value, as the kernel wants it (truncating,
    // like a shell's `>`, which cgroupfs ignores and a plain file needs).
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| io::Write::write_all(&mut f, value.as_bytes()))
}

/// The value of `key` in a flat-keyed file (`cgroup.events`, `cpu.stat`,
/// `memory.events`).
pub(crate) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

fn pids_in(dir: &Path) -> Vec<u32> {
    read(&dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Whether the cgroup at `dir` (or one below it) holds a live process.
/// Zombies do not count: the kernel takes a process out at its exit.
pub(crate) fn populated(dir: &Path) -> bool {
    match read(&dir.join("cgroup.events")) {
        Ok(t) => keyed(&t, "populated") == Some(1),
        // Gone (removed) or unreadable: nothing we can wait for.
        Err(_) => false,
    }
}

/// Kills every process in `dir` and below: `cgroup.kill` where the kernel
/// has it (5.14), else SIGKILL to each listed process until none is left.
fn kill_tree(dir: &Path) -> io::Result<()> {
    match write(&dir.join("cgroup.kill"), "1") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound && dir.exists() => {
            for _ in 0..16 {
                let mut any = false;
                for sub in subdirs(dir).into_iter().chain([dir.to_path_buf()]) {
                    for pid in pids_in(&sub) {
                        any = true;
                        signal(pid, libc::SIGKILL);
                    }
                }
                if !any {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

fn signal(pid: u32, sig: c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid)
        && pid > 0
    {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Waits (bounded) until nothing is left in `dir`.
fn wait_empty(dir: &Path, within: Duration) -> bool {
    let until = Instant::now() + within;
    loop {
        if !populated(dir) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Counts the processes in `dir` and below.
fn count_tree(dir: &Path) -> usize {
    let mut n = pids_in(dir).len();
    for sub in subdirs(dir) {
        n += count_tree(&sub);
    }
    n
}

/// Removes the empty cgroups below `dir`, deepest first (the kernel removes
/// a cgroup's files with it: `rmdir` is all it takes).
fn remove_children(dir: &Path) {
    for sub in subdirs(dir) {
        remove_children(&sub);
        let _ = fs::remove_dir(&sub);
    }
}

// --- the daemon's subtree ------------------------------------------------------

/// One process's cgroup.
#[derive(Debug)]
struct ProcCgroup {
    dir: PathBuf,
    /// What was written to its limit files (`None`: nothing yet).
    applied: Option<ResourceLimits>,
    /// `memory.events` `oom_kill` when the current run started.
    oom_base: u64,
    /// `cpu.stat` `usage_usec` when the current run started.
    cpu_base: u64,
    /// When the current run started.
    started: Instant,
    /// The previous stats read: when, and the CPU time then.
    last: Option<(Instant, u64)>,
    /// The leader of its last run (its key in `by_pgid`).
    leader: Option<u32>,
}

/// The daemon's subtree `S` and one cgroup per process in it (see the
/// [module docs](self)).
#[derive(Debug)]
pub(crate) struct Cgroups {
    dir: PathBuf,
    /// `dir`, open: a process's files are opened relative to it, not by a
    /// walk of the whole path (half the cost of a stop's reads at 10,000).
    dir_fd: Option<OwnedFd>,
    controllers: Vec<String>,
    procs: HashMap<Name, ProcCgroup>,
    /// The process each group leader (pgid) belongs to; kept after the
    /// leader is reaped, until the next run or removal, so that a stopping
    /// group can still be checked and killed.
    by_pgid: HashMap<u32, Name>,
    /// Limits already warned about, per process and controller.
    warned: HashSet<(Name, &'static str)>,
    /// The cgroups of processes stopped for good during a shutdown, removed
    /// by a thread of their own (see [`Cgroups::retire`]).
    retired: Option<Remover>,
}

/// A thread that removes the (empty) cgroup directories it is sent.
#[derive(Debug)]
struct Remover {
    tx: std::sync::mpsc::Sender<PathBuf>,
    thread: std::thread::JoinHandle<()>,
}

impl Remover {
    fn start() -> io::Result<Remover> {
        let (tx, rx) = std::sync::mpsc::channel::<PathBuf>();
        let thread = std::thread::Builder::new()
            .name("tend-cgroup-rm".into())
            .spawn(move || {
                for dir in rx {
                    let _ = fs::remove_dir(&dir);
                }
            })?;
        Ok(Remover { tx, thread })
    }

    /// Waits until every directory sent has been removed (or refused).
    fn finish(self) {
        drop(self.tx);
        let _ = self.thread.join();
    }
}

impl Cgroups {
    /// Sets up the daemon's subtree as `mode` says, `name` being its name
    /// under tend's cgroup in `Auto` mode. `None` (with the reason in the
    /// status) when processes get no cgroups.
    pub(crate) fn setup(mode: &CgroupMode, name: &str) -> (Option<Cgroups>, CgroupStatus) {
        let fail = |problem: String| {
            (
                None,
                CgroupStatus {
                    problem: Some(problem),
                    ..CgroupStatus::default()
                },
            )
        };
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return fail(format!("invalid cgroup name {name:?}"));
        }
        let result = match mode {
            CgroupMode::Off => return (None, CgroupStatus::default()),
            CgroupMode::Auto => match locate_self() {
                Ok((own, _)) => {
                    if !on_cgroup2(&own) {
                        return fail(format!("{} is not a cgroup2 directory", own.display()));
                    }
                    Self::open(&own.join(name), Some(&own))
                }
                Err(e) => return fail(e),
            },
            CgroupMode::Path(p) => {
                let dir = match resolve_path(p) {
                    Ok(d) => d,
                    Err(e) => return fail(e),
                };
                let own = locate_self().ok().map(|(own, _)| own);
                Self::open(&dir, own.as_deref())
            }
        };
        match result {
            Ok((cg, st)) => (Some(cg), st),
            Err(e) => fail(e),
        }
    }

    /// Opens (or makes) the subtree at `dir`, killing what an earlier run
    /// left there, and enables what controllers it can. `own` is tend's own
    /// cgroup, which it may leave for a leaf beside `dir` to enable
    /// controllers (only when it is the only process there).
    pub(crate) fn open(dir: &Path, own: Option<&Path>) -> Result<(Cgroups, CgroupStatus), String> {
        let shown = dir.display();
        let mut status = CgroupStatus::default();
        if dir.is_dir() {
            // What an earlier daemon of the same socket left behind (it was
            // killed, and so was its guard): kill it, as systemd does.
            let n = count_tree(dir);
            if populated(dir) {
                kill_tree(dir).map_err(|e| format!("cannot kill the leftovers in {shown}: {e}"))?;
                if !wait_empty(dir, LEFTOVER_WAIT) {
                    return Err(format!("leftover processes in {shown} do not die"));
                }
                status.leftovers_killed = n;
            }
            remove_children(dir);
        } else {
            fs::create_dir_all(dir).map_err(|e| {
                let why = match e.raw_os_error() {
                    Some(libc::EACCES | libc::EPERM) => " (not delegated to tend's user)",
                    Some(libc::EROFS) => " (the cgroup file system is read-only)",
                    _ => "",
                };
                format!("cannot create the cgroup {shown}: {e}{why}")
            })?;
        }
        if !dir.join("cgroup.procs").exists() {
            return Err(format!("{shown} is not a cgroup (no cgroup.procs)"));
        }
        let parent = dir.parent().unwrap_or(dir);
        status.moved_to = enable_in_parent(parent, dir, own);
        let offered = read(&dir.join("cgroup.controllers"))
            .map(|t| words(&t))
            .unwrap_or_default();
        for c in WANTED.iter().filter(|c| offered.iter().any(|o| o == *c)) {
            if let Err(e) = write(&dir.join("cgroup.subtree_control"), &format!("+{c}")) {
                tracing::debug!(controller = c, error = %e, "cannot enable a cgroup controller");
            }
        }
        let controllers: Vec<String> = read(&dir.join("cgroup.subtree_control"))
            .map(|t| words(&t))
            .unwrap_or_default()
            .into_iter()
            .filter(|c| WANTED.contains(&c.as_str()))
            .collect();
        status.dir = Some(dir.to_path_buf());
        status.controllers = controllers.clone();
        Ok((
            Cgroups {
                dir: dir.to_path_buf(),
                dir_fd: fs::File::open(dir).ok().map(OwnedFd::from),
                controllers,
                procs: HashMap::new(),
                by_pgid: HashMap::new(),
                warned: HashSet::new(),
                retired: None,
            },
            status,
        ))
    }

    /// Whether the memory controller is enabled for the processes' cgroups
    /// (else they have no `memory.*` files).
    fn has_memory(&self) -> bool {
        self.controllers.iter().any(|c| c == "memory")
    }

    /// The subtree's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes (or reuses) `name`'s cgroup, applies `limits`, notes where the
    /// run's counters start, and returns its directory, opened for the
    /// spawn to clone the child into (`CLONE_INTO_CGROUP`, or the child
    /// writes `0` to its `cgroup.procs`). The caller closes it once the
    /// child is spawned: a descriptor held per process would cost as much as
    /// its pidfd (10,000 processes under a 20,000 limit).
    pub(crate) fn prepare(&mut self, name: &Name, limits: &ResourceLimits) -> io::Result<OwnedFd> {
        if !self.procs.contains_key(name) {
            let dir = self.dir.join(format!("{name}.proc"));
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            self.procs.insert(
                name.clone(),
                ProcCgroup {
                    dir,
                    applied: None,
                    oom_base: 0,
                    cpu_base: 0,
                    started: Instant::now(),
                    last: None,
                    leader: None,
                },
            );
        }
        self.apply(name, limits);
        let memory = self.has_memory();
        let Some(pc) = self.procs.get_mut(name) else {
            return Err(io::Error::other("cgroup vanished"));
        };
        // Without the memory controller there is no `memory.events` to read
        // (a failed open at every spawn and every exit of a crash storm).
        pc.oom_base = if memory { oom_kills(&pc.dir) } else { 0 };
        pc.cpu_base = cpu_usec(&pc.dir).unwrap_or(0);
        pc.started = Instant::now();
        pc.last = None;
        let dir: OwnedFd = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&pc.dir)?
            .into();
        Ok(dir)
    }

    /// Records that `pid` leads `name`'s new run.
    pub(crate) fn spawned(&mut self, name: &Name, pid: u32) {
        // The previous run's leader, found through the process rather than
        // by a scan of every leader: with 10,000 processes the scan made
        // starting them all quadratic (50 million name comparisons).
        if let Some(pc) = self.procs.get_mut(name)
            && let Some(old) = pc.leader.replace(pid)
            && self.by_pgid.get(&old) == Some(name)
        {
            self.by_pgid.remove(&old);
        }
        self.by_pgid.insert(pid, name.clone());
    }

    /// `file` of the process cgroup `dir` (below [`Cgroups::dir`]), read
    /// through the subtree's descriptor.
    fn read_in(&self, dir: &Path, file: &str) -> io::Result<String> {
        use std::os::unix::ffi::OsStrExt;
        let (Some(fd), Ok(rel)) = (&self.dir_fd, dir.strip_prefix(&self.dir)) else {
            return read(&dir.join(file));
        };
        let mut path = Vec::with_capacity(rel.as_os_str().len() + file.len() + 2);
        path.extend_from_slice(rel.as_os_str().as_bytes());
        path.push(b'/');
        path.extend_from_slice(file.as_bytes());
        let Ok(c) = std::ffi::CString::new(path) else {
            return read(&dir.join(file));
        };
        // SAFETY: openat on a directory descriptor we hold, with a C string.
        let raw = unsafe {
            libc::openat(
                std::os::fd::AsRawFd::as_raw_fd(fd),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor just opened, owned by nobody else.
        let mut f = unsafe { <fs::File as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        let mut text = String::new();
        io::Read::read_to_string(&mut f, &mut text)?;
        Ok(text)
    }

    /// The pids in the process cgroup `dir`.
    fn pids_of(&self, dir: &Path) -> Vec<u32> {
        self.read_in(dir, "cgroup.procs")
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// The cgroup directory of the process whose group `pgid` leads.
    pub(crate) fn dir_of(&self, pgid: u32) -> Option<&Path> {
        let name = self.by_pgid.get(&pgid)?;
        self.procs.get(name).map(|p| p.dir.as_path())
    }

    /// Writes the limit files that differ from what was applied. A limit
    /// whose controller is not enabled is reported once and skipped.
    fn apply(&mut self, name: &Name, limits: &ResourceLimits) {
        let Some(pc) = self.procs.get(name) else {
            return;
        };
        if pc.applied.as_ref() == Some(limits) {
            return;
        }
        let dir = pc.dir.clone();
        let memory = limits.memory_max.is_some() || limits.memory_high.is_some();
        let files: [(&'static str, &str, String, bool); 6] = [
            (
                "memory",
                "memory.max",
                max(limits.memory_max),
                limits.memory_max.is_some(),
            ),
            (
                "memory",
                "memory.high",
                max(limits.memory_high),
                limits.memory_high.is_some(),
            ),
            // Over the limit, the OOM killer ends the whole process, not one
            // worker of it that the supervisor would never hear of.
            (
                "memory",
                "memory.oom.group",
                u8::from(memory).to_string(),
                false,
            ),
            (
                "cpu",
                "cpu.max",
                match limits.cpu_max {
                    Some(pct) => format!(
                        "{} {CPU_PERIOD_USEC}",
                        u64::from(pct) * CPU_PERIOD_USEC / 100
                    ),
                    None => format!("max {CPU_PERIOD_USEC}"),
                },
                limits.cpu_max.is_some(),
            ),
            (
                "pids",
                "pids.max",
                max(limits.pids_max),
                limits.pids_max.is_some(),
            ),
            (
                "io",
                "io.weight",
                format!("default {}", limits.io_weight.unwrap_or(100)),
                limits.io_weight.is_some(),
            ),
        ];
        for (controller, file, value, asked) in files {
            if !self.controllers.iter().any(|c| c == controller) {
                if asked && self.warned.insert((name.clone(), controller)) {
                    tracing::warn!(
                        process = %name,
                        "{file} not applied: the {controller} controller is not enabled in {} (see docs/running.md)",
                        self.dir.display()
                    );
                }
                continue;
            }
            if let Err(e) = write(&dir.join(file), &value)
                && asked
                && self.warned.insert((name.clone(), controller))
            {
                tracing::warn!(process = %name, "cannot write {value:?} to {}: {e}", dir.join(file).display());
            }
        }
        if let Some(pc) = self.procs.get_mut(name) {
            pc.applied = Some(limits.clone());
        }
    }

    /// Whether the group led by `pgid` (its process's cgroup) still holds a
    /// live process; `None` when it has no cgroup.
    pub(crate) fn alive(&self, pgid: u32) -> Option<bool> {
        let dir = self.dir_of(pgid)?;
        Some(match self.read_in(dir, "cgroup.events") {
            Ok(t) => keyed(&t, "populated") == Some(1),
            // Gone (removed) or unreadable: nothing we can wait for.
            Err(_) => false,
        })
    }

    /// SIGKILL to every process in the cgroup of `pgid`'s process. `false`
    /// when it has no cgroup.
    pub(crate) fn kill(&self, pgid: u32) -> io::Result<bool> {
        match self.dir_of(pgid) {
            Some(dir) => kill_tree(dir).map(|()| true),
            None => Ok(false),
        }
    }

    /// Sends `sig` to the processes of `pgid`'s cgroup that have left its
    /// process group (a daemon that called `setsid`): a group signal
    /// already reaches the others, and must not reach them twice.
    pub(crate) fn signal_strays(&self, pgid: u32, sig: c_int) {
        let Some(dir) = self.dir_of(pgid) else { return };
        let Ok(group) = libc::pid_t::try_from(pgid) else {
            return;
        };
        for pid in self.pids_of(dir) {
            let Ok(p) = libc::pid_t::try_from(pid) else {
                continue;
            };
            // SAFETY: getpgid(2) has no memory-safety preconditions.
            let pg = unsafe { libc::getpgid(p) };
            if pg >= 0 && pg != group {
                signal(pid, sig);
            }
        }
    }

    /// Whether the run led by `pgid` was ended by the OOM killer (its
    /// `oom_kill` count grew since it started). Counts each kill once.
    pub(crate) fn oom_killed(&mut self, pgid: u32) -> bool {
        if !self.has_memory() {
            // No memory controller, no OOM kill of a cgroup to count.
            return false;
        }
        let Some(name) = self.by_pgid.get(&pgid) else {
            return false;
        };
        let Some(pc) = self.procs.get_mut(name) else {
            return false;
        };
        let now = oom_kills(&pc.dir);
        let grew = now > pc.oom_base;
        pc.oom_base = now;
        grew
    }

    /// What the run led by `pgid` uses, from its cgroup.
    pub(crate) fn stats(&mut self, pgid: u32) -> Option<ProcessStats> {
        let name = self.by_pgid.get(&pgid)?;
        let dir = &self.procs.get(name)?.dir;
        let total = keyed(&self.read_in(dir, "cpu.stat").ok()?, "usage_usec")?;
        let pids = self.pids_of(dir);
        let number = |t: String| t.trim().parse::<u64>().ok();
        // Without the memory controller there is no `memory.current` to try.
        let memory = if self.has_memory() {
            self.read_in(dir, "memory.current").ok().map(|t| {
                let peak = self.read_in(dir, "memory.peak").ok().and_then(number);
                (number(t), peak)
            })
        } else {
            None
        };
        let pc = self.procs.get_mut(name)?;
        let cpu = total.saturating_sub(pc.cpu_base);
        let now = Instant::now();
        let pct = percent(pc.last, (pc.started, 0), now, cpu);
        pc.last = Some((now, cpu));
        let mut st = ProcessStats::new(StatsSource::Cgroup, cpu, pct);
        let proc = ProcFs::shared();
        st.threads = proc.stat(pgid).map(|s| s.threads);
        st.processes = Some(pids.len() as u64);
        match memory {
            Some((current, peak)) => {
                st.memory_bytes = current;
                st.memory_peak_bytes = peak;
            }
            // No memory controller: what its processes hold in RAM now.
            None => {
                st.memory_bytes = Some(pids.iter().filter_map(|&p| proc.resident_bytes(p)).sum());
            }
        }
        Some(st)
    }

    /// Lets `name`'s cgroup go: it has stopped for good (the daemon is
    /// shutting down) and its cgroup is empty. Removing a cgroup takes the
    /// kernel ~0.15 ms, under a lock of its own: 10,000 of them, one after
    /// the other once the last process was gone, were 1.5-2.5 s of a
    /// shutdown. A thread removes them while the others are still stopping;
    /// whatever it cannot remove is swept when the subtree goes.
    pub(crate) fn retire(&mut self, name: &Name) {
        let Some(pc) = self.procs.remove(name) else {
            return;
        };
        if let Some(leader) = pc.leader
            && self.by_pgid.get(&leader) == Some(name)
        {
            self.by_pgid.remove(&leader);
        }
        if self.retired.is_none() {
            self.retired = Remover::start().ok();
        }
        match &self.retired {
            Some(r) => {
                if let Err(back) = r.tx.send(pc.dir) {
                    let _ = fs::remove_dir(back.0);
                }
            }
            None => {
                let _ = fs::remove_dir(&pc.dir);
            }
        }
    }

    /// Forgets `name` (removed from the daemon): kills what is left in its
    /// cgroup and removes it.
    pub(crate) fn removed(&mut self, name: &Name) {
        if !self.warned.is_empty() {
            self.warned.retain(|(n, _)| n != name);
        }
        if let Some(pc) = self.procs.remove(name) {
            if let Some(leader) = pc.leader
                && self.by_pgid.get(&leader) == Some(name)
            {
                self.by_pgid.remove(&leader);
            }
            if populated(&pc.dir) {
                let _ = kill_tree(&pc.dir);
                wait_empty(&pc.dir, Duration::from_millis(200));
            }
            let _ = fs::remove_dir(&pc.dir);
        }
    }
}

impl Drop for Cgroups {
    /// The daemon is done: whatever is left is killed, and the subtree
    /// removed (a daemon killed with SIGKILL leaves it to its guard and the
    /// next `tend up`).
    fn drop(&mut self) {
        if let Some(r) = self.retired.take() {
            r.finish();
        }
        self.procs.clear();
        if populated(&self.dir) {
            let _ = kill_tree(&self.dir);
            wait_empty(&self.dir, Duration::from_millis(500));
        }
        remove_children(&self.dir);
        let _ = fs::remove_dir(&self.dir);
    }
}

/// `"max"` for no limit.
fn max(v: Option<u64>) -> String {
    v.map_or_else(|| "max".to_string(), |v| v.to_string())
}

fn oom_kills(dir: &Path) -> u64 {
    read(&dir.join("memory.events"))
        .ok()
        .and_then(|t| keyed(&t, "oom_kill"))
        .unwrap_or(0)
}

fn cpu_usec(dir: &Path) -> Option<u64> {
    keyed(&read(&dir.join("cpu.stat")).ok()?, "usage_usec")
}

/// CPU percent of one CPU since `last` (or since `start` on the first read).
fn percent(last: Option<(Instant, u64)>, start: (Instant, u64), now: Instant, cpu: u64) -> f64 {
    let (then, before) = last.unwrap_or(start);
    let wall = now.saturating_duration_since(then).as_micros();
    if wall == 0 {
        return 0.0;
    }
    cpu.saturating_sub(before) as f64 * 100.0 / wall as f64
}

/// A `[daemon] cgroup = PATH` as a directory: a path on a cgroup2 mount as
/// it is, otherwise a path inside the cgroup v2 hierarchy under its mount.
fn resolve_path(p: &Path) -> Result<PathBuf, String> {
    if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "cgroup {} must be an absolute path without ..",
            p.display()
        ));
    }
    if existing_ancestor(p).is_some_and(on_cgroup2) {
        return Ok(p.to_path_buf());
    }
    let mi = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let mount = cgroup2_mounts(&mi)
        .into_iter()
        .next()
        .ok_or("no cgroup2 file system is mounted")?;
    let rel = p.strip_prefix("/").unwrap_or(p);
    let dir = mount.point.join(rel);
    if existing_ancestor(&dir).is_some_and(on_cgroup2) {
        Ok(dir)
    } else {
        Err(format!("{} is not on a cgroup2 file system", p.display()))
    }
}

/// Makes the controllers tend wants available to `dir`: enabled in its
/// parent's `cgroup.subtree_control`. That is only possible when the parent
/// holds no process, so when tend is the only one there (`own` is the
/// parent) it first moves into the leaf `DIR.daemon` beside `dir`. Returns
/// that leaf if tend moved.
fn enable_in_parent(parent: &Path, dir: &Path, own: Option<&Path>) -> Option<PathBuf> {
    let offered = read(&parent.join("cgroup.controllers"))
        .map(|t| words(&t))
        .unwrap_or_default();
    let enabled = read(&parent.join("cgroup.subtree_control"))
        .map(|t| words(&t))
        .unwrap_or_default();
    let missing: Vec<&str> = WANTED
        .iter()
        .copied()
        .filter(|c| offered.iter().any(|o| o == c) && !enabled.iter().any(|e| e == c))
        .collect();
    if missing.is_empty() || own != Some(parent) {
        return None;
    }
    let me = std::process::id();
    let others = pids_in(parent).into_iter().any(|p| p != me);
    if others {
        // A login session or a unit with other processes: not ours to
        // reorganise. What is enabled already is what there is.
        return None;
    }
    let leaf = PathBuf::from(format!("{}.daemon", dir.display()));
    let moved = fs::create_dir(&leaf)
        .or_else(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(e)
            }
        })
        .and_then(|()| write(&leaf.join("cgroup.procs"), "0"));
    if let Err(e) = moved {
        tracing::debug!(error = %e, leaf = %leaf.display(), "cannot move tend into a leaf cgroup");
        return None;
    }
    for c in missing {
        if let Err(e) = write(&parent.join("cgroup.subtree_control"), &format!("+{c}")) {
            tracing::debug!(controller = c, error = %e, "cannot enable a cgroup controller");
        }
    }
    Some(leaf)
}

// --- usage without a cgroup ----------------------------------------------------

/// What the process `pid` alone uses, from `/proc` (it has no cgroup): one
/// `/proc/PID/stat` for CPU, memory and threads, and `/proc/PID/status`
/// for the peak. `last` is the previous read of this run, `started` its
/// start.
pub(crate) fn proc_stats(
    proc: &ProcFs,
    pid: u32,
    started: Instant,
    last: Option<(Instant, u64)>,
) -> Option<ProcessStats> {
    let stat = proc.stat(pid)?;
    let cpu = stat.cpu_ticks().saturating_mul(1_000_000) / proc.ticks_per_second();
    let now = Instant::now();
    let pct = percent(last, (started, 0), now, cpu);
    let mut st = ProcessStats::new(StatsSource::Proc, cpu, pct);
    st.memory_bytes = Some(stat.rss_pages.saturating_mul(proc.page_size()));
    st.memory_peak_bytes = proc.peak_bytes(pid);
    st.threads = Some(stat.threads);
    Some(st)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    const MOUNTINFO_HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_the_cgroup2_mount_among_v1_ones() {
        let m = cgroup2_mounts(MOUNTINFO_HYBRID);
        assert_eq!(
            m,
            [Mount {
                root: "/".into(),
                point: "/sys/fs/cgroup/unified".into()
            }]
        );
        let (own, point) =
            locate("4:memory:/x\n0::/user.slice/s-1.scope\n", MOUNTINFO_HYBRID).expect("located");
        assert_eq!(
            own,
            Path::new("/sys/fs/cgroup/unified/user.slice/s-1.scope")
        );
        assert_eq!(point, Path::new("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn a_bind_mounted_subtree_is_followed_by_its_root() {
        // A container without a cgroup namespace sees its own subtree
        // mounted at /sys/fs/cgroup, with the host's path in /proc/self/cgroup.
        let mi = "29 22 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n\
                  30 22 0:26 / /mnt/whole\\040tree rw - cgroup2 cgroup2 rw\n";
        let (own, _) = locate("0::/docker/abc/inner\n", mi).expect("located");
        assert_eq!(own, Path::new("/sys/fs/cgroup/inner"));
        let (own, point) = locate("0::/elsewhere\n", mi).expect("located");
        assert_eq!(own, Path::new("/mnt/whole tree/elsewhere"));
        assert_eq!(point, Path::new("/mnt/whole tree"));
    }

    #[test]
    fn refuses_what_is_not_usable() {
        assert!(locate("1:name=systemd:/\n", MOUNTINFO_HYBRID).is_err());
        assert!(locate("0::/../../x\n", MOUNTINFO_HYBRID).is_err());
        assert!(locate("0::/\n", "1 1 0:1 / / rw - ext4 /dev/vda rw\n").is_err());
        assert_eq!(own_cgroup("0::/\n"), Some("/"));
    }

    #[test]
    fn reads_flat_keyed_files() {
        let t = "populated 1\nfrozen 0\n";
        assert_eq!(keyed(t, "populated"), Some(1));
        assert_eq!(keyed(t, "frozen"), Some(0));
        assert_eq!(keyed(t, "nope"), None);
        assert_eq!(keyed("oom 0\noom_kill 3\n", "oom_kill"), Some(3));
    }

    #[test]
    fn stats_without_a_cgroup_are_one_read_of_proc() {
        let started = Instant::now();
        let st =
            proc_stats(ProcFs::shared(), std::process::id(), started, None).expect("our own /proc");
        assert_eq!(st.source, StatsSource::Proc);
        assert!(st.threads.is_some_and(|n| n >= 1), "{st:?}");
        assert!(st.memory_bytes.is_some_and(|b| b > 0), "{st:?}");
        assert!(
            st.memory_peak_bytes
                .is_some_and(|p| p >= st.memory_bytes.unwrap_or(0) / 2),
            "{st:?}"
        );
        assert_eq!(proc_stats(ProcFs::shared(), u32::MAX, started, None), None);
    }

    #[test]
    fn cpu_percent_is_over_the_interval() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        // 1 s of CPU over 2 s: 50 %.
        assert_eq!(percent(None, (t0, 0), t1, 1_000_000), 50.0);
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(
            percent(Some((t1, 1_000_000)), (t0, 0), t2, 3_000_000),
            200.0
        );
        assert_eq!(percent(None, (t0, 0), t0, 5), 0.0);
    }

    /// A directory that looks like a cgroup to the code (the files the
    /// kernel would make), in a temp dir: the limits are checked there.
    fn fake_cgroup(dir: &Path, controllers: &str) {
        fs::create_dir_all(dir).expect("mkdir");
        for (f, v) in [
            ("cgroup.procs", ""),
            ("cgroup.controllers", controllers),
            ("cgroup.subtree_control", ""),
            ("cgroup.events", "populated 0\nfrozen 0\n"),
            ("cgroup.kill", ""),
            ("cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"),
        ] {
            fs::write(dir.join(f), v).expect("write");
        }
    }

    #[test]
    fn limits_go_to_their_files_in_a_fake_tree() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let s = tmp.path().join("tend-test");
        fake_cgroup(&s, "cpu io memory pids");
        let name = Name::new("web").expect("name");
        let web = s.join("web.proc");
        fake_cgroup(&web, "");
        for f in [
            "memory.max",
            "memory.high",
            "memory.oom.group",
            "cpu.max",
            "pids.max",
            "io.weight",
        ] {
            fs::write(web.join(f), "").expect("write");
        }
        fs::write(web.join("memory.events"), "oom 0\noom_kill 2\n").expect("write");
        let (mut cg, st) = Cgroups::open(&s, None).expect("open");
        // A plain file takes the last write: the fake subtree_control
        // holds one controller, as a kernel's would after "+pids" alone.
        assert_eq!(st.dir.as_deref(), Some(s.as_path()));
        let limits = ResourceLimits {
            memory_max: Some(64 << 20),
            memory_high: None,
            cpu_max: Some(50),
            pids_max: Some(32),
            io_weight: Some(300),
        };
        cg.controllers = WANTED.iter().map(|c| c.to_string()).collect();
        let fd = cg.prepare(&name, &limits).expect("prepare");
        assert!(fd.as_raw_fd() >= 0);
        let r = |f: &str| fs::read_to_string(web.join(f)).expect("read");
        assert_eq!(r("memory.max"), (64u64 << 20).to_string());
        assert_eq!(r("memory.high"), "max");
        assert_eq!(r("memory.oom.group"), "1");
        assert_eq!(r("cpu.max"), "50000 100000");
        assert_eq!(r("pids.max"), "32");
        assert_eq!(r("io.weight"), "default 300");

        // The OOM count when the run started is the base: only a kill
        // after it counts, once.
        cg.spawned(&name, 4242);
        assert!(!cg.oom_killed(4242));
        fs::write(web.join("memory.events"), "oom 1\noom_kill 3\n").expect("write");
        assert!(cg.oom_killed(4242));
        assert!(!cg.oom_killed(4242));

        // Limits lifted are written back to the kernel's defaults.
        fs::write(web.join("cpu.stat"), "usage_usec 250000\n").expect("write");
        cg.prepare(&name, &ResourceLimits::default())
            .expect("prepare");
        assert_eq!(r("memory.max"), "max");
        assert_eq!(r("memory.oom.group"), "0");
        assert_eq!(r("cpu.max"), "max 100000");
        assert_eq!(r("io.weight"), "default 100");

        // Stats count from the run's start.
        cg.spawned(&name, 4343);
        fs::write(web.join("cpu.stat"), "usage_usec 750000\n").expect("write");
        fs::write(web.join("memory.current"), "1048576\n").expect("write");
        fs::write(web.join("memory.peak"), "2097152\n").expect("write");
        let st = cg.stats(4343).expect("stats");
        assert_eq!(st.source, StatsSource::Cgroup);
        assert_eq!(st.cpu_usec, 500_000);
        assert_eq!(st.memory_bytes, Some(1 << 20));
        assert_eq!(st.memory_peak_bytes, Some(2 << 20));
        assert_eq!(st.processes, Some(0));
        assert_eq!(cg.alive(4343), Some(false));
        assert_eq!(cg.alive(1), None);
        // (Dropping a fake tree leaves its plain files behind: fine in a temp dir.)
    }

    #[test]
    fn a_limit_without_its_controller_is_skipped() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let s = tmp.path().join("tend-test");
        fake_cgroup(&s, "");
        let web = s.join("web.proc");
        fake_cgroup(&web, "");
        let (mut cg, st) = Cgroups::open(&s, None).expect("open");
        assert!(st.controllers.is_empty());
        let name = Name::new("web").expect("name");
        let limits = ResourceLimits {
            memory_max: Some(1 << 20),
            ..ResourceLimits::default()
        };
        cg.prepare(&name, &limits).expect("prepare");
        assert!(!web.join("memory.max").exists());
        assert!(cg.warned.contains(&(name, "memory")));
    }
}
