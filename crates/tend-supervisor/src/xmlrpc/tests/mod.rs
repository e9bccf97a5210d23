//! Tests of the XML-RPC codec and dispatch.
//!
//! `golden.rs` holds what CPython 3.11's `xmlrpc.client` writes and reads
//! (regenerate it with `gen_golden.py`); the literal transcripts below are
//! supervisord 4.3.0's, from the Supervisor reference notes (section 5).

mod golden;
mod props;

use std::sync::Mutex;
use std::time::Duration;

use super::write::python_float_repr;
use super::*;

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8 output")
}

fn parse_err(body: &[u8]) -> String {
    match parse_call(body) {
        Ok(call) => panic!("{:?} parsed as {call:?}", String::from_utf8_lossy(body)),
        Err(e) => e.to_string(),
    }
}

fn one_param(inner: &str) -> Vec<u8> {
    format!("<methodCall><methodName>t.t</methodName><params><param><value>{inner}</value></param></params></methodCall>")
        .into_bytes()
}

fn parse_one(inner: &str) -> Result<Value, ParseError> {
    let call = parse_call(&one_param(inner))?;
    assert_eq!(call.params.len(), 1);
    Ok(call.params.into_iter().next().expect("one param"))
}

// ---- writing ---------------------------------------------------------------

#[test]
fn responses_match_python_byte_for_byte() {
    for (value, expected) in golden::responses() {
        assert_eq!(text(&write_response(&value)), expected, "for {value:?}");
    }
}

#[test]
fn faults_match_python_byte_for_byte() {
    for &(code, string, expected) in golden::FAULTS {
        assert_eq!(text(&write_fault(code, string)), expected);
    }
}

#[test]
fn calls_match_python_byte_for_byte() {
    for (method, params, expected) in golden::calls() {
        assert_eq!(text(&write_call(method, &params)), expected);
    }
}

#[test]
fn doubles_are_written_as_python_repr() {
    for &(bits, repr) in golden::FLOATS {
        let d = f64::from_bits(bits);
        assert_eq!(python_float_repr(d), repr, "for {d:e}");
    }
}

#[test]
fn fault_matches_supervisord_transcript() {
    // supervisor.getProcessInfo("nosuch") against supervisord 4.3.0.
    let expected = "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n<member>\n\
        <name>faultCode</name>\n<value><int>10</int></value>\n</member>\n<member>\n\
        <name>faultString</name>\n<value><string>BAD_NAME: nosuch</string></value>\n</member>\n\
        </struct></value>\n</fault>\n</methodResponse>\n";
    let fault = Fault::bad_name("nosuch");
    assert_eq!(text(&write_fault(fault.code, &fault.string)), expected);
}

#[test]
fn method_call_matches_supervisorctl_transcript() {
    // What supervisorctl sent for its upcheck (Content-Length: 115).
    let body = write_call("supervisor.getVersion", &[]);
    assert_eq!(
        text(&body),
        "<?xml version='1.0'?>\n<methodCall>\n<methodName>supervisor.getVersion</methodName>\n<params>\n</params>\n</methodCall>\n"
    );
    assert_eq!(body.len(), 115);
    assert_eq!(write_call("supervisor.getAllProcessInfo", &[]).len(), 122);
}

#[test]
fn method_name_is_escaped_when_written() {
    let body = write_call("a&b<c>", &[]);
    assert!(text(&body).contains("<methodName>a&amp;b&lt;c&gt;</methodName>"));
    assert_eq!(parse_call(&body).expect("parses").method, "a&b<c>");
}

#[test]
fn int_saturating_caps_to_int32() {
    assert_eq!(Value::int_saturating(5), Value::Int(5));
    assert_eq!(Value::int_saturating(-5), Value::Int(-5));
    assert_eq!(Value::int_saturating(1 << 40), Value::Int(i32::MAX));
    assert_eq!(Value::int_saturating(-(1 << 40)), Value::Int(i32::MIN));
    assert_eq!(
        Value::int_saturating(i64::from(i32::MAX)),
        Value::Int(i32::MAX)
    );
}

