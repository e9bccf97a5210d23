//! Tests of the supervisord.conf reader.
//!
//! The golden cases (INI reading, value types, expansions) were produced by
//! running Python 3.11's `configparser` and Supervisor 4.3's
//! `supervisor/datatypes.py` on each input; the generators are short:
//!
//! ```python
//! p = configparser.RawConfigParser(inline_comment_prefixes=(';', '#'), strict=False)
//! p.read_file(open(path, encoding='utf-8'), path)   # once per file; errors as "error FILE:LINE"
//! # then "[DEFAULT] k = v" for p.defaults(), "[section]" and "k = v" for each section,
//! # with "\" and newlines escaped as \\ and \n.
//! supervisor.datatypes.dict_of_key_value_pairs(s)    # and byte_size, octal_type, ...
//! fmt % {'program_name': 'web', 'process_num': 3, 'numprocs': 12, ...}
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use tend_core::spec::{LogSpec, LogTarget};
use tend_core::{Backoff, BackoffMode, Name, ProcessSpec, RestartPolicy, Signal};

use super::expand::{ExpandError, Names, Val, expand};
use super::ini::Ini;
use super::programs::{auto_log_path, supervisor_backoff};
use super::values;
use super::*;

// ---------------------------------------------------------------- helpers

fn name(s: &str) -> Name {
    Name::new(s).expect("test names are valid")
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A machine whose home, temporary and working directory is `dir`.
fn host(dir: &Path) -> Host {
    Host {
        env: BTreeMap::from([
            ("HOME".to_string(), dir.display().to_string()),
            ("TMPDIR".to_string(), dir.display().to_string()),
            ("LANG".to_string(), "C.UTF-8".to_string()),
        ]),
        cwd: dir.to_path_buf(),
        node: "testhost".to_string(),
    }
}

/// `[supervisord]` with every path inside `dir`, then `rest`.
fn with_supervisord(dir: &Path, rest: &str) -> String {
    format!(
        "[supervisord]\nlogfile=%(here)s/supervisord.log\npidfile=%(here)s/supervisord.pid\nchildlogdir={}\n\n{rest}",
        dir.display()
    )
}

fn parse_in(dir: &Path, text: &str) -> Result<SupervisordConf, ConfigErrors> {
    parse_with(&dir.join("supervisord.conf"), text, &host(dir))
}

fn ok_in(dir: &Path, text: &str) -> SupervisordConf {
    parse_in(dir, text).unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
}

/// `[supervisord]` boilerplate plus `rest`, in a fresh directory.
fn ok(rest: &str) -> (tempfile::TempDir, SupervisordConf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = ok_in(dir.path(), &with_supervisord(dir.path(), rest));
    (dir, conf)
}

/// The errors of `[supervisord]` boilerplate plus `rest`, as `LINE: message`
/// (the boilerplate is 4 lines plus a blank one, so `rest` starts at line 6).
fn errors(rest: &str) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    match parse_in(dir.path(), &with_supervisord(dir.path(), rest)) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(e) => e
            .errors
            .iter()
            .map(|d| format!("{}: {}", d.line, d.message))
            .collect(),
    }
}

fn failures(conf: &SupervisordConf) -> Vec<String> {
    conf.failures
        .iter()
        .map(|d| format!("{}: {}", d.line, d.message))
        .collect()
}

fn warnings(conf: &SupervisordConf) -> Vec<String> {
    conf.warnings
        .iter()
        .map(|d| format!("{}: {}", d.line, d.message))
        .collect()
}

fn process<'c>(conf: &'c SupervisordConf, n: &str) -> &'c ProcessSpec {
    conf.processes
        .iter()
        .find(|p| p.name.as_str() == n)
        .unwrap_or_else(|| panic!("no process {n} in {:?}", conf.processes))
}

fn has(list: &[String], needle: &str) -> bool {
    list.iter().any(|l| l.contains(needle))
}

// ---------------------------------------------------------------- INI (golden, from Python)

/// The merged result, rendered like the Python generator does.
fn dump_ini(files: &[&str]) -> Vec<String> {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('\n', "\\n");
    let mut ini = Ini::new();
    let mut out = Vec::new();
    for (i, text) in files.iter().enumerate() {
        for e in ini.read(PathBuf::from(format!("f{i}")), text) {
            out.push(format!("error {}:{}", e.file, e.line));
        }
    }
    for e in &ini.defaults {
        out.push(format!("[DEFAULT] {} = {}", esc(&e.key), esc(&e.value)));
    }
    for s in &ini.sections {
        out.push(format!("[{}]", esc(&s.name)));
        for e in &s.entries {
            out.push(format!("{} = {}", esc(&e.key), esc(&e.value)));
        }
    }
    out
}

#[rustfmt::skip]
const INI_GOLDEN: &[(&[&str], &[&str])] = &[
    (
        &["[program:Foo]\ncommand=sh -c \"echo a;b\" ; real comment\nEnv=X"],
        &["[program:Foo]", "command = sh -c \"echo a;b\"", "env = X"],
    ),
    (
        &["[a]\nx=1\ny=2\n[b]\nz=3\n[a]\nx=9\nw=4\n"],
        &["[a]", "x = 9", "y = 2", "w = 4", "[b]", "z = 3"],
    ),
    (
        &["[a]\nenv=A=\"1\",\n  B=\"2\"\n"],
        &["[a]", "env = A=\"1\",\\nB=\"2\""],
    ),
    (
        &["[a]\nk1=v1 ; c\nautostart=true\n"],
        &["[a]", "k1 = v1", "autostart = true"],
    ),
    (
        &["[a]\nk = v\n\n  cont\n\nx=1\n\n"],
        &["[a]", "k = v\\n\\ncont", "x = 1"],
    ),
    (
        &["[a]\nk=v\n   \n\t\n"],
        &["[a]", "k = v"],
    ),
    (
        &["[a]\nk=1\n\n# c\n  cont\n"],
        &["[a]", "k = 1\\n\\ncont"],
    ),
    (
        &["[a]\nk = v\n  # comment\n  more\n"],
        &["[a]", "k = v\\nmore"],
    ),
    (
        &["[a]\nk=\n  a\n  b\n"],
        &["[a]", "k = \\na\\nb"],
    ),
    (
        &["[a]\nk=a;b\nj=a #c\nm=a\t;c\nn=a#b;c\n"],
        &["[a]", "k = a;b", "j = a", "m = a", "n = a#b;c"],
    ),
    (
        &["[a]\nk=x#y #z ; w\n"],
        &["[a]", "k = x#y #z"],
    ),
    (
        &["[a]\nk= ;c\nj=#x\nl=;x\n"],
        &["[a]", "k = ", "j = #x", "l = ;x"],
    ),
    (
        &["[a]\nk = v # c1 ; c2\n"],
        &["[a]", "k = v"],
    ),
    (
        &["[a] ; comment\nk=1\n"],
        &["[a]", "k = 1"],
    ),
    (
        &["[a]\n   ; comment\n\t# c\nk=1\n;\n#\n"],
        &["[a]", "k = 1"],
    ),
    (
        &["[a]\nk=v\u{a0};c\nj=v\u{1c}#c\nl=v\u{2003}x\n"],
        &["[a]", "k = v", "j = v", "l = v\u{2003}x"],
    ),
    (
        &["[a]\nk: v=1\nj = a:b\nurl=http://x:80\nk2==v\n"],
        &["[a]", "k = v=1", "j = a:b", "url = http://x:80", "k2 = =v"],
    ),
    (
        &["[a]\n  Key Name  =  Val  \n k : v\n"],
        &["[a]", "key name = Val", "k = v"],
    ),
    (
        &["[a]\n\u{c4}\u{d6}=1\nCAPS=2\n"],
        &["[a]", "\u{e4}\u{f6} = 1", "caps = 2"],
    ),
    (
        &["[a]\nx=1\ny=2\nx=3\n"],
        &["[a]", "x = 3", "y = 2"],
    ),
    (
        &["[a]\nk=%(here)s/x %% y\n"],
        &["[a]", "k = %(here)s/x %% y"],
    ),
    (
        &["[Program:X]\nk=1\n[program:x]\nk=2\n"],
        &["[Program:X]", "k = 1", "[program:x]", "k = 2"],
    ),
    (
        &["[a] junk\nk=1\n[b]]\nk=2\n[c]x]y\nk=3\n"],
        &["[a]", "k = 1", "[b]]", "k = 2", "[c]x]", "k = 3"],
    ),
    (
        &["[ ]\nk=1\n[ padded ]\nj=2\n"],
        &["[ ]", "k = 1", "[ padded ]", "j = 2"],
    ),
    (
        &["[DEFAULT]\nd=1\n[a]\nk=2\n[DEFAULT]\ne=3\n"],
        &["[DEFAULT] d = 1", "[DEFAULT] e = 3", "[a]", "k = 2"],
    ),
    (
        &["[a]\nk=1\n  [b]\nj=2\n"],
        &["[a]", "k = 1\\n[b]", "j = 2"],
    ),
    (
        &["[a]\n  k=1\n  j=2\n    cont\n"],
        &["[a]", "k = 1", "j = 2\\ncont"],
    ),
    (
        &["[a]\nk=1\n\tcont\n"],
        &["[a]", "k = 1\\ncont"],
    ),
    (
        &["[a]\n    k=1\n  j=2\n  x\n"],
        &["error 0:4", "[a]", "k = 1", "j = 2"],
    ),
    (
        &["[a]\r\nk=1\r\n  2\r\n"],
        &["[a]", "k = 1\\n2"],
    ),
    (
        &["[a]\rk=1\r  2\r"],
        &["[a]", "k = 1\\n2"],
    ),
    (
        &["[a]\nk=1"],
        &["[a]", "k = 1"],
    ),
    (
        &[""],
        &[],
    ),
    (
        &["; only a comment\n\n"],
        &[],
    ),
    (
        &["[]\nk=1\n"],
        &["error 0:1"],
    ),
    (
        &["k=1\n[a]\n"],
        &["error 0:1"],
    ),
    (
        &["  \n# c\nk=1\n"],
        &["error 0:3"],
    ),
    (
        &["[a]\nnovalue\nk=1\n"],
        &["error 0:2", "[a]", "k = 1"],
    ),
    (
        &["[a]\n=x\n  cont\n"],
        &["error 0:2", "error 0:3", "[a]", " = x"],
    ),
    (
        &["[a]\nbad1\nk=1\nbad2\n  cont\n"],
        &["error 0:2", "error 0:4", "[a]", "k = 1\\ncont"],
    ),
    (
        &["\u{feff}[a]\nk=1\n"],
        &["error 0:1"],
    ),
    (
        &["[a]\nx=1\ny=2\n", "[a]\nx=3\n  cont\n[b]\nk=1\n"],
        &["[a]", "x = 3\\ncont", "y = 2", "[b]", "k = 1"],
    ),
    (
        &["[a]\nx=1\n", "k=2\n"],
        &["error 1:1", "[a]", "x = 1"],
    ),
    (
        &["[DEFAULT]\nd=1\n", "[DEFAULT]\nd=2\n[z]\n"],
        &["[DEFAULT] d = 2", "[z]"],
    ),
];

