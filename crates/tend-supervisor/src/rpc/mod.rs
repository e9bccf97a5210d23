//! Every `supervisor.*` method of `supervisor/rpcinterface.py`, over a
//! [`Face`]: the argument rules, the namespec rules, the return shapes and
//! the faults of Supervisor 4.
//!
//! Deferred methods wait the way supervisord does: `startProcess(name,
//! wait=true)` answers once the process is running (or `SPAWN_ERROR` /
//! `ABNORMAL_TERMINATION`), `stopProcess` once it is stopped; with
//! `wait=false` they answer once the process has left its state.

mod config;
mod logs;
mod process;

use std::sync::Arc;
use std::time::Duration;

use tend_core::ProcessStatus;
use tend_server::access::{Caller, Denied, Right};

use crate::files;
use crate::methods::METHODS;
pub use crate::methods::Verb;
use crate::xmlrpc::{Fault, MethodInfo, Methods, Value};
use crate::{Face, Mood, RemoteCommEvent};
use process::shutting_down;

/// How long a `wait=false` start or stop waits for the process to leave
/// its state before answering anyway.
const NOWAIT_LIMIT: Duration = Duration::from_secs(5);

/// Supervisor's `supervisor.*` namespace, ready for [`crate::xmlrpc::handle`],
/// for one caller: every method checks what it may do, and sees only the
/// processes it may view (the others are `BAD_NAME`).
#[derive(Debug, Clone)]
pub struct Rpc {
    face: Arc<Face>,
    caller: Caller,
}

impl Rpc {
    /// The methods, acting on `face` for the daemon itself (every right).
    pub fn new(face: Arc<Face>) -> Rpc {
        Rpc::for_caller(face, Caller::internal())
    }

    /// The methods, acting on `face` for `caller`.
    pub fn for_caller(face: Arc<Face>, caller: Caller) -> Rpc {
        Rpc { face, caller }
    }

    /// Who is calling.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }
}

/// A refusal as Supervisor's closest fault: `FAILED: permission denied:
/// alice may not control db: needs "control"` (supervisorctl prints it for
/// stop, signal and the other commands that show a fault's text).
pub(crate) fn denied_fault(d: &Denied) -> Fault {
    Fault::failed(Some(&format!("permission denied: {d}")))
}

/// What a method on the whole daemon needs: the right over every process,
/// the action as refusals word it, and what the audit line calls it.
fn global_need(verb: Verb) -> Option<(Right, &'static str, &'static str)> {
    Some(match verb {
        Verb::ReadLog => (Right::Logs, "read the main log", ""),
        Verb::ClearLog => (Right::Admin, "clear the main log", "clear the main log"),
        Verb::Shutdown => (Right::Admin, "shut the daemon down", "shutdown"),
        Verb::Restart => (Right::Reload, "restart the daemon", "restart the daemon"),
        Verb::ReloadConfig => (Right::Reload, "reread the config file", "reread"),
        Verb::AddProcessGroup => (
            Right::Reload,
            "add groups from the config file",
            "add group",
        ),
        Verb::RemoveProcessGroup => (
            Right::Reload,
            "remove groups of the config file",
            "remove group",
        ),
        Verb::SendRemoteCommEvent => (Right::Control, "send events to the event listeners", ""),
        _ => return None,
    })
}

/// What a namespec names.
enum Target {
    Process(Box<ProcessStatus>),
    Group(String),
}

/// `split_namespec`: `group:name`, `group:*`/`group:` (the whole group) or
/// `name` (the process `name` of the group `name`).
pub(crate) fn split_namespec(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once(':') {
        Some((group, "" | "*")) => (group, None),
        Some((group, name)) => (group, Some(name)),
        None => (spec, Some(spec)),
    }
}

