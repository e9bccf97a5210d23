//! Starting, stopping and signalling: Supervisor's deferred `wait`
//! semantics, `make_allfunc` for groups and all, and the faults of each.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use tend_core::{ActionResult, Error, Event, Name, ProcessSpec, ProcessStatus, Signal, StateName};
use tend_server::access::Right;
use tokio::sync::broadcast;

use super::{NOWAIT_LIMIT, Rpc, Target, py_repr, resolve};
use crate::info::{namespec, result_struct};
use crate::is_running;
use crate::xmlrpc::{Fault, Value};

/// Supervisor's SIGNALLABLE_STATES.
fn is_signallable(s: StateName) -> bool {
    matches!(
        s,
        StateName::Running | StateName::Starting | StateName::Stopping
    )
}

/// `get_execv_args` and `check_execv_args`: the program must exist and be
/// executable before a start is attempted (`NO_FILE`, `NOT_EXECUTABLE`).
fn check_command(spec: &ProcessSpec) -> Result<(), Fault> {
    use std::os::unix::fs::PermissionsExt;
    // `BadCommand` (a command that does not parse, or is empty).
    if let Some(why) = &spec.spawn_error {
        return Err(Fault::not_executable(why));
    }
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

pub(super) fn shutting_down(_: Error) -> Fault {
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
pub(super) fn by_name(
    results: Vec<ActionResult>,
) -> BTreeMap<Name, Result<tend_core::Outcome, Error>> {
    results.into_iter().map(|r| (r.name, r.result)).collect()
}

#[derive(Clone, Copy)]
enum Act {
    Start,
    Stop,
}

fn parse_signal(v: &Value) -> Result<Signal, Fault> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => return Err(Fault::bad_signal(&format!("{other:?}"))),
    };
    text.parse().map_err(|_| Fault::bad_signal(&text))
}

