//! Supervisor's XML-RPC protocol: the codec and a method-dispatch skeleton.
//!
//! - [`parse_call`] reads a request body (what Python's `xmlrpc.client`, and
//!   so `supervisorctl`, sends; see `parse.rs` for the exact rules).
//! - [`write_response`], [`write_fault`] and [`write_call`] write bodies byte
//!   for byte as Python's `xmlrpc.client.dumps` does, which is what
//!   supervisord answers with.
//! - [`Methods`] is the table of methods a server publishes; [`dispatch`] adds
//!   Supervisor's `system.*` namespace on top of it (`listMethods`,
//!   `methodHelp`, `methodSignature`, `multicall`), and [`handle`] turns a
//!   request body into an HTTP status and a response body.
//!
//! ```
//! use tend_supervisor::xmlrpc::{Fault, MethodInfo, Methods, Value, handle};
//!
//! struct Api;
//!
//! #[derive(Clone, Copy)]
//! enum Verb {
//!     ApiVersion,
//! }
//!
//! impl Methods for Api {
//!     type Verb = Verb;
//!
//!     fn methods(&self) -> &[MethodInfo<Verb>] {
//!         &[MethodInfo {
//!             name: "supervisor.getAPIVersion",
//!             help: "Return the version of the RPC API\n\n@return string version\n",
//!             params: (0, 0),
//!             verb: Verb::ApiVersion,
//!         }]
//!     }
//!
//!     async fn call(&self, verb: Verb, _params: Vec<Value>) -> Result<Value, Fault> {
//!         match verb {
//!             Verb::ApiVersion => Ok(Value::from("3.0")),
//!         }
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let body = b"<methodCall><methodName>supervisor.getAPIVersion</methodName></methodCall>";
//! let (status, response) = handle(body, &Api).await;
//! assert_eq!(status, 200);
//! assert!(String::from_utf8(response).unwrap().contains("<value><string>3.0</string></value>"));
//! # });
//! ```

mod parse;
mod value;
mod write;

#[cfg(test)]
mod tests;

use std::future::Future;

pub use parse::{
    Limits, MAX_BODY_BYTES, MAX_DEPTH, MethodCall, ParseError, parse_call, parse_call_with,
};
pub use value::Value;
pub use write::{write_call, write_fault, write_response};

/// An XML-RPC fault: Supervisor's `RPCError`.
///
/// `string` is the fault's name (`BAD_NAME`), or `NAME: extra` when there is
/// more to say (`BAD_NAME: nosuch`), exactly as supervisord words it: clients
/// such as supervisorctl match on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fault {code}: {string}")]
pub struct Fault {
    /// The fault code (`Fault::BAD_NAME`, ...).
    pub code: i32,
    /// The fault string.
    pub string: String,
}

impl Fault {
    /// The method does not exist (or is not `namespace.method`).
    pub const UNKNOWN_METHOD: i32 = 1;
    /// Wrong number (or kind) of arguments.
    pub const INCORRECT_PARAMETERS: i32 = 2;
    /// Arguments with impossible values (log offsets, ...).
    pub const BAD_ARGUMENTS: i32 = 3;
    /// `system.methodHelp`/`methodSignature` on an unknown method.
    pub const SIGNATURE_UNSUPPORTED: i32 = 4;
    /// The supervisor is shutting down or restarting.
    pub const SHUTDOWN_STATE: i32 = 6;
    /// No such process or group.
    pub const BAD_NAME: i32 = 10;
    /// No such signal.
    pub const BAD_SIGNAL: i32 = 11;
    /// No such file (command, log file).
    pub const NO_FILE: i32 = 20;
    /// The command is not executable.
    pub const NOT_EXECUTABLE: i32 = 21;
    /// Something else went wrong.
    pub const FAILED: i32 = 30;
    /// The process exited before it counted as started.
    pub const ABNORMAL_TERMINATION: i32 = 40;
    /// The process could not be spawned.
    pub const SPAWN_ERROR: i32 = 50;
    /// The process is already starting or running.
    pub const ALREADY_STARTED: i32 = 60;
    /// The process is not running.
    pub const NOT_RUNNING: i32 = 70;
    /// Success; used only in the `status` of result structs.
    pub const SUCCESS: i32 = 80;
    /// The process group is already active.
    pub const ALREADY_ADDED: i32 = 90;
    /// The process group still has processes that are not stopped.
    pub const STILL_RUNNING: i32 = 91;
    /// The configuration file cannot be read again.
    pub const CANT_REREAD: i32 = 92;

