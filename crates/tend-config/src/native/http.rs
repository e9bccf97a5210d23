//! The `[http]` table: TCP listeners, their TLS files, and the limits of
//! every listener (`docs/config.md`, "[http]"). The addresses (`listen`,
//! `health`) and the TLS paths expand `${VAR}`, at the daemon's depth.

use std::path::PathBuf;

use toml::de::DeTable;

use super::value::{Field, Item, walk};
use crate::diag::{Cx, Span};
use crate::platform::HealthListen;
use crate::{ClientCert, HttpConfig, HttpLimits, InetListen, TlsFiles};

/// `[http]` as read, before the parts are put together.
#[derive(Default)]
struct Draft {
    listen: Vec<(String, u16)>,
    cert: Option<(PathBuf, Span)>,
    key: Option<(PathBuf, Span)>,
    client_ca: Option<(PathBuf, Span)>,
    client_cert: Option<ClientCert>,
    insecure: bool,
    limits: HttpLimits,
    /// `health`: the probes' own listener (`docs/running.md`).
    health: Option<HealthListen>,
}

fn path(cx: &mut Cx<'_>, v: &Item<'_>, key: &str) -> Option<(PathBuf, Span)> {
    let s = cx.expanded(v, key)?;
    if s.is_empty() {
        cx.error(v.span(), format!("{key} is empty"));
        return None;
    }
    Some((cx.dir.join(&s), v.span()))
}

/// At least one: a limit of 0 would refuse everything.
fn positive(cx: &mut Cx<'_>, v: &Item<'_>) -> Option<usize> {
    let n = cx.int::<usize>(v, "a number of 1 or more")?;
    if n == 0 {
        cx.error(v.span(), "expected a number of 1 or more");
        return None;
    }
    Some(n)
}

fn timeout(cx: &mut Cx<'_>, v: &Item<'_>) -> Option<std::time::Duration> {
    let d = cx.duration(v)?;
    if d.is_zero() {
        cx.error(v.span(), "a timeout of 0 would refuse every request");
        return None;
    }
    Some(d)
}

fn size(cx: &mut Cx<'_>, v: &Item<'_>) -> Option<u64> {
    let n = super::logs::read_size(cx, v)?;
    if n == 0 {
        cx.error(v.span(), "a size of 0 would refuse every request");
        return None;
    }
    Some(n)
}

const FIELDS: &[Field<Draft>] = &[
    Field {
        key: "health",
        read: |cx, d, _, v| {
            let Some(s) = cx.expanded(v, "health") else {
                return;
            };
            match HealthListen::parse(&s) {
                Ok(h) => d.health = Some(h),
                Err(e) => cx.error(v.span(), format!("health: {e}")),
            }
        },
    },
    Field {
        key: "listen",
        read: |cx, d, _, v| {
            let Some(arr) = cx.array(v, "an array of \"host:port\" strings") else {
                return;
            };
            for e in arr.iter() {
                let Some(s) = cx.expanded(e, "listen") else {
                    continue;
                };
                match crate::http::parse_listen(&s) {
                    Ok(hp) => d.listen.push(hp),
                    Err(why) => cx.error(e.span(), why),
                }
            }
        },
    },
    Field {
        key: "tls_cert",
        read: |cx, d, _, v| d.cert = path(cx, v, "tls_cert"),
    },
    Field {
        key: "tls_key",
        read: |cx, d, _, v| d.key = path(cx, v, "tls_key"),
    },
    Field {
        key: "client_ca",
        read: |cx, d, _, v| d.client_ca = path(cx, v, "client_ca"),
    },
    Field {
        key: "client_cert",
        read: |cx, d, _, v| {
            let Some(s) = cx.string(v) else { return };
            d.client_cert = match s {
                "required" => Some(ClientCert::Required),
                "optional" => Some(ClientCert::Optional),
                _ => {
                    cx.error(
                        v.span(),
                        format!("unknown client_cert {s:?}: expected \"required\" or \"optional\""),
                    );
                    return;
                }
            };
        },
    },
    Field {
        key: "insecure",
        read: |cx, d, _, v| d.insecure = cx.bool(v).unwrap_or(d.insecure),
    },
    Field {
        key: "max_body",
        read: |cx, d, _, v| d.limits.max_body = size(cx, v).unwrap_or(d.limits.max_body),
    },
    Field {
        key: "max_response",
        read: |cx, d, _, v| d.limits.max_response = size(cx, v).unwrap_or(d.limits.max_response),
    },
    Field {
        key: "max_connections",
        read: |cx, d, _, v| {
            d.limits.max_connections = positive(cx, v).unwrap_or(d.limits.max_connections)
        },
    },
    Field {
        key: "max_connections_per_peer",
        read: |cx, d, _, v| {
            d.limits.max_connections_per_peer =
                positive(cx, v).unwrap_or(d.limits.max_connections_per_peer)
        },
    },
    Field {
        key: "max_multicall",
        read: |cx, d, _, v| {
            d.limits.max_multicall = positive(cx, v).unwrap_or(d.limits.max_multicall)
        },
    },
    Field {
        key: "header_timeout",
        read: |cx, d, _, v| {
            d.limits.header_timeout = timeout(cx, v).unwrap_or(d.limits.header_timeout)
        },
    },
    Field {
        key: "body_timeout",
        read: |cx, d, _, v| d.limits.body_timeout = timeout(cx, v).unwrap_or(d.limits.body_timeout),
    },
    Field {
        key: "send_timeout",
        read: |cx, d, _, v| d.limits.send_timeout = timeout(cx, v).unwrap_or(d.limits.send_timeout),
    },
];

/// Reads `[http]` (its span is `at`, for errors about the whole table): its
/// listeners and limits, and the health listener.
pub(super) fn read(
    cx: &mut Cx<'_>,
    table: &DeTable<'_>,
    at: Span,
) -> (HttpConfig, Option<HealthListen>) {
    let mut d = Draft::default();
    walk(cx, "[http]", table, FIELDS, &[], &mut d);
    let tls = match (d.cert, d.key) {
        (Some((cert, _)), Some((key, _))) => Some(TlsFiles {
            cert,
            key,
            client_ca: d.client_ca.map(|(p, _)| p),
            client_cert: d.client_cert.unwrap_or_default(),
        }),
        (None, None) => {
            if let Some((_, span)) = d.client_ca {
                cx.error(span, "client_ca needs tls_cert and tls_key");
            }
            None
        }
        (Some((_, span)), None) => {
            cx.error(
                span,
                "tls_cert needs tls_key (the certificate's private key)",
            );
            None
        }
        (None, Some((_, span))) => {
            cx.error(
                span,
                "tls_key needs tls_cert (the certificate it is the key of)",
            );
            None
        }
    };
    if tls.is_some() && d.listen.is_empty() {
        cx.error(
            at,
            "[http] has TLS files but no listen address (e.g. listen = [\"0.0.0.0:9001\"])",
        );
    }
    let health = d.health;
    let http = HttpConfig {
        listen: d
            .listen
            .into_iter()
            .map(|(host, port)| InetListen {
                host,
                port,
                // Credentials for [http] listeners come with [access].
                auth: None,
                tls: tls.clone(),
                insecure: d.insecure,
            })
            .collect(),
        limits: d.limits,
    };
    (http, health)
}
