//! Crash storms: what processes that die at once, over and over, must not do
//! to the daemon.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::harness::Daemon;

const PROCS: usize = 200;
const RESTARTS: u64 = 2_000;
/// The daemon's own descriptors besides its processes' (listeners, epoll
/// sets, its log, the launcher's slots): a few dozen.
const OWN: usize = 64;

/// Issue 16: a storm of processes that crash at once used to pile up pipes
/// at end of file faster than the reader closed them (1,000 such processes
/// reached the 20,000-descriptor limit, and then spawns failed with "Too
/// many open files"; 200 held 2,759 descriptors). Each exit now reads its
/// pipes to the end and closes them before the restart, so the daemon never
/// holds more than a running process's three (a pidfd, stdout, stderr) each,
/// and the storm makes its restarts in bounded time.
#[test]
fn a_crash_storm_does_not_pile_up_pipes() {
    let mut config = String::new();
    for i in 0..PROCS {
        config += &format!(
            "[process.c{i:03}]\ncommand = [\"sh\", \"-c\", \"exit 1\"]\nbackoff.min_uptime = \"0s\"\n\n"
        );
    }
    let mut d = Daemon::start(&config);
    let pid = d.daemon_pid();
    let peak = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
                    peak.fetch_max(dir.count(), Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    d.wait_for(
        &format!("{RESTARTS} restarts"),
        Duration::from_secs(180),
        |d| {
            d.status(&[])
                .iter()
                .map(|p| p["restarts"].as_u64().unwrap_or(0))
                .sum::<u64>()
                >= RESTARTS
        },
    );
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let peak = peak.load(Ordering::Relaxed);
    assert!(
        peak <= 3 * PROCS + OWN,
        "the daemon held {peak} descriptors for {PROCS} crash-looping processes"
    );
    assert!(
        !d.log_text().contains("Too many open files"),
        "{}",
        d.log_text()
    );
    d.ok(&["stop", "all"]);
}