    /// The name of a fault code (`BAD_NAME`), or `UNKNOWN` for a code
    /// Supervisor does not define: its `getFaultDescription`.
    pub fn name_of(code: i32) -> &'static str {
        match code {
            Self::UNKNOWN_METHOD => "UNKNOWN_METHOD",
            Self::INCORRECT_PARAMETERS => "INCORRECT_PARAMETERS",
            Self::BAD_ARGUMENTS => "BAD_ARGUMENTS",
            Self::SIGNATURE_UNSUPPORTED => "SIGNATURE_UNSUPPORTED",
            Self::SHUTDOWN_STATE => "SHUTDOWN_STATE",
            Self::BAD_NAME => "BAD_NAME",
            Self::BAD_SIGNAL => "BAD_SIGNAL",
            Self::NO_FILE => "NO_FILE",
            Self::NOT_EXECUTABLE => "NOT_EXECUTABLE",
            Self::FAILED => "FAILED",
            Self::ABNORMAL_TERMINATION => "ABNORMAL_TERMINATION",
            Self::SPAWN_ERROR => "SPAWN_ERROR",
            Self::ALREADY_STARTED => "ALREADY_STARTED",
            Self::NOT_RUNNING => "NOT_RUNNING",
            Self::SUCCESS => "SUCCESS",
            Self::ALREADY_ADDED => "ALREADY_ADDED",
            Self::STILL_RUNNING => "STILL_RUNNING",
            Self::CANT_REREAD => "CANT_REREAD",
            _ => "UNKNOWN",
        }
    }

    /// `RPCError(code, extra)`: the string is the code's name, followed by
    /// `: extra` when there is one.
    pub fn new(code: i32, extra: Option<&str>) -> Fault {
        let name = Self::name_of(code);
        let string = match extra {
            Some(extra) => format!("{name}: {extra}"),
            None => name.to_owned(),
        };
        Fault { code, string }
    }

    /// `UNKNOWN_METHOD`.
    pub fn unknown_method() -> Fault {
        Self::new(Self::UNKNOWN_METHOD, None)
    }

    /// `INCORRECT_PARAMETERS`, bare for a wrong argument count (as Python's
    /// `TypeError` gives it) or with a reason.
    pub fn incorrect_parameters(extra: Option<&str>) -> Fault {
        Self::new(Self::INCORRECT_PARAMETERS, extra)
    }

    /// `BAD_ARGUMENTS`.
    pub fn bad_arguments() -> Fault {
        Self::new(Self::BAD_ARGUMENTS, None)
    }

    /// `SIGNATURE_UNSUPPORTED`.
    pub fn signature_unsupported() -> Fault {
        Self::new(Self::SIGNATURE_UNSUPPORTED, None)
    }

    /// `SHUTDOWN_STATE`.
    pub fn shutdown_state() -> Fault {
        Self::new(Self::SHUTDOWN_STATE, None)
    }

    /// `BAD_NAME: name`.
    pub fn bad_name(name: &str) -> Fault {
        Self::new(Self::BAD_NAME, Some(name))
    }

    /// `BAD_SIGNAL: signal`.
    pub fn bad_signal(signal: &str) -> Fault {
        Self::new(Self::BAD_SIGNAL, Some(signal))
    }

    /// `NO_FILE`, usually with the missing path.
    pub fn no_file(extra: Option<&str>) -> Fault {
        Self::new(Self::NO_FILE, extra)
    }

    /// `NOT_EXECUTABLE: why`.
    pub fn not_executable(why: &str) -> Fault {
        Self::new(Self::NOT_EXECUTABLE, Some(why))
    }

    /// `FAILED`, usually with a reason.
    pub fn failed(extra: Option<&str>) -> Fault {
        Self::new(Self::FAILED, extra)
    }

    /// `ABNORMAL_TERMINATION: name`.
    pub fn abnormal_termination(name: &str) -> Fault {
        Self::new(Self::ABNORMAL_TERMINATION, Some(name))
    }

    /// `SPAWN_ERROR: name`.
    pub fn spawn_error(name: &str) -> Fault {
        Self::new(Self::SPAWN_ERROR, Some(name))
    }

    /// `ALREADY_STARTED: name`.
    pub fn already_started(name: &str) -> Fault {
        Self::new(Self::ALREADY_STARTED, Some(name))
    }

    /// `NOT_RUNNING: name`.
    pub fn not_running(name: &str) -> Fault {
        Self::new(Self::NOT_RUNNING, Some(name))
    }

    /// `SUCCESS` (Supervisor never raises it; result structs carry its code).
    pub fn success() -> Fault {
        Self::new(Self::SUCCESS, None)
    }

    /// `ALREADY_ADDED: name`.
    pub fn already_added(name: &str) -> Fault {
        Self::new(Self::ALREADY_ADDED, Some(name))
    }

    /// `STILL_RUNNING: name`.
    pub fn still_running(name: &str) -> Fault {
        Self::new(Self::STILL_RUNNING, Some(name))
    }

    /// `CANT_REREAD: why`.
    pub fn cant_reread(why: &str) -> Fault {
        Self::new(Self::CANT_REREAD, Some(why))
    }

    /// The `{faultCode, faultString}` struct that stands for a fault inside a
    /// `system.multicall` result.
    pub fn to_value(&self) -> Value {
        Value::Struct(vec![
            ("faultCode".to_owned(), Value::Int(self.code)),
            ("faultString".to_owned(), Value::String(self.string.clone())),
        ])
    }
}

