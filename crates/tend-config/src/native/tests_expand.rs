//! `${VAR}`, `${VAR:-default}` and `$$` in tend.toml (`expand.rs`).

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

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

fn proc_of<'c>(c: &'c Config, n: &str) -> &'c ProcessSpec {
    c.processes
        .iter()
        .find(|p| p.name.as_str() == n)
        .unwrap_or_else(|| panic!("no process {n}"))
}

/// Every place that expands, each with a variable from another layer.
#[test]
fn expands_in_every_place_from_every_layer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("srv/app")).expect("mkdir");
    std::fs::create_dir_all(d.join("var/log")).expect("mkdir");
    write(d, "daemon.env", "LOGS=var/log\nPORT=8080\n");
    write(d, "app.env", "APP_DIR=srv/app\n");
    let text = r#"
[daemon]
env_file = "${CONF}.env"
log_dir = "${LOGS}"
socket = "${LOGS}/tend.sock"

[process.web]
env_file = "${APP_FILE:-app}.env"
env = { GREETING = "hi ${USER_NAME}", PORT = "9090", SELF = "${GREETING:-unset}" }
command = ["sh", "-c", "echo ${GREETING} $$1 on ${PORT:-80} ${MISSING:-none}", "${APP_DIR}"]
cwd = "${APP_DIR}"
logs.stdout = "${LOGS}/web-${PORT}.log"
health = { exec = "test -d ${APP_DIR}", period = "1s" }
ready = { http = "http://127.0.0.1:${PORT}/ready" }
"#;
    let path = d.join("tend.toml");
    let c = parse_with_env(
        &path,
        text,
        env(&[("CONF", "daemon"), ("USER_NAME", "ann")]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.daemon.log_dir, d.join("var/log"));
    assert_eq!(c.daemon.socket, d.join("var/log/tend.sock"));
    let web = proc_of(&c, "web");
    // The process's own env wins over [daemon] env_file's PORT; `$$` is one `$`.
    assert_eq!(
        web.command,
        ["sh", "-c", "echo hi ann $1 on 9090 none", "srv/app"]
    );
    assert_eq!(web.env["GREETING"], "hi ann");
    // An env value does not see the other env keys.
    assert_eq!(web.env["SELF"], "unset");
    assert_eq!(web.cwd.as_deref(), Some(d.join("srv/app").as_path()));
    assert_eq!(
        web.logs.stdout,
        LogTarget::File(d.join("var/log/var/log/web-9090.log"))
    );
    let health = web.health.as_ref().expect("health");
    assert_eq!(
        health.check,
        Check::Exec(vec!["test".into(), "-d".into(), "srv/app".into()])
    );
    let ready = web.ready.as_ref().expect("ready");
    assert_eq!(
        ready.check,
        Check::Http("http://127.0.0.1:9090/ready".into())
    );
}

/// A value with spaces stays one word of a string command; a bare `$NAME`
/// is left for the shell.
#[test]
fn words_stay_whole_and_bare_dollars_stay() {
    let c = parse_with_env(
        Path::new("/nonexistent-tend-test/tend.toml"),
        "[process.a]\ncommand = \"printf %s ${TWO} $HOME $$$$\"\n",
        env(&[("TWO", "two words")]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        proc_of(&c, "a").command,
        ["printf", "%s", "two words", "$HOME", "$$"]
    );
}

/// An unknown variable is an error at the variable, naming it and the key;
/// every one is reported.
#[test]
fn unknown_variable_is_an_error_at_the_variable() {
    let text = "[process.a]\ncommand = [\"sh\", \"-c\", \"run ${NOPE}\"]\nenv = { X = \"${ALSO_NOPE}\" }\n\n[daemon]\nlog_dir = \"x/${DIR\"\n";
    let errs: Vec<String> = parse_with_env(Path::new("tend.toml"), text, BTreeMap::new())
        .expect_err("errors")
        .errors
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(
        errs[0].starts_with("tend.toml:2:29: unknown variable ${NOPE} in command"),
        "{errs:#?}"
    );
    assert!(errs[0].contains("${NOPE:-default}"), "{errs:#?}");
    assert!(
        errs[1].starts_with("tend.toml:3:14: unknown variable ${ALSO_NOPE} in env.X"),
        "{errs:#?}"
    );
    assert!(
        errs[2].starts_with("tend.toml:6:14: unclosed \"${\" in log_dir"),
        "{errs:#?}"
    );
}

/// `[daemon] env` is given to every process over `[daemon] env_file` and
/// beneath the process's own `env`, and `${VAR}` sees it.
#[test]
fn daemon_env_is_a_layer_of_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "all.env", "A=file\nB=file\n");
    let text = r#"
