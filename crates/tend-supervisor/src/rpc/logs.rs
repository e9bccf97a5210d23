//! The log methods: a process's log files (read, tail, clear) and the
//! main log, read off the daemon's thread.

use std::path::PathBuf;

use tend_core::ProcessStatus;
use tend_server::access::Right;

use super::{Rpc, blocking, integer, string};
use crate::files::{self, ReadError};
use crate::info::{namespec, result_struct};
use crate::xmlrpc::{Fault, Value};

/// A slice of a log file, of at most `cap` bytes (`[http] max_response`):
/// asking for more is a `FAILED` fault that says so, not a daemon that holds
/// a whole log file (whose size nothing bounds with `maxbytes = 0`).
pub(super) async fn read_log(
    path: PathBuf,
    offset: i64,
    length: i64,
    cap: usize,
) -> Result<Value, Fault> {
    match blocking(move || files::read_file(&path, offset, length, cap as u64)).await? {
        Ok(bytes) => Ok(Value::String(files::text(bytes))),
        Err(ReadError::BadArguments) => Err(Fault::bad_arguments()),
        Err(ReadError::Failed) => Err(Fault::failed(None)),
        Err(ReadError::TooLarge) => Err(Fault::failed(Some(&format!(
            "the log slice asked for is larger than {cap} bytes ([http] max_response): ask for less (offset, length)"
        )))),
    }
}

impl Rpc {
    pub(super) async fn read_process_log(
        &self,
        params: &[Value],
        stderr: bool,
    ) -> Result<Value, Fault> {
        let spec = string(&params[0], "name")?;
        let s = self.one_process(&spec).await?;
        self.allow(Right::Logs, &s, "read the logs of")?;
        // Configured but not created yet (no output so far) reads as empty.
        let Some(path) = self.face().logfile(s.name.as_str(), stderr) else {
            return Err(Fault::no_file(None));
        };
        let cap = self.face.opts.limits.max_response;
        read_log(path, integer(&params[1])?, integer(&params[2])?, cap).await
    }

    pub(super) async fn tail_process_log(
        &self,
        params: &[Value],
        stderr: bool,
    ) -> Result<Value, Fault> {
        let spec = string(&params[0], "name")?;
        let s = self.one_process(&spec).await?;
        self.allow(Right::Logs, &s, "read the logs of")?;
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
        // A tail longer than an answer may be is cut to its last bytes.
        let length =
            length.min(i64::try_from(self.face.opts.limits.max_response).unwrap_or(i64::MAX));
        let (bytes, offset, overflow) =
            blocking(move || files::tail_file(&path, offset, length)).await?;
        Ok(Value::Array(vec![
            Value::String(files::text(bytes)),
            Value::int_saturating(offset),
            Value::Bool(overflow),
        ]))
    }

    /// Clears both log files of a process; `FAILED: spec` when one cannot be.
    pub(super) async fn clear_logs(&self, s: &ProcessStatus, spec: &str) -> Result<(), Fault> {
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

    /// `readLog`: a slice of tend's own log.
    pub(super) async fn read_main_log(&self, p: &[Value]) -> Result<Value, Fault> {
        let (offset, length) = (integer(&p[0])?, integer(&p[1])?);
        let Some(path) = self.face().main_log().cloned() else {
            return Err(Fault::no_file(None));
        };
        if !path.exists() {
            return Err(Fault::no_file(Some(&path.display().to_string())));
        }
        read_log(path, offset, length, self.face.opts.limits.max_response).await
    }

    /// `clearLog`: empties tend's own log.
    pub(super) async fn clear_main_log(&self) -> Result<Value, Fault> {
        let Some(path) = self.face().main_log().cloned().filter(|p| p.exists()) else {
            return Err(Fault::no_file(None));
        };
        match blocking(move || files::clear(&path)).await? {
            Ok(()) => Ok(Value::Bool(true)),
            Err(_) => Err(Fault::failed(None)),
        }
    }

    /// `clearProcessLogs`.
    pub(super) async fn clear_process_logs(&self, spec: &str) -> Result<Value, Fault> {
        let s = self.one_process(spec).await?;
        self.allow(Right::Admin, &s, "clear the logs of")?;
        let r = self.clear_logs(&s, spec).await;
        self.audit("clear the logs of", spec, &r);
        r?;
        Ok(Value::Bool(true))
    }

    /// `clearAllProcessLogs`: one result struct per process.
    pub(super) async fn clear_all_process_logs(&self) -> Result<Value, Fault> {
        let all = self.all().await?;
        let mut results = Vec::new();
        for s in self.everything(&all) {
            let spec = namespec(&s);
            let r = match self.allow(Right::Admin, &s, "clear the logs of") {
                Ok(()) => {
                    let r = self.clear_logs(&s, &spec).await;
                    self.audit("clear the logs of", &spec, &r);
                    r
                }
                Err(f) => Err(f),
            };
            results.push(result_struct(s.name.as_str(), s.group.as_str(), &r));
        }
        Ok(Value::Array(results))
    }
}