/// A published method: its full name, its documentation, how many
/// arguments it takes, and what runs it.
///
/// `help` is Supervisor's docstring for the method, verbatim: it is what
/// `system.methodHelp` returns, and `system.methodSignature` reads the types
/// from its `@param TYPE name` and `@return TYPE name` lines, as Supervisor
/// does. One table of these is a server's whole registry: [`dispatch`]
/// checks the argument count and hands `verb` to [`Methods::call`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodInfo<V = ()> {
    /// `namespace.method`, e.g. `supervisor.getPID`.
    pub name: &'static str,
    /// The documentation, with `@param`/`@return` tags.
    pub help: &'static str,
    /// `(min, max)` arguments; any other count is
    /// [`Fault::incorrect_parameters`]`(None)`, as Supervisor's Python
    /// `TypeError` gives it.
    pub params: (usize, usize),
    /// What [`Methods::call`] is given for this method (aliases share one).
    pub verb: V,
}

/// The methods a server publishes, apart from `system.*` (which [`dispatch`]
/// provides on top of them).
///
/// `call` is async because some of Supervisor's methods are deferred: a
/// `startProcess` with `wait=true` answers once the process is running. Its
/// future must be `Send` so that the server can run it on any thread; an
/// implementation may write `async fn call(...)` as long as it holds nothing
/// that is not `Send` across an `.await`.
pub trait Methods: Sync {
    /// What tells the methods apart in [`Methods::call`].
    type Verb: Copy + Send + Sync;

    /// The published methods. [`dispatch`] answers `UNKNOWN_METHOD` for any
    /// other name, and `INCORRECT_PARAMETERS` for a wrong argument count,
    /// without calling [`Methods::call`].
    fn methods(&self) -> &[MethodInfo<Self::Verb>];

    /// Runs the method of `verb` with `params` (as many as its
    /// [`MethodInfo::params`] allow).
    fn call(
        &self,
        verb: Self::Verb,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<Value, Fault>> + Send;

    /// What one request may ask of these methods ([`CallLimits::default`]
    /// unless said otherwise).
    fn limits(&self) -> CallLimits {
        CallLimits::default()
    }
}

/// Bounds on what one XML-RPC request may make the daemon do and hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallLimits {
    /// Calls in one `system.multicall` (4096): more is a fault, before any
    /// runs.
    pub max_multicall: usize,
    /// Bytes of one answer, about as written (32 MiB): a multicall stops
    /// with a fault once its results reach it, a single answer larger than
    /// it is a fault instead.
    pub max_response: usize,
}

impl Default for CallLimits {
    fn default() -> Self {
        CallLimits {
            max_multicall: 4096,
            max_response: 32 << 20,
        }
    }
}

impl CallLimits {
    /// Limits of `max_multicall` calls and `max_response` bytes.
    pub fn new(max_multicall: usize, max_response: usize) -> CallLimits {
        CallLimits {
            max_multicall,
            max_response,
        }
    }
}

/// The fault of an answer over [`CallLimits::max_response`].
fn too_large(limit: usize) -> Fault {
    Fault::new(
        Fault::FAILED,
        Some(&format!(
            "the answer would be larger than {limit} bytes ([http] max_response); ask for less at a time"
        )),
    )
}

