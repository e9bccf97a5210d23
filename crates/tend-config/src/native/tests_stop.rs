//! `[process.NAME.stop]`'s `command` and `stdin`.

use super::*;

fn errs(text: &str) -> Vec<String> {
    parse_with_env(Path::new("tend.toml"), text, BTreeMap::new())
        .expect_err("errors")
        .errors
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn stop_command_and_stdin_are_read() {
    let text = r#"
[process.a]
command = "app"
stop = { command = "kill -QUIT ${MAINPID}", timeout = "3s" }

[process.b]
command = "repl"
stop.stdin = "quit\n"
"#;
    let c = parse_with_env(
        Path::new("/nonexistent-tend-test/tend.toml"),
        text,
        BTreeMap::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let a = &c.processes[0];
    // `${MAINPID}` is left for the stop, which knows the pid.
    assert_eq!(
        a.stop.command.as_deref(),
        Some(&["kill".to_string(), "-QUIT".into(), "${MAINPID}".into()][..])
    );
    let b = &c.processes[1];
    assert_eq!(b.stop.stdin.as_deref(), Some("quit\n"));
    assert!(b.stdin_pipe, "stop.stdin gives the process a stdin pipe");
}

#[test]
fn stop_keys_that_do_not_fit_are_errors_at_the_key() {
    let e = errs("[process.a]\ncommand = \"x\"\nstop = { command = \"y\", stdin = \"q\" }\n");
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].starts_with(
            "tend.toml:3:33: stop.command and stop.stdin cannot both be set in [process.a]"
        ),
        "{e:#?}"
    );
    let e = errs("[process.a]\ncommand = \"x\"\nstdin = \"null\"\nstop.stdin = \"q\"\n");
    assert!(
        e.len() == 1
            && e[0].starts_with("tend.toml:3:9: stdin = \"null\" leaves nothing for stop.stdin"),
        "{e:#?}"
    );
    let e = errs("[process.a]\ncommand = \"x\"\nstop.stdin = \"\"\n");
    assert!(e[0].contains("stop.stdin is empty"), "{e:#?}");
    let e = errs("[process.a]\ncommand = \"x\"\nstop.command = []\n");
    assert!(
        e[0].starts_with("tend.toml:3:16: command is empty"),
        "{e:#?}"
    );
    let e = errs("[process.a]\ncommand = \"x\"\nstop.comand = \"y\"\n");
    assert!(e[0].contains("did you mean \"command\"?"), "{e:#?}");
}