// ---- reading ---------------------------------------------------------------

#[test]
fn requests_parse_as_python_reads_them() {
    for (body, method, params) in golden::parsed() {
        let call = parse_call(body)
            .unwrap_or_else(|e| panic!("{e} for {:?}", String::from_utf8_lossy(body)));
        assert_eq!(
            call.method,
            method,
            "for {:?}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(
            call.params,
            params,
            "for {:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn bodies_python_refuses_are_refused() {
    for body in golden::REJECTED {
        parse_err(body);
    }
}

#[test]
fn curl_request_from_the_transcript_parses() {
    // curl --data-binary @file sent the file with its final newline.
    let body = b"<?xml version=\"1.0\"?>\n<methodCall><methodName>supervisor.getAllProcessInfo</methodName><params></params></methodCall>\n";
    assert_eq!(body.len(), 118);
    let call = parse_call(body).expect("parses");
    assert_eq!(call.method, "supervisor.getAllProcessInfo");
    assert!(call.params.is_empty());
}

#[test]
fn ints_outside_32_bits_are_refused() {
    assert_eq!(parse_one("<i8>2147483647</i8>"), Ok(Value::Int(i32::MAX)));
    assert_eq!(parse_one("<i8>-2147483648</i8>"), Ok(Value::Int(i32::MIN)));
    for inner in [
        "<i8>2147483648</i8>",
        "<int>-2147483649</int>",
        "<i4>99999999999999999999999</i4>",
    ] {
        let e = parse_one(inner).expect_err(inner).to_string();
        assert!(e.contains("does not fit in 32 bits"), "{e}");
    }
}

#[test]
fn booleans_take_words_and_whitespace() {
    for (inner, b) in [
        ("<boolean> 1 </boolean>", true),
        ("<boolean>true</boolean>", true),
        ("<boolean>\n0\n</boolean>", false),
        ("<boolean>false</boolean>", false),
    ] {
        assert_eq!(parse_one(inner), Ok(Value::Bool(b)), "{inner}");
    }
    let e = parse_one("<boolean>yes</boolean>")
        .expect_err("yes")
        .to_string();
    assert!(e.contains("<boolean> holds \"yes\", not 0 or 1"), "{e}");
}

#[test]
fn structure_errors_are_refused_with_clear_messages() {
    let cases: &[(&[u8], &str)] = &[
        (b"garbage", "before <methodCall>"),
        (b"", "holds no XML element"),
        (b"<methodResponse><params/></methodResponse>", "expected <methodCall>, found <methodResponse>"),
        (b"<methodCall><params/></methodCall>", "no <methodName>"),
        (b"<methodCall><methodName></methodName></methodCall>", "empty <methodName>"),
        (b"<methodCall><methodName/></methodCall>", "empty <methodName>"),
        (b"<methodCall><methodName>a</methodName><methodName>b</methodName></methodCall>", "more than one <methodName>"),
        (b"<methodCall><methodName>a</methodName><params/><params/></methodCall>", "more than one <params>"),
        (b"<methodCall><methodName>a<b/></methodName></methodCall>", "unexpected <b> inside <methodName>"),
        (b"<methodCall><methodName>a</methodName><foo/></methodCall>", "unexpected <foo> in <methodCall>"),
        (b"<methodCall><methodName>a</methodName>text</methodCall>", "unexpected text \"text\" in <methodCall>"),
        (b"<methodCall><methodName>a</methodName><params><value/></params></methodCall>", "unexpected <value> in <params>"),
        (b"<methodCall><methodName>a</methodName><params><param/></params></methodCall>", "empty <param>"),
        (b"<methodCall><methodName>a</methodName><params><param><value/><value/></param></params></methodCall>", "after the <value> of a <param>"),
        (b"<methodCall><methodName>a</methodName></methodCall>junk", "text \"junk\" after </methodCall>"),
        (b"<methodCall><methodName>a</methodName>", "the document ends inside <methodCall>"),
        (b"<!DOCTYPE x [<!ENTITY e \"boom\">]><methodCall><methodName>a</methodName></methodCall>", "<!DOCTYPE> is not allowed"),
        (b"\xff\xfe<\x00", "UTF-16"),
        (b"<?xml version='1.0' encoding='shift_jis'?><methodCall/>", "unsupported encoding \"shift_jis\""),
        (b"<methodCall><methodName>\xc3</methodName></methodCall>", "not valid UTF-8 (at byte 24)"),
        (b"<methodCall><methodName>a</methodName></methodCal>", "malformed XML at byte"),
    ];
    for (body, expected) in cases {
        let e = parse_err(body);
        assert!(
            e.contains(expected),
            "{:?}: {e:?} lacks {expected:?}",
            String::from_utf8_lossy(body)
        );
        assert!(e.starts_with("invalid XML-RPC request: "), "{e}");
    }
}

#[test]
fn value_errors_are_refused_with_clear_messages() {
    let cases = [
        ("<foo>x</foo>", "unknown value type <foo>"),
        (
            "x<string>y</string>",
            "text \"x\" before <string> in <value>",
        ),
        (
            "<string>y</string><int>1</int>",
            "<int> after <string> in one <value>",
        ),
        ("<string>y</string>z", "unexpected text \"z\" in <value>"),
        ("<string><b/></string>", "unexpected <b> inside <string>"),
        ("<int>x</int>", "<int> holds \"x\", not an integer"),
        (
            "<double>1,5</double>",
            "<double> holds \"1,5\", not a number",
        ),
        ("<nil>x</nil>", "<nil/> holds text"),
        (
            "<base64>a$</base64>",
            "'$' (at character 1) is not a base64 character",
        ),
        (
            "<array><value/></array>",
            "expected <data> in <array>, found <value>",
        ),
        ("<array></array>", "<array> without <data>"),
        (
            "<array><data><int>1</int></data></array>",
            "unexpected <int> in <data>",
        ),
        (
            "<array><data/><data/></array>",
            "unexpected element after </data>",
        ),
        (
            "<struct><value/></struct>",
            "unexpected <value> in <struct>",
        ),
        (
            "<struct><member><value/></member></struct>",
            "expected <name> in <member>, found <value>",
        ),
        (
            "<struct><member><name>a</name></member></struct>",
            "<member> without <value>",
        ),
        (
            "<struct><member><name>a</name><value/><value/></member></struct>",
            "after the <value> of a <member>",
        ),
        ("&nbsp;", "unknown entity &nbsp;"),
        ("&#1;", "names a character XML does not allow"),
        ("&#xFFFE;", "names a character XML does not allow"),
        ("&#x110000;", "bad character reference"),
    ];
    for (inner, expected) in cases {
        let e = parse_one(inner).expect_err(inner).to_string();
        assert!(e.contains(expected), "{inner:?}: {e:?} lacks {expected:?}");
        assert!(e.contains("byte"), "{inner:?}: {e:?} has no position");
    }
}

#[test]
fn lenient_where_python_is_strict_but_harmless() {
    // Raw control characters: expat refuses them, a careless client sends them.
    assert_eq!(
        parse_one("a\u{1}\u{1b}[0m"),
        Ok(Value::String("a\u{1}\u{1b}[0m".into()))
    );
    // Whitespace around a typed element does not count, inside an untyped one it does.
    assert_eq!(parse_one("\n  <int>3</int>\n"), Ok(Value::Int(3)));
    assert_eq!(parse_one("\n  "), Ok(Value::String("\n  ".into())));
    // A later duplicate member replaces the earlier one in place.
    assert_eq!(
        parse_one(
            "<struct><member><name>a</name><value>1</value></member><member><name>b</name><value>2</value></member>\
             <member><name>a</name><value>3</value></member></struct>"
        ),
        Ok(Value::structure([
            ("a", Value::from("3")),
            ("b", Value::from("2"))
        ]))
    );
}

fn nested(depth: usize, open: &str, close: &str) -> String {
    format!(
        "{}<int>1</int>{}",
        format!("{open}<value>").repeat(depth),
        format!("</value>{close}").repeat(depth)
    )
}

#[test]
fn nesting_is_bounded() {
    for (open, close) in [
        ("<array><data>", "</data></array>"),
        ("<struct><member><name>k</name>", "</member></struct>"),
    ] {
        assert!(parse_one(&nested(MAX_DEPTH, open, close)).is_ok());
        let e = parse_one(&nested(MAX_DEPTH + 1, open, close))
            .expect_err("too deep")
            .to_string();
        assert!(e.contains("nest deeper than 64 levels"), "{e}");
    }
    // Far deeper than the limit: refused, not a stack overflow.
    assert!(parse_one(&nested(100_000, "<array><data>", "</data></array>")).is_err());
    let limits = Limits {
        max_depth: 2,
        ..Limits::default()
    };
    let body = one_param(&nested(3, "<array><data>", "</data></array>"));
    assert!(parse_call_with(&body, &limits).is_err());
    let body = one_param(&nested(2, "<array><data>", "</data></array>"));
    assert!(parse_call_with(&body, &limits).is_ok());
}

#[test]
fn body_size_is_bounded() {
    let body = write_call("a.b", &[Value::from("x".repeat(100))]);
    let limits = Limits {
        max_body: body.len(),
        ..Limits::default()
    };
    assert!(parse_call_with(&body, &limits).is_ok());
    let limits = Limits {
        max_body: body.len() - 1,
        ..Limits::default()
    };
    let e = parse_call_with(&body, &limits)
        .expect_err("too big")
        .to_string();
    assert!(e.contains("more than the limit of"), "{e}");
}

#[test]
fn a_huge_struct_parses_in_reasonable_time() {
    // Duplicate detection must not be quadratic.
    let mut inner = String::from("<struct>");
    for i in 0..100_000 {
        inner.push_str(&format!(
            "<member><name>k{}</name><value><int>{i}</int></value></member>",
            i % 50_000
        ));
    }
    inner.push_str("</struct>");
    let Ok(Value::Struct(members)) = parse_one(&inner) else {
        panic!("not a struct");
    };
    assert_eq!(members.len(), 50_000);
    assert_eq!(members[0], ("k0".to_owned(), Value::Int(50_000)));
}

// ---- dispatch --------------------------------------------------------------

const TABLE: &[MethodInfo<&str>] = &[
    MethodInfo {
        name: "supervisor.getAPIVersion",
        help: " Return the version of the RPC API used by supervisord\n\n        @return string version id\n        ",
        params: (0, 0),
        verb: "supervisor.getAPIVersion",
    },
    MethodInfo {
        name: "supervisor.getProcessInfo",
        help: " Get info about a process named name\n\n        @param string name The name of the process (or 'group:name')\n        @return struct result     A structure containing data about the process\n        ",
        params: (1, 1),
        verb: "supervisor.getProcessInfo",
    },
    MethodInfo {
        name: "supervisor.startProcess",
        help: " Start a process\n\n        @param string name Process name (or ``group:name``, or ``group:*``)\n        @param boolean wait Wait for process to be fully started\n        @return boolean result     Always true unless error\n\n        ",
        params: (1, 2),
        verb: "supervisor.startProcess",
    },
    MethodInfo {
        name: "test.undocumented",
        help: "No tags here.",
        params: (0, 0),
        verb: "test.undocumented",
    },
];

/// A stand-in for the daemon's methods; `startProcess` is deferred.
#[derive(Default)]
struct Api {
    log: Mutex<Vec<String>>,
}

impl Api {
    fn log(&self, line: String) {
        self.log.lock().expect("log lock").push(line);
    }

    fn entries(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }
}

impl Methods for Api {
    type Verb = &'static str;

    fn methods(&self) -> &[MethodInfo<&'static str>] {
        TABLE
    }

    async fn call(&self, method: &'static str, params: Vec<Value>) -> Result<Value, Fault> {
        self.log(format!("call {method}"));
        match method {
            "supervisor.getAPIVersion" => Ok(Value::from("3.0")),
            "supervisor.getProcessInfo" => {
                let name = params[0].as_str().unwrap_or_default();
                if name == "printer" {
                    Ok(Value::structure([("name", Value::from(name))]))
                } else {
                    Err(Fault::bad_name(name))
                }
            }
            "supervisor.startProcess" => {
                let name = params[0].as_str().unwrap_or_default().to_owned();
                if params.get(1).and_then(Value::as_bool).unwrap_or(true) {
                    // Deferred: answers once the process has been up a while.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                self.log(format!("started {name}"));
                Ok(Value::Bool(true))
            }
            _ => Err(Fault::unknown_method()),
        }
    }
}

async fn rpc(api: &Api, method: &str, params: &[Value]) -> (u16, String) {
    let (status, body) = handle(&write_call(method, params), api).await;
    (status, String::from_utf8(body).expect("UTF-8 body"))
}

fn no_newlines(s: &str) -> String {
    s.replace('\n', "")
}

#[test]
fn handle_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let api = Api::default();
    let fut = handle(b"", &api);
    assert_send(&fut);
}

#[tokio::test]
async fn malformed_xml_is_400_with_the_reason() {
    let api = Api::default();
    let (status, body) = handle(b"garbage", &api).await;
    assert_eq!(status, 400);
    assert_eq!(
        text(&body),
        "invalid XML-RPC request: text \"garbage\" before <methodCall> (at byte 7)\n"
    );
    assert!(api.entries().is_empty());
}

#[tokio::test]
async fn a_call_answers_like_supervisord() {
    let api = Api::default();
    let (status, body) = rpc(&api, "supervisor.getAPIVersion", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><string>3.0</string></value>\n</param>\n</params>\n</methodResponse>\n"
    );
    assert_eq!(
        body.len(),
        129,
        "supervisord's Content-Length for this answer"
    );
}

#[tokio::test]
async fn unknown_methods_are_fault_1_without_calling() {
    let api = Api::default();
    for method in [
        "supervisor.nope",
        "nope",
        "a.b.c",
        "supervisor._private",
        "system.nope",
    ] {
        let (status, body) = rpc(&api, method, &[]).await;
        assert_eq!(status, 200);
        assert_eq!(body, text(&write_fault(1, "UNKNOWN_METHOD")));
    }
    assert!(api.entries().is_empty());
}

#[tokio::test]
async fn wrong_argument_counts_are_fault_2() {
    let api = Api::default();
    for (method, params) in [
        ("supervisor.getAPIVersion", vec![Value::Int(1)]),
        ("supervisor.getProcessInfo", vec![]),
        ("system.listMethods", vec![Value::Int(1)]),
        ("system.methodHelp", vec![]),
        (
            "system.methodSignature",
            vec![Value::from("a"), Value::from("b")],
        ),
        ("system.multicall", vec![]),
    ] {
        let (_, body) = rpc(&api, method, &params).await;
        assert_eq!(
            body,
            text(&write_fault(2, "INCORRECT_PARAMETERS")),
            "{method}"
        );
    }
    let (_, body) = rpc(&api, "system.multicall", &[Value::from("x")]).await;
    assert_eq!(
        body,
        text(&write_fault(
            2,
            "INCORRECT_PARAMETERS: system.multicall takes an array of calls"
        ))
    );
}

#[tokio::test]
async fn list_methods_is_sorted_and_includes_system() {
    let api = Api::default();
    let value = dispatch(&api, "system.listMethods", vec![])
        .await
        .expect("listMethods");
    let names: Vec<&str> = value
        .as_array()
        .expect("array")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        names,
        [
            "supervisor.getAPIVersion",
            "supervisor.getProcessInfo",
            "supervisor.startProcess",
            "system.listMethods",
            "system.methodHelp",
            "system.methodSignature",
            "system.multicall",
            "test.undocumented",
        ]
    );
}

#[tokio::test]
async fn method_help_and_signature_come_from_the_docstrings() {
    let api = Api::default();
    let help = dispatch(
        &api,
        "system.methodHelp",
        vec![Value::from("supervisor.getAPIVersion")],
    )
    .await;
    assert_eq!(help, Ok(Value::from(TABLE[0].help)));
    let help = dispatch(
        &api,
        "system.methodHelp",
        vec![Value::from("system.multicall")],
    )
    .await;
    assert_eq!(help, Ok(Value::from(SYSTEM_METHODS[3].help)));

    // The transcript: system.methodSignature("supervisor.startProcess").
    let (_, body) = rpc(
        &api,
        "system.methodSignature",
        &[Value::from("supervisor.startProcess")],
    )
    .await;
    assert_eq!(
        no_newlines(&body),
        "<?xml version='1.0'?><methodResponse><params><param><value><array><data><value><string>boolean</string></value><value><string>string</string></value><value><string>boolean</string></value></data></array></value></param></params></methodResponse>"
    );
    let signature = dispatch(
        &api,
        "system.methodSignature",
        vec![Value::from("system.methodHelp")],
    )
    .await;
    assert_eq!(
        signature,
        Ok(Value::Array(vec!["string".into(), "string".into()]))
    );
    let signature = dispatch(
        &api,
        "system.methodSignature",
        vec![Value::from("system.listMethods")],
    )
    .await;
    assert_eq!(signature, Ok(Value::Array(vec!["array".into()])));

    for (method, name) in [
        ("system.methodHelp", Value::from("nosuch.method")),
        ("system.methodHelp", Value::Int(1)),
        ("system.methodSignature", Value::from("nosuch.method")),
        ("system.methodSignature", Value::from("test.undocumented")),
    ] {
        assert_eq!(
            dispatch(&api, method, vec![name]).await,
            Err(Fault::signature_unsupported())
        );
    }
}

fn call_struct(method: &str, params: Vec<Value>) -> Value {
    Value::structure([
        ("methodName", Value::from(method)),
        ("params", Value::Array(params)),
    ])
}

#[tokio::test]
async fn multicall_returns_raw_values_and_fault_structs_like_supervisord() {
    let api = Api::default();
    let calls = Value::Array(vec![
        call_struct("supervisor.getAPIVersion", vec![]),
        call_struct("supervisor.getProcessInfo", vec!["nosuch".into()]),
        call_struct("system.multicall", vec![]),
    ]);
    let (status, body) = rpc(&api, "system.multicall", &[calls]).await;
    assert_eq!(status, 200);
    // supervisord 4.3.0's answer to the same call (shown without newlines).
    assert_eq!(
        no_newlines(&body),
        "<?xml version='1.0'?><methodResponse><params><param><value><array><data><value><string>3.0</string></value><value><struct><member><name>faultCode</name><value><int>10</int></value></member><member><name>faultString</name><value><string>BAD_NAME: nosuch</string></value></member></struct></value><value><struct><member><name>faultCode</name><value><int>2</int></value></member><member><name>faultString</name><value><string>INCORRECT_PARAMETERS: Recursive system.multicall forbidden</string></value></member></struct></value></data></array></value></param></params></methodResponse>"
    );
}

#[tokio::test]
async fn multicall_entry_errors_are_fault_structs() {
    let api = Api::default();
    let calls = Value::Array(vec![
        Value::structure([("params", Value::Array(vec![]))]),
        Value::from("not a struct"),
        Value::structure([("methodName", Value::Nil)]),
        Value::structure([("methodName", Value::Int(3))]),
        Value::structure([
            ("methodName", Value::from("supervisor.getAPIVersion")),
            ("params", Value::from("x")),
        ]),
        Value::structure([("methodName", Value::from("supervisor.nope"))]),
        // No params means none.
        Value::structure([("methodName", Value::from("supervisor.getAPIVersion"))]),
        call_struct("system.listMethods", vec![Value::Int(1)]),
        call_struct("system.methodSignature", vec!["system.listMethods".into()]),
    ]);
    let result = dispatch(&api, "system.multicall", vec![calls])
        .await
        .expect("multicall");
    let fault = |code, string: &str| {
        Fault {
            code,
            string: string.to_owned(),
        }
        .to_value()
    };
    assert_eq!(
        result,
        Value::Array(vec![
            fault(2, "INCORRECT_PARAMETERS: No methodName"),
            fault(
                2,
                "INCORRECT_PARAMETERS: a system.multicall call must be a struct"
            ),
            fault(2, "INCORRECT_PARAMETERS: No methodName"),
            fault(2, "INCORRECT_PARAMETERS: methodName must be a string"),
            fault(2, "INCORRECT_PARAMETERS"),
            fault(1, "UNKNOWN_METHOD"),
            Value::from("3.0"),
            fault(2, "INCORRECT_PARAMETERS"),
            Value::Array(vec!["array".into()]),
        ])
    );
    assert_eq!(api.entries(), ["call supervisor.getAPIVersion"]);
}

#[tokio::test(start_paused = true)]
async fn deferred_calls_in_a_multicall_run_one_after_another() {
    let api = Api::default();
    let calls = Value::Array(vec![
        call_struct("supervisor.startProcess", vec!["a".into()]),
        call_struct(
            "supervisor.startProcess",
            vec!["b".into(), Value::Bool(true)],
        ),
        call_struct(
            "supervisor.startProcess",
            vec!["c".into(), Value::Bool(false)],
        ),
    ]);
    let started = tokio::time::Instant::now();
    let result = dispatch(&api, "system.multicall", vec![calls]).await;
    assert_eq!(result, Ok(Value::Array(vec![Value::Bool(true); 3])));
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(
        api.entries(),
        [
            "call supervisor.startProcess",
            "started a",
            "call supervisor.startProcess",
            "started b",
            "call supervisor.startProcess",
            "started c",
        ]
    );
}

#[test]
fn fault_strings_follow_supervisor() {
    let cases = [
        (Fault::unknown_method(), 1, "UNKNOWN_METHOD"),
        (Fault::incorrect_parameters(None), 2, "INCORRECT_PARAMETERS"),
        (
            Fault::incorrect_parameters(Some("No methodName")),
            2,
            "INCORRECT_PARAMETERS: No methodName",
        ),
        (Fault::bad_arguments(), 3, "BAD_ARGUMENTS"),
        (Fault::signature_unsupported(), 4, "SIGNATURE_UNSUPPORTED"),
        (Fault::shutdown_state(), 6, "SHUTDOWN_STATE"),
        (Fault::bad_name("foo"), 10, "BAD_NAME: foo"),
        (Fault::bad_signal("FOO"), 11, "BAD_SIGNAL: FOO"),
        (Fault::no_file(None), 20, "NO_FILE"),
        (Fault::no_file(Some("/x.log")), 20, "NO_FILE: /x.log"),
        (
            Fault::not_executable("/bin/x"),
            21,
            "NOT_EXECUTABLE: /bin/x",
        ),
        (Fault::failed(None), 30, "FAILED"),
        (Fault::failed(Some("printer")), 30, "FAILED: printer"),
        (
            Fault::abnormal_termination("p"),
            40,
            "ABNORMAL_TERMINATION: p",
        ),
        (Fault::spawn_error("failer"), 50, "SPAWN_ERROR: failer"),
        (Fault::already_started("p"), 60, "ALREADY_STARTED: p"),
        (Fault::not_running("p"), 70, "NOT_RUNNING: p"),
        (Fault::success(), 80, "SUCCESS"),
        (Fault::already_added("g"), 90, "ALREADY_ADDED: g"),
        (Fault::still_running("g"), 91, "STILL_RUNNING: g"),
        (Fault::cant_reread("bad"), 92, "CANT_REREAD: bad"),
        (Fault::new(12345, None), 12345, "UNKNOWN"),
    ];
    for (fault, code, string) in cases {
        assert_eq!((fault.code, fault.string.as_str()), (code, string));
    }
}