#[test]
fn ini_reads_like_python_configparser() {
    for (files, expected) in INI_GOLDEN {
        assert_eq!(dump_ini(files), *expected, "input: {files:?}");
    }
}

#[test]
fn ini_keeps_file_and_line_of_every_entry() {
    let mut ini = Ini::new();
    ini.read(
        PathBuf::from("main.conf"),
        "[a]\n\nx = 1\n  more\ny = 2\n[b]\nz = 3\n",
    );
    ini.read(PathBuf::from("inc.conf"), "; c\n[a]\ny = 9\n");
    let a = ini.section("a").expect("a");
    assert_eq!((a.file, a.line), (0, 1));
    let pos: Vec<_> = a
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str(), e.file, e.line))
        .collect();
    assert_eq!(pos, [("x", "1\nmore", 0, 3), ("y", "9", 1, 3)]);
    assert_eq!(
        ini.files,
        [PathBuf::from("main.conf"), PathBuf::from("inc.conf")]
    );
}

#[test]
fn ini_errors_say_what_is_wrong() {
    let mut ini = Ini::new();
    let errors = ini.read(PathBuf::from("f"), "[a]\njust words\n=x\n");
    let messages: Vec<_> = errors
        .iter()
        .map(|e| (e.line, e.message.as_str()))
        .collect();
    assert_eq!(
        messages,
        [
            (
                2,
                "parsing error: 'just words' is neither a [section] header nor a `key = value` option"
            ),
            (3, "parsing error: '=x' has no option name"),
        ]
    );
    let errors = Ini::new().read(PathBuf::from("f"), "\u{feff}[a]\n");
    assert!(errors[0].message.contains("byte order mark"), "{errors:?}");
    let errors = Ini::new().read(PathBuf::from("f"), "command=x\n");
    assert_eq!(
        errors[0].message,
        "File contains no section headers: 'command=x' comes before any [section]"
    );
}

// ---------------------------------------------------------------- value types (golden, from Supervisor)

/// Expected `KEY=value` pairs.
type Pairs = &'static [(&'static str, &'static str)];

#[rustfmt::skip]
const ENV_GOLDEN: &[(&str, Result<Pairs, &str>)] = &[
        ("A=\"1\",B=2", Ok(&[("A", "1"), ("B", "2")])),
        ("KEY=\"val\",KEY2=val2", Ok(&[("KEY", "val"), ("KEY2", "val2")])),
        ("A=\"x, y\",B='q'", Ok(&[("A", "x, y"), ("B", "q")])),
        ("PATH=\"/usr/bin:/bin\",HOME=/root", Ok(&[("PATH", "/usr/bin:/bin"), ("HOME", "/root")])),
        ("A=1;B=2", Ok(&[("A", "1"), ("B", "2")])),
        ("A=1 B=2", Err("Unexpected end of key/value pairs in value 'A=1 B=2'")),
        ("A=a,b", Err("Unexpected end of key/value pairs in value 'A=a,b'")),
        ("A=", Err("Unexpected end of key/value pairs in value 'A='")),
        ("A=\"\"", Ok(&[("A", "")])),
        ("A=\"\",B=c", Ok(&[("A", ""), ("B", "c")])),
        ("A=x#comment\n,B=2", Ok(&[("A", "x"), ("B", "2")])),
        ("A=foo@bar", Err("Unexpected end of key/value pairs in value 'A=foo@bar'")),
        ("A=1.5,B=-3,C=+x,D=(y):z", Ok(&[("A", "1.5"), ("B", "-3"), ("C", "+x"), ("D", "(y):z")])),
        ("\nA=\"1\",\nB=\"2\"", Ok(&[("A", "1"), ("B", "2")])),
        ("A=\\,x", Ok(&[("A", ",x")])),
        ("A=\"a\\\"b\",B=\"c\\d\"", Ok(&[("A", "a\"b"), ("B", "c\\d")])),
        ("A='a\\b'", Ok(&[("A", "a\\b")])),
        ("A=\"unclosed", Err("No closing quotation")),
        ("A=1,", Ok(&[("A", "1")])),
        ("A = 1 , B = 2", Ok(&[("A", "1"), ("B", "2")])),
        ("A=1,A=2", Ok(&[("A", "2")])),
        ("\u{c9}=\u{e9}", Ok(&[("\u{c9}", "\u{e9}")])),
        ("A=\u{fc}", Ok(&[("A", "\u{fc}")])),
        ("A=x\\", Err("No escaped character")),
        ("", Ok(&[])),
        ("A=\"1\"B=\"2\"", Err("Unexpected end of key/value pairs in value 'A=\"1\"B=\"2\"'")),
        ("A=%x", Ok(&[("A", "%")])),
        ("a-b=1", Ok(&[("a-b", "1")])),
        ("A='it''s'", Ok(&[("A", "its")])),
        ("A=\"a b c\"", Ok(&[("A", "a b c")])),
];

#[test]
fn environment_pairs_parse_like_supervisor() {
    for (input, expected) in ENV_GOLDEN {
        let got = values::key_value_pairs(input);
        match expected {
            Ok(pairs) => {
                let pairs: Vec<(String, String)> = pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                assert_eq!(got, Ok(pairs), "input: {input:?}");
            }
            Err(msg) => assert_eq!(got, Err(msg.to_string()), "input: {input:?}"),
        }
    }
}

#[rustfmt::skip]
const BYTE_SIZE_GOLDEN: &[(&str, Result<i64, &str>)] = &[
        ("0", Ok(0)),
        ("1024", Ok(1024)),
        ("50MB", Ok(52428800)),
        ("50mb", Ok(52428800)),
        ("10KB", Ok(10240)),
        ("1GB", Ok(1073741824)),
        ("1 MB", Ok(1048576)),
        (" 7 ", Ok(7)),
        ("1.5MB", Err("invalid literal for int() with base 10: '1.5'")),
        ("MB", Err("invalid literal for int() with base 10: ''")),
        ("", Err("invalid literal for int() with base 10: ''")),
        ("-1KB", Ok(-1024)),
        ("1TB", Err("invalid literal for int() with base 10: '1tb'")),
        ("1_000", Ok(1000)),
        ("5kB", Ok(5120)),
];

#[rustfmt::skip]
const OCTAL_GOLDEN: &[(&str, Result<i64, &str>)] = &[
        ("022", Ok(18)),
        ("0700", Ok(448)),
        ("0o700", Ok(448)),
        ("777", Ok(511)),
        ("8", Err("8 can not be converted to an octal type")),
        ("", Err(" can not be converted to an octal type")),
        (" 17 ", Ok(15)),
        ("0_17", Ok(15)),
        ("-1", Ok(-1)),
        ("x", Err("x can not be converted to an octal type")),
];

#[rustfmt::skip]
const BOOLEAN_GOLDEN: &[(&str, Result<bool, &str>)] = &[
        ("true", Ok(true)),
        ("TRUE", Ok(true)),
        ("Yes", Ok(true)),
        ("on", Ok(true)),
        ("1", Ok(true)),
        ("false", Ok(false)),
        ("No", Ok(false)),
        ("OFF", Ok(false)),
        ("0", Ok(false)),
        ("maybe", Err("not a valid boolean value: 'maybe'")),
        ("", Err("not a valid boolean value: ''")),
        (" true", Err("not a valid boolean value: ' true'")),
];

#[rustfmt::skip]
const INTEGER_GOLDEN: &[(&str, Result<i64, &str>)] = &[
        ("0", Ok(0)),
        ("42", Ok(42)),
        (" 42 ", Ok(42)),
        ("-7", Ok(-7)),
        ("+7", Ok(7)),
        ("1_000", Ok(1000)),
        ("1__0", Err("invalid literal for int() with base 10: '1__0'")),
        ("_1", Err("invalid literal for int() with base 10: '_1'")),
        ("1.0", Err("invalid literal for int() with base 10: '1.0'")),
        ("", Err("invalid literal for int() with base 10: ''")),
        ("0x10", Err("invalid literal for int() with base 10: '0x10'")),
        ("007", Ok(7)),
];

#[test]
fn scalar_types_parse_like_supervisor() {
    for (input, expected) in BYTE_SIZE_GOLDEN {
        assert_eq!(
            values::byte_size(input),
            expected.map_err(str::to_string),
            "byte_size {input:?}"
        );
    }
    for (input, expected) in OCTAL_GOLDEN {
        match expected {
            // Python takes a negative mode; tend refuses it.
            Ok(n) if *n < 0 => assert!(values::octal(input).is_err(), "octal {input:?}"),
            _ => assert_eq!(
                values::octal(input).map(i64::from),
                expected.map_err(str::to_string),
                "octal {input:?}"
            ),
        }
    }
    for (input, expected) in BOOLEAN_GOLDEN {
        assert_eq!(
            values::boolean(input),
            expected.map_err(str::to_string),
            "boolean {input:?}"
        );
    }
    for (input, expected) in INTEGER_GOLDEN {
        assert_eq!(
            values::integer(input),
            expected.map_err(str::to_string),
            "integer {input:?}"
        );
    }
}

#[rustfmt::skip]
fn exitcodes_golden() -> Vec<(&'static str, Result<Vec<i32>, &'static str>)> {
    vec![
        ("0", Ok(vec![0])),
        ("0,2", Ok(vec![0, 2])),
        ("0, 2 ,3", Ok(vec![0, 2, 3])),
        ("", Ok(vec![])),
        ("256", Err("not a valid list of exit codes: '256'")),
        ("-1", Err("not a valid list of exit codes: '-1'")),
        ("a", Err("not a valid list of exit codes: 'a'")),
        ("1,,2", Err("not a valid list of exit codes: '1,,2'")),
    ]
}

type HostPort = (String, u16);

