//! `tcp`: the port accepts a connection (Procmon's `PortInUse`).

use super::{ProbeOutcome, connect, split_host_port};

pub(super) async fn check(addr: &str) -> ProbeOutcome {
    let (host, port) = match split_host_port(addr, None) {
        Ok(hp) => hp,
        Err(e) => return ProbeOutcome::fail(format!("tcp check: {e}")),
    };
    match connect(&host, port).await {
        // Dropped at once: a plain close, nothing sent.
        Ok(_stream) => ProbeOutcome::pass("connected"),
        Err(e) => ProbeOutcome::fail(e),
    }
}
