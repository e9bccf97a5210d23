//! Every `supervisor.*` method of `supervisor/rpcinterface.py`, over a
//! [`Face`]: the argument rules, the namespec rules, the return shapes and
//! the faults of Supervisor 4.
//!
//! Deferred methods wait the way supervisord does: `startProcess(name,
//! wait=true)` answers once the process is running (or `SPAWN_ERROR` /
//! `ABNORMAL_TERMINATION`), `stopProcess` once it is stopped; with
//! `wait=false` they answer once the process has left its state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tend_core::{ActionResult, Error, Event, Name, ProcessSpec, ProcessStatus, Signal, StateName};
use tokio::sync::broadcast;

use tend_server::state::GroupError;

use crate::files::{self, ReadError};
use crate::info::{self, namespec, result_struct};
use crate::methods::METHODS;
use crate::xmlrpc::{Fault, MethodInfo, Methods, Value, check_arity};
use crate::{Face, Mood, RemoteCommEvent, is_running};

/// How long a `wait=false` start or stop waits for the process to leave
/// its state before answering anyway.
const NOWAIT_LIMIT: Duration = Duration::from_secs(5);

/// Supervisor's `supervisor.*` namespace, ready for [`crate::xmlrpc::handle`].
#[derive(Debug, Clone)]
pub struct Rpc {
    face: Arc<Face>,
}

impl Rpc {
    /// The methods, acting on `face`.
    pub fn new(face: Arc<Face>) -> Rpc {
        Rpc { face }
    }
}

