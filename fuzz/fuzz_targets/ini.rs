//! Fuzzes the supervisord.conf INI reader and the `%(name)s` expander with
//! arbitrary text: neither may panic, and what they return must be coherent.

#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;

use tend_config::supervisord::{expand, ini};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Read it as a main file and again as an included one, as [include] does.
    let mut parsed = ini::Ini::new();
    let mut errors = parsed.read(PathBuf::from("main.conf"), text);
    errors.extend(parsed.read(PathBuf::from("included.conf"), text));

    let lines = text.split(['\n', '\r']).count().max(1);
    for e in &errors {
        assert!(
            e.line >= 1 && e.line <= lines,
            "error line {} of {lines}",
            e.line
        );
        assert!(e.file < parsed.files.len());
    }

    let base = BTreeMap::from([(
        "ENV_HOME".to_string(),
        expand::Val::Str("/home/fuzz".to_string()),
    )]);
    let top = BTreeMap::from([
        (
            "program_name".to_string(),
            expand::Val::Str("p".to_string()),
        ),
        ("process_num".to_string(), expand::Val::Int(-7)),
        ("here".to_string(), expand::Val::Str("/etc".to_string())),
    ]);
    let names = expand::Names::new(&base, &top);
    for section in &parsed.sections {
        assert!(!section.name.is_empty());
        assert!(parsed.section(&section.name).is_some());
        for entry in section.entries.iter().chain(&parsed.defaults) {
            assert!(entry.line >= 1 && entry.line <= lines);
            assert_eq!(entry.value, ini::py_rstrip(&entry.value));
            if let Err(e) = expand::expand(&entry.value, &names) {
                let _ = e.message(&entry.value, "fuzz.option", &names);
            }
        }
    }
});
