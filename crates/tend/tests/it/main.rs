//! Integration tests: the real `tend` binary, a real daemon, real processes.

mod harness;

mod backoff;
mod config;
mod control;
mod daemon;
mod deps;
mod examples;
mod logs;
mod platform;
mod status;
mod stop;
mod supervisorctl;
mod xmlrpc;