#[rustfmt::skip]
fn inet_golden() -> Vec<(&'static str, Result<HostPort, &'static str>)> {
    vec![
        ("127.0.0.1:9001", Ok(("127.0.0.1".to_string(), 9001))),
        (":9001", Ok((String::new(), 9001))),
        ("*:9001", Ok((String::new(), 9001))),
        ("9001", Ok((String::new(), 9001))),
        ("LocalHost:80", Ok(("localhost".to_string(), 80))),
        ("host:", Err("no port number specified in ''")),
        ("host:0", Err("0 is below lower bound (1)")),
        ("host:65536", Err("65536 is above upper bound (65535)")),
        ("abc", Err("not a valid port number: 'abc' ")),
        ("[::1]:80", Ok(("[::1]".to_string(), 80))),
    ]
}

#[rustfmt::skip]
fn name_golden() -> Vec<(&'static str, Result<String, &'static str>)> {
    vec![
        ("web", Ok("web".to_string())),
        (" web ", Ok("web".to_string())),
        ("a b", Err("Invalid name: 'a b' because of character: ' '")),
        ("a:b", Err("Invalid name: 'a:b' because of character: ':'")),
        ("a/b", Err("Invalid name: 'a/b' because of character: '/'")),
        ("x@y", Ok("x@y".to_string())),
    ]
}

#[test]
fn list_and_address_types_parse_like_supervisor() {
    for (input, expected) in exitcodes_golden() {
        assert_eq!(
            values::exitcodes(input),
            expected.map_err(str::to_string),
            "exitcodes {input:?}"
        );
    }
    for (input, expected) in inet_golden() {
        assert_eq!(
            values::inet_address(input),
            expected.map_err(str::to_string),
            "inet_address {input:?}"
        );
    }
    for (input, expected) in name_golden() {
        assert_eq!(
            values::process_or_group_name(input),
            expected.map_err(str::to_string),
            "name {input:?}"
        );
    }
}

#[test]
fn signals_and_restart_policies() {
    for (input, number) in [
        ("TERM", libc::SIGTERM),
        ("SIGTERM", libc::SIGTERM),
        ("term", libc::SIGTERM),
        (" hup ", libc::SIGHUP),
        ("9", libc::SIGKILL),
        ("IOT", libc::SIGABRT),
        ("CLD", libc::SIGCHLD),
        ("RTMIN", libc::SIGRTMIN()),
    ] {
        assert_eq!(
            values::signal(input).map(Signal::number),
            Ok(number),
            "{input:?}"
        );
    }
    assert_eq!(
        values::signal("TREM"),
        Err("value 'TREM' is not a valid signal name".to_string())
    );
    assert_eq!(
        values::signal("999"),
        Err("value '999' is not a valid signal number".to_string())
    );
    assert_eq!(values::auto_restart("TRUE"), Ok(RestartPolicy::Always));
    assert_eq!(values::auto_restart("off"), Ok(RestartPolicy::Never));
    assert_eq!(
        values::auto_restart("Unexpected"),
        Ok(RestartPolicy::OnFailure)
    );
    assert_eq!(
        values::auto_restart("sometimes"),
        Err("invalid 'autorestart' value 'sometimes'".to_string())
    );
    assert_eq!(values::log_level("WARN"), Ok(LogLevel::Warn));
    assert_eq!(values::log_level("blather"), Ok(LogLevel::Blather));
    assert_eq!(
        values::log_level("warning"),
        Err("bad logging level name 'warning'".to_string())
    );
}

#[test]
fn logfile_names_and_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let env = BTreeMap::from([("HOME".to_string(), d.display().to_string())]);
    use values::LogfileName as L;
    assert_eq!(values::logfile_name("NONE", d, &env), Ok(L::None));
    assert_eq!(values::logfile_name("off", d, &env), Ok(L::None));
    assert_eq!(values::logfile_name("Auto", d, &env), Ok(L::Auto));
    assert_eq!(values::logfile_name("SYSLOG", d, &env), Ok(L::Syslog));
    assert_eq!(
        values::logfile_name("x.log", d, &env),
        Ok(L::Path(d.join("x.log")))
    );
    assert_eq!(
        values::logfile_name("~/y.log", d, &env),
        Ok(L::Path(d.join("y.log")))
    );
    assert_eq!(
        values::logfile_name("./sub/../z.log", d, &env),
        Ok(L::Path(d.join("z.log")))
    );
    assert_eq!(
        values::logfile_name("/nonexistent-tend/x.log", d, &env),
        Err(
            "The directory named as part of the path /nonexistent-tend/x.log does not exist".into()
        )
    );
    assert_eq!(
        values::existing_directory("nope", d, &env),
        Err("nope is not an existing directory".into())
    );
}

// ---------------------------------------------------------------- expansions (golden, from Python)

#[rustfmt::skip]
fn expand_golden() -> Vec<(&'static str, Result<&'static str, ExpandError>)> {
    let bad = |s: &str| ExpandError::Bad(s.to_string());
    let unknown = |s: &str| ExpandError::Unknown(s.to_string());
    vec![
        ("plain", Ok("plain")),
        ("%(program_name)s", Ok("web")),
        ("%(program_name)s_%(process_num)02d", Ok("web_03")),
        ("%(process_num)s", Ok("3")),
        ("%(process_num)d", Ok("3")),
        ("%(numprocs)d", Ok("12")),
        ("%(process_num)5d|", Ok("    3|")),
        ("%(process_num)-5d|", Ok("3    |")),
        ("%(process_num)05d", Ok("00003")),
        ("%(process_num)+d", Ok("+3")),
        ("%(process_num) d", Ok(" 3")),
        ("%(process_num)x", Ok("3")),
        ("%(numprocs)X", Ok("C")),
        ("%(numprocs)#x", Ok("0xc")),
        ("%(numprocs)o", Ok("14")),
        ("%(numprocs)#o", Ok("0o14")),
        ("%(process_num).3d", Ok("003")),
        ("%(process_num)i", Ok("3")),
        ("%(process_num)u", Ok("3")),
        ("%(process_num)ld", Ok("3")),
        ("%(program_name)10s|", Ok("       web|")),
        ("%(program_name)-10s|", Ok("web       |")),
        ("%(program_name).2s", Ok("we")),
        ("%(program_name)r", Ok("'web'")),
        ("100%%", Ok("100%")),
        ("%(here)s/%(program_name)s.log", Ok("/etc/sv/web.log")),
        ("%(ENV_HOME)s/x", Ok("/home/u/x")),
        ("%(neg)03d", Ok("-05")),
        ("%(neg)d", Ok("-5")),
        ("%(neg)x", Ok("-5")),
        ("%(neg)+5d|", Ok("   -5|")),
        ("%(program_name)c", Err(bad("%c requires int or char"))),
        ("%(numprocs)c", Ok("\u{c}")),
        ("%(a(b))s", Err(unknown("a(b)"))),
        ("%(program_name)", Err(bad("incomplete format"))),
        ("%(program_name", Err(bad("incomplete format key"))),
        ("%", Err(bad("incomplete format"))),
        ("abc%", Err(bad("incomplete format"))),
        ("%(program_name)q", Err(bad("unsupported format character 'q' (0x71) at index 15"))),
        ("%(program_name)d", Err(bad("%d format: a real number is required, not str"))),
        ("%(program_name)x", Err(bad("%x format: an integer is required, not str"))),
        ("%(unknown)s", Err(unknown("unknown"))),
        ("%(program_name)s%%%(process_num)d", Ok("web%3")),
        ("%(process_num)*d", Err(bad("not enough arguments for format string"))),
        ("%(program_name)%", Err(bad("unsupported format character '%' (0x25) at index 15"))),
        ("%(process_num)05.3d", Ok("00003")),
    ]
}

#[test]
fn expansions_format_like_python() {
    let base = BTreeMap::from([("ENV_HOME".to_string(), Val::Str("/home/u".into()))]);
    let top = BTreeMap::from([
        ("program_name".to_string(), Val::Str("web".into())),
        ("process_num".to_string(), Val::Int(3)),
        ("numprocs".to_string(), Val::Int(12)),
        ("here".to_string(), Val::Str("/etc/sv".into())),
        ("neg".to_string(), Val::Int(-5)),
    ]);
    let names = Names::new(&base, &top);
    for (input, expected) in expand_golden() {
        assert_eq!(
            expand(input, &names),
            expected.map(str::to_string),
            "{input:?}"
        );
    }
}

#[test]
fn expansion_errors_use_supervisors_words() {
    let base = BTreeMap::from([("ENV_HOME".to_string(), Val::Str("/h".into()))]);
    let top = BTreeMap::from([("here".to_string(), Val::Str("/etc".into()))]);
    let names = Names::new(&base, &top);
    let err = expand("%(nope)s", &names).expect_err("unknown");
    assert_eq!(
        err.message("%(nope)s", "program:x.command", &names),
        "Format string '%(nope)s' for 'program:x.command' contains names ('nope') which cannot be expanded. Available names: ENV_HOME, here"
    );
    let err = expand("%(here)d", &names).expect_err("bad");
    assert_eq!(
        err.message("%(here)d", "environment", &names),
        "Format string '%(here)d' for 'environment' is badly formatted: %d format: a real number is required, not str"
    );
    // A conversion without a name would format the whole dictionary in Python.
    assert!(matches!(
        expand("echo %s", &names),
        Err(ExpandError::Bad(_))
    ));
    // Huge widths are refused rather than allocated.
    assert!(matches!(
        expand("%(here)999999999999s", &names),
        Err(ExpandError::Bad(_))
    ));
}

// ---------------------------------------------------------------- the lab config (supervisor.md 5.1)

const LAB: &str = "\
[unix_http_server]
file=$LAB/supervisor.sock
chmod=0700

[inet_http_server]
port=127.0.0.1:9001
username=admin
password=secret

[supervisord]
logfile=$LAB/logs/supervisord.log
pidfile=$LAB/supervisord.pid
childlogdir=$LAB/logs
loglevel=info
identifier=labsupervisor

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://$LAB/supervisor.sock

[program:sleeper]
command=/bin/sleep 100000
priority=10

[program:failer]
command=/bin/sh -c \"echo failing; exit 1\"
startretries=2

[program:printer]
command=$LAB/printer.sh
stdout_logfile=$LAB/logs/printer.out.log
stderr_logfile=$LAB/logs/printer.err.log

[eventlistener:listener]
command=$VENV/bin/python -u $LAB/listener.py
events=PROCESS_STATE,TICK_5
stderr_logfile=$LAB/logs/listener.err.log
";

