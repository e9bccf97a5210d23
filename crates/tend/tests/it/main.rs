//! Integration tests: the real `tend` binary, a real daemon, real processes.

mod harness;

mod access;
mod backoff;
mod config;
mod control;
mod daemon;
mod deps;
mod logs;
mod metrics;
mod status;
mod stop;
mod supervisorctl;
mod telemetry;
mod xmlrpc;
