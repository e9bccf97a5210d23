//! Integration tests: the real `tend` binary, a real daemon, real processes.

mod harness;

mod backoff;
mod config;
mod control;
mod daemon;
mod deps;
mod logs;
mod status;
mod stop;
mod storm;
mod supervisorctl;
mod xmlrpc;
