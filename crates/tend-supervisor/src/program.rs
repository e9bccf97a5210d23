//! What Supervisor's face reports of one process: its supervisord.conf
//! settings when it came from one, else the same settings derived from its
//! spec (a native config, or a process added through the JSON API).

use std::borrow::Cow;
use std::path::Path;

use tend_config::ProcessConfig;
use tend_config::supervisord::{ChannelConf, ProcessDetails};
use tend_core::spec::LogTarget;

/// Supervisor's settings of `pc`.
pub(crate) fn details(pc: &ProcessConfig) -> Cow<'_, ProcessDetails> {
    match &pc.program {
        Some(p) => Cow::Borrowed(&**p),
        None => Cow::Owned(derived(pc)),
    }
}

/// The log file of one stream of `pc`, as `getProcessInfo` and `/logtail`
/// know it; `None` when that stream is not written to a file.
pub(crate) fn logfile(pc: &ProcessConfig, stderr: bool) -> Option<&Path> {
    if let Some(p) = &pc.program {
        let c = if stderr { &p.stderr } else { &p.stdout };
        return c.logfile.as_deref();
    }
    let logs = &pc.spec.logs;
    if stderr && logs.merge_stderr {
        return None;
    }
    match if stderr { &logs.stderr } else { &logs.stdout } {
        LogTarget::File(p) => Some(p),
        LogTarget::Inherit | LogTarget::Null | LogTarget::Memory => None,
    }
}

fn derived(pc: &ProcessConfig) -> ProcessDetails {
    let spec = &pc.spec;
    let channel = |stderr: bool| ChannelConf {
        logfile: logfile(pc, stderr).map(Path::to_path_buf),
        auto: false,
        maxbytes: spec.logs.max_size,
        backups: spec.logs.backups,
        capture_maxbytes: 0,
        events_enabled: false,
        syslog: false,
    };
    ProcessDetails {
        section: format!("program:{}", spec.name),
        command: join_command(&spec.command),
        group_priority: spec.priority,
        process_priority: spec.priority,
        startretries: spec
            .backoff
            .give_up_after
            .map_or(0, |n| n.saturating_sub(1)),
        stopasgroup: true,
        killasgroup: true,
        serverurl: None,
        uid: None,
        stdout: channel(false),
        stderr: channel(true),
        numbered: None,
    }
}

/// The argv as one string, quoted where a shell would need it.
fn join_command(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