/// `_getGroupAndProcess`.
fn resolve(all: &[ProcessStatus], spec: &str) -> Result<Target, Fault> {
    let (group, name) = split_namespec(spec);
    if !all.iter().any(|s| s.group.as_str() == group) {
        return Err(Fault::bad_name(spec));
    }
    match name {
        None => Ok(Target::Group(group.to_string())),
        Some(name) => all
            .iter()
            .find(|s| s.group.as_str() == group && s.name.as_str() == name)
            .map(|s| Target::Process(Box::new(s.clone())))
            .ok_or_else(|| Fault::bad_name(spec)),
    }
}

/// A string argument; Supervisor would fail with a Python error on anything else.
fn string(v: &Value, what: &str) -> Result<String, Fault> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Base64(b) => Ok(files::text(b.clone())),
        _ => Err(Fault::incorrect_parameters(Some(&format!(
            "{what} must be a string, not {}",
            v.type_name()
        )))),
    }
}

/// An integer argument as Python's `int()` reads it.
fn integer(v: &Value) -> Result<i64, Fault> {
    match v {
        Value::Int(i) => Ok(i64::from(*i)),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::String(s) => s.trim().parse().map_err(|_| Fault::bad_arguments()),
        _ => Err(Fault::bad_arguments()),
    }
}

/// A `wait` argument, by Python's truth rules.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::Int(i)) => *i != 0,
        Some(Value::Double(d)) => *d != 0.0,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Struct(m)) => !m.is_empty(),
        Some(Value::Base64(b)) => !b.is_empty(),
        Some(Value::DateTime(_)) => true,
        Some(Value::Nil) => false,
    }
}

/// Python's `repr` of a string, as `%r` puts it in Supervisor's messages.
fn py_repr(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') {
        format!("\"{s}\"")
    } else {
        format!("'{}'", s.replace('\'', "\\'"))
    }
}

impl Rpc {
    fn face(&self) -> &Face {
        &self.face
    }

    /// Every process the caller may view: the only ones that exist for it.
    async fn all(&self) -> Result<Vec<ProcessStatus>, Fault> {
        let all = self
            .face
            .supervisor()
            .status()
            .await
            .map_err(shutting_down)?;
        Ok(self.caller.visible(all))
    }

    /// `right` on `s`, or the fault (and the audit line) of the refusal.
    pub(crate) fn allow(&self, right: Right, s: &ProcessStatus, action: &str) -> Result<(), Fault> {
        self.caller.require(right, &s.name, &s.group).map_err(|d| {
            if right != Right::Logs && right != Right::View {
                self.caller
                    .audit_denied(action, &crate::info::namespec(s), &d);
            }
            denied_fault(&d)
        })
    }

    /// Writes the audit line of `action` on `target`.
    pub(crate) fn audit<T>(&self, action: &str, target: &str, r: &Result<T, Fault>) {
        match r {
            Ok(_) => self.caller.audit(action, target, &"ok"),
            Err(f) => self
                .caller
                .audit(action, target, &format_args!("failed ({})", f.string)),
        }
    }

    /// Processes of a group in Supervisor's order (by priority); `BAD_NAME`
    /// when there is no such group.
    fn members(all: &[ProcessStatus], group: &str) -> Result<Vec<ProcessStatus>, Fault> {
        let mut v: Vec<ProcessStatus> = all
            .iter()
            .filter(|s| s.group.as_str() == group)
            .cloned()
            .collect();
        if v.is_empty() {
            return Err(Fault::bad_name(group));
        }
        v.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
        Ok(v)
    }

    /// Every process in Supervisor's order: groups by priority, then the
    /// processes of each by priority.
    fn everything(&self, all: &[ProcessStatus]) -> Vec<ProcessStatus> {
        let prio = self.face.config().group_priorities(all);
        let mut v: Vec<(i32, ProcessStatus)> = all
            .iter()
            .map(|s| (prio.get(&s.group).copied().unwrap_or(s.priority), s.clone()))
            .collect();
        v.sort_by(|(ga, a), (gb, b)| {
            (ga, &a.group, a.priority, &a.name).cmp(&(gb, &b.group, b.priority, &b.name))
        });
        v.into_iter().map(|(_, s)| s).collect()
    }

