//! The engine's event stream under a restart storm, measured (bench/scale.py
//! runs it): N `sleep` processes (output `null`), S subscribers that each
//! encode every event as JSON (what a server-sent-events face does), then a
//! restart of all N. It prints one JSON object: how long the restart took,
//! how many events each subscriber got and how many it missed (`Lagged`),
//! and how long after the restart returned the last subscriber had its last
//! event.
//!
//! ```sh
//! cargo run --release -p tend-core --example event_storm -- 10000 100
//! ```
//!
//! On the current-thread runtime the daemon uses, so subscribers compete
//! with the driver for one thread, as they do in `tend up`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tend_core::spec::LogTarget;
use tend_core::{Name, Options, ProcessSpec, StateName, Supervisor};
use tokio::sync::broadcast::error::RecvError;

#[derive(Default, Clone, Copy)]
struct Seen {
    events: u64,
    lagged: u64,
    bytes: u64,
    last: Option<Instant>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let subs: usize = args.next().map_or(Ok(100), |a| a.parse())?;
    // A pidfd per process: the soft limit goes up to the hard one, as the
    // daemon's does.
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    // As root, the hard limit too if it is short (a build whose `null`
    // output still has pipes needs three descriptors a process).
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let want = hard.max(4 * n as u64 + 1024);
    if setrlimit(Resource::RLIMIT_NOFILE, want, want).is_err() {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run(n, subs))
}

async fn run(n: usize, subs: usize) -> Result<(), Box<dyn std::error::Error>> {
    let (sup, task) = Supervisor::spawn(Options::default(), true)?;
    let mut names = Vec::with_capacity(n);
    for i in 0..n {
        let name = Name::new(format!("s{i:05}"))?;
        let mut spec = ProcessSpec::new(name.clone(), vec!["sleep".into(), "100000".into()]);
        spec.logs.stdout = LogTarget::Null;
        spec.logs.stderr = LogTarget::Null;
        spec.autostart = false;
        sup.add(spec).await?;
        names.push(name);
    }
    let started = Instant::now();
    sup.start_many(names.clone()).await?;
    let start_s = started.elapsed().as_secs_f64();

    let seen: Vec<Rc<RefCell<Seen>>> = (0..subs).map(|_| Rc::default()).collect();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for s in &seen {
        let (s, mut rx, mut stop) = (s.clone(), sup.subscribe(), stop_rx.clone());
        tasks.push(tokio::task::spawn_local(async move {
            loop {
                let got = tokio::select! {
                    got = rx.recv() => got,
                    _ = stop.changed() => return,
                };
                let mut s = s.borrow_mut();
                match got {
                    Ok(ev) => {
                        // What an SSE face does with each event.
                        let json = serde_json::to_vec(&ev).unwrap_or_default();
                        s.events += 1;
                        s.bytes += json.len() as u64;
                        s.last = Some(Instant::now());
                    }
                    Err(RecvError::Lagged(k)) => s.lagged += k,
                    Err(RecvError::Closed) => return,
                }
            }
        }));
    }

    let t0 = Instant::now();
    let results = sup.restart_many(names).await?;
    let restart_s = t0.elapsed().as_secs_f64();
    let done = Instant::now();
    let running = sup
        .status()
        .await?
        .iter()
        .filter(|p| p.state == StateName::Running)
        .count();
    // Until every subscriber has had nothing new for a second.
    loop {
        let quiet = seen.iter().all(|s| {
            s.borrow()
                .last
                .is_none_or(|t| t.elapsed() > Duration::from_secs(1))
        });
        if quiet {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let all: Vec<Seen> = seen.iter().map(|s| *s.borrow()).collect();
    let events: Vec<u64> = all.iter().map(|s| s.events).collect();
    let lagged: u64 = all.iter().map(|s| s.lagged).sum();
    let behind_ms = all
        .iter()
        .filter_map(|s| s.last)
        .map(|t| t.saturating_duration_since(done).as_secs_f64() * 1000.0)
        .fold(0.0f64, f64::max);
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    println!(
        "{}",
        serde_json::json!({
            "processes": n,
            "subscribers": subs,
            "start_s": start_s,
            "restart_s": restart_s,
            "restart_results": results.len(),
            "running_after": running,
            "events_min": events.iter().min(),
            "events_max": events.iter().max(),
            "lagged_total": lagged,
            "subscribers_lagging": all.iter().filter(|s| s.lagged > 0).count(),
            "last_event_after_restart_ms": behind_ms,
            "json_bytes_per_subscriber": all.first().map(|s| s.bytes),
            "vm_hwm_kib": hwm,
        })
    );
    sup.shutdown().await?;
    let _ = task.await;
    Ok(())
}
