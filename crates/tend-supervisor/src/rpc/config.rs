//! The config file and groups (`reloadConfig`, `addProcessGroup`,
//! `removeProcessGroup`) through the daemon's config state, and what
//! Supervisor reports of processes and their configs.

use tend_server::access::Right;
use tend_server::state::GroupError;

use super::{Rpc, now};
use crate::info;
use crate::xmlrpc::{Fault, Value};

impl Rpc {
    /// `reloadConfig`: `[[added, changed, removed]]` group names.
    pub(super) async fn reread(&self) -> Result<Value, Fault> {
        match self.face().config().reread().await {
            Ok(c) => {
                let names = |v: Vec<String>| Value::Array(v.into_iter().map(Value::from).collect());
                Ok(Value::Array(vec![Value::Array(vec![
                    names(c.added),
                    names(c.changed),
                    names(c.removed),
                ])]))
            }
            Err(why) => Err(Fault::cant_reread(&why)),
        }
    }

    /// `addProcessGroup` (`add`) or `removeProcessGroup`.
    pub(super) async fn change_group(&self, name: &str, add: bool) -> Result<Value, Fault> {
        let config = self.face().config();
        let r = if add {
            config.add_group(name).await
        } else {
            config.remove_group(name).await
        };
        match r {
            Ok(()) => Ok(Value::Bool(true)),
            Err(GroupError::BadName(_)) => Err(Fault::bad_name(name)),
            Err(GroupError::AlreadyAdded(_)) => Err(Fault::already_added(name)),
            Err(GroupError::StillRunning(_)) => Err(Fault::still_running(name)),
            Err(GroupError::ShuttingDown) => Err(Fault::shutdown_state()),
            Err(e) => Err(Fault::failed(Some(&e.to_string()))),
        }
    }

    /// `getAllConfigInfo`: every available process config, by name.
    pub(super) async fn all_config_info(&self) -> Result<Value, Fault> {
        let all = self.all().await?;
        let mut out: Vec<(String, Value)> = Vec::new();
        for (g, inuse) in self.face().config().available(&all) {
            // A process of the file that is not active yet is not in `all`:
            // it is checked here, by its name and group.
            for pc in g
                .processes
                .iter()
                .filter(|pc| self.caller().may(Right::View, &pc.spec.name, &g.name))
            {
                out.push((pc.spec.name.to_string(), info::config_info(&g, pc, inuse)));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Value::Array(out.into_iter().map(|(_, v)| v).collect()))
    }

    /// `getProcessInfo`.
    pub(super) async fn process_info(&self, spec: &str) -> Result<Value, Fault> {
        let s = self.one_process(spec).await?;
        Ok(self
            .face()
            .config()
            .with_procs(|procs| info::process_info(&s, procs.get(&s.name).map(|p| &**p), now())))
    }

    /// `getAllProcessInfo`, sorted by group and name as Supervisor's is.
    pub(super) async fn all_process_info(&self) -> Result<Value, Fault> {
        let mut all = self.all().await?;
        all.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
        let now = now();
        Ok(Value::Array(self.face().config().with_procs(|procs| {
            all.iter()
                .map(|s| info::process_info(s, procs.get(&s.name).map(|p| &**p), now))
                .collect()
        })))
    }
}
