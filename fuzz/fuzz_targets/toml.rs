//! Fuzzes the native `tend.toml` reader with arbitrary text: it may refuse
//! it, never panic, and every problem it reports is at a place in the text.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A directory that does not exist: nothing the reader checks on disk
    // can depend on the fuzzing machine.
    let path = Path::new("/nonexistent-tend-fuzz/tend.toml");
    let lines = text.split('\n').count().max(1);
    match tend_config::native::parse(path, text) {
        Ok(config) => {
            for spec in &config.processes {
                assert!(!spec.command.is_empty(), "{spec:?}");
            }
        }
        Err(errors) => {
            assert!(!errors.errors.is_empty());
            for e in &errors.errors {
                assert!(e.line >= 1 && e.line <= lines + 1, "{e} of {lines} lines");
                assert!(e.col >= 1, "{e}");
            }
        }
    }
});
