//! Integration tests: the real `tend` binary, a real daemon, real processes.

mod browser;
#[macro_use]
mod harness;
mod pki;

mod abuse;
mod access;
mod backoff;
mod config;
mod control;
mod conveniences;
mod daemon;
mod deps;
mod dropin;
mod events;
mod examples;
mod fleet;
mod logs;
mod metrics;
mod peers;
mod platform;
mod status;
mod stop;
mod storm;
mod supervisorctl;
mod telemetry;
mod tls;
mod top;
mod web;
mod xmlrpc;
