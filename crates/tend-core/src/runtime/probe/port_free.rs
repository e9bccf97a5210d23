//! `port_free`: the port can be bound on `0.0.0.0` (Procmon's `PortAvailable`).
//!
//! The listener is bound the way servers bind theirs: with `SO_REUSEADDR`
//! (tokio sets it), so connections lingering in `TIME_WAIT` do not count as
//! "in use", while any listening socket on the port, on any local address,
//! does.

use std::io::ErrorKind;

use super::{ProbeOutcome, describe_io};

pub(super) async fn check(port: u16) -> ProbeOutcome {
    if port == 0 {
        return ProbeOutcome::fail("port_free check: 0 is not a port");
    }
    match tokio::net::TcpListener::bind(("0.0.0.0", port)).await {
        Ok(_listener) => ProbeOutcome::pass(format!("port {port} is free")),
        Err(e) if e.kind() == ErrorKind::AddrInUse => {
            ProbeOutcome::fail(format!("port {port} is in use"))
        }
        Err(e) => ProbeOutcome::fail(format!("port {port}: {}", describe_io(&e))),
    }
}
