//! Tests of the sans-IO layer (machine and registry) under virtual time.
//!
//! `sim` is a deterministic world: fake processes that exit when told, a clock
//! that moves only when a test says so. The scenarios mirror Twisted's
//! ProcessMonitor tests (peers.md §10) and go on to tend's own semantics.

mod backoff;
mod deps;
mod props;
mod sim;
mod transitions;
mod twisted;