/// What every lab process gets: Supervisor's defaults as tend specs.
fn lab_spec(lab: &Path, n: &str, command: &[&str]) -> ProcessSpec {
    let mut spec = ProcessSpec::new(name(n), argv(command));
    let url = format!("unix://{}/supervisor.sock", lab.display());
    spec.env = BTreeMap::from([
        ("SUPERVISOR_ENABLED".to_string(), "1".to_string()),
        ("SUPERVISOR_PROCESS_NAME".to_string(), n.to_string()),
        ("SUPERVISOR_GROUP_NAME".to_string(), n.to_string()),
        ("SUPERVISOR_SERVER_URL".to_string(), url),
    ]);
    spec.restart = RestartPolicy::OnFailure;
    spec.start_secs = Duration::from_secs(1);
    spec.stdin_pipe = true;
    spec.backoff = Backoff {
        mode: BackoffMode::Linear {
            step: Duration::from_secs(1),
        },
        min_uptime: Duration::ZERO,
        give_up_after: Some(4),
        // supervisord's pace for a program that exits at once.
        floor: Duration::from_secs(1),
        ..Backoff::default()
    };
    spec.stop.timeout = Duration::from_secs(10);
    let logs = lab.join("logs");
    spec.logs = LogSpec {
        stdout: LogTarget::File(auto_log_path(&logs, n, "stdout", "labsupervisor")),
        stderr: LogTarget::File(auto_log_path(&logs, n, "stderr", "labsupervisor")),
        ..LogSpec::default()
    };
    spec
}

#[test]
fn the_lab_config_gives_supervisors_processes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = dir.path();
    fs::create_dir(lab.join("logs")).expect("logs dir");
    let text = LAB
        .replace("$LAB", &lab.display().to_string())
        .replace("$VENV", "/opt/venv");
    let conf = ok_in(lab, &text);
    assert_eq!(conf.warnings, [], "no warnings expected");

    let mut sleeper = lab_spec(lab, "sleeper", &["/bin/sleep", "100000"]);
    sleeper.priority = 10;
    let mut failer = lab_spec(lab, "failer", &["/bin/sh", "-c", "echo failing; exit 1"]);
    failer.backoff.give_up_after = Some(3);
    let printer_sh = lab.join("printer.sh").display().to_string();
    let mut printer = lab_spec(lab, "printer", &[&printer_sh]);
    printer.logs.stdout = LogTarget::File(lab.join("logs/printer.out.log"));
    printer.logs.stderr = LogTarget::File(lab.join("logs/printer.err.log"));
    assert_eq!(conf.processes, [sleeper, failer, printer]);

    let [listener] = conf.eventlisteners.as_slice() else {
        panic!("one listener expected: {:?}", conf.eventlisteners)
    };
    let listener_py = lab.join("listener.py").display().to_string();
    let mut spec = lab_spec(
        lab,
        "listener",
        &["/opt/venv/bin/python", "-u", &listener_py],
    );
    spec.priority = -1;
    spec.logs.stderr = LogTarget::File(lab.join("logs/listener.err.log"));
    // Its stdout is the event-listener protocol: lossless, not shown live.
    spec.logs.protocol_stdout = true;
    assert_eq!(listener.spec, spec);
    assert_eq!(listener.events, ["PROCESS_STATE", "TICK_5"]);
    assert_eq!(listener.buffer_size, 10);
    assert_eq!(listener.priority, -1);
    assert_eq!(listener.pool_name, name("listener"));

    let groups: Vec<_> = conf
        .groups
        .iter()
        .map(|g| (g.name.as_str(), g.priority, g.members.len(), g.kind))
        .collect();
    assert_eq!(
        groups,
        [
            ("sleeper", 10, 1, GroupKind::Program),
            ("failer", 999, 1, GroupKind::Program),
            ("printer", 999, 1, GroupKind::Program),
            ("listener", -1, 1, GroupKind::EventListenerPool),
        ]
    );

    assert_eq!(
        conf.unix_http_server,
        Some(UnixHttpServer {
            file: lab.join("supervisor.sock"),
            chmod: 0o700,
            chown: None,
            auth: None,
        })
    );
    let inet = conf.inet_http_server.as_ref().expect("inet");
    assert_eq!((inet.host.as_str(), inet.port), ("127.0.0.1", 9001));
    let auth = inet.auth.as_ref().expect("auth");
    assert!(auth.matches("admin", "secret"));
    assert!(!auth.matches("admin", "Secret"));
    assert!(!auth.matches("root", "secret"));

    let sd = &conf.supervisord;
    assert_eq!(sd.logfile, MainLog::File(lab.join("logs/supervisord.log")));
    assert_eq!(sd.pidfile, lab.join("supervisord.pid"));
    assert_eq!(sd.childlogdir, lab.join("logs"));
    assert_eq!(sd.identifier, "labsupervisor");
    assert_eq!(sd.loglevel, LogLevel::Info);
    assert!(!sd.nodaemon);
    assert_eq!(
        conf.supervisorctl.serverurl,
        format!("unix://{}/supervisor.sock", lab.display())
    );
    let failer = &conf.details[&name("failer")];
    assert_eq!(failer.startretries, 2);
    assert_eq!(failer.command, "/bin/sh -c \"echo failing; exit 1\"");
    assert!(failer.stdout.auto && failer.stdout.logfile.is_some());
    assert_eq!(conf.details[&name("listener")].process_priority, 999);
    assert_eq!(conf.files, [lab.join("supervisord.conf")]);
}

// ---------------------------------------------------------------- [program:x]

#[test]
fn program_defaults_follow_supervisor() {
    let (dir, conf) = ok("[program:web]\ncommand=python3 -m http.server\n");
    let spec = process(&conf, "web");
    assert_eq!(spec.command, ["python3", "-m", "http.server"]);
    assert_eq!(spec.group, name("web"));
    assert!(spec.autostart);
    assert_eq!(spec.priority, 999);
    assert_eq!(spec.restart, RestartPolicy::OnFailure);
    assert_eq!(spec.success_exit_codes, [0]);
    assert_eq!(spec.start_secs, Duration::from_secs(1));
    assert_eq!(spec.backoff, supervisor_backoff(3));
    assert_eq!(spec.stop.signal, Signal::TERM);
    assert_eq!(spec.stop.timeout, Duration::from_secs(10));
    assert_eq!(spec.user, None);
    assert_eq!(spec.umask, None);
    assert_eq!(spec.cwd, None);
    assert_eq!(spec.logs.max_size, 50 * 1024 * 1024);
    assert_eq!(spec.logs.backups, 10);
    assert!(!spec.logs.merge_stderr);
    let out = auto_log_path(dir.path(), "web", "stdout", "supervisor");
    assert_eq!(spec.logs.stdout, LogTarget::File(out.clone()));
    let file_name = out.file_name().and_then(|f| f.to_str()).expect("name");
    assert!(
        file_name.starts_with("web-stdout---supervisor-"),
        "{file_name}"
    );
    assert_eq!(file_name.len(), "web-stdout---supervisor-".len() + 8 + 4);
    // No server section: no SUPERVISOR_SERVER_URL, as in Supervisor.
    assert_eq!(spec.env.get("SUPERVISOR_SERVER_URL"), None);
    assert_eq!(spec.env["SUPERVISOR_ENABLED"], "1");
}

#[test]
fn every_program_option_maps_to_the_spec() {
    let (dir, conf) = ok(&format!(
        "[program:api]
command=/usr/bin/env FOO=1 sh -c 'exec sleep 5'   ; a comment
priority=5
autostart=false
autorestart=true
startsecs=3
startretries=7
exitcodes=0,2,75
stopsignal=INT
stopwaitsecs=30
stopasgroup=true
killasgroup=true
user={user}
umask=027
directory=%(here)s
redirect_stderr=true
stdout_logfile=%(here)s/%(program_name)s.log
stdout_logfile_maxbytes=1MB
stdout_logfile_backups=3
environment=A=\"1,2\",B=%(ENV_HOME)s,C=%(program_name)s

[program:quiet]
command=true
autorestart=false
stdout_logfile=NONE
stderr_logfile=/dev/stderr
stderr_logfile_maxbytes=0
",
        user = current_user()
    ));
    let d = dir.path();
    let api = process(&conf, "api");
    assert_eq!(
        api.command,
        ["/usr/bin/env", "FOO=1", "sh", "-c", "exec sleep 5"]
    );
    assert_eq!(api.priority, 5);
    assert!(!api.autostart);
    assert_eq!(api.restart, RestartPolicy::Always);
    assert_eq!(api.start_secs, Duration::from_secs(3));
    assert_eq!(api.backoff.give_up_after, Some(8));
    assert_eq!(api.success_exit_codes, [0, 2, 75]);
    assert_eq!(api.stop.signal, Signal::INT);
    assert_eq!(api.stop.timeout, Duration::from_secs(30));
    assert_eq!(api.user.as_deref(), Some(current_user().as_str()));
    assert_eq!(api.umask, Some(0o027));
    assert_eq!(api.cwd.as_deref(), Some(d));
    assert!(api.logs.merge_stderr);
    assert_eq!(api.logs.stdout, LogTarget::File(d.join("api.log")));
    assert_eq!(api.logs.stderr, api.logs.stdout);
    assert_eq!(api.logs.max_size, 1024 * 1024);
    assert_eq!(api.logs.backups, 3);
    assert_eq!(api.env["A"], "1,2");
    assert_eq!(api.env["B"], d.display().to_string());
    assert_eq!(api.env["C"], "api");
    let details = &conf.details[&name("api")];
    assert!(details.stopasgroup && details.killasgroup);
    assert_eq!(details.stderr.logfile, None);

    let quiet = process(&conf, "quiet");
    assert_eq!(quiet.restart, RestartPolicy::Never);
    assert_eq!(quiet.logs.stdout, LogTarget::Null);
    assert_eq!(quiet.logs.stderr, LogTarget::Inherit);
    assert_eq!(warnings(&conf), Vec::<String>::new());
}

fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::current())
        .ok()
        .flatten()
        .map_or_else(|| "root".to_string(), |u| u.name)
}