impl Rpc {
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
                    Ok(Event::Spawned { name, .. } | Event::StateChanged { name, .. }) => {
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

    pub(super) async fn start_process(&self, spec: &str, wait: bool) -> Result<Value, Fault> {
        let all = self.all().await?;
        match resolve(&all, spec)? {
            Target::Group(g) => self.start_group(Self::members(&all, &g)?, wait).await,
            Target::Process(s) => {
                self.allow(Right::Control, &s, "start")?;
                let r = self.start_one(&s, spec, wait).await;
                self.audit("start", spec, &r);
                r?;
                Ok(Value::Bool(true))
            }
        }
    }

    /// `startProcessGroup`: the members the caller may control; a group of
    /// which it may control none is refused whole.
    pub(super) async fn start_group(
        &self,
        members: Vec<ProcessStatus>,
        wait: bool,
    ) -> Result<Value, Fault> {
        let (go, refused) = self.split(members, Right::Control, "start");
        if go.is_empty()
            && let Some(f) = refused.into_iter().next()
        {
            return Err(f);
        }
        self.start_many(go, wait).await
    }

    /// The processes the caller may use `right` on, and the faults of the
    /// others (audited as refused).
    pub(super) fn split(
        &self,
        procs: Vec<ProcessStatus>,
        right: Right,
        action: &str,
    ) -> (Vec<ProcessStatus>, Vec<Fault>) {
        let mut go = Vec::new();
        let mut refused = Vec::new();
        for s in procs {
            match self.allow(right, &s, action) {
                Ok(()) => go.push(s),
                Err(f) => refused.push(f),
            }
        }
        (go, refused)
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
    pub(super) async fn start_many(
        &self,
        procs: Vec<ProcessStatus>,
        wait: bool,
    ) -> Result<Value, Fault> {
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
            self.audit("start", &namespec(s), &r);
            results.push(result_struct(s.name.as_str(), s.group.as_str(), &r));
        }
        Ok(Value::Array(results))
    }

    pub(super) async fn stop_process(&self, spec: &str, wait: bool) -> Result<Value, Fault> {
        let all = self.all().await?;
        match resolve(&all, spec)? {
            Target::Group(g) => self.stop_many(Self::members(&all, &g)?, wait).await,
            Target::Process(s) => {
                self.allow(Right::Control, &s, "stop")?;
                if !is_running(s.state) {
                    return Err(Fault::not_running(spec));
                }
                let r = match self.stop_names(vec![s.name.clone()], wait).await {
                    Ok(r) => r.get(&s.name).cloned().unwrap_or(Ok(())),
                    Err(f) => Err(f),
                };
                self.audit("stop", spec, &r);
                r?;
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
    /// The processes the caller may not control come back as `FAILED:
    /// permission denied` results, which supervisorctl prints.
    pub(super) async fn stop_many(
        &self,
        procs: Vec<ProcessStatus>,
        wait: bool,
    ) -> Result<Value, Fault> {
        let running: Vec<ProcessStatus> =
            procs.into_iter().filter(|s| is_running(s.state)).collect();
        let mut denied = BTreeMap::new();
        let mut go = Vec::new();
        for s in &running {
            match self.allow(Right::Control, s, "stop") {
                Ok(()) => go.push(s),
                Err(f) => {
                    denied.insert(s.name.clone(), f);
                }
            }
        }
        let outcomes = self
            .stop_names(go.iter().map(|s| s.name.clone()).collect(), wait)
            .await?;
        Ok(Value::Array(
            running
                .iter()
                .map(|s| {
                    let r = match denied.get(&s.name) {
                        Some(f) => Err(f.clone()),
                        None => {
                            let r = outcomes.get(&s.name).cloned().unwrap_or(Ok(()));
                            self.audit("stop", &namespec(s), &r);
                            r
                        }
                    };
                    result_struct(s.name.as_str(), s.group.as_str(), &r)
                })
                .collect(),
        ))
    }

    pub(super) async fn signal_process(&self, spec: &str, signal: &Value) -> Result<Value, Fault> {
        let all = self.all().await?;
        match resolve(&all, spec)? {
            Target::Group(g) => self.signal_many(Self::members(&all, &g)?, signal).await,
            Target::Process(s) => {
                let sig = parse_signal(signal)?;
                let action = format!("signal {sig}");
                self.allow(Right::Control, &s, &action)?;
                if !is_signallable(s.state) {
                    return Err(Fault::not_running(spec));
                }
                let results = self
                    .face
                    .supervisor()
                    .signal_many(vec![s.name.clone()], sig)
                    .await
                    .map_err(shutting_down)?;
                let r = match by_name(results).remove(&s.name) {
                    Some(Err(e)) => Err(signal_fault(spec, e)),
                    _ => Ok(Value::Bool(true)),
                };
                self.audit(&action, spec, &r);
                r
            }
        }
    }

    /// `make_allfunc` for signals: the processes in a signallable state.
    pub(super) async fn signal_many(
        &self,
        procs: Vec<ProcessStatus>,
        signal: &Value,
    ) -> Result<Value, Fault> {
        let signallable: Vec<ProcessStatus> = procs
            .into_iter()
            .filter(|s| is_signallable(s.state))
            .collect();
        let sig = match parse_signal(signal) {
            Ok(sig) => sig,
            Err(f) => {
                return Ok(Value::Array(
                    signallable
                        .iter()
                        .map(|s| result_struct(s.name.as_str(), s.group.as_str(), &Err(f.clone())))
                        .collect(),
                ));
            }
        };
        let action = format!("signal {sig}");
        let mut denied = BTreeMap::new();
        let mut go = Vec::new();
        for s in &signallable {
            match self.allow(Right::Control, s, &action) {
                Ok(()) => go.push(s),
                Err(f) => {
                    denied.insert(s.name.clone(), f);
                }
            }
        }
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
            signallable
                .iter()
                .map(|s| {
                    let r = if let Some(f) = denied.get(&s.name) {
                        Err(f.clone())
                    } else {
                        let r = match outcomes.get(&s.name) {
                            Some(Err(e)) => Err(signal_fault(&namespec(s), e.clone())),
                            _ => Ok(()),
                        };
                        self.audit(&action, &namespec(s), &r);
                        r
                    };
                    result_struct(s.name.as_str(), s.group.as_str(), &r)
                })
                .collect(),
        ))
    }

    /// `sendProcessStdin`: `chars` to a running process's stdin.
    pub(super) async fn send_stdin(&self, spec: &str, chars: &Value) -> Result<Value, Fault> {
        let chars = match chars {
            Value::String(s) => s.clone().into_bytes(),
            Value::Base64(b) => b.clone(),
            other => {
                return Err(Fault::incorrect_parameters(Some(&format!("{other:?}"))));
            }
        };
        let s = self.one_process(spec).await?;
        self.allow(Right::Stdin, &s, "send stdin to")?;
        if s.pid.is_none() || !s.state.is_up() || s.state == StateName::Stopping {
            return Err(Fault::not_running(spec));
        }
        let n = chars.len();
        let r = match self.face().supervisor().send_stdin(s.name.as_str(), chars) {
            Ok(()) => Ok(Value::Bool(true)),
            Err(Error::NotRunning(_)) => Err(Fault::not_running(spec)),
            Err(Error::NoStdin(_)) => Err(Fault::no_file(Some(spec))),
            Err(Error::ShuttingDown) => Err(Fault::shutdown_state()),
            Err(e) => Err(Fault::failed(Some(&e.to_string()))),
        };
        self.audit(&format!("send {n} bytes of stdin to"), spec, &r);
        r
    }
}