[daemon]
env = { B = "daemon", HOME_TOO = "${HOME}/x" }
env_file = "all.env"

[process.p]
command = ["echo", "${A}-${B}-${HOME_TOO}"]
env = { A = "mine" }
"#;
    let c = parse_with_env(&d.join("tend.toml"), text, env(&[("HOME", "/h")]))
        .unwrap_or_else(|e| panic!("{e}"));
    let p = proc_of(&c, "p");
    assert_eq!(p.command, ["echo", "mine-daemon-/h/x"]);
    assert_eq!(p.env["A"], "mine");
    assert_eq!(p.env["B"], "daemon");
    assert_eq!(p.env["HOME_TOO"], "/h/x");
    let e = parse_with_env(
        Path::new("tend.toml"),
        "[daemon]\nenv = { X = 1 }\n",
        BTreeMap::new(),
    )
    .expect_err("a number");
    assert!(
        e.to_string().contains("tend.toml:2:13: expected a string"),
        "{e}"
    );
}

fn errs_with(text: &str, vars: &[(&str, &str)]) -> Vec<String> {
    match parse_with_env(Path::new("tend.toml"), text, env(vars)) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

/// A `[[peer]]` is a daemon key: its strings (not its name) see the
/// environment, `[daemon] env_file` and `[daemon] env`, wherever `[daemon]`
/// is in the file; what is checked is the expanded value.
#[test]
fn peers_expand_from_the_daemons_variables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "daemon.env", "PKI=pki\n");
    let text = r#"
[[peer]]
name = "web1"
url = "https://${PEER_HOST}:${PEER_PORT:-9100}"
ca = "${PKI}/ca.pem"
token = "${PEER_TOKEN}"
cert = "${PKI}/client.pem"
key = "${PKI}/client.key"

[[peer]]
name = "${NOT_EXPANDED}"
url = "unix://${RUN}/tend2.sock"
pin = "${WEB2_PIN}"
token_file = "${RUN}/web2.token"

[daemon]
env_file = "daemon.env"
env = { PEER_HOST = "web1.internal", RUN = "/run/tend" }
"#;
    let c = parse_with_env(
        &d.join("tend.toml"),
        text,
        env(&[("PEER_TOKEN", " s3cr$t \n"), ("WEB2_PIN", "sha256:ab12")]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let p = &c.daemon.peers;
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].url, "https://web1.internal:9100");
    assert_eq!(p[0].ca.as_deref(), Some(d.join("pki/ca.pem").as_path()));
    assert_eq!(
        p[0].client_cert,
        Some((d.join("pki/client.pem"), d.join("pki/client.key")))
    );
    // A value's `$` is kept; the token is trimmed as a written one is.
    assert_eq!(
        p[0].auth,
        Some(crate::hosts::HostAuth::Token("s3cr$t".into()))
    );
    // A name is taken as written.
    assert_eq!(p[1].name, "${NOT_EXPANDED}");
    assert_eq!(p[1].url, "unix:///run/tend/tend2.sock");
    assert_eq!(p[1].pin.as_deref(), Some("sha256:ab12"));
    assert_eq!(
        p[1].auth,
        Some(crate::hosts::HostAuth::TokenFile(
            "/run/tend/web2.token".into()
        ))
    );
}

