//! tend.toml's `[[peer]]` as the daemon's [`tend_server::peers::Peers`]: each entry read like a
//! `[host.NAME]` of the client's hosts file (the same URL rules, trust and
//! token), so a peer is reached exactly as `tend -H NAME` reaches it.

use std::time::Duration;

use anyhow::Context;
use tend_config::hosts::{HostAuth, HostEntry};
use tend_server::peers::PeerSpec;

use crate::client::Client;
use crate::client::host::{self, CredentialArgs, Credentials, Trust};

/// How long connecting to a peer (and its plain answers) may take when its
/// entry gives no `timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The peers of `entries`, or the first entry that cannot be used (a bad
/// URL, an unreadable CA, certificate or token file), named by its place.
pub(super) fn specs(entries: &[HostEntry]) -> anyhow::Result<Vec<PeerSpec>> {
    entries.iter().map(spec).collect()
}

fn spec(e: &HostEntry) -> anyhow::Result<PeerSpec> {
    let section = format!("[[peer]] {}", e.name);
    let url = host::parse_url(&e.url, e.insecure).with_context(|| format!("{}: url", e.at))?;
    let mut h = crate::client::Host::unix("").with_url(url);
    h.ca = match (&e.ca, &e.pin) {
        (Some(ca), _) => Trust::Ca(ca.clone()),
        (None, Some(pin)) => {
            Trust::Pin(host::parse_pin(pin).with_context(|| format!("{section}: pin"))?)
        }
        (None, None) => Trust::System,
    };
    h.credentials = match &e.auth {
        None => None,
        Some(HostAuth::Token(t)) => Some(Credentials::Bearer(t.clone())),
        Some(HostAuth::TokenFile(f)) => host::credentials(CredentialArgs {
            token_file: Some(f),
            ..CredentialArgs::default()
        })
        .with_context(|| format!("{section}: token_file"))?,
        // Refused when the file was read.
        Some(_) => anyhow::bail!("{section}: give token or token_file"),
    };
    h.client_cert = e.client_cert.clone();
    let client = Client::for_host(h).with_context(|| section.clone())?;
    Ok(client.peer_spec(&e.name, &e.url, e.timeout.unwrap_or(DEFAULT_TIMEOUT)))
}