    /// A process (not a group) named by `spec`.
    async fn one_process(&self, spec: &str) -> Result<ProcessStatus, Fault> {
        let all = self.all().await?;
        match resolve(&all, spec)? {
            Target::Process(s) => Ok(*s),
            Target::Group(_) => Err(Fault::bad_name(spec)),
        }
    }

    /// One line per verb; the handlers are grouped by what they act on:
    /// processes (`process.rs`), log files (`logs.rs`), groups and the
    /// config (`config.rs`), and the rest here.
    async fn dispatch(&self, verb: Verb, params: Vec<Value>) -> Result<Value, Fault> {
        let p = &params;
        match verb {
            Verb::GetApiVersion => Ok(Value::from(crate::API_VERSION)),
            Verb::GetSupervisorVersion => Ok(Value::from(crate::SUPERVISOR_VERSION)),
            Verb::GetIdentification => Ok(Value::from(self.face().identification())),
            Verb::GetState => Ok(self.state()),
            Verb::GetPid => Ok(Value::int_saturating(i64::from(std::process::id()))),
            Verb::ReadLog => self.read_main_log(p).await,
            Verb::ClearLog => self.clear_main_log().await,
            Verb::Shutdown => {
                self.face().request_shutdown();
                Ok(Value::Bool(true))
            }
            Verb::Restart => {
                tend_server::ConfigState::begin_restart(self.face.config());
                Ok(Value::Bool(true))
            }
            Verb::ReloadConfig => self.reread().await,
            Verb::AddProcessGroup => self.change_group(&string(&p[0], "name")?, true).await,
            Verb::RemoveProcessGroup => self.change_group(&string(&p[0], "name")?, false).await,
            Verb::StartProcess => {
                self.start_process(&string(&p[0], "name")?, truthy(p.get(1)))
                    .await
            }
            Verb::StartProcessGroup => {
                let members = self.group(&p[0]).await?;
                self.start_group(members, truthy(p.get(1))).await
            }
            Verb::StartAllProcesses => {
                // What the caller may not start is left out, as running
                // processes are (supervisorctl has no words for a refused
                // start in a list).
                let all = self.all().await?;
                let (go, _) = self.split(self.everything(&all), Right::Control, "start");
                self.start_many(go, truthy(p.first())).await
            }
            Verb::StopProcess => {
                self.stop_process(&string(&p[0], "name")?, truthy(p.get(1)))
                    .await
            }
            Verb::StopProcessGroup => {
                let members = self.group(&p[0]).await?;
                self.stop_many(members, truthy(p.get(1))).await
            }
            Verb::StopAllProcesses => {
                let all = self.all().await?;
                self.stop_many(self.everything(&all), truthy(p.first()))
                    .await
            }
            Verb::SignalProcess => self.signal_process(&string(&p[0], "name")?, &p[1]).await,
            Verb::SignalProcessGroup => {
                let members = self.group(&p[0]).await?;
                self.signal_many(members, &p[1]).await
            }
            Verb::SignalAllProcesses => {
                let all = self.all().await?;
                self.signal_many(self.everything(&all), &p[0]).await
            }
            Verb::GetAllConfigInfo => self.all_config_info().await,
            Verb::GetProcessInfo => self.process_info(&string(&p[0], "name")?).await,
            Verb::GetAllProcessInfo => self.all_process_info().await,
            Verb::ReadProcessStdoutLog => self.read_process_log(p, false).await,
            Verb::ReadProcessStderrLog => self.read_process_log(p, true).await,
            Verb::TailProcessStdoutLog => self.tail_process_log(p, false).await,
            Verb::TailProcessStderrLog => self.tail_process_log(p, true).await,
            Verb::ClearProcessLogs => self.clear_process_logs(&string(&p[0], "name")?).await,
            Verb::ClearAllProcessLogs => self.clear_all_process_logs().await,
            Verb::SendProcessStdin => self.send_stdin(&string(&p[0], "name")?, &p[1]).await,
            Verb::SendRemoteCommEvent => {
                let text = |v: &Value| match v {
                    Value::String(s) => s.clone(),
                    Value::Base64(b) => files::text(b.clone()),
                    other => format!("{other:?}"),
                };
                self.face().send_remote(RemoteCommEvent {
                    kind: text(&p[0]),
                    data: text(&p[1]),
                });
                Ok(Value::Bool(true))
            }
        }
    }

