//! Fuzzes the HTTP layer with raw bytes, as a client would send them: one
//! connection (in memory) served by the listener's own connection handling
//! (`tend_server::serve_connection`: hyper's HTTP/1.1, the body bounds, the
//! peer) in front of the daemon's real routes, the JSON API and Supervisor's
//! XML-RPC face together, over a supervisor whose launcher never starts a
//! process. Whatever the bytes, no handler may panic and the connection must
//! end; what comes back is HTTP. One daemon serves a thousand inputs (or
//! until one shuts it down), then a new one is made: a crash that needs the
//! inputs before it reproduces from the corpus run in order.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tend_core::launcher::{KillTarget, Launcher, Reaped, SpawnError, Spawned};
use tend_core::{Options, ProcessSpec, Signal, Supervisor};
use tend_server::{Daemon, Limits, Listener, Peer, Shutdown};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Starts nothing: every spawn fails for good.
struct NoProcesses;

impl Launcher for NoProcesses {
    fn spawn(&mut self, _spec: &ProcessSpec) -> Result<Spawned, SpawnError> {
        Err(SpawnError {
            message: "the fuzzer starts no process".into(),
            permanent: true,
        })
    }
    fn kill(&mut self, _target: KillTarget, _sig: Signal) -> std::io::Result<()> {
        Ok(())
    }
    fn group_alive(&mut self, _pgid: u32) -> bool {
        false
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// A daemon and the routes every listener serves, over it.
struct Served {
    sup: Supervisor,
    driver: tokio::task::JoinHandle<()>,
    shutdown: Shutdown,
    router: tend_server::Router,
    /// Inputs served so far.
    uses: u32,
}

/// Inputs served by one daemon before it is made anew: a daemon per input
/// would cost most of the time of an input, and inputs that add processes
/// would otherwise pile them up.
const USES: u32 = 1000;

fn served() -> Served {
    let (_exits_tx, exits) = tokio::sync::mpsc::unbounded_channel::<Reaped>();
    let (sup, driver) = Supervisor::with_launcher(Options::default(), NoProcesses, exits);
    let shutdown = Shutdown::new();
    // Live tails and log followers end at once: a follower would otherwise
    // keep its connection open for ever.
    shutdown.end_streams();
    let daemon = Daemon::without_config(sup.clone(), shutdown.clone());
    let face = tend_supervisor::Face::new(daemon.clone(), tend_supervisor::FaceOptions::new("fuzz"));
    let router = tend_server::app(
        daemon,
        &Listener::new(true, None, false),
        [tend_supervisor::routes(face)],
    );
    Served {
        sup,
        driver,
        shutdown,
        router,
        uses: 0,
    }
}

thread_local! {
    static SERVED: std::cell::RefCell<Option<Served>> = const { std::cell::RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(async {
        let (router, old) = SERVED.with(|cell| {
            let mut slot = cell.borrow_mut();
            // A new daemon now and then, and after one was shut down.
            let stale = slot
                .as_ref()
                .is_none_or(|s| s.uses >= USES || s.shutdown.is_triggered());
            let old = if stale { slot.replace(served()) } else { None };
            let s = slot.as_mut().expect("a daemon");
            s.uses += 1;
            (s.router.clone(), old)
        });
        if let Some(old) = old {
            let _ = old.sup.shutdown().await;
            let _ = old.driver.await;
        }
        let mut limits = Limits::default();
        limits.max_body = 64 * 1024;
        limits.header_timeout = Duration::from_secs(2);
        limits.body_timeout = Duration::from_secs(2);
        limits.send_timeout = Duration::from_secs(2);
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let peer = Peer::unix(0, 0, Some(1));
        let conn = tokio::spawn(tend_server::serve_connection(server, peer, router, limits));
        let _ = client.write_all(data).await;
        let _ = client.shutdown().await;
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut answer));
        assert!(read.await.is_ok(), "the connection did not end");
        match tokio::time::timeout(Duration::from_secs(10), conn).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("the connection's task failed: {e}"),
            Err(_) => panic!("the connection's task did not end"),
        }
        // hyper answers an HTTP/1.0 request in HTTP/1.0.
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 ") || answer.starts_with(b"HTTP/1.0 "),
            "not HTTP: {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        );
    });
});