#[test]
fn numprocs_expands_process_names_and_values() {
    let (dir, conf) = ok("[program:worker]
command=worker --id %(process_num)d --of %(numprocs)d
process_name=%(program_name)s_%(process_num)02d
numprocs=3
numprocs_start=1
stdout_logfile=%(here)s/w%(process_num)s.log
environment=SLOT=\"%(process_num)s\"
");
    let names: Vec<_> = conf.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["worker_01", "worker_02", "worker_03"]);
    let w2 = process(&conf, "worker_02");
    assert_eq!(w2.command, ["worker", "--id", "2", "--of", "3"]);
    assert_eq!(w2.group, name("worker"));
    assert_eq!(w2.env["SLOT"], "2");
    assert_eq!(w2.env["SUPERVISOR_PROCESS_NAME"], "worker_02");
    assert_eq!(w2.env["SUPERVISOR_GROUP_NAME"], "worker");
    assert_eq!(w2.logs.stdout, LogTarget::File(dir.path().join("w2.log")));
    let group = conf
        .groups
        .iter()
        .find(|g| g.name.as_str() == "worker")
        .expect("group");
    assert_eq!(
        group.members,
        [name("worker_01"), name("worker_02"), name("worker_03")]
    );
}

#[test]
fn numprocs_needs_process_num_in_the_name() {
    assert_eq!(
        errors("[program:w]\ncommand=x\nnumprocs=2\n"),
        [
            "6: %(process_num) must be present within process_name when numprocs > 1 (in [program:w])"
        ]
    );
    assert_eq!(
        errors("[program:w]\ncommand=x\nnumprocs=2\nprocess_name=%(program_name)s\n"),
        [
            "9: %(process_num) must be present within process_name when numprocs > 1 (in [program:w])"
        ]
    );
    assert!(has(
        &errors("[program:w]\ncommand=x\nnumprocs=20000\nprocess_name=%(process_num)s\n"),
        "more than tend allows"
    ));
}

#[test]
fn names_are_checked() {
    assert_eq!(
        errors("[program:a b]\ncommand=x\n"),
        ["6: Invalid name: 'a b' because of character: ' '"]
    );
    // Every name supervisord accepts.
    let (_d, conf) = ok(
        "[program:web@8000]\ncommand=x\n[program:app+worker]\ncommand=x\n[program:test_öäü]\ncommand=x\n",
    );
    let names: Vec<&str> = conf.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web@8000", "app+worker", "test_öäü"]);
    let errs = errors("[program:a]\ncommand=x\nprocess_name=%(program_name)s/1\n");
    assert!(has(&errs, "because of character: '/'"), "{errs:?}");
    // The same name twice (two groups, or a process_name): supervisord runs
    // both; tend runs the first, and says why the second does not run.
    let (_d, conf) = ok("[program:a]\ncommand=x\n[program:b]\ncommand=y\nprocess_name=a\n");
    assert_eq!(
        failures(&conf),
        [
            "8: process name \"a\" of [program:b] is already used by [program:a]: tend needs unique process names, even in different groups, so this one does not run (supervisord runs both)"
        ]
    );
    assert_eq!(conf.processes.len(), 1);
    let (_d, conf) = ok(
        "[group:g1]\nprograms=w\n[group:g2]\nprograms=w\n[program:w]\ncommand=x\n[program:other]\ncommand=y\n",
    );
    assert_eq!(failures(&conf).len(), 1, "{:?}", failures(&conf));
    let names: Vec<&str> = conf.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["w", "other"]);
}

#[test]
fn a_command_that_does_not_parse_fails_its_program_only() {
    let (_d, conf) = ok(
        "[program:bad]\ncommand=sh -c \"echo a ; echo b\"\n[program:empty]\ncommand=\n[program:good]\ncommand=true\n",
    );
    assert_eq!(
        failures(&conf),
        [
            "7: command in [program:bad]: can't parse command 'sh -c \"echo a': No closing quotation: this program cannot start (as under supervisord); the others run",
            "9: command in [program:empty]: command is empty: this program cannot start (as under supervisord); the others run",
        ]
    );
    let bad = process(&conf, "bad");
    assert_eq!(
        bad.spawn_error.as_deref(),
        Some("can't parse command 'sh -c \"echo a': No closing quotation")
    );
    assert_eq!(process(&conf, "good").spawn_error, None);
    assert_eq!(
        command_error_of("a \\"),
        "can't parse command 'a \\\\': No escaped character"
    );
}

fn command_error_of(command: &str) -> String {
    let (_d, conf) = ok(&format!("[program:x]\ncommand={command}\n"));
    process(&conf, "x").spawn_error.clone().unwrap_or_default()
}

#[test]
fn supervisor_errors_are_all_collected_with_their_lines() {
    let errs = errors(
        "[program:a]
autostart=maybe
startsecs=soon
stopsignal=TREM
exitcodes=0,300
command=sh -c 'unclosed
stdout_logfile_maxbytes=1TB
umask=9

[program:b]
environment=A=1 B=2
autorestart=sometimes

[program:c]
command=%(nope)s
",
    );
    assert_eq!(
        errs,
        [
            "7: autostart in [program:a]: not a valid boolean value: 'maybe'",
            "8: startsecs in [program:a]: invalid literal for int() with base 10: 'soon'",
            "9: stopsignal in [program:a]: value 'TREM' is not a valid signal name",
            "10: exitcodes in [program:a]: not a valid list of exit codes: '0,300'",
            "12: stdout_logfile_maxbytes in [program:a]: invalid literal for int() with base 10: '1tb'",
            "13: umask in [program:a]: 9 can not be converted to an octal type",
            "15: program section program:b does not specify a command",
            "16: environment in [program:b]: Unexpected end of key/value pairs in value 'A=1 B=2'",
            "17: autorestart in [program:b]: invalid 'autorestart' value 'sometimes'",
            "20: Format string '%(nope)s' for 'program:c.command' contains names ('nope') which cannot be expanded. Available names: ENV_HOME, ENV_LANG, ENV_TMPDIR, group_name, here, host_node_name, numprocs, process_num, program_name",
        ]
    );
}

#[test]
fn expansion_names_per_section_and_process() {
    let (dir, conf) = ok("[program:p]
command=echo %(program_name)s %(group_name)s %(host_node_name)s %(here)s %(ENV_LANG)s %(ENV_OWN)s 100%%
environment=OWN=\"x\"
");
    let p = process(&conf, "p");
    assert_eq!(p.command[1..4], ["p", "p", "testhost"]);
    assert_eq!(p.command[4], dir.path().display().to_string());
    assert_eq!(p.command[5..], ["C.UTF-8", "x", "100%"]);

    // [supervisord] environment feeds ENV_ names of programs and goes under
    // their own environment.
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "[supervisord]\nchildlogdir={}\nenvironment=FROM_SD=sd,SHARED=\"from sd\",HOST=%(host_node_name)s\n[program:p]\ncommand=echo %(ENV_FROM_SD)s\nenvironment=SHARED=mine\n",
        dir.path().display()
    );
    let conf = ok_in(dir.path(), &text);
    let p = process(&conf, "p");
    assert_eq!(p.command, ["echo", "sd"]);
    assert_eq!(p.env["SHARED"], "mine");
    assert_eq!(p.env["FROM_SD"], "sd");
    assert_eq!(p.env["HOST"], "testhost");
    assert_eq!(conf.supervisord.environment["SHARED"], "from sd");
}

#[test]
fn server_url_env_follows_supervisor() {
    let (_d, conf) = ok(
        "[inet_http_server]\nport=:9001\n[program:p]\ncommand=x\n[program:q]\ncommand=x\nserverurl=http://elsewhere:1\n[program:r]\ncommand=x\nserverurl=AUTO\n",
    );
    assert_eq!(
        process(&conf, "p").env["SUPERVISOR_SERVER_URL"],
        "http://localhost:9001"
    );
    assert_eq!(
        process(&conf, "q").env["SUPERVISOR_SERVER_URL"],
        "http://elsewhere:1"
    );
    assert_eq!(
        process(&conf, "r").env["SUPERVISOR_SERVER_URL"],
        "http://localhost:9001"
    );
    let inet = conf.inet_http_server.as_ref().expect("inet");
    assert_eq!((inet.host.as_str(), inet.port), ("0.0.0.0", 9001));
    // A program's environment may override it, as in Supervisor.
    let (_d, conf) = ok(
        "[unix_http_server]\nfile=%(here)s/s.sock\n[program:p]\ncommand=x\nenvironment=SUPERVISOR_SERVER_URL=mine\n",
    );
    assert_eq!(process(&conf, "p").env["SUPERVISOR_SERVER_URL"], "mine");
}

#[test]
fn stopasgroup_rules() {
    assert!(has(
        &errors("[program:p]\ncommand=x\nstopasgroup=true\nkillasgroup=false\n"),
        "Cannot set stopasgroup=true and killasgroup=false"
    ));
    let (_d, conf) = ok("[program:p]\ncommand=x\nstopasgroup=false\n");
    assert_eq!(
        warnings(&conf),
        [
            "8: stopasgroup=false in [program:p] cannot be honoured: tend always signals the whole process group, so the program's children are stopped with it"
        ]
    );
}

#[test]
fn negative_counts_act_as_zero_with_a_warning() {
    let (_d, conf) = ok("[program:p]\ncommand=x\nstartsecs=-1\nstartretries=-2\n");
    let p = process(&conf, "p");
    assert_eq!(p.start_secs, Duration::ZERO);
    assert_eq!(p.backoff.give_up_after, Some(1));
    assert_eq!(
        warnings(&conf),
        [
            "8: startsecs = -1 in [program:p] is taken as 0",
            "9: startretries = -2 in [program:p] is taken as 0",
        ]
    );
    let (_d, conf) = ok("[program:p]\ncommand=x\nnumprocs=0\n");
    assert_eq!(conf.processes, []);
    assert_eq!(
        warnings(&conf),
        ["8: numprocs = 0 in [program:p]: the section has no processes"]
    );
}