/// Supervisor's `system.*` methods, with their docstrings as Python 3.11
/// returns them (`__doc__`, not dedented).
pub const SYSTEM_METHODS: [MethodInfo; 4] = [
    MethodInfo {
        name: "system.listMethods",
        help: " Return an array listing the available method names\n\n        @return array result  An array of method names available (strings).\n        ",
        params: (0, 0),
        verb: (),
    },
    MethodInfo {
        name: "system.methodHelp",
        help: " Return a string showing the method's documentation\n\n        @param string name   The name of the method.\n        @return string result The documentation for the method name.\n        ",
        params: (1, 1),
        verb: (),
    },
    MethodInfo {
        name: "system.methodSignature",
        help: " Return an array describing the method signature in the\n        form [rtype, ptype, ptype...] where rtype is the return data type\n        of the method, and ptypes are the parameter data types that the\n        method accepts in method argument order.\n\n        @param string name  The name of the method.\n        @return array result  The result.\n        ",
        params: (1, 1),
        verb: (),
    },
    MethodInfo {
        name: "system.multicall",
        help: "Process an array of calls, and return an array of\n        results. Calls should be structs of the form {'methodName':\n        string, 'params': array}. Each result will either be a\n        single-item array containing the result value, or a struct of\n        the form {'faultCode': int, 'faultString': string}. This is\n        useful when you need to make lots of small calls without lots\n        of round trips.\n\n        @param array calls  An array of call requests\n        @return array result  An array of results\n        ",
        params: (1, 1),
        verb: (),
    },
];

/// `INCORRECT_PARAMETERS` unless `min <= params.len() <= max`: what Python
/// raises for a wrong argument count.
pub fn check_arity(params: &[Value], min: usize, max: usize) -> Result<(), Fault> {
    if (min..=max).contains(&params.len()) {
        Ok(())
    } else {
        Err(Fault::incorrect_parameters(None))
    }
}

/// Handles one request body: `(200, response or fault)` for a call, or
/// `(400, plain-text reason)` for a body that is not an XML-RPC call (as
/// supervisord, which answers 400 to unparsable requests).
///
/// The 200 body is `text/xml`; the HTTP layer sets the headers.
pub async fn handle<M: Methods>(body: &[u8], m: &M) -> (u16, Vec<u8>) {
    let call = match parse_call(body) {
        Ok(call) => call,
        Err(e) => return (400, format!("{e}\n").into_bytes()),
    };
    let max = m.limits().max_response;
    match dispatch(m, &call.method, call.params).await {
        Ok(value) if value.encoded_len() > max => {
            let fault = too_large(max);
            (200, write_fault(fault.code, &fault.string))
        }
        Ok(value) => (200, write_response(&value)),
        Err(fault) => (200, write_fault(fault.code, &fault.string)),
    }
}

/// Runs one call: `system.*` here, anything in `m`'s table through
/// [`Methods::call`], and `UNKNOWN_METHOD` for the rest.
pub async fn dispatch<M: Methods>(m: &M, method: &str, params: Vec<Value>) -> Result<Value, Fault> {
    if method == "system.multicall" {
        check_arity(&params, 1, 1)?;
        let calls = params.into_iter().next().unwrap_or(Value::Nil);
        return multicall(m, calls).await;
    }
    call_one(m, method, params).await
}

/// Any call but `system.multicall`.
async fn call_one<M: Methods>(m: &M, method: &str, params: Vec<Value>) -> Result<Value, Fault> {
    match method {
        "system.listMethods" => {
            check_arity(&params, 0, 0)?;
            Ok(list_methods(m.methods()))
        }
        "system.methodHelp" => {
            check_arity(&params, 1, 1)?;
            method_help(m.methods(), params[0].as_str())
        }
        "system.methodSignature" => {
            check_arity(&params, 1, 1)?;
            method_signature(m.methods(), params[0].as_str())
        }
        _ => match m.methods().iter().find(|info| info.name == method) {
            Some(info) => {
                check_arity(&params, info.params.0, info.params.1)?;
                m.call(info.verb, params).await
            }
            None => Err(Fault::unknown_method()),
        },
    }
}

/// `system.multicall(calls)` as Supervisor implements it, which is not what
/// its docstring (or the multicall spec) says: each result is the method's
/// raw return value, not a one-element array, or a `{faultCode,
/// faultString}` struct. Calls run one after another, each to completion
/// (deferred ones included), in order.
///
/// Where Supervisor would crash with a Python exception (a non-array `calls`,
/// an entry that is not a struct, a `methodName` that is not a string,
/// `params` that are not an array), this answers `INCORRECT_PARAMETERS` with
/// a reason instead.
async fn multicall<M: Methods>(m: &M, calls: Value) -> Result<Value, Fault> {
    let Value::Array(calls) = calls else {
        return Err(Fault::incorrect_parameters(Some(
            "system.multicall takes an array of calls",
        )));
    };
    let limits = m.limits();
    if calls.len() > limits.max_multicall {
        return Err(Fault::incorrect_parameters(Some(&format!(
            "system.multicall takes at most {} calls ([http] max_multicall); this one has {}",
            limits.max_multicall,
            calls.len()
        ))));
    }
    let mut results = Vec::with_capacity(calls.len());
    // What the answer would take, so that many calls with large answers
    // (getAllProcessInfo, again and again) stop before they are held.
    let mut size = 0usize;
    for call in calls {
        let result = match multicall_entry(call) {
            Ok((name, params)) => call_one(m, &name, params).await,
            Err(fault) => Err(fault),
        };
        let value = result.unwrap_or_else(|fault| fault.to_value());
        size = size.saturating_add(value.encoded_len());
        if size > limits.max_response {
            return Err(too_large(limits.max_response));
        }
        results.push(value);
    }
    Ok(Value::Array(results))
}