    /// `getState`: the mood as `{statecode, statename}`.
    fn state(&self) -> Value {
        let (code, name) = self.face().mood().code();
        Value::structure([
            ("statecode", Value::Int(code)),
            ("statename", Value::from(name)),
        ])
    }

    /// The members of the group named by `name`, in Supervisor's order.
    async fn group(&self, name: &Value) -> Result<Vec<ProcessStatus>, Fault> {
        let all = self.all().await?;
        Self::members(&all, &string(name, "name")?)
    }
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Runs file work off the daemon's thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Fault> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Fault::failed(Some(&e.to_string())))
}

impl Methods for Rpc {
    type Verb = Verb;

    fn methods(&self) -> &[MethodInfo<Verb>] {
        &METHODS
    }

    async fn call(&self, verb: Verb, params: Vec<Value>) -> Result<Value, Fault> {
        // Supervisor's `_update` check, which `sendRemoteCommEvent` skips.
        if verb != Verb::SendRemoteCommEvent && self.face.mood() != Mood::Running {
            return Err(Fault::shutdown_state());
        }
        // Every call (each entry of a `system.multicall` too) comes here:
        // an action on the whole daemon needs its right over every process;
        // the others check each process they touch.
        let Some((right, what, audited)) = global_need(verb) else {
            return self.dispatch(verb, params).await;
        };
        let target = match verb {
            Verb::AddProcessGroup | Verb::RemoveProcessGroup => params
                .first()
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            _ => String::new(),
        };
        let mut check = self.caller.require_everything(right, what);
        if verb == Verb::Restart && check.is_ok() {
            // It stops and starts every process, too.
            check = self.caller.require_everything(Right::Control, what);
        }
        if let Err(d) = check {
            if !audited.is_empty() {
                self.caller.audit_denied(audited, &target, &d);
            }
            return Err(denied_fault(&d));
        }
        let r = self.dispatch(verb, params).await;
        if !audited.is_empty() {
            self.audit(audited, &target, &r);
        }
        r
    }

    fn limits(&self) -> crate::xmlrpc::CallLimits {
        self.face.opts.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespecs_split_as_supervisor_splits_them() {
        assert_eq!(split_namespec("web"), ("web", Some("web")));
        assert_eq!(split_namespec("g:web"), ("g", Some("web")));
        assert_eq!(split_namespec("g:*"), ("g", None));
        assert_eq!(split_namespec("g:"), ("g", None));
        assert_eq!(split_namespec("g:a:b"), ("g", Some("a:b")));
    }

    #[test]
    fn repr_quotes_like_python() {
        assert_eq!(py_repr("/x"), "'/x'");
        assert_eq!(py_repr("it's"), "\"it's\"");
    }

    #[test]
    fn the_table_is_sorted_unique_and_aliases_share_their_target() {
        for pair in METHODS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} {}",
                pair[0].name,
                pair[1].name
            );
        }
        for m in METHODS.iter() {
            assert!(m.params.0 <= m.params.1, "{}", m.name);
            for other in METHODS.iter().filter(|o| o.verb == m.verb) {
                assert_eq!((other.help, other.params), (m.help, m.params), "{}", m.name);
            }
        }
    }
}
