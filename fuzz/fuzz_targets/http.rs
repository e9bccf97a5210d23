//! Fuzzes the HTTP layer with raw bytes, as a client would send them: one
//! connection (in memory) served by the listener's own connection handling
//! (`tend_server::serve_connection`: hyper's HTTP/1.1, the body bounds, the
//! peer) in front of the daemon's real routes, the JSON API and Supervisor's
//! XML-RPC face together, over a supervisor whose launcher never starts a
//! process. Whatever the bytes, no handler may panic and the connection must
//! end; what comes back is HTTP.

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

fuzz_target!(|data: &[u8]| {
    runtime().block_on(async {
        // A daemon of its own for each input, so that inputs do not depend
        // on each other (one that adds processes, one that shuts down).
        let (_exits_tx, exits) = tokio::sync::mpsc::unbounded_channel::<Reaped>();
        let (sup, driver) = Supervisor::with_launcher(Options::default(), NoProcesses, exits);
        let shutdown = Shutdown::new();
        let daemon = Daemon::without_config(sup.clone(), shutdown.clone());
        let face = tend_supervisor::Face::new(
            daemon.clone(),
            tend_supervisor::FaceOptions::new("fuzz"),
        );
        let router = tend_server::app(
            daemon,
            &Listener::new(true, None, false),
            [tend_supervisor::routes(face)],
        );
        let mut limits = Limits::default();
        limits.max_body = 64 * 1024;
        limits.header_timeout = Duration::from_secs(2);
        limits.body_timeout = Duration::from_secs(2);
        limits.send_timeout = Duration::from_secs(2);
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let peer = Peer::unix(0, 0, Some(1));
        let served = tokio::spawn(tend_server::serve_connection(server, peer, router, limits));
        let _ = client.write_all(data).await;
        let _ = client.shutdown().await;
        // Live tails and log followers end when the daemon's streams do.
        shutdown.end_streams();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut answer));
        assert!(read.await.is_ok(), "the connection did not end");
        match tokio::time::timeout(Duration::from_secs(10), served).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("the connection's task failed: {e}"),
            Err(_) => panic!("the connection's task did not end"),
        }
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 "),
            "not HTTP: {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        );
        let _ = sup.shutdown().await;
        let _ = driver.await;
    });
});