/// The method name and parameters of one `system.multicall` entry.
fn multicall_entry(call: Value) -> Result<(String, Vec<Value>), Fault> {
    let Value::Struct(members) = call else {
        return Err(Fault::incorrect_parameters(Some(
            "a system.multicall call must be a struct",
        )));
    };
    // Last one wins, as in the Python dict the struct becomes.
    let mut name = None;
    let mut params = None;
    for (key, value) in members {
        match key.as_str() {
            "methodName" => name = Some(value),
            "params" => params = Some(value),
            _ => {}
        }
    }
    let name = match name {
        // Python's `call.get('methodName')` is None for a nil name too.
        None | Some(Value::Nil) => return Err(Fault::incorrect_parameters(Some("No methodName"))),
        Some(Value::String(name)) => name,
        Some(_) => {
            return Err(Fault::incorrect_parameters(Some(
                "methodName must be a string",
            )));
        }
    };
    if name == "system.multicall" {
        return Err(Fault::incorrect_parameters(Some(
            "Recursive system.multicall forbidden",
        )));
    }
    let params = match params {
        None => Vec::new(),
        Some(Value::Array(params)) => params,
        // Python would splat whatever it is; a wrong type is a wrong count.
        Some(_) => return Err(Fault::incorrect_parameters(None)),
    };
    Ok((name, params))
}

/// Every published method's `(name, help)`, `system.*` included.
fn all_methods<V>(table: &[MethodInfo<V>]) -> impl Iterator<Item = (&'static str, &'static str)> {
    SYSTEM_METHODS
        .iter()
        .map(|i| (i.name, i.help))
        .chain(table.iter().map(|i| (i.name, i.help)))
}

/// `system.listMethods()`.
pub fn list_methods<V>(table: &[MethodInfo<V>]) -> Value {
    let mut names: Vec<&str> = all_methods(table).map(|(name, _)| name).collect();
    names.sort_unstable();
    names.dedup();
    Value::Array(names.into_iter().map(Value::from).collect())
}

/// `system.methodHelp(name)`: the method's documentation, or
/// `SIGNATURE_UNSUPPORTED` for an unknown name (or one that is not a string).
pub fn method_help<V>(table: &[MethodInfo<V>], name: Option<&str>) -> Result<Value, Fault> {
    all_methods(table)
        .find(|(n, _)| Some(*n) == name)
        .map(|(_, help)| Value::from(help))
        .ok_or_else(Fault::signature_unsupported)
}

/// `system.methodSignature(name)`: `[return type, parameter types...]` read
/// from the documentation's `@return` and `@param` tags (Supervisor's
/// `gettags`), or `SIGNATURE_UNSUPPORTED` for an unknown name or one without
/// `@return`.
pub fn method_signature<V>(table: &[MethodInfo<V>], name: Option<&str>) -> Result<Value, Fault> {
    let (_, help) = all_methods(table)
        .find(|(n, _)| Some(*n) == name)
        .ok_or_else(Fault::signature_unsupported)?;
    let mut rtype = None;
    let mut ptypes = Vec::new();
    for line in help.split('\n') {
        let line = line.trim();
        if !line.starts_with('@') {
            continue;
        }
        let mut words = line.split_whitespace();
        let tag = words.next().and_then(|w| w.strip_prefix('@')).unwrap_or("");
        let datatype = words.next().unwrap_or("");
        match tag {
            "return" => rtype = Some(datatype),
            "param" => ptypes.push(Value::from(datatype)),
            _ => {}
        }
    }
    let rtype = rtype.ok_or_else(Fault::signature_unsupported)?;
    let mut signature = vec![Value::from(rtype)];
    signature.extend(ptypes);
    Ok(Value::Array(signature))
}
