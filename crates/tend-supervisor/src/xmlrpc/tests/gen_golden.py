#!/usr/bin/env python3
"""Writes golden.rs: what Python's xmlrpc.client writes and reads, as Rust literals.

Run from this directory with the Python that supervisorctl uses (the goldens
were made with CPython 3.11):

    python3 gen_golden.py > golden.rs && rustfmt --edition 2024 golden.rs

- RESPONSES: dumps((value,), methodresponse=True, allow_none=True)
- FAULTS:    dumps(Fault(code, string))
- CALLS:     dumps(params, method, allow_none=True)
- FLOATS:    repr(float), for the <double> writer
- PARSED:    loads(body) of request bodies
- REJECTED:  bodies loads() refuses (and so must we)
"""

import random
import struct
import sys
import xmlrpc.client as xc

out = sys.stdout.write


# The escapes Rust's string and byte string literals share.
ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def rust_str(s):
    def esc(ch):
        o = ord(ch)
        if ch in ESCAPES:
            return ESCAPES[ch]
        if o < 0x20 or o == 0x7F or 0xD800 <= o <= 0xDFFF:
            return "\\u{%x}" % o
        return ch

    return '"' + "".join(map(esc, s)) + '"'


def rust_bytes(b):
    def esc(byte):
        ch = chr(byte)
        if ch in ESCAPES:
            return ESCAPES[ch]
        if 0x20 <= byte < 0x7F:
            return ch
        return "\\x%02x" % byte

    return 'b"' + "".join(map(esc, b)) + '"'


def rust_value(v):
    if isinstance(v, bool):
        return "Value::Bool(%s)" % ("true" if v else "false")
    if isinstance(v, int):
        return "Value::Int(%d)" % v
    if isinstance(v, float):
        return "Value::Double(f64::from_bits(0x%016x))" % struct.unpack("<Q", struct.pack("<d", v))[0]
    if isinstance(v, str):
        return "Value::String(%s.into())" % rust_str(v)
    if isinstance(v, (bytes, bytearray)):
        return "Value::Base64(vec![%s])" % ", ".join(str(b) for b in v)
    if isinstance(v, xc.Binary):
        return rust_value(v.data)
    if isinstance(v, xc.DateTime):
        return "Value::DateTime(%s.into())" % rust_str(v.value)
    if isinstance(v, (list, tuple)):
        return "Value::Array(vec![%s])" % ", ".join(rust_value(x) for x in v)
    if isinstance(v, dict):
        return "Value::Struct(vec![%s])" % ", ".join(
            "(%s.into(), %s)" % (rust_str(k), rust_value(x)) for k, x in v.items()
        )
    if v is None:
        return "Value::Nil"
    raise TypeError(v)


PROCESS_INFO = {
    "name": "printer", "group": "printer", "start": 1795211133, "stop": 0,
    "now": 1795211138, "state": 20, "statename": "RUNNING", "spawnerr": "",
    "exitstatus": 0, "logfile": "/lab/logs/printer.out.log",
    "stdout_logfile": "/lab/logs/printer.out.log", "stderr_logfile": "/lab/logs/printer.err.log",
    "pid": 14969, "description": "pid 14969, uptime 0:00:05",
}

RESPONSE_VALUES = [
    "", "3.0", "hello world", "a&b<c>d", "already &amp; escaped", "quotes \" and '",
    "]]>", "unicode: é ü ß 日本語 🎉", "line1\nline2\n", "tab\there", "  padded  ",
    "\x1b[31mred\x1b[0m", "cr\rlf",
    0, 1, -1, 42, 1795211138, 2**31 - 1, -2**31,
    True, False,
    0.0, -0.0, 1.0, 1.5, -2.25, 0.1, 1 / 3, 1e16, 1e15, 1e-5, 1e-4, 123456789.123,
    1e300, 5e-324, float("inf"), float("-inf"), float("nan"),
    None,
    [], [1, "a", True], [[[]]], [None, None, 1], {}, {"a": 1, "b": {"c": [1, 2]}},
    {"k&<>": "v&<>"}, {"statecode": 1, "statename": "RUNNING"},
    b"", b"abc", b"ab", b"a", bytes(range(256)), b"x" * 57, b"x" * 58, b"x" * 114,
    xc.DateTime("20240102T03:04:05"),
    PROCESS_INFO,
    [{"name": "printer", "group": "printer", "status": 80, "description": "OK"}],
    ["ine 7\nprinter line 8\n", 169, True],
    [["added"], [], ["gone"]],
]

FAULT_CASES = [
    (1, "UNKNOWN_METHOD"),
    (2, "INCORRECT_PARAMETERS"),
    (10, "BAD_NAME: nosuch"),
    (2, "INCORRECT_PARAMETERS: Recursive system.multicall forbidden"),
    (30, "FAILED: <class 'OSError'>:[Errno 5] & more"),
    (92, "CANT_REREAD: File contains no section headers.\nfile: '/x', line: 1"),
    (-1, ""),
]

