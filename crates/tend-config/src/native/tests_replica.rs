//! `${TEND_REPLICA}` in a table with `replicas`: kept when the file is read,
//! replaced by each copy's index when the copies are made.

use std::collections::BTreeMap;

use tend_core::Check;
use tend_core::spec::LogTarget;

use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn proc_of<'c>(c: &'c Config, n: &str) -> &'c ProcessSpec {
    c.processes
        .iter()
        .find(|p| p.name.as_str() == n)
        .unwrap_or_else(|| panic!("no process {n}"))
}

fn errors(text: &str, vars: &[(&str, &str)]) -> Vec<String> {
    match parse_with_env(Path::new("tend.toml"), text, env(vars)) {
        Ok(c) => panic!("expected errors, got {c:?}"),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

/// Every field that expands gets the copy's own index; everything else in
/// the text stays what it would be without `replicas`.
#[test]
fn each_copy_has_its_index_wherever_variables_expand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for i in 0..2 {
        std::fs::create_dir_all(d.join(format!("srv/{i}"))).expect("mkdir");
    }
    std::fs::write(d.join("app.env"), "FROM_FILE=f$x\n").expect("write");
    let text = r#"
[daemon]
env = { SHARED = "d$y" }

[process.app]
replicas = 2
env_file = "app.env"
command = ["app", "--port", "${TEND_PORT_BASE}${TEND_REPLICA}", "$${TEND_REPLICA}", "$$${TEND_REPLICA}", "${TEND_REPLICA:-none}", "${DOLLAR}", "$HOME"]
env = { ID = "app-${TEND_REPLICA}", ALSO = "${DOLLAR}${TEND_REPLICA}" }
cwd = "srv/${TEND_REPLICA}"
logs.stdout = "/tmp/app-${TEND_REPLICA}.log"
ready = { tcp = "127.0.0.1:${TEND_PORT_BASE}${TEND_REPLICA}" }
health = { http = "http://127.0.0.1:${TEND_PORT_BASE}${TEND_REPLICA}/health" }
stop.command = ["app-stop", "${TEND_REPLICA}", "${MAINPID}"]
"#;
    let c = parse_with_env(
        &d.join("tend.toml"),
        text,
        env(&[("TEND_PORT_BASE", "80"), ("DOLLAR", "a$b")]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for i in 0..2 {
        let s = proc_of(&c, &format!("app-{i}"));
        assert_eq!(
            s.command,
            [
                "app".to_string(),
                "--port".into(),
                format!("80{i}"),
                "${TEND_REPLICA}".into(),
                format!("${i}"),
                i.to_string(),
                "a$b".into(),
                "$HOME".into(),
            ]
        );
        assert_eq!(s.env["ID"], format!("app-{i}"));
        assert_eq!(s.env["ALSO"], format!("a$b{i}"));
        assert_eq!(s.env["FROM_FILE"], "f$x");
        assert_eq!(s.env["SHARED"], "d$y");
        assert_eq!(s.env["TEND_REPLICA"], i.to_string());
        assert_eq!(s.cwd.as_deref(), Some(d.join(format!("srv/{i}")).as_path()));
        assert_eq!(
            s.logs.stdout,
            LogTarget::File(format!("/tmp/app-{i}.log").into())
        );
        // The default stderr log is the copy's own, as before.
        let LogTarget::File(err) = &s.logs.stderr else {
            panic!("{:?}", s.logs.stderr)
        };
        assert!(err.ends_with(format!("app-{i}.err.log")), "{err:?}");
        let ready = s.ready.as_ref().expect("ready");
        assert_eq!(ready.check, Check::Tcp(format!("127.0.0.1:80{i}")));
        let health = s.health.as_ref().expect("health");
        assert_eq!(
            health.check,
            Check::Http(format!("http://127.0.0.1:80{i}/health"))
        );
        assert_eq!(
            s.stop.command.as_deref(),
            Some(&["app-stop".to_string(), i.to_string(), "${MAINPID}".into()][..])
        );
    }
}

/// The copies keep the template they were made from: `tend scale` makes
/// copy 5 from it as the file would have.
#[test]
fn the_template_keeps_the_variable_and_makes_any_copy() {
    let text = "[process.w]\ncommand = \"w --id ${TEND_REPLICA} $$5\"\nreplicas = 2\nlogs.stdout = \"/tmp/w-${TEND_REPLICA}.log\"\n";
    let c = parse_with_env(
        Path::new("/nonexistent-tend-test/tend.toml"),
        text,
        BTreeMap::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let copies: Vec<_> = c.declared.processes().collect();
    assert_eq!(copies.len(), 2);
    let t = copies[0].template.clone().expect("a template");
    assert_eq!(copies[1].template, Some(t.clone()));
    assert_eq!(t.name.as_str(), "w");
    assert_eq!(t.command, ["w", "--id", "${TEND_REPLICA}", "$$5"]);
    for (i, pc) in copies.iter().enumerate() {
        assert_eq!(
            crate::replica_from_template(&t, i).as_ref(),
            Some(&*pc.spec)
        );
    }
    let five = crate::replica_from_template(&t, 5).expect("w-5");
    assert_eq!(five.name.as_str(), "w-5");
    assert_eq!(five.command, ["w", "--id", "5", "$5"]);
    assert_eq!(five.env["TEND_REPLICA"], "5");
    assert_eq!(five.logs.stdout, LogTarget::File("/tmp/w-5.log".into()));
    // A process without replicas has none.
    let one = parse_with_env(
        Path::new("/nonexistent-tend-test/tend.toml"),
        "[process.a]\ncommand = \"a\"\n",
        BTreeMap::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(one.declared.processes().all(|p| p.template.is_none()));
}

/// The number of copies is not in the template: a reload from 2 to 3 copies
/// leaves the first two the same, templates included.
#[test]
fn more_copies_leave_the_first_ones_the_same() {
    let text = |n: u32| format!("[process.w]\ncommand = \"w ${{TEND_REPLICA}}\"\nreplicas = {n}\n");
    let read = |n| {
        parse_with_env(
            Path::new("/nonexistent-tend-test/tend.toml"),
            &text(n),
            BTreeMap::new(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let (two, three) = (read(2), read(3));
    let two: Vec<_> = two.declared.processes().cloned().collect();
    let three: Vec<_> = three.declared.processes().cloned().collect();
    assert_eq!(two[..], three[..2]);
}

/// Without `replicas`, `${TEND_REPLICA}` is a variable like any other: an
/// error at the variable unless the environment has it or a default is given.
#[test]
fn without_replicas_it_is_an_unknown_variable_at_the_variable() {
    let errs = errors("[process.a]\ncommand = \"a ${TEND_REPLICA}\"\n", &[]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("tend.toml:2:14: unknown variable ${TEND_REPLICA} in command"),
        "{errs:#?}"
    );
    assert!(errs[0].contains("replicas"), "{errs:#?}");
    // A task has no copies either.
    let errs = errors(
        "[task.t]\ncommand = \"t\"\nenv = { N = \"${TEND_REPLICA}\" }\n",
        &[],
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("tend.toml:3:14: unknown variable ${TEND_REPLICA} in env.N")),
        "{errs:#?}"
    );
    let c = parse_with_env(
        Path::new("/nonexistent-tend-test/tend.toml"),
        "[process.a]\ncommand = \"a ${TEND_REPLICA} ${TEND_REPLICA:-d}\"\n",
        env(&[("TEND_REPLICA", "7")]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(proc_of(&c, "a").command, ["a", "7", "7"]);
    let c = parse_with_env(
        Path::new("/nonexistent-tend-test/tend.toml"),
        "[process.a]\ncommand = \"a ${TEND_REPLICA:-d}\"\n",
        BTreeMap::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(proc_of(&c, "a").command, ["a", "d"]);
}

/// An env_file is read once for all copies, so its path cannot name the
/// index; a cwd that names it must exist for every copy.
#[test]
fn env_file_paths_and_missing_copy_directories_are_errors() {
    let errs = errors(
        "[process.a]\ncommand = \"a\"\nreplicas = 2\nenv_file = \"a-${TEND_REPLICA}.env\"\n",
        &[],
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("tend.toml:4:15: unknown variable ${TEND_REPLICA} in env_file"),
        "{errs:#?}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("w0")).expect("mkdir");
    let err = parse_with_env(
        &dir.path().join("tend.toml"),
        "[process.a]\ncommand = \"a\"\nreplicas = 2\ncwd = \"w${TEND_REPLICA}\"\n",
        BTreeMap::new(),
    )
    .expect_err("w1 is missing");
    let errs: Vec<String> = err.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].contains(":1:"), "{errs:#?}");
    assert!(errs[0].contains("cwd of a-1 in [process.a]"), "{errs:#?}");
    // A check address that is invalid for a copy is an error at the check.
    let errs = errors(
        "[process.a]\ncommand = \"a\"\nreplicas = 2\nready = { tcp = \"127.0.0.1:${TEND_REPLICA}x\" }\n",
        &[],
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("tend.toml:4:17: tcp check"),
        "{errs:#?}"
    );
}

/// `watch` in a table with `replicas`: each copy watches its own `cwd` and
/// its own patterns, and `tend scale`'s template makes them the same way.
#[test]
fn each_copy_watches_its_own_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for i in 0..2 {
        std::fs::create_dir_all(d.join(format!("shard-{i}"))).expect("mkdir");
    }
    let text = r#"
[process.s]
replicas = 2
command = "s"
cwd = "shard-${TEND_REPLICA}"
watch = ["${SRC}/**/*.py", "conf-${TEND_REPLICA}.toml"]
watch_ignore = ["${SRC}/gen-${TEND_REPLICA}/**"]

[process.t]
replicas = 2
command = "t"
watch = ["t-${TEND_REPLICA}/*"]
"#;
    let c = parse_with_env(&d.join("tend.toml"), text, env(&[("SRC", "s$c")]))
        .unwrap_or_else(|e| panic!("{e}"));
    for i in 0..2 {
        let w = proc_of(&c, &format!("s-{i}")).watch.clone().expect("watch");
        assert_eq!(w.root, d.join(format!("shard-{i}")));
        assert_eq!(
            w.patterns,
            ["s$c/**/*.py".to_string(), format!("conf-{i}.toml")]
        );
        assert_eq!(w.ignore, [format!("s$c/gen-{i}/**")]);
        let t = proc_of(&c, &format!("t-{i}")).watch.clone().expect("watch");
        assert_eq!(t.root, d);
        assert_eq!(t.patterns, [format!("t-{i}/*")]);
    }
    let copy = c
        .declared
        .processes()
        .find(|p| p.spec.name.as_str() == "s-0")
        .expect("s-0");
    let template = copy.template.clone().expect("a template");
    let one = crate::replica_from_template(&template, 1).expect("s-1");
    assert_eq!(
        Some(&one),
        c.processes
            .iter()
            .map(|p| &**p)
            .find(|p| p.name.as_str() == "s-1")
    );
    // A pattern is checked as copy 0's, at its place.
    let errs = errors(
        "[process.a]\ncommand = \"a\"\nreplicas = 2\nwatch = [\"${TEND_REPLICA}[x\"]\n",
        &[],
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("tend.toml:4:10: watch: invalid pattern \"0[x\""),
        "{errs:#?}"
    );
}

/// A redis check's address has each copy's index, as a tcp check's has;
/// its password keeps the `$` of a variable's value.
#[test]
fn each_copy_checks_its_own_redis() {
    let text = r#"
[process.r]
replicas = 2
command = "redis-server --port 638${TEND_REPLICA}"
ready = { redis = "127.0.0.1:638${TEND_REPLICA}" }
health = { redis = { addr = "127.0.0.1:638${TEND_REPLICA}", password = "${PW}", username = "u${TEND_REPLICA}" } }
"#;
    let c = parse_with_env(
        Path::new("/nonexistent-tend-test/tend.toml"),
        text,
        env(&[("PW", "a$b$$c")]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for i in 0..2 {
        let s = proc_of(&c, &format!("r-{i}"));
        assert_eq!(
            s.ready.as_ref().expect("ready").check,
            Check::Redis {
                addr: format!("127.0.0.1:638{i}"),
                password: None,
                username: None
            }
        );
        assert_eq!(
            s.health.as_ref().expect("health").check,
            Check::Redis {
                addr: format!("127.0.0.1:638{i}"),
                password: Some("a$b$$c".into()),
                username: Some(format!("u{i}"))
            }
        );
    }
    // Checked as copy 0's, at the check.
    let errs = errors(
        "[process.a]\ncommand = \"a\"\nreplicas = 2\nready = { redis = \"h:${TEND_REPLICA}x\" }\n",
        &[],
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("tend.toml:4:19: redis check"),
        "{errs:#?}"
    );
}