#[test]
fn log_settings_and_their_warnings() {
    let (dir, conf) = ok("[program:a]
command=x
stdout_logfile=/dev/stdout
stdout_logfile_maxbytes=10MB
stderr_logfile=syslog

[program:b]
command=x
stdout_logfile_maxbytes=0
stderr_logfile=%(here)s/b.err
redirect_stderr=true

[program:c]
command=x
stdout_logfile=%(here)s/c.out
stderr_logfile=%(here)s/c.err
stderr_logfile_backups=2
stdout_capture_maxbytes=1KB
stderr_events_enabled=true
");
    let a = process(&conf, "a");
    assert_eq!(a.logs.stdout, LogTarget::Inherit);
    assert_eq!(a.logs.stderr, LogTarget::Null);
    let b = process(&conf, "b");
    assert!(b.logs.merge_stderr);
    assert_eq!(b.logs.max_size, 0);
    let c = process(&conf, "c");
    assert_eq!(c.logs.stdout, LogTarget::File(dir.path().join("c.out")));
    assert_eq!(c.logs.backups, 10);
    assert_eq!(
        warnings(&conf),
        [
            "8: stdout_logfile=/dev/stdout in [program:a] cannot be rotated: stdout_logfile_maxbytes is ignored (set it to 0; supervisord fails with \"Illegal seek\" here)",
            "10: For [program:a], stderr_logfile=syslog but this is deprecated and will be removed.  Use stderr_syslog=true to enable syslog instead.",
            "10: stderr_syslog in [program:a] is not supported by tend: the output is not sent to syslog",
            "14: For [program:b], AUTO logging used for stdout_logfile without rollover, set maxbytes > 0 to avoid filling up filesystem unintentionally",
            "15: For [program:b], redirect_stderr=true but stderr_logfile has also been set to a filename, the filename has been ignored",
            "22: [program:c] rotates stdout and stderr differently: tend rotates both log files of a process by one rule, stdout's (52428800 bytes, 10 backups)",
            "23: stdout_capture_maxbytes in [program:c] is not supported by tend (no PROCESS_COMMUNICATION events): ignored",
        ]
    );
}

#[test]
fn strip_ansi_and_directory_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "[supervisord]\nchildlogdir={}\nstrip_ansi=true\n[program:p]\ncommand=x\ndirectory=/nonexistent-tend-dir\n",
        dir.path().display()
    );
    let conf = ok_in(dir.path(), &text);
    let p = process(&conf, "p");
    assert!(p.logs.strip_ansi);
    assert_eq!(p.cwd.as_deref(), Some(Path::new("/nonexistent-tend-dir")));
    assert_eq!(
        warnings(&conf),
        [
            "6: directory /nonexistent-tend-dir of [program:p] does not exist: the process will fail to start"
        ]
    );
}

#[test]
fn unknown_options_and_sections_are_warnings() {
    let (_d, conf) = ok("[program:p]
command=x
autostrat=false
stopwaitsec=3

[unknown]
x=1

[progam:q]
command=y

[fcgi-program:f]
command=z
socket=tcp://localhost:9000

[ctlplugin:x]
supervisor.ctl_factory=a:b

[rpcinterface:twiddler]
supervisor.rpcinterface_factory=twiddler:make

[DEFAULT]
autostart=true
bogus=1
");
    assert_eq!(
        warnings(&conf),
        [
            "8: unknown option \"autostrat\" in [program:p]: supervisord ignores it, and so does tend (did you mean \"autostart\"?)",
            "9: unknown option \"stopwaitsec\" in [program:p]: supervisord ignores it, and so does tend (did you mean \"stopwaitsecs\"?)",
            "11: unknown section [unknown]: supervisord ignores it, and so does tend",
            "14: unknown section [progam:q]: supervisord ignores it, and so does tend",
            "17: [fcgi-program:f] is not supported by tend: its processes are not run",
            "21: [ctlplugin:x] (a supervisorctl plugin) is not supported by tend: ignored",
            "24: [rpcinterface:twiddler] is not supported by tend (it cannot load Python RPC plugins): ignored",
            "29: unknown option \"bogus\" in [DEFAULT]: no section uses it",
        ]
    );
    assert_eq!(conf.processes.len(), 1);
}

// ---------------------------------------------------------------- groups and event listeners

#[test]
fn groups_take_their_programs() {
    let (_d, conf) = ok("[group:web]
programs=api, static
priority=5

[program:static]
command=x

[program:api]
command=y
process_name=api_%(process_num)s
numprocs=2

[program:alone]
command=z
priority=1
");
    let names: Vec<_> = conf.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["static", "api_0", "api_1", "alone"]);
    assert_eq!(process(&conf, "api_1").group, name("web"));
    assert_eq!(process(&conf, "api_1").env["SUPERVISOR_GROUP_NAME"], "web");
    // Without its own priority a member takes the group's, which is what
    // orders it in Supervisor.
    assert_eq!(process(&conf, "static").priority, 5);
    let groups: Vec<_> = conf
        .groups
        .iter()
        .map(|g| {
            let members: Vec<_> = g.members.iter().map(Name::as_str).collect();
            (g.name.as_str(), g.priority, members, g.kind)
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("web", 5, vec!["api_0", "api_1", "static"], GroupKind::Group),
            ("alone", 1, vec!["alone"], GroupKind::Program),
        ]
    );
    assert_eq!(conf.details[&name("static")].group_priority, 5);
}

#[test]
fn group_errors_and_warnings() {
    let errs = errors("[group:g]\nprograms=ap1\n[program:api]\ncommand=x\n");
    assert_eq!(
        errs,
        ["7: [group:g] names unknown program or fcgi-program ap1 (did you mean \"api\"?)"]
    );
    let errs =
        errors("[group:g]\nprograms=a\n[program:a]\ncommand=x\n[fcgi-program:a]\ncommand=y\n");
    assert!(
        has(&errs, "is ambiguous (exists as program and fcgi-program)"),
        "{errs:?}"
    );
    // Two groups of one name: supervisord keeps the first and runs the file.
    let (_d, conf) = ok("[group:a]\nprograms=b\n[program:b]\ncommand=x\n[program:a]\ncommand=y\n");
    assert_eq!(
        failures(&conf),
        [
            "10: group name \"a\" is used twice (a [group:x], [program:x] outside any group, or [eventlistener:x] of that name): the group of [program:a] does not run, as supervisord keeps only the first"
        ]
    );
    let names: Vec<&str> = conf.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["b"]);
    assert_eq!(conf.groups.len(), 1);
    let (_d, conf) =
        ok("[group:g]\npriority=1\n[group:h]\nprograms=p\n[program:p]\ncommand=x\npriority=3\n");
    assert_eq!(
        warnings(&conf),
        [
            "6: [group:g] lists no programs (add programs = a,b)",
            "12: priority 3 of [program:p] differs from the priority of its [group:h] (999, the default): supervisord orders by group first, tend orders processes by their own priority",
        ]
    );
}

#[test]
fn event_listener_rules() {
    let errs = errors("[eventlistener:l]\ncommand=x\n");
    assert_eq!(
        errs,
        ["6: [eventlistener:l] section requires an \"events\" line"]
    );
    let errs = errors("[eventlistener:l]\ncommand=x\nevents=PROCES_STATE,TICK_5\n");
    assert_eq!(
        errs,
        [
            "8: Unknown event type PROCES_STATE in [eventlistener:l] events (did you mean PROCESS_STATE?)"
        ]
    );
    let errs = errors(
        "[eventlistener:l]\ncommand=x\nevents=TICK_5\nredirect_stderr=true\nbuffer_size=0\n",
    );
    assert_eq!(
        errs,
        [
            "9: [eventlistener:l] section sets redirect_stderr=true but this is not allowed because it will interfere with the eventlistener protocol",
            "10: [eventlistener:l] section sets invalid buffer_size (0)",
        ]
    );
    let (_d, conf) = ok(
        "[eventlistener:l]\ncommand=x\nevents=tick_5,Tick_5,process_state\nbuffer_size=3\npriority=4\nresult_handler=mod:fn\n",
    );
    let l = &conf.eventlisteners[0];
    assert_eq!(l.events, ["TICK_5", "PROCESS_STATE"]);
    assert_eq!((l.buffer_size, l.priority, l.spec.priority), (3, 4, 4));
    assert_eq!(
        warnings(&conf),
        [
            "11: result_handler \"mod:fn\" in [eventlistener:l] is not supported (tend cannot load Python code): the default handler is used"
        ]
    );
}

// ---------------------------------------------------------------- servers and [supervisorctl]

#[test]
fn http_servers_and_auth() {
    let sha = "e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4"; // sha1("secret")
    let (dir, conf) = ok(&format!(
        "[unix_http_server]\nfile=%(here)s/sv.sock\nchmod=0770\nchown={user}\nusername=u\npassword={{SHA}}{sha}\n\n[inet_http_server]\nport=*:9002\n",
        user = current_user()
    ));
    let unix = conf.unix_http_server.as_ref().expect("unix");
    assert_eq!(unix.file, dir.path().join("sv.sock"));
    assert_eq!(unix.chmod, 0o770);
    assert_eq!(unix.chown.as_deref(), Some(current_user().as_str()));
    let auth = unix.auth.as_ref().expect("auth");
    assert!(matches!(auth, Auth::Sha1 { .. }));
    assert!(auth.check("secret"));
    assert!(!auth.check("Secret"));
    assert!(auth.matches("u", "secret"));
    assert_eq!(format!("{auth:?}"), "Auth::Sha1(\"u\", ***)");
    assert_eq!(conf.inet_http_server.as_ref().map(|i| i.port), Some(9002));

    assert_eq!(
        errors("[inet_http_server]\nport=9001\nusername=admin\n"),
        [
            "8: Section [inet_http_server] contains incomplete authentication: If a username or a password is specified, both the username and password must be specified"
        ]
    );
    assert_eq!(
        errors("[inet_http_server]\nusername=a\npassword=b\n"),
        ["6: section [inet_http_server] has no port value"]
    );
    assert_eq!(
        errors("[inet_http_server]\nport=host:\n"),
        ["7: port in [inet_http_server]: no port number specified in ''"]
    );
    assert_eq!(
        errors("[unix_http_server]\nchmod=0700\n"),
        ["6: section [unix_http_server] has no file value"]
    );
    let errs = errors("[unix_http_server]\nfile=/tmp/x.sock\nchmod=rwx\nchown=no-such-user-tend\n");
    assert_eq!(
        errs,
        [
            "8: Invalid chmod value rwx",
            "9: Invalid sockchown value no-such-user-tend",
        ]
    );
    let (_d, conf) = ok("[inet_http_server]\nport=9001\nusername=a\npassword={SHA}ABC\n");
    assert!(has(&warnings(&conf), "no password will match it"));
}

