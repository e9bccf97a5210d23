//! Fuzzes the XML-RPC request parser with arbitrary bytes: it may refuse them,
//! never panic, and what it accepts must survive being written back (with
//! `write_call`) and parsed again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tend_supervisor::xmlrpc::{parse_call, write_call, write_response};

fuzz_target!(|data: &[u8]| {
    let Ok(call) = parse_call(data) else {
        return;
    };
    assert!(!call.method.is_empty());
    let again = write_call(&call.method, &call.params);
    if let Err(e) = parse_call(&again) {
        panic!(
            "{call:?} was written as {:?}, which does not parse: {e}",
            String::from_utf8_lossy(&again)
        );
    }
    for param in &call.params {
        write_response(param);
    }
});