/// An unknown variable in a peer is an error at the variable; the url's
/// scheme, the pin and an empty token are checked after expansion.
#[test]
fn peer_errors_are_at_the_variable_or_of_the_expanded_value() {
    let text = "[[peer]]\nname = \"a\"\nurl = \"https://a:1\"\ntoken = \"${PEER_TOKEN}\"\n";
    let errs = errs_with(text, &[]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(
        errs[0],
        "tend.toml:4:10: unknown variable ${PEER_TOKEN} in token: set PEER_TOKEN in the environment or an env_file, give a default (${PEER_TOKEN:-default}), or write $$ for a literal $"
    );
    let text = "[[peer]]\nname = \"a\"\nurl = \"${URL}\"\npin = \"${PIN}\"\ntoken = \"${EMPTY}\"\nca = \"${EMPTY}\"\n";
    let errs = errs_with(text, &[("URL", "ftp://a"), ("PIN", "ab12"), ("EMPTY", "")]);
    // (The url that is not one leaves the peer without a url: at its table.)
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert!(errs[0].contains("[[peer]] a: no url"), "{errs:#?}");
    assert!(
        errs[1].starts_with("tend.toml:3:7: url \"ftp://a\": expected https://"),
        "{errs:#?}"
    );
    assert!(
        errs[2].starts_with("tend.toml:4:7: a pin is sha256:HEX"),
        "{errs:#?}"
    );
    assert_eq!(errs[3], "tend.toml:5:9: token is empty", "{errs:#?}");
    assert_eq!(errs[4], "tend.toml:6:6: ca is empty", "{errs:#?}");
}

/// `watch` and `watch_ignore` patterns expand as `cwd` does (the process's
/// own `env` too), and the expanded pattern is the one checked.
#[test]
fn watch_patterns_expand_and_are_checked_expanded() {
    let text = r#"
[daemon]
env = { SRC = "app" }

[process.api]
command = "api"
env = { EXT = "py" }
watch = ["${SRC}/**/*.${EXT}", "${CONF:-conf}/*.toml"]
watch_ignore = ["${SRC}/${GEN}/**"]
"#;
    let c = parse_with_env(
        Path::new("/nonexistent-tend-test/tend.toml"),
        text,
        env(&[("GEN", "gen$1")]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let w = proc_of(&c, "api").watch.clone().expect("watch");
    assert_eq!(w.patterns, ["app/**/*.py", "conf/*.toml"]);
    assert_eq!(w.ignore, ["app/gen$1/**"]);

    let errs = errs_with(
        "[process.p]\ncommand = \"p\"\nwatch = [\"src/${NOPE}/*.py\"]\nwatch_ignore = [\"${IGN}\"]\n",
        &[],
    );
    assert_eq!(
        errs,
        [
            "tend.toml:3:15: unknown variable ${NOPE} in watch: set NOPE in the environment or an env_file, give a default (${NOPE:-default}), or write $$ for a literal $",
            "tend.toml:4:18: unknown variable ${IGN} in watch_ignore: set IGN in the environment or an env_file, give a default (${IGN:-default}), or write $$ for a literal $",
        ]
    );
    let errs = errs_with(
        "[process.p]\ncommand = \"p\"\nwatch = [\"${ROOT}/*.py\", \"${BAD}\"]\n",
        &[("ROOT", "/abs"), ("BAD", "src/[a")],
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].starts_with("tend.toml:3:10: watch pattern \"/abs/*.py\": write it relative"),
        "{errs:#?}"
    );
    assert!(
        errs[1].starts_with("tend.toml:3:26: watch: invalid pattern \"src/[a\""),
        "{errs:#?}"
    );
}

/// The redis check's address, password and username expand, in the string
/// form and the table form; the expanded address is the one checked.
#[test]
fn redis_checks_expand() {
    let text = r#"
[daemon]
env = { REDIS_HOST = "10.0.0.5" }

[process.cache]
command = "redis-server"
env = { REDIS_PORT = "6380" }
health = { redis = "${REDIS_HOST}:${REDIS_PORT}" }
ready = { redis = { addr = "${REDIS_HOST}", password = "${REDIS_PASSWORD}", username = "${REDIS_USER:-default}" } }
"#;
    let c = parse_with_env(
        Path::new("/nonexistent-tend-test/tend.toml"),
        text,
        env(&[("REDIS_PASSWORD", "pa$$word")]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let p = proc_of(&c, "cache");
    assert_eq!(
        p.health.as_ref().expect("health").check,
        Check::Redis {
            addr: "10.0.0.5:6380".into(),
            password: None,
            username: None
        }
    );
    assert_eq!(
        p.ready.as_ref().expect("ready").check,
        Check::Redis {
            addr: "10.0.0.5".into(),
            password: Some("pa$$word".into()),
            username: Some("default".into())
        }
    );
    let errs = errs_with(
        "[process.c]\ncommand = \"c\"\nhealth = { redis = \"${NOPE}:6379\" }\nready = { redis = { addr = \"${ADDR}\", password = \"${PW}\" } }\n",
        &[("ADDR", "host:notaport")],
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_eq!(
        errs[0],
        "tend.toml:3:21: unknown variable ${NOPE} in redis: set NOPE in the environment or an env_file, give a default (${NOPE:-default}), or write $$ for a literal $"
    );
    assert!(
        errs[1].starts_with("tend.toml:4:51: unknown variable ${PW} in redis.password"),
        "{errs:#?}"
    );
    let errs = errs_with(
        "[process.c]\ncommand = \"c\"\nready = { redis = { addr = \"${ADDR}\" } }\n",
        &[("ADDR", "host:notaport")],
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("tend.toml:3:19: redis check"),
        "{errs:#?}"
    );
}

/// `[http]`'s addresses and `[telemetry]`'s endpoint and header values are
/// daemon keys that expand; the resource is taken as written.
#[test]
fn listeners_and_telemetry_expand() {
    let text = r#"
[daemon]
env = { OTLP = "https://otlp.example" }

[http]
listen = ["127.0.0.1:${PORT:-9001}", "[::1]:${PORT:-9001}"]
health = "0.0.0.0:${HEALTH_PORT}"

[telemetry]
otlp_endpoint = "${OTLP}/"
headers = { "x-honeycomb-team" = "${HONEYCOMB_API_KEY}" }
resource = { "deployment.environment" = "${ENV}" }
"#;
    let c = parse_with_env(
        Path::new("/nonexistent-tend-test/tend.toml"),
        text,
        env(&[
            ("PORT", "9100"),
            ("HEALTH_PORT", "8080"),
            ("HONEYCOMB_API_KEY", "k$y"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let listen: Vec<(&str, u16)> = c
        .daemon
        .http
        .listen
        .iter()
        .map(|l| (l.host.as_str(), l.port))
        .collect();
    assert_eq!(listen, [("127.0.0.1", 9100), ("::1", 9100)]);
    assert_eq!(
        c.daemon.platform.health,
        Some(crate::platform::HealthListen::parse("0.0.0.0:8080").expect("valid"))
    );
    let t = &c.telemetry;
    assert_eq!(t.otlp_endpoint.as_deref(), Some("https://otlp.example"));
    assert_eq!(t.headers, [("x-honeycomb-team".into(), "k$y".into())]);
    assert_eq!(
        t.resource,
        [("deployment.environment".into(), "${ENV}".into())]
    );

    let errs = errs_with(
        "[http]\nlisten = [\"127.0.0.1:${PORT}\"]\n[telemetry]\nheaders = { key = \"${KEY}\" }\notlp_endpoint = \"${EP}\"\n",
        &[("EP", "localhost:4318")],
    );
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert_eq!(
        errs[0],
        "tend.toml:2:22: unknown variable ${PORT} in listen: set PORT in the environment or an env_file, give a default (${PORT:-default}), or write $$ for a literal $"
    );
    assert!(
        errs[1].starts_with("tend.toml:4:20: unknown variable ${KEY} in headers.key"),
        "{errs:#?}"
    );
    assert!(
        errs[2].starts_with("tend.toml:5:17: invalid otlp_endpoint"),
        "{errs:#?}"
    );
}