#[test]
fn supervisord_and_supervisorctl_sections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let text = format!(
        "[supervisord]
logfile=syslog
logfile_maxbytes=1KB
logfile_backups=2
loglevel=debug
umask=002
nodaemon=true
silent=yes
minfds=4096
minprocs=100
nocleanup=true
childlogdir={d}
directory=%(here)s
strip_ansi=true
identifier=box
profile_options=cumulative

[supervisorctl]
serverurl=unix://%(here)s/../x/./s.sock
username=u
password=p
prompt=box
history_file=~/.sc_history
",
        d = d.display()
    );
    let conf = ok_in(d, &text);
    let sd = &conf.supervisord;
    assert_eq!(sd.logfile, MainLog::Syslog);
    assert_eq!((sd.logfile_maxbytes, sd.logfile_backups), (1024, 2));
    assert_eq!(sd.loglevel, LogLevel::Debug);
    assert_eq!(sd.umask, 0o002);
    assert!(sd.nodaemon && sd.silent && sd.nocleanup && sd.strip_ansi);
    assert_eq!((sd.minfds, sd.minprocs), (4096, 100));
    assert_eq!(sd.directory.as_deref(), Some(d));
    assert_eq!(sd.identifier, "box");
    let parent = d.parent().expect("parent");
    let ctl = &conf.supervisorctl;
    assert_eq!(
        ctl.serverurl,
        format!("unix://{}", parent.join("x/s.sock").display())
    );
    assert_eq!(ctl.username.as_deref(), Some("u"));
    assert_eq!(ctl.password.as_deref(), Some("p"));
    assert_eq!(ctl.prompt, "box");
    assert_eq!(ctl.history_file, Some(d.join(".sc_history")));
    assert_eq!(
        warnings(&conf),
        [
            "2: logfile=syslog in [supervisord] is not supported: tend logs to stderr instead",
            "16: profile_options in [supervisord] is not supported by tend: ignored",
        ]
    );

    // Supervisor's defaults, relative to its working directory.
    let (dir, conf) = ok("");
    let _ = dir;
    let sd = &conf.supervisord;
    assert_eq!((sd.minfds, sd.minprocs, sd.umask), (1024, 200, 0o022));
    assert_eq!(sd.identifier, "supervisor");
    assert_eq!(conf.supervisorctl.serverurl, "http://localhost:9001");
    assert_eq!(conf.supervisorctl.prompt, "supervisor");
}

#[test]
fn a_missing_supervisord_section_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = parse_in(dir.path(), "[program:a]\ncommand=x\n").expect_err("no [supervisord]");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:1:1: .ini file does not include supervisord section",
            dir.path().join("supervisord.conf").display()
        )
    );
    let errs = errors("[supervisord]\nchildlogdir=/nonexistent-tend\nminfds=-1\n");
    assert_eq!(
        errs,
        [
            "7: childlogdir in [supervisord]: /nonexistent-tend is not an existing directory",
            "8: minfds in [supervisord]: -1 is out of range for minfds",
        ]
    );
}

// ---------------------------------------------------------------- [include]

#[test]
fn includes_are_globbed_sorted_and_keep_their_own_here() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let confd = d.join("conf.d");
    fs::create_dir(&confd).expect("mkdir");
    fs::write(confd.join("b.conf"), "[program:b]\ncommand=echo %(here)s\n").expect("write");
    fs::write(
        confd.join("a.conf"),
        "[program:a]\ncommand=echo a\n[program:shared]\ncommand=from-a\n",
    )
    .expect("write");
    fs::write(
        confd.join("c.ini"),
        "[program:shared]\ncommand=from-c\n[include]\nfiles=nested/*.conf\n",
    )
    .expect("write");
    fs::write(confd.join(".hidden.conf"), "[program:hidden]\ncommand=x\n").expect("write");
    let text = with_supervisord(
        d,
        "[include]\nfiles = conf.d/*.conf conf.d/*.ini missing/*.conf\n\n[program:main]\ncommand=echo %(here)s\n",
    );
    let conf = ok_in(d, &text);
    let names: Vec<_> = conf.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["main", "a", "shared", "b"]);
    assert_eq!(process(&conf, "main").command[1], d.display().to_string());
    assert_eq!(process(&conf, "b").command[1], confd.display().to_string());
    // A later file wins, as with Python's read() of several files.
    assert_eq!(process(&conf, "shared").command, ["from-c"]);
    assert_eq!(
        conf.files,
        [
            d.join("supervisord.conf"),
            confd.join("a.conf"),
            confd.join("b.conf"),
            confd.join("c.ini"),
        ]
    );
    let w: Vec<String> = conf
        .warnings
        .iter()
        .map(|w| format!("{}:{}: {}", w.file.display(), w.line, w.message))
        .collect();
    assert_eq!(
        w,
        [
            format!(
                "{}:7: No file matches via include \"{}\"",
                d.join("supervisord.conf").display(),
                d.join("missing/*.conf").display()
            ),
            format!(
                "{}:4: [include] in an included file is not read (supervisord does not support nested includes either)",
                confd.join("c.ini").display()
            ),
        ]
    );
}

#[test]
fn errors_in_included_files_point_into_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    fs::write(
        d.join("x.conf"),
        "[program:x]\ncommand=x\nautostart=perhaps\n",
    )
    .expect("write");
    fs::write(d.join("y.conf"), "command=orphan\n").expect("write");
    let text = with_supervisord(d, "[include]\nfiles=x.conf y.conf\n");
    let err = parse_in(d, &text).expect_err("errors");
    let got: Vec<String> = err.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            format!(
                "{}:3:1: autostart in [program:x]: not a valid boolean value: 'perhaps'",
                d.join("x.conf").display()
            ),
            format!(
                "{}:1:1: File contains no section headers: 'command=orphan' comes before any [section]",
                d.join("y.conf").display()
            ),
        ]
    );
    assert_eq!(
        errors("[include]\n"),
        ["6: .ini file has [include] section, but no files setting"]
    );
}

// ---------------------------------------------------------------- tend import: native TOML round trip

/// The native loader's view of `conf`'s processes must equal ours, except
/// for Supervisor's linear back-off, which tend.toml cannot spell yet.
fn assert_round_trip(dir: &Path, conf: &SupervisordConf) -> String {
    assert_round_trip_but(dir, conf, &[])
}

/// [`assert_round_trip`] for every process but the copies of the `skip`
/// tables (whose numbers are not supervisord's: `numprocs_start`).
fn assert_round_trip_but(dir: &Path, conf: &SupervisordConf, skip: &[&str]) -> String {
    let toml = to_native_toml(conf);
    let path = dir.join("imported.toml");
    fs::write(&path, &toml).expect("write toml");
    let native = crate::native::parse(&path, &toml)
        .unwrap_or_else(|e| panic!("the imported file does not load:\n{e}\n---\n{toml}"));
    fn normalise<'a>(specs: impl IntoIterator<Item = &'a ProcessSpec>) -> Vec<ProcessSpec> {
        specs
            .into_iter()
            .cloned()
            .map(|mut s| {
                s.backoff.mode = BackoffMode::default();
                s
            })
            .collect()
    }
    // The copies of a section with `numprocs` are named NAME-i by tend,
    // and know their index.
    let renamed = conf.processes.iter().map(|s| {
        let mut s = s.clone();
        if let Some(n) = conf.details.get(&s.name).and_then(|d| d.numbered.as_ref()) {
            let base = conf.details[&s.name]
                .section
                .split_once(':')
                .map_or("", |(_, b)| b);
            let i = n.process_num - n.start;
            let name = format!("{base}-{i}");
            s.env.insert("TEND_REPLICA".into(), i.to_string());
            s.env.insert("SUPERVISOR_PROCESS_NAME".into(), name.clone());
            // AUTO: tend's own file in log_dir.
            let d = &conf.details[&s.name];
            let dir = &conf.supervisord.childlogdir;
            if d.stdout.auto {
                s.logs.stdout = LogTarget::File(dir.join(format!("{name}.out.log")));
            }
            if d.stderr.auto && !s.logs.merge_stderr {
                s.logs.stderr = LogTarget::File(dir.join(format!("{name}.err.log")));
            }
            s.name = Name::new(name).expect("a name");
        }
        s
    });
    let kept = |s: &ProcessSpec| {
        !skip.iter().any(|t| {
            s.name
                .as_str()
                .strip_prefix(t)
                .is_some_and(|r| r.starts_with('-'))
        })
    };
    let expected = normalise(&renamed.filter(kept).collect::<Vec<_>>());
    assert_eq!(
        normalise(native.processes.iter().map(|s| &**s).filter(|s| kept(s))),
        expected,
        "\n---\n{toml}"
    );
    toml
}

#[test]
fn import_round_trips_through_the_native_loader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = dir.path();
    fs::create_dir(lab.join("logs")).expect("logs dir");
    let text = LAB
        .replace("$LAB", &lab.display().to_string())
        .replace("$VENV", "/opt/venv");
    let conf = ok_in(lab, &text);
    let toml = assert_round_trip(lab, &conf);
    assert!(toml.contains("[process.sleeper]"), "{toml}");
    assert!(
        toml.contains("[inet_http_server] port = 127.0.0.1:9001"),
        "{toml}"
    );
    assert!(
        toml.contains(
            "# [eventlistener:listener] process \"listener\" is not expressible in tend.toml yet:"
        ),
        "{toml}"
    );
    assert!(toml.contains("give_up_after = 3"), "{toml}");

    let (dir, conf) = ok(&format!(
        "[unix_http_server]
file=%(here)s/s.sock
[group:web]
programs=api,static
priority=3
[program:api]
command=sh -c 'echo \"hi there\" $$ ${{HOME}}; sleep 1'
process_name=api.%(process_num)s
numprocs=2
environment=QUOTE=\"a\\\"b\",UNI=\"é\",EMPTY=\"\",COST=\"5$\"
autorestart=false
exitcodes=0,3
stopsignal=QUIT
stopwaitsecs=0
startsecs=0
umask=002
user={user}
directory=%(here)s
redirect_stderr=true
stdout_logfile=%(here)s/api.log
stdout_logfile_maxbytes=0
stdout_logfile_backups=0
[program:static]
command=/bin/true
autostart=false
priority=-5
stdout_logfile=NONE
stderr_logfile=/dev/stderr
stderr_logfile_maxbytes=0
",
        user = current_user()
    ));
    let toml = assert_round_trip(dir.path(), &conf);
    assert!(toml.contains("[process.api]\nreplicas = 2\n"), "{toml}");
    assert!(
        toml.contains("# tend import: supervisord named them api.0 .. api.1; tend names the copies api-0 .. api-1"),
        "{toml}"
    );
    assert!(
        toml.contains("[group.web]\nprocesses = [\"api\", \"static\"]"),
        "{toml}"
    );
}