CALL_CASES = [
    ("supervisor.getVersion", ()),
    ("supervisor.getAllProcessInfo", ()),
    ("supervisor.startProcess", ("printer", False)),
    ("supervisor.readProcessStdoutLog", ("printer", -1600, 0)),
    ("supervisor.sendProcessStdin", ("cat", "hello from fg\n")),
    ("supervisor.signalProcess", ("group:*", "HUP")),
    ("system.multicall", ([
        {"methodName": "supervisor.getAPIVersion", "params": []},
        {"methodName": "supervisor.getProcessInfo", "params": ["nosuch"]},
    ],)),
    ("test.everything", (1.5, None, b"\x00\xff", xc.DateTime("20240102T03:04:05"), {"x": [{}]})),
]


def floats():
    rng = random.Random(5)
    fixed = [0.5, 2.0, 100.0, 1e22, 1e23, 9007199254740993.0, 0.3, 2.5e-5, 4.35, 1.7976931348623157e308,
             2.2250738585072014e-308, 1e-7, 123.456, -1e16, -9.999999999999999e15]
    for k in range(-12, 26):
        fixed += [10.0 ** k, 1.5 * 10.0 ** k, -7.25 * 10.0 ** k]
    for _ in range(150):
        fixed.append(rng.random() * 10.0 ** rng.randint(-30, 30))
    # Odd multiples of small powers of two near 2**53 are often exact ties
    # between two shortest digit strings: Python rounds those to even.
    for _ in range(200):
        fixed.append((rng.getrandbits(53) | 1) / 2 ** rng.randint(1, 12))
    fixed.append(86991125246116.125)
    while len(fixed) < 700:
        (d,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
        if d == d:
            fixed.append(d)
    return fixed


def call(body_params, method="x"):
    return (xc.dumps(tuple(body_params), method, allow_none=True)).encode()


def wrap(inner, method="supervisor.test"):
    return ("<methodCall><methodName>%s</methodName><params>%s</params></methodCall>" % (method, inner)).encode()


def param(v):
    return "<param><value>%s</value></param>" % v


PARSE_BODIES = [
    b'<?xml version="1.0"?>\n<methodCall><methodName>supervisor.getAllProcessInfo</methodName><params></params></methodCall>',
    xc.dumps((), "supervisor.getVersion").encode(),
    b"<methodCall><methodName>supervisor.getState</methodName></methodCall>",
    b"<methodCall><methodName>supervisor.getState</methodName><params/></methodCall>",
    b"<?xml version='1.0'?>\n<methodCall>\n  <methodName>supervisor.getProcessInfo</methodName>\n  <params>\n    <param>\n      <value>\n        <string>printer</string>\n      </value>\n    </param>\n  </params>\n</methodCall>\n",
    call(["printer", False]),
    call([1, -1, 2**31 - 1, -2**31, True, 0.25, "", b"bin", None, [1, ["x"]], {"a": {"b": []}}]),
    wrap(param("untyped") + param("  spaced  out  ") + param("") + "<param><value/></param>"),
    wrap(param("<i4>7</i4>") + param("<int> +12 </int>") + param("<i8>-5</i8>") + param("<int>\n-0\n</int>")),
    wrap(param("<boolean>0</boolean>") + param("<boolean>1</boolean>")),
    wrap(param("<double>1.5</double>") + param("<double>-0.5e3</double>") + param("<double> 2 </double>")
         + param("<double>1e400</double>") + param("<double>-inf</double>")),
    wrap(param("<dateTime.iso8601>20240102T03:04:05</dateTime.iso8601>")),
    wrap(param("<base64>aGVsbG8g\nd29ybGQ=\n</base64>") + param("<base64></base64>") + param("<base64>YQ==</base64>") + param("<base64>Y W\nI = </base64>")),
    wrap(param("<array><data></data></array>") + param("<array>\n<data>\n<value><i4>1</i4></value>\n<value>two</value>\n</data>\n</array>")),
    wrap(param("<struct></struct>") + param(
        "<struct><member><name>a</name><value>1</value></member><member><name>b</name><value><int>2</int></value></member>"
        "<member><name>a</name><value>3</value></member></struct>")),
    wrap(param("<struct><member><name>k&amp;&lt;</name><value><struct><member><name/><value/></member></struct></value></member></struct>")),
    wrap(param("<nil/>") + param("<ex:nil xmlns:ex='http://ws.apache.org/xmlrpc/namespaces/extensions'/>")
         + param("<ex:i8 xmlns:ex='urn:x'>9</ex:i8>")),
    wrap(param("&amp;&lt;&gt;&quot;&apos;&#65;&#x42;&#233;&#x1F600;") + param("<string>a&amp;b</string>")),
    wrap(param("<string><![CDATA[<a>&amp;]]></string>") + param("x<![CDATA[ & ]]>y") + param("<string>a<!-- c -->b<?pi x?>c</string>")),
    wrap(param("a\r\nb\rc&#13;d&#10;e") + param("<string>\r\n</string>")),
    "<?xml version='1.0' encoding='iso-8859-1'?><methodCall><methodName>x</methodName><params><param><value>\xe9t\xe9 \xff</value></param></params></methodCall>".encode("latin-1"),
    b"<?xml version='1.0' encoding='UTF-8'?><methodCall><methodName>x</methodName><params><param><value>\xc3\xa9</value></param></params></methodCall>",
    b"\xef\xbb\xbf<?xml version='1.0'?><methodCall><methodName>x</methodName><params><param><value>bom</value></param></params></methodCall>",
    "<!-- hi --><?pi?>\n<methodCall><methodName>ünï.cødé</methodName><params><param><value>日本語 🎉</value></param></params></methodCall>\n<!-- bye -->\n".encode(),
    b"<methodCall><methodName>a&amp;b</methodName></methodCall>",
    b"<methodCall><methodName>supervisor.getPID</methodName><params><param><value><int>1</int></value></param></params></methodCall>",
]

REJECTED_BODIES = [
    b"garbage",
    b"",
    b"<methodCall><methodName>x</methodName>",
    b"<methodCall><methodName>x</methodName><params></param></methodCall>",
    b"<methodCall><methodName>x</methodName></methodCall><methodCall/>",
    wrap(param("<int>abc</int>")),
    wrap(param("<int>1.5</int>")),
    wrap(param("<int></int>")),
    wrap(param("<boolean>2</boolean>")),
    wrap(param("<boolean></boolean>")),
    wrap(param("<double>abc</double>")),
    wrap(param("&foo;")),
    wrap(param("&#0;")),
    wrap(param("&#xD800;")),
    wrap(param("a & b")),
    wrap(param("a < b")),
    wrap(param("<base64>YWJjZ</base64>")),
    wrap(param("<base64>Y*</base64>")),
    wrap(param("<base64>YQ</base64>")),
    wrap(param("<base64>YQ=</base64>")),
    wrap(param("<base64>YW=I</base64>")),
    b"<methodCall><methodName>x</methodName>\xff</methodCall>",
    b"<methodCall><methodName>x</methodName></methodcall>",
    b"<methodCall>\n<?xml version='1.0'?><methodName>x</methodName></methodCall>",
]


def main():
    out("// @generated by gen_golden.py with Python %s: do not edit by hand.\n\n" % sys.version.split()[0])
    out("use crate::xmlrpc::Value;\n\n")

    out("/// `(value, xmlrpc.client.dumps((value,), methodresponse=True, allow_none=True))`\n")
    out("pub(super) fn responses() -> Vec<(Value, &'static str)> {\nvec![\n")
    for v in RESPONSE_VALUES:
        out("(%s, %s),\n" % (rust_value(v), rust_str(xc.dumps((v,), methodresponse=True, allow_none=True))))
    out("]\n}\n\n")

    out("/// `(code, string, xmlrpc.client.dumps(Fault(code, string)))`\n")
    out("pub(super) const FAULTS: &[(i32, &str, &str)] = &[\n")
    for code, s in FAULT_CASES:
        out("(%d, %s, %s),\n" % (code, rust_str(s), rust_str(xc.dumps(xc.Fault(code, s)))))
    out("];\n\n")

    out("/// `(method, params, xmlrpc.client.dumps(params, method, allow_none=True))`\n")
    out("pub(super) fn calls() -> Vec<(&'static str, Vec<Value>, &'static str)> {\nvec![\n")
    for method, params in CALL_CASES:
        out("(%s, vec![%s], %s),\n" % (rust_str(method), ", ".join(rust_value(p) for p in params),
                                       rust_str(xc.dumps(params, method, allow_none=True))))
    out("]\n}\n\n")

    out("/// `(bits of a double, repr(double))`\n")
    out("pub(super) const FLOATS: &[(u64, &str)] = &[\n")
    for d in floats():
        out("(0x%016x, %s),\n" % (struct.unpack("<Q", struct.pack("<d", d))[0], rust_str(repr(d))))
    out("];\n\n")

    out("/// `(body, method, params)` from `xmlrpc.client.loads(body)`\n")
    out("pub(super) fn parsed() -> Vec<(&'static [u8], &'static str, Vec<Value>)> {\nvec![\n")
    for body in PARSE_BODIES:
        params, method = xc.loads(body)
        out("(%s, %s, vec![%s]),\n" % (rust_bytes(body), rust_str(method), ", ".join(rust_value(p) for p in params)))
    out("]\n}\n\n")

    out("/// Bodies `xmlrpc.client.loads` refuses.\n")
    out("pub(super) const REJECTED: &[&[u8]] = &[\n")
    for body in REJECTED_BODIES:
        try:
            xc.loads(body)
        except Exception:
            pass
        else:
            raise SystemExit("Python accepts %r" % body)
        out("%s,\n" % rust_bytes(body))
    out("];\n")


main()