/// Supervisor's SIGNALLABLE_STATES.
fn is_signallable(s: StateName) -> bool {
    matches!(
        s,
        StateName::Running | StateName::Starting | StateName::Stopping
    )
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

/// `get_execv_args` and `check_execv_args`: the program must exist and be
/// executable before a start is attempted (`NO_FILE`, `NOT_EXECUTABLE`).
fn check_command(spec: &ProcessSpec) -> Result<(), Fault> {
    use std::os::unix::fs::PermissionsExt;
    let Some(program) = spec.command.first() else {
        return Err(Fault::no_file(Some("can't find command ''")));
    };
    let found: Option<(PathBuf, std::fs::Metadata)> = if program.contains('/') {
        let path = match (&spec.cwd, Path::new(program).is_relative()) {
            (Some(dir), true) => dir.join(program),
            _ => PathBuf::from(program),
        };
        std::fs::metadata(&path)
            .ok()
            .map(|m| (PathBuf::from(program), m))
    } else {
        let path = spec
            .env
            .get("PATH")
            .cloned()
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_else(|| "/bin:/usr/bin".to_string());
        path.split(':')
            .map(|dir| Path::new(dir).join(program))
            .find_map(|p| std::fs::metadata(&p).ok().map(|m| (p, m)))
    };
    let Some((path, meta)) = found else {
        let why = format!("can't find command {}", py_repr(program));
        return Err(Fault::no_file(Some(&why)));
    };
    let shown = py_repr(&path.display().to_string());
    if meta.is_dir() {
        return Err(Fault::not_executable(&format!(
            "command at {shown} is a directory"
        )));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(Fault::not_executable(&format!(
            "command at {shown} is not executable"
        )));
    }
    if nix::unistd::access(&path, nix::unistd::AccessFlags::X_OK).is_err() {
        return Err(Fault::not_executable(&format!(
            "no permission to run command {shown}"
        )));
    }
    Ok(())
}

fn shutting_down(_: Error) -> Fault {
    Fault::shutdown_state()
}

/// The fault for a failed start.
fn start_fault(spec: &str, e: Error) -> Fault {
    match e {
        Error::StartFailed { .. } => Fault::spawn_error(spec),
        Error::Interrupted { .. } => Fault::abnormal_termination(spec),
        Error::ShuttingDown => Fault::shutdown_state(),
        e => Fault::failed(Some(&e.to_string())),
    }
}

/// The fault for a failed stop.
fn stop_fault(e: Error) -> Fault {
    match e {
        Error::ShuttingDown => Fault::shutdown_state(),
        e => Fault::failed(Some(&e.to_string())),
    }
}

/// The fault for a failed signal.
fn signal_fault(spec: &str, e: Error) -> Fault {
    match e {
        Error::NotRunning(_) => Fault::not_running(spec),
        Error::ShuttingDown => Fault::shutdown_state(),
        e => Fault::failed(Some(&e.to_string())),
    }
}

/// What a batch did to each process, by name.
fn by_name(results: Vec<ActionResult>) -> BTreeMap<Name, Result<tend_core::Outcome, Error>> {
    results.into_iter().map(|r| (r.name, r.result)).collect()
}

#[derive(Clone, Copy)]
enum Act {
    Start,
    Stop,
}

impl Rpc {
    fn face(&self) -> &Face {
        &self.face
    }

    async fn all(&self) -> Result<Vec<ProcessStatus>, Fault> {
        self.face.supervisor().status().await.map_err(shutting_down)
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

    /// Starts or stops `names` and answers once each has left its state (a
    /// `wait=false` call). A spawn that fails at once is `SPAWN_ERROR`.
    async fn act_nowait(&self, names: Vec<Name>, act: Act) -> BTreeMap<Name, Result<(), Fault>> {
        let sup = self.face.supervisor().clone();
        let mut rx = sup.subscribe();
        let mut pending: BTreeSet<Name> = names.iter().cloned().collect();
        let mut out: BTreeMap<Name, Result<(), Fault>> =
            names.iter().map(|n| (n.clone(), Ok(()))).collect();
        let mut task = tokio::spawn(async move {
            match act {
                Act::Start => sup.start_many(names).await,
                Act::Stop => sup.stop_many(names).await,
            }
        });
        let limit = tokio::time::sleep(NOWAIT_LIMIT);
        tokio::pin!(limit);
        while !pending.is_empty() {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(Event::Spawned { name, .. }) | Ok(Event::StateChanged { name, .. }) => {
                        pending.remove(&name);
                    }
                    Ok(Event::SpawnFailed { name, .. }) => {
                        if pending.remove(&name) {
                            let spec = name.to_string();
                            out.insert(name, Err(Fault::spawn_error(&spec)));
                        }
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                // The batch finished: nothing more will change.
                _ = &mut task => break,
                _ = &mut limit => break,
            }
        }
        out
    }

    async fn start_process(&self, spec: &str, wait: bool) -> Result<Value, Fault> {
        let all = self.all().await?;
        match resolve(&all, spec)? {
            Target::Group(g) => self.start_many(Self::members(&all, &g)?, wait).await,
            Target::Process(s) => {
                self.start_one(&s, spec, wait).await?;
                Ok(Value::Bool(true))
            }
        }
    }

    fn precheck_start(&self, s: &ProcessStatus, spec: &str) -> Result<(), Fault> {
        if let Some(pc) = self.face.config().process_config(s.name.as_str()) {
            check_command(&pc.spec)?;
        }
        if is_running(s.state) {
            return Err(Fault::already_started(spec));
        }
        Ok(())
    }

    async fn start_one(&self, s: &ProcessStatus, spec: &str, wait: bool) -> Result<(), Fault> {
        self.precheck_start(s, spec)?;
        if wait {
            let results = self
                .face
                .supervisor()
                .start_many(vec![s.name.clone()])
                .await
                .map_err(shutting_down)?;
            match by_name(results).remove(&s.name) {
                Some(Ok(_)) => Ok(()),
                Some(Err(e)) => Err(start_fault(spec, e)),
                None => Err(Fault::failed(Some(spec))),
            }
        } else {
            let mut r = self.act_nowait(vec![s.name.clone()], Act::Start).await;
            match r.remove(&s.name) {
                Some(Err(_)) => Err(Fault::spawn_error(spec)),
                _ => Ok(()),
            }
        }
    }

    /// `make_allfunc` for starts: the processes that are not running.
    async fn start_many(&self, procs: Vec<ProcessStatus>, wait: bool) -> Result<Value, Fault> {
        let mut results = Vec::new();
        let mut go = Vec::new();
        for s in procs.iter().filter(|s| !is_running(s.state)) {
            match self.precheck_start(s, &namespec(s)) {
                Ok(()) => go.push(s),
                Err(f) => results.push(result_struct(s.name.as_str(), s.group.as_str(), &Err(f))),
            }
        }
        let names: Vec<Name> = go.iter().map(|s| s.name.clone()).collect();
        let outcomes: BTreeMap<Name, Result<(), Fault>> = if names.is_empty() {
            BTreeMap::new()
        } else if wait {
            let results = self
                .face
                .supervisor()
                .start_many(names)
                .await
                .map_err(shutting_down)?;
            by_name(results)
                .into_iter()
                .map(|(n, r)| {
                    let spec = go
                        .iter()
                        .find(|s| s.name == n)
                        .map_or_else(|| n.to_string(), |s| namespec(s));
                    (n, r.map(|_| ()).map_err(|e| start_fault(&spec, e)))
                })
                .collect()
        } else {
            self.act_nowait(names, Act::Start).await
        };
        for s in go {
            let r = outcomes.get(&s.name).cloned().unwrap_or(Ok(()));
            results.push(result_struct(s.name.as_str(), s.group.as_str(), &r));
        }
        Ok(Value::Array(results))
    }

    async fn stop_process(&self, spec: &str, wait: bool) -> Result<Value, Fault> {
        let all = self.all().await?;
        match resolve(&all, spec)? {
            Target::Group(g) => self.stop_many(Self::members(&all, &g)?, wait).await,
            Target::Process(s) => {
                if !is_running(s.state) {
                    return Err(Fault::not_running(spec));
                }
                let r = self.stop_names(vec![s.name.clone()], wait).await?;
                r.get(&s.name).cloned().unwrap_or(Ok(()))?;
                Ok(Value::Bool(true))
            }
        }
    }

    async fn stop_names(
        &self,
        names: Vec<Name>,
        wait: bool,
    ) -> Result<BTreeMap<Name, Result<(), Fault>>, Fault> {
        if names.is_empty() {
            return Ok(BTreeMap::new());
        }
        if !wait {
            return Ok(self.act_nowait(names, Act::Stop).await);
        }
        let results = self
            .face
            .supervisor()
            .stop_many(names)
            .await
            .map_err(shutting_down)?;
        Ok(by_name(results)
            .into_iter()
            .map(|(n, r)| (n, r.map(|_| ()).map_err(stop_fault)))
            .collect())
    }

    /// `make_allfunc` for stops: the processes that are running.
    async fn stop_many(&self, procs: Vec<ProcessStatus>, wait: bool) -> Result<Value, Fault> {
        let go: Vec<&ProcessStatus> = procs.iter().filter(|s| is_running(s.state)).collect();
        let outcomes = self
            .stop_names(go.iter().map(|s| s.name.clone()).collect(), wait)
            .await?;
        Ok(Value::Array(
            go.iter()
                .map(|s| {
                    let r = outcomes.get(&s.name).cloned().unwrap_or(Ok(()));
                    result_struct(s.name.as_str(), s.group.as_str(), &r)
                })
                .collect(),
        ))
    }

    async fn signal_process(&self, spec: &str, signal: &Value) -> Result<Value, Fault> {
        let all = self.all().await?;
        match resolve(&all, spec)? {
            Target::Group(g) => self.signal_many(Self::members(&all, &g)?, signal).await,
            Target::Process(s) => {
                let sig = parse_signal(signal)?;
                if !is_signallable(s.state) {
                    return Err(Fault::not_running(spec));
                }
                let results = self
                    .face
                    .supervisor()
                    .signal_many(vec![s.name.clone()], sig)
                    .await
                    .map_err(shutting_down)?;
                match by_name(results).remove(&s.name) {
                    Some(Err(e)) => Err(signal_fault(spec, e)),
                    _ => Ok(Value::Bool(true)),
                }
            }
        }
    }

    /// `make_allfunc` for signals: the processes in a signallable state.
    async fn signal_many(&self, procs: Vec<ProcessStatus>, signal: &Value) -> Result<Value, Fault> {
        let go: Vec<&ProcessStatus> = procs.iter().filter(|s| is_signallable(s.state)).collect();
        let sig = match parse_signal(signal) {
            Ok(sig) => sig,
            Err(f) => {
                return Ok(Value::Array(
                    go.iter()
                        .map(|s| result_struct(s.name.as_str(), s.group.as_str(), &Err(f.clone())))
                        .collect(),
                ));
            }
        };
        let outcomes = if go.is_empty() {
            BTreeMap::new()
        } else {
            let names = go.iter().map(|s| s.name.clone()).collect();
            by_name(
                self.face
                    .supervisor()
                    .signal_many(names, sig)
                    .await
                    .map_err(shutting_down)?,
            )
        };
        Ok(Value::Array(
            go.iter()
                .map(|s| {
                    let r = match outcomes.get(&s.name) {
                        Some(Err(e)) => Err(signal_fault(&namespec(s), e.clone())),
                        _ => Ok(()),
                    };
                    result_struct(s.name.as_str(), s.group.as_str(), &r)
                })
                .collect(),
        ))
    }

    /// A process (not a group) named by `spec`.
    async fn one_process(&self, spec: &str) -> Result<ProcessStatus, Fault> {
        let all = self.all().await?;
        match resolve(&all, spec)? {
            Target::Process(s) => Ok(*s),
            Target::Group(_) => Err(Fault::bad_name(spec)),
        }
    }

    async fn read_process_log(&self, params: &[Value], stderr: bool) -> Result<Value, Fault> {
        let spec = string(&params[0], "name")?;
        let s = self.one_process(&spec).await?;
        // Configured but not created yet (no output so far) reads as empty.
        let Some(path) = self.face().logfile(s.name.as_str(), stderr) else {
            return Err(Fault::no_file(None));
        };
        read_log(path, integer(&params[1])?, integer(&params[2])?).await
    }

    async fn tail_process_log(&self, params: &[Value], stderr: bool) -> Result<Value, Fault> {
        let spec = string(&params[0], "name")?;
        let s = self.one_process(&spec).await?;
        let (offset, length) = (integer(&params[1])?, integer(&params[2])?);
        let Some(path) = self
            .face()
            .logfile(s.name.as_str(), stderr)
            .filter(|p| p.exists())
        else {
            return Ok(Value::Array(vec![
                Value::from(""),
                Value::Int(0),
                Value::Bool(false),
            ]));
        };
        let (bytes, offset, overflow) =
            blocking(move || files::tail_file(&path, offset, length)).await?;
        Ok(Value::Array(vec![
            Value::String(files::text(bytes)),
            Value::int_saturating(offset),
            Value::Bool(overflow),
        ]))
    }

    /// Clears both log files of a process; `FAILED: spec` when one cannot be.
    async fn clear_logs(&self, s: &ProcessStatus, spec: &str) -> Result<(), Fault> {
        let paths: Vec<PathBuf> = [false, true]
            .into_iter()
            .filter_map(|stderr| self.face().logfile(s.name.as_str(), stderr))
            .collect();
        let ok = blocking(move || paths.iter().all(|p| files::clear(p).is_ok())).await?;
        // The writers count what they wrote to decide when to rotate.
        let _ = self.face.supervisor().reopen_logs();
        if ok {
            Ok(())
        } else {
            Err(Fault::failed(Some(spec)))
        }
    }

    async fn dispatch(&self, method: &str, params: Vec<Value>) -> Result<Value, Fault> {
        let p = &params;
        match method {
            "getAPIVersion" | "getVersion" => Ok(Value::from(crate::API_VERSION)),
            "getSupervisorVersion" => Ok(Value::from(crate::SUPERVISOR_VERSION)),
            "getIdentification" => Ok(Value::from(self.face().identification())),
            "getState" => {
                let (code, name) = self.face().mood().code();
                Ok(Value::structure([
                    ("statecode", Value::Int(code)),
                    ("statename", Value::from(name)),
                ]))
            }
            "getPID" => Ok(Value::int_saturating(i64::from(std::process::id()))),
            "readLog" | "readMainLog" => {
                let (offset, length) = (integer(&p[0])?, integer(&p[1])?);
                let Some(path) = self.face().main_log().cloned() else {
                    return Err(Fault::no_file(None));
                };
                if !path.exists() {
                    return Err(Fault::no_file(Some(&path.display().to_string())));
                }
                read_log(path, offset, length).await
            }
            "clearLog" => {
                let Some(path) = self.face().main_log().cloned().filter(|p| p.exists()) else {
                    return Err(Fault::no_file(None));
                };
                match blocking(move || files::clear(&path)).await? {
                    Ok(()) => Ok(Value::Bool(true)),
                    Err(_) => Err(Fault::failed(None)),
                }
            }
            "shutdown" => {
                self.face().request_shutdown();
                Ok(Value::Bool(true))
            }
            "restart" => {
                tend_server::ConfigState::begin_restart(self.face.config());
                Ok(Value::Bool(true))
            }
            "reloadConfig" => match self.face().config().reread().await {
                Ok(c) => {
                    let names =
                        |v: Vec<String>| Value::Array(v.into_iter().map(Value::from).collect());
                    Ok(Value::Array(vec![Value::Array(vec![
                        names(c.added),
                        names(c.changed),
                        names(c.removed),
                    ])]))
                }
                Err(why) => Err(Fault::cant_reread(&why)),
            },
            "addProcessGroup" | "removeProcessGroup" => {
                let name = string(&p[0], "name")?;
                let r = if method == "addProcessGroup" {
                    self.face().config().add_group(&name).await
                } else {
                    self.face().config().remove_group(&name).await
                };
                match r {
                    Ok(()) => Ok(Value::Bool(true)),
                    Err(GroupError::BadName(_)) => Err(Fault::bad_name(&name)),
                    Err(GroupError::AlreadyAdded(_)) => Err(Fault::already_added(&name)),
                    Err(GroupError::StillRunning(_)) => Err(Fault::still_running(&name)),
                    Err(GroupError::ShuttingDown) => Err(Fault::shutdown_state()),
                    Err(e) => Err(Fault::failed(Some(&e.to_string()))),
                }
            }
            "startProcess" => {
                self.start_process(&string(&p[0], "name")?, truthy(p.get(1)))
                    .await
            }
            "startProcessGroup" => {
                let all = self.all().await?;
                let members = Self::members(&all, &string(&p[0], "name")?)?;
                self.start_many(members, truthy(p.get(1))).await
            }
            "startAllProcesses" => {
                let all = self.all().await?;
                self.start_many(self.everything(&all), truthy(p.first()))
                    .await
            }
            "stopProcess" => {
                self.stop_process(&string(&p[0], "name")?, truthy(p.get(1)))
                    .await
            }
            "stopProcessGroup" => {
                let all = self.all().await?;
                let members = Self::members(&all, &string(&p[0], "name")?)?;
                self.stop_many(members, truthy(p.get(1))).await
            }
            "stopAllProcesses" => {
                let all = self.all().await?;
                self.stop_many(self.everything(&all), truthy(p.first()))
                    .await
            }
            "signalProcess" => self.signal_process(&string(&p[0], "name")?, &p[1]).await,
            "signalProcessGroup" => {
                let all = self.all().await?;
                let members = Self::members(&all, &string(&p[0], "name")?)?;
                self.signal_many(members, &p[1]).await
            }
            "signalAllProcesses" => {
                let all = self.all().await?;
                self.signal_many(self.everything(&all), &p[0]).await
            }
            "getAllConfigInfo" => {
                let all = self.all().await?;
                let mut out: Vec<(String, Value)> = Vec::new();
                for (g, inuse) in self.face().config().available(&all) {
                    for pc in &g.processes {
                        out.push((pc.spec.name.to_string(), info::config_info(&g, pc, inuse)));
                    }
                }
                out.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(Value::Array(out.into_iter().map(|(_, v)| v).collect()))
            }
            "getProcessInfo" => {
                let spec = string(&p[0], "name")?;
                let s = self.one_process(&spec).await?;
                Ok(self.face().config().with_procs(|procs| {
                    info::process_info(&s, procs.get(&s.name).map(|p| &**p), now())
                }))
            }
            "getAllProcessInfo" => {
                let mut all = self.all().await?;
                all.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
                let now = now();
                Ok(Value::Array(self.face().config().with_procs(|procs| {
                    all.iter()
                        .map(|s| info::process_info(s, procs.get(&s.name).map(|p| &**p), now))
                        .collect()
                })))
            }
            "readProcessStdoutLog" | "readProcessLog" => self.read_process_log(p, false).await,
            "readProcessStderrLog" => self.read_process_log(p, true).await,
            "tailProcessStdoutLog" | "tailProcessLog" => self.tail_process_log(p, false).await,
            "tailProcessStderrLog" => self.tail_process_log(p, true).await,
            "clearProcessLogs" | "clearProcessLog" => {
                let spec = string(&p[0], "name")?;
                let s = self.one_process(&spec).await?;
                self.clear_logs(&s, &spec).await?;
                Ok(Value::Bool(true))
            }
            "clearAllProcessLogs" => {
                let all = self.all().await?;
                let mut results = Vec::new();
                for s in self.everything(&all) {
                    let r = self.clear_logs(&s, &namespec(&s)).await;
                    results.push(result_struct(s.name.as_str(), s.group.as_str(), &r));
                }
                Ok(Value::Array(results))
            }
            "sendProcessStdin" => {
                let chars = match &p[1] {
                    Value::String(s) => s.clone().into_bytes(),
                    Value::Base64(b) => b.clone(),
                    other => {
                        return Err(Fault::incorrect_parameters(Some(&format!("{other:?}"))));
                    }
                };
                let spec = string(&p[0], "name")?;
                let s = self.one_process(&spec).await?;
                if s.pid.is_none() || !s.state.is_up() || s.state == StateName::Stopping {
                    return Err(Fault::not_running(&spec));
                }
                match self.face.supervisor().send_stdin(s.name.as_str(), chars) {
                    Ok(()) => Ok(Value::Bool(true)),
                    Err(Error::NotRunning(_)) => Err(Fault::not_running(&spec)),
                    Err(Error::NoStdin(_)) => Err(Fault::no_file(Some(&spec))),
                    Err(Error::ShuttingDown) => Err(Fault::shutdown_state()),
                    Err(e) => Err(Fault::failed(Some(&e.to_string()))),
                }
            }
            "sendRemoteCommEvent" => {
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
            _ => Err(Fault::unknown_method()),
        }
    }
}

/// How many arguments each method takes: `(min, max)`.
fn arity(method: &str) -> (usize, usize) {
    match method {
        "readLog"
        | "readMainLog"
        | "signalProcess"
        | "signalProcessGroup"
        | "sendProcessStdin"
        | "sendRemoteCommEvent" => (2, 2),
        "addProcessGroup" | "removeProcessGroup" | "getProcessInfo" | "clearProcessLogs"
        | "clearProcessLog" | "signalAllProcesses" => (1, 1),
        "startProcess" | "startProcessGroup" | "stopProcess" | "stopProcessGroup" => (1, 2),
        "startAllProcesses" | "stopAllProcesses" => (0, 1),
        "readProcessStdoutLog"
        | "readProcessLog"
        | "readProcessStderrLog"
        | "tailProcessStdoutLog"
        | "tailProcessLog"
        | "tailProcessStderrLog" => (3, 3),
        _ => (0, 0),
    }
}

fn parse_signal(v: &Value) -> Result<Signal, Fault> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => return Err(Fault::bad_signal(&format!("{other:?}"))),
    };
    text.parse().map_err(|_| Fault::bad_signal(&text))
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

async fn read_log(path: PathBuf, offset: i64, length: i64) -> Result<Value, Fault> {
    match blocking(move || files::read_file(&path, offset, length)).await? {
        Ok(bytes) => Ok(Value::String(files::text(bytes))),
        Err(ReadError::BadArguments) => Err(Fault::bad_arguments()),
        Err(ReadError::Failed) => Err(Fault::failed(None)),
    }
}

impl Methods for Rpc {
    fn methods(&self) -> &[MethodInfo] {
        &METHODS
    }

    async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, Fault> {
        let Some(short) = method.strip_prefix("supervisor.") else {
            return Err(Fault::unknown_method());
        };
        let (min, max) = arity(short);
        check_arity(&params, min, max)?;
        if short != "sendRemoteCommEvent" && self.face.mood() != Mood::Running {
            return Err(Fault::shutdown_state());
        }
        self.dispatch(short, params).await
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
    fn every_published_method_has_an_arity() {
        for m in METHODS.iter() {
            let short = m.name.trim_start_matches("supervisor.");
            let (min, max) = arity(short);
            assert!(min <= max, "{short}");
        }
    }
}