/// `numprocs` is one table with `replicas`, `%(process_num)d` in it
/// `${TEND_REPLICA}`: the same processes when nothing differs.
#[test]
fn import_writes_numprocs_as_replicas() {
    let (dir, conf) = ok("[program:w]
command=/bin/w --port 80%(process_num)d --of %(numprocs)d --name %(program_name)s
process_name=%(program_name)s-%(process_num)d
numprocs=3
directory=/
environment=ID=\"w%(process_num)d\",COST=\"5$\"
stdout_logfile=%(here)s/w-%(process_num)d.log
stderr_logfile=AUTO
");
    let toml = assert_round_trip(dir.path(), &conf);
    assert!(toml.contains("[process.w]\nreplicas = 3\n"), "{toml}");
    assert!(
        toml.contains(
            "command = [\"/bin/w\", \"--port\", \"80${TEND_REPLICA}\", \"--of\", \"3\", \"--name\", \"w\"]"
        ),
        "{toml}"
    );
    assert!(toml.contains("ID = \"w${TEND_REPLICA}\""), "{toml}");
    assert!(toml.contains("COST = \"5$$\""), "{toml}");
    assert!(toml.contains("/w-${TEND_REPLICA}.log\""), "{toml}");
    // AUTO: tend's own file per copy.
    assert!(!toml.contains("stderr = "), "{toml}");
    let notes: Vec<&str> = toml
        .lines()
        .filter(|l| l.starts_with("# tend import:"))
        .collect();
    assert_eq!(
        notes,
        [
            "# tend import: [program:w] numprocs = 3: one table, whose copies are w-0 .. w-2",
            "# tend import: AUTO log files: each copy has tend's own in log_dir (w-0.out.log, ...) instead of supervisord's",
        ],
        "{toml}"
    );
    assert!(!toml.contains("[process.w-0]"), "{toml}");
}

/// Where `${TEND_REPLICA}` is not what supervisord wrote (numbers from
/// `numprocs_start`, zero-padded, other names), the closest is written and
/// a comment says what differs; what it cannot say stays one table each.
#[test]
fn import_says_where_replicas_differ_from_numprocs() {
    let (dir, conf) = ok("[program:worker]
command=sh -c 'echo worker %(process_num)d of %(numprocs)d'
process_name=%(program_name)s_%(process_num)02d
numprocs=3
numprocs_start=1
environment=WORKER_ID=\"%(process_num)d\"

[program:pad]
command=/bin/pad --slot %(process_num)02d
process_name=%(program_name)s_%(process_num)02d
numprocs=2

[program:mixed]
command=/bin/m %(process_num)d %(process_num)03d
process_name=%(program_name)s_%(process_num)d
numprocs=2
");
    let toml = to_native_toml(&conf);
    let path = dir.path().join("imported.toml");
    fs::write(&path, &toml).expect("write toml");
    let native = crate::native::parse(&path, &toml)
        .unwrap_or_else(|e| panic!("the imported file does not load:\n{e}\n---\n{toml}"));
    let cmd = |n: &str| {
        native
            .processes
            .iter()
            .find(|p| p.name.as_str() == n)
            .unwrap_or_else(|| panic!("no {n} in\n{toml}"))
            .command
            .clone()
    };
    // From 0, not 1: said so.
    assert!(toml.contains("[process.worker]\nreplicas = 3\n"), "{toml}");
    assert_eq!(cmd("worker-0"), ["sh", "-c", "echo worker 0 of 3"]);
    assert!(toml.contains("# tend import: supervisord numbers them from numprocs_start = 1; ${TEND_REPLICA} counts from 0, so where %(process_num)d gave 1, 2, ... each copy has 0, 1, ..."), "{toml}");
    assert!(toml.contains("# tend import: supervisord named them worker_01 .. worker_03; tend names the copies worker-0 .. worker-2"), "{toml}");
    // Zero-padded: the same for these copies, written with its 0.
    assert_eq!(cmd("pad-1"), ["/bin/pad", "--slot", "01"]);
    assert!(toml.contains("\"0${TEND_REPLICA}\""), "{toml}");
    assert!(toml.contains("# tend import: %(process_num)02d (00, 01, ...) is written 0${TEND_REPLICA}: the same for these 2 copies"), "{toml}");
    // Two ways of writing it: a table each, as before, and why.
    assert!(
        toml.contains("[process.mixed_0]") && toml.contains("[process.mixed_1]"),
        "{toml}"
    );
    assert!(toml.contains("# tend import: [program:mixed] numprocs = 2 is written as 2 tables, not one with replicas: %(process_num) is written in more than one way (d, 03d)"), "{toml}");
}

#[test]
fn toml_strings_and_keys_are_quoted() {
    assert_eq!(
        native::string("a\"b\\c\nd\u{1}"),
        "\"a\\\"b\\\\c\\nd\\u0001\""
    );
    assert_eq!(native::key("web-1_x"), "web-1_x");
    assert_eq!(native::key("api.v2"), "\"api.v2\"");
    assert_eq!(native::key(""), "\"\"");
}

// ---------------------------------------------------------------- the example and robustness

#[test]
fn the_example_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/supervisord.conf");
    let conf = load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(conf.processes.len() >= 3, "{:?}", conf.processes);
    assert_eq!(conf.warnings, [], "the example should be clean");
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = assert_round_trip_but(dir.path(), &conf, &["worker"]);
    assert!(
        toml.contains("[group.workers]\nprocesses = [\"worker\", \"flaky\"]"),
        "{toml}"
    );
    // numprocs_start = 1: the copies count from 0, as the comment says.
    assert!(toml.contains("[process.worker]\nreplicas = 3\n"), "{toml}");
    assert!(
        toml.contains("# tend import: supervisord numbers them from numprocs_start = 1"),
        "{toml}"
    );
    let path = dir.path().join("imported.toml");
    let native = crate::native::parse(&path, &toml).unwrap_or_else(|e| panic!("{e}"));
    let w = native
        .processes
        .iter()
        .find(|p| p.name.as_str() == "worker-2")
        .unwrap_or_else(|| panic!("no worker-2 in\n{toml}"));
    assert_eq!(w.env["WORKER_ID"], "2");
    assert_eq!(w.group.as_str(), "workers");
}

#[test]
fn load_reports_unreadable_files() {
    let err = load(Path::new("/nonexistent-tend/supervisord.conf")).expect_err("missing");
    assert!(
        err.to_string()
            .starts_with("/nonexistent-tend/supervisord.conf:1:1: could not read config file"),
        "{err}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latin1.conf");
    fs::write(&path, b"[supervisord]\nidentifier=caf\xe9\n").expect("write");
    assert!(
        load(&path)
            .expect_err("not utf-8")
            .to_string()
            .contains("is not UTF-8 text")
    );
}

const FRAGMENTS: &[&str] = &[
    "[supervisord]\n",
    "[program:a]\n",
    "[program:b c]\n",
    "[group:g]\n",
    "[eventlistener:l]\n",
    "[include]\n",
    "[unix_http_server]\n",
    "[inet_http_server]\n",
    "[DEFAULT]\n",
    "command=sh -c 'x'\n",
    "command=%(program_name)s %(process_num)02d\n",
    "process_name=%(program_name)s_%(process_num)d\n",
    "numprocs=3\n",
    "numprocs=-1\n",
    "programs=a,l\n",
    "events=TICK_5\n",
    "environment=A=\"1\",B='2'\n",
    "environment=A=\n",
    "files=*.conf\n",
    "port=:9001\n",
    "username=u\n",
    "password={SHA}00\n",
    "stdout_logfile=/dev/stdout\n",
    "redirect_stderr=true\n",
    "  continued\n",
    "\n",
    "; comment\n",
    "%(\n",
    "x = %(ENV_HOME)s ; c\n",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parse_never_panics_on_garbage(text in "\\PC{0,300}") {
        let dir = tempfile::tempdir().expect("tempdir");
        let _ = parse_in(dir.path(), &text);
    }

    #[test]
    fn parse_never_panics_on_plausible_configs(
        parts in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..30)
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let text: String = parts.concat();
        if let Ok(conf) = parse_in(dir.path(), &text) {
            let _ = to_native_toml(&conf);
        }
    }

    #[test]
    fn expansion_never_panics(s in "[%()sd0-9a-z_.#+ -]{0,40}") {
        let base = BTreeMap::new();
        let top = BTreeMap::from([
            ("a".to_string(), Val::Str("x".into())),
            ("n".to_string(), Val::Int(-3)),
        ]);
        let _ = expand(&s, &Names::new(&base, &top));
    }

    #[test]
    fn environment_parsing_never_panics(s in "[A-Z=,\"'\\\\# \n%a-z]{0,40}") {
        let _ = values::key_value_pairs(&s);
    }
}

#[test]
fn numprocs_start_near_the_64_bit_maximum_makes_its_processes() {
    // Python's integers have no bound: supervisord runs x_9223372036854775807
    // and x_9223372036854775808, and so does tend.
    let (_d, conf) = ok(
        "[program:x]\ncommand=true\nprocess_name=%(program_name)s_%(process_num)d\nnumprocs=2\nnumprocs_start=9223372036854775807\n",
    );
    let names: Vec<&str> = conf.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["x_9223372036854775807", "x_9223372036854775808"]);
    let errs = errors(&format!(
        "[program:x]\ncommand=true\nprocess_name=%(program_name)s_%(process_num)d\nnumprocs=2\nnumprocs_start={}\n",
        "9".repeat(40)
    ));
    assert!(has(&errs, "is too large"), "{errs:?}");
}

#[test]
fn tend_access_sections() {
    let (_dir, conf) = ok("
[program:web]
command = true

[tend:role:operator]
view = *
logs = web-*, api
control = web-*

[tend:user:alice]
password = {SHA}e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4
roles = operator

[tend:token:deploy]
hash = {PLAIN}tok
roles = operator admin

[tend:unix:group:root]
roles = operator

[tend:unix:uid:1001]
roles = operator
");
    assert!(warnings(&conf).is_empty(), "{:?}", warnings(&conf));
    let a = &conf.access;
    assert!(a.configured);
    let logs: Vec<&str> = a.role("operator").expect("role").grants[&crate::access::Right::Logs]
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    assert_eq!(logs, ["web-*", "api"]);
    assert!(
        a.users[0]
            .password
            .as_ref()
            .expect("password")
            .verify(b"secret")
    );
    assert_eq!(a.tokens[0].roles, ["operator", "admin"]);
    assert_eq!(a.unix.len(), 2);

    let errs = errors(
        "
[tend:role:ops]
veiw = *

[tend:user:bob]
password = hunter2
roles = opz

[tend:unix:bob]
roles = ops

[tend:frob]
",
    );
    for needle in [
        "unknown option \"veiw\" in [tend:role:ops] (did you mean \"view\"?)",
        "password in [tend:user:bob]: not a password hash tend knows",
        "unknown role \"opz\" in [tend:user:bob]",
        "[tend:unix:bob]: \"bob\" is not a peer",
        "unknown tend section [tend:frob]",
    ] {
        assert!(has(&errs, needle), "{needle:?} not in {errs:#?}");
    }
}
