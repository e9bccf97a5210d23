//! `[program:x]`, `[group:x]` and `[eventlistener:x]`
//! (`supervisor/options.py: process_groups_from_parser`,
//! `_processes_from_section`), and the mapping of each process to a
//! [`ProcessSpec`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tend_core::spec::{LogSpec, LogTarget};
use tend_core::{Backoff, BackoffMode, Name, ProcessSpec, RestartPolicy, Signal, StopSpec};

use super::expand::Val;
use super::ini::{Ini, Section};
use super::values::{self, LogfileName};
use super::{
    ChannelConf, DEFAULT_RESULT_HANDLER, EVENT_TYPES, EventListenerConf, GroupConf, GroupKind,
    MAX_NUMPROCS, ProcessDetails, STDERR_PATHS, STDOUT_PATHS, St, SupervisordSection, Top,
};
use crate::diag::suggest;

/// Everything the process sections produce.
#[derive(Default)]
pub(super) struct Made {
    pub(super) processes: Vec<ProcessSpec>,
    pub(super) eventlisteners: Vec<EventListenerConf>,
    pub(super) groups: Vec<GroupConf>,
    pub(super) details: BTreeMap<Name, ProcessDetails>,
}

/// What every process needs from outside its section.
struct Ctx<'c> {
    supervisord: &'c SupervisordSection,
    auto_url: Option<&'c str>,
}

/// The group a program's processes are made for.
struct GroupRef {
    name: String,
    priority: i32,
    /// The priority was written in the group's section.
    explicit: bool,
    kind: GroupKind,
}

/// One process made from a section, with where its section starts.
struct Proc {
    spec: ProcessSpec,
    details: ProcessDetails,
    file: usize,
    line: usize,
}

/// Reads every process section.
pub(super) fn read_all(
    ini: &Ini,
    st: &mut St<'_>,
    supervisord: &SupervisordSection,
    auto_url: Option<&str>,
) -> Made {
    let ctx = Ctx {
        supervisord,
        auto_url,
    };
    let top = Top::new();
    let program_names: Vec<&str> = ini
        .sections
        .iter()
        .filter_map(|s| s.name.strip_prefix("program:"))
        .collect();

    // [group:x]: which programs leave their own group for which group.
    let mut memberships: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut heterogeneous: Vec<(GroupRef, Vec<&str>, &Section)> = Vec::new();
    for section in &ini.sections {
        let Some(raw) = section.name.strip_prefix("group:") else {
            continue;
        };
        let name = match values::process_or_group_name(raw) {
            Ok(n) => n,
            Err(why) => {
                st.error(section.file, section.line, why);
                continue;
            }
        };
        let programs = st
            .get(ini, section, "programs", &top)
            .map(|g| (values::list_of_strings(&g.value), g.entry));
        let priority = st.typed(ini, section, "priority", &top, |s| {
            values::integer_in::<i32>(s, "a priority")
        });
        let mut members = Vec::new();
        match &programs {
            None => st.warn(
                section.file,
                section.line,
                format!("[{}] lists no programs (add programs = a,b)", section.name),
            ),
            Some((list, _)) if list.is_empty() => st.warn(
                section.file,
                section.line,
                format!("[{}] lists no programs", section.name),
            ),
            Some(_) => {}
        }
        for program in programs.iter().flat_map(|(list, _)| list) {
            let entry = programs.as_ref().map(|(_, e)| *e);
            let as_program = format!("program:{program}");
            let as_fcgi = format!("fcgi-program:{program}");
            let (p, f) = (
                ini.section(&as_program).is_some(),
                ini.section(&as_fcgi).is_some(),
            );
            let (file, line) = entry.map_or((section.file, section.line), |e| (e.file, e.line));
            match (p, f) {
                (false, false) => {
                    let hint = suggest(program, program_names.iter().copied())
                        .map(|s| format!(" (did you mean {s:?}?)"))
                        .unwrap_or_default();
                    st.error(
                        file,
                        line,
                        format!(
                            "[{}] names unknown program or fcgi-program {program}{hint}",
                            section.name
                        ),
                    );
                }
                (true, true) => st.error(
                    file,
                    line,
                    format!(
                        "[{}] name {program} is ambiguous (exists as program and fcgi-program)",
                        section.name
                    ),
                ),
                (false, true) => st.warn(
                    file,
                    line,
                    format!(
                        "[{as_fcgi}] in [{}] is not supported by tend: left out of the group",
                        section.name
                    ),
                ),
                (true, false) => {
                    if let Some(s) = ini.section(&as_program) {
                        memberships
                            .entry(s.name.as_str())
                            .or_default()
                            .push(heterogeneous.len());
                        members.push(s.name.as_str());
                    }
                }
            }
        }
        heterogeneous.push((
            GroupRef {
                name,
                priority: priority.unwrap_or(999),
                explicit: priority.is_some(),
                kind: GroupKind::Group,
            },
            members,
            section,
        ));
    }

    let mut made = Made::default();
    // The processes of each (program section, group), for the group lists.
    let mut produced: HashMap<(&str, usize), Vec<Name>> = HashMap::new();
    let mut homogeneous = Vec::new();
    let mut seen: HashMap<Name, String> = HashMap::new();
    let mut add = |st: &mut St<'_>, made: &mut Made, p: &Proc| -> bool {
        if let Some(first) = seen.get(&p.spec.name) {
            st.error(
                p.file,
                p.line,
                format!(
                    "process name {:?} is already used by [{first}] (tend needs unique process names, even in different groups)",
                    p.spec.name.as_str()
                ),
            );
            return false;
        }
        seen.insert(p.spec.name.clone(), p.details.section.clone());
        made.details.insert(p.spec.name.clone(), p.details.clone());
        true
    };
    for section in &ini.sections {
        if !section.name.starts_with("program:") {
            continue;
        }
        match memberships.get(section.name.as_str()) {
            Some(groups) => {
                for &g in groups {
                    let procs = read_program(ini, st, section, &heterogeneous[g].0, false, &ctx);
                    let mut names = Vec::new();
                    for p in procs {
                        if add(st, &mut made, &p) {
                            names.push(p.spec.name.clone());
                            made.processes.push(p.spec);
                        }
                    }
                    produced.insert((section.name.as_str(), g), names);
                }
            }
            None => {
                let raw = &section.name["program:".len()..];
                let Ok(own) = values::process_or_group_name(raw) else {
                    // read_program reports the bad name.
                    read_program(
                        ini,
                        st,
                        section,
                        &GroupRef {
                            name: String::new(),
                            priority: 999,
                            explicit: false,
                            kind: GroupKind::Program,
                        },
                        false,
                        &ctx,
                    );
                    continue;
                };
                let group = GroupRef {
                    name: own,
                    priority: 999,
                    explicit: false,
                    kind: GroupKind::Program,
                };
                let procs = read_program(ini, st, section, &group, false, &ctx);
                let mut members = Vec::new();
                let mut priority = 999;
                for p in procs {
                    priority = p.details.group_priority;
                    if add(st, &mut made, &p) {
                        members.push(p.spec.name.clone());
                        made.processes.push(p.spec);
                    }
                }
                homogeneous.push((group.name, priority, members, section));
            }
        }
    }

    for section in &ini.sections {
        let Some(pool) = section.name.strip_prefix("eventlistener:") else {
            continue;
        };
        let Some(listener) = read_listener_pool(ini, st, section, pool) else {
            continue;
        };
        let procs = read_program(ini, st, section, &listener.0, true, &ctx);
        let mut members = Vec::new();
        for p in procs {
            if add(st, &mut made, &p) {
                members.push(p.spec.name.clone());
                made.eventlisteners.push(EventListenerConf {
                    spec: p.spec,
                    pool_name: listener.1.clone(),
                    events: listener.2.clone(),
                    buffer_size: listener.3,
                    priority: listener.0.priority,
                    result_handler: listener.4.clone(),
                });
            }
        }
        made.groups.push(GroupConf {
            name: listener.1.clone(),
            priority: listener.0.priority,
            members,
            kind: GroupKind::EventListenerPool,
        });
    }

    // Groups: [group:x] in file order, then the programs' own, then the pools
    // (pushed above; moved to the end here).
    let pools = std::mem::take(&mut made.groups);
    for (g, (group, members, section)) in heterogeneous.iter().enumerate() {
        let Some(name) = group_name(st, &group.name, section) else {
            continue;
        };
        let members = members
            .iter()
            .flat_map(|m| produced.get(&(*m, g)).cloned().unwrap_or_default())
            .collect();
        made.groups.push(GroupConf {
            name,
            priority: group.priority,
            members,
            kind: GroupKind::Group,
        });
    }
    for (name, priority, members, section) in homogeneous {
        if let Some(name) = group_name(st, &name, section) {
            made.groups.push(GroupConf {
                name,
                priority,
                members,
                kind: GroupKind::Program,
            });
        }
    }
    made.groups.extend(pools);
    let mut group_seen: HashMap<Name, GroupKind> = HashMap::new();
    for g in &made.groups {
        if group_seen.insert(g.name.clone(), g.kind).is_some() {
            let section = ini.sections.iter().find(|s| {
                s.name
                    .split_once(':')
                    .is_some_and(|(_, n)| n.trim() == g.name.as_str())
            });
            let (file, line) = section.map_or((0, 1), |s| (s.file, s.line));
            st.error(
                file,
                line,
                format!(
                    "group name {:?} is used twice (a [group:x], [program:x] outside any group, or [eventlistener:x] of that name)",
                    g.name.as_str()
                ),
            );
        }
    }
    made
}

fn group_name(st: &mut St<'_>, name: &str, section: &Section) -> Option<Name> {
    match Name::new(name) {
        Ok(n) => Some(n),
        Err(e) => {
            st.error(
                section.file,
                section.line,
                format!("invalid group name in [{}]: {e}", section.name),
            );
            None
        }
    }
}

/// The pool settings of `[eventlistener:x]`: (its group, name, events,
/// buffer_size, result_handler).
fn read_listener_pool(
    ini: &Ini,
    st: &mut St<'_>,
    section: &Section,
    pool: &str,
) -> Option<(GroupRef, Name, Vec<String>, usize, String)> {
    let top = Top::new();
    let priority = st.typed(ini, section, "priority", &top, |s| {
        values::integer_in::<i32>(s, "a priority")
    });
    let buffer_size = match st.typed(ini, section, "buffer_size", &top, values::integer) {
        Some(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
        Some(n) => {
            if let Some(e) = ini.get(section, "buffer_size") {
                st.error_at(
                    e,
                    format!("[{}] section sets invalid buffer_size ({n})", section.name),
                );
            }
            10
        }
        None => 10,
    };
    let result_handler = st
        .get(ini, section, "result_handler", &top)
        .map_or_else(|| DEFAULT_RESULT_HANDLER.to_string(), |g| g.value);
    if result_handler != DEFAULT_RESULT_HANDLER
        && let Some(e) = ini.get(section, "result_handler")
    {
        st.warn_at(
            e,
            format!(
                "result_handler {result_handler:?} in [{}] is not supported (tend cannot load Python code): the default handler is used",
                section.name
            ),
        );
    }
    let mut events: Vec<String> = Vec::new();
    let raw = st.get(ini, section, "events", &top);
    for event in raw
        .iter()
        .flat_map(|g| values::list_of_strings(&g.value))
        .map(|e| e.to_uppercase())
    {
        if !events.contains(&event) {
            events.push(event);
        }
    }
    let mut ok = true;
    if events.is_empty() {
        st.error(
            section.file,
            section.line,
            format!("[{}] section requires an \"events\" line", section.name),
        );
        ok = false;
    }
    for event in &events {
        if !EVENT_TYPES.contains(&event.as_str()) {
            let hint = suggest(event, EVENT_TYPES.iter().copied())
                .map(|s| format!(" (did you mean {s}?)"))
                .unwrap_or_default();
            if let Some(g) = &raw {
                st.error_at(
                    g.entry,
                    format!(
                        "Unknown event type {event} in [{}] events{hint}",
                        section.name
                    ),
                );
            }
            ok = false;
        }
    }
    if st.boolean(ini, section, "redirect_stderr", &top, false) {
        if let Some(e) = ini.get(section, "redirect_stderr") {
            st.error_at(
                e,
                format!(
                    "[{}] section sets redirect_stderr=true but this is not allowed because it will interfere with the eventlistener protocol",
                    section.name
                ),
            );
        }
        ok = false;
    }
    let name = match Name::new(pool.trim()) {
        Ok(n) => n,
        Err(e) => {
            st.error(
                section.file,
                section.line,
                format!("invalid pool name in [{}]: {e}", section.name),
            );
            return None;
        }
    };
    ok.then(|| {
        (
            GroupRef {
                name: name.to_string(),
                priority: priority.unwrap_or(-1),
                explicit: priority.is_some(),
                kind: GroupKind::EventListenerPool,
            },
            name,
            events,
            buffer_size,
            result_handler,
        )
    })
}

/// One output channel as read.
struct Channel {
    logfile: LogfileName,
    maxbytes: u64,
    backups: u32,
    capture_maxbytes: u64,
    events_enabled: bool,
    syslog: bool,
}

/// The processes of one `[program:x]` or `[eventlistener:x]` for `group`.
fn read_program(
    ini: &Ini,
    st: &mut St<'_>,
    section: &Section,
    group: &GroupRef,
    listener: bool,
    ctx: &Ctx<'_>,
) -> Vec<Proc> {
    let host = st.host;
    let at = (section.file, section.line);
    let raw_name = section.name.split_once(':').map_or("", |(_, n)| n);
    let program_name = match values::process_or_group_name(raw_name) {
        Ok(n) => n,
        Err(why) => {
            st.error(at.0, at.1, why);
            return Vec::new();
        }
    };
    let mut top = Top::from([
        ("program_name".to_string(), Val::Str(program_name.clone())),
        ("group_name".to_string(), Val::Str(group.name.clone())),
        ("host_node_name".to_string(), Val::Str(host.node.clone())),
    ]);
    let int32 = |s: &str| values::integer_in::<i32>(s, "a priority");
    let own_priority = st.typed(ini, section, "priority", &top, int32);
    let priority = own_priority.unwrap_or(999);
    let autostart = st.boolean(ini, section, "autostart", &top, true);
    let autorestart = st
        .typed(ini, section, "autorestart", &top, values::auto_restart)
        .unwrap_or(RestartPolicy::OnFailure);
    let startsecs = st.count(ini, section, "startsecs", &top, 1);
    let startretries = st.count(ini, section, "startretries", &top, 3);
    let stopsignal = st
        .typed(ini, section, "stopsignal", &top, values::signal)
        .unwrap_or(Signal::TERM);
    let stopwaitsecs = st.count(ini, section, "stopwaitsecs", &top, 10);
    let stopasgroup = st.boolean(ini, section, "stopasgroup", &top, false);
    let killasgroup = st.boolean(ini, section, "killasgroup", &top, stopasgroup);
    let exitcodes = st
        .typed(ini, section, "exitcodes", &top, values::exitcodes)
        .unwrap_or_else(|| vec![0]);
    let redirect_stderr = !listener && st.boolean(ini, section, "redirect_stderr", &top, false);
    let numprocs = st
        .typed(ini, section, "numprocs", &top, values::integer)
        .unwrap_or(1);
    let numprocs_start = st
        .typed(ini, section, "numprocs_start", &top, values::integer)
        .unwrap_or(0);
    let mut capture = [0u64; 2];
    let mut events = [false; 2];
    for (i, which) in ["stdout", "stderr"].into_iter().enumerate() {
        let key = format!("{which}_capture_maxbytes");
        capture[i] = st
            .typed(ini, section, &key, &top, values::size)
            .unwrap_or(0);
        if capture[i] > 0
            && let Some(e) = ini.get(section, &key)
        {
            st.warn_at(
                e,
                format!(
                    "{key} in [{}] is not supported by tend (no PROCESS_COMMUNICATION events): ignored",
                    section.name
                ),
            );
        }
        let key = format!("{which}_events_enabled");
        events[i] = st.boolean(ini, section, &key, &top, false);
    }
    let serverurl = st
        .get(ini, section, "serverurl", &top)
        .map(|g| g.value)
        .filter(|u| !u.trim().eq_ignore_ascii_case("auto"));
    let (user, uid) = match st.get(ini, section, "user", &top) {
        Some(g) => match values::name_to_uid(&g.value) {
            Ok(uid) => (Some(g.value), Some(uid)),
            Err(why) => {
                st.error_at(g.entry, format!("user in [{}]: {why}", section.name));
                (None, None)
            }
        },
        None => (None, None),
    };
    let umask = st.typed(ini, section, "umask", &top, values::octal);

    let name_entry = ini.get(section, "process_name");
    let process_name = match name_entry {
        Some(e) => match values::process_or_group_name(&e.value) {
            Ok(n) => n,
            Err(why) => {
                st.error_at(e, format!("process_name in [{}]: {why}", section.name));
                return Vec::new();
            }
        },
        None => "%(program_name)s".to_string(),
    };

    if stopasgroup && !killasgroup {
        let e = ini.get(section, "killasgroup");
        let (file, line) = e.map_or(at, |e| (e.file, e.line));
        st.error(
            file,
            line,
            format!(
                "Cannot set stopasgroup=true and killasgroup=false (in [{}])",
                section.name
            ),
        );
    }
    for key in ["stopasgroup", "killasgroup"] {
        if let Some(e) = ini.get(section, key)
            && values::boolean(&e.value) == Ok(false)
        {
            st.warn_at(
                e,
                format!(
                    "{key}=false in [{}] cannot be honoured: tend always signals the whole process group, so the program's children are stopped with it",
                    section.name
                ),
            );
        }
    }
    if numprocs > 1 && !process_name.contains("%(process_num)") {
        let (file, line) = name_entry.map_or(at, |e| (e.file, e.line));
        st.error(
            file,
            line,
            format!(
                "%(process_num) must be present within process_name when numprocs > 1 (in [{}])",
                section.name
            ),
        );
        return Vec::new();
    }
    if numprocs > MAX_NUMPROCS {
        if let Some(e) = ini.get(section, "numprocs") {
            st.error_at(
                e,
                format!(
                    "numprocs = {numprocs} in [{}] is more than tend allows ({MAX_NUMPROCS})",
                    section.name
                ),
            );
        }
        return Vec::new();
    }
    if numprocs < 1 {
        if let Some(e) = ini.get(section, "numprocs") {
            st.warn_at(
                e,
                format!(
                    "numprocs = {numprocs} in [{}]: the section has no processes",
                    section.name
                ),
            );
        }
        return Vec::new();
    }
    // Supervisor uses the program's priority for its own group, and the
    // pool's for a listener pool; a [group:x]'s is its own.
    let group_priority = match group.kind {
        GroupKind::Program => priority,
        GroupKind::Group | GroupKind::EventListenerPool => group.priority,
    };
    // tend orders processes by their own priority alone; take the group's
    // where that is what decides Supervisor's order.
    let spec_priority = match (group.kind, own_priority) {
        (GroupKind::Program, _) => priority,
        (GroupKind::EventListenerPool, _) => group.priority,
        (GroupKind::Group, None) => group.priority,
        (GroupKind::Group, Some(p)) => {
            if p != group.priority
                && let Some(e) = ini.get(section, "priority")
            {
                st.warn_at(
                    e,
                    format!(
                        "priority {p} of [{}] differs from the priority of its [group:{}] ({}{}): supervisord orders by group first, tend orders processes by their own priority",
                        section.name,
                        group.name,
                        group.priority,
                        if group.explicit { "" } else { ", the default" }
                    ),
                );
            }
            p
        }
    };

    let env_entry = ini.get(section, "environment");
    let mut procs = Vec::new();
    let start = numprocs_start;
    let Some(end) = start.checked_add(numprocs) else {
        return procs;
    };
    for process_num in start..end {
        top.insert("process_num".to_string(), Val::Int(process_num));
        top.insert("numprocs".to_string(), Val::Int(numprocs));
        let mut program_env: BTreeMap<String, String> = BTreeMap::new();
        if let Some(e) = env_entry
            && let Some(text) = st.expand(&e.value, e, &top, "environment")
        {
            match values::key_value_pairs(&text) {
                Ok(pairs) => program_env.extend(pairs),
                Err(why) => st.error_at(e, format!("environment in [{}]: {why}", section.name)),
            }
        }
        for (k, v) in &program_env {
            top.insert(format!("ENV_{k}"), Val::Str(v.clone()));
        }
        let directory = st.get(ini, section, "directory", &top).map(|g| {
            let dir = values::normalize_path(&g.value, &host.cwd, &host.env);
            if !dir.is_dir() {
                st.warn_at(
                    g.entry,
                    format!(
                        "directory {} of [{}] does not exist: the process will fail to start",
                        dir.display(),
                        section.name
                    ),
                );
            }
            dir
        });
        let mut channels = Vec::with_capacity(2);
        for (i, which) in ["stdout", "stderr"].into_iter().enumerate() {
            let key = format!("{which}_logfile");
            let logfile = st
                .typed(ini, section, &key, &top, |s| {
                    values::logfile_name(s, &host.cwd, &host.env)
                })
                .unwrap_or(LogfileName::Auto);
            let backups = st.count(ini, section, &format!("{which}_logfile_backups"), &top, 10);
            let maxbytes = st
                .typed(
                    ini,
                    section,
                    &format!("{which}_logfile_maxbytes"),
                    &top,
                    values::size,
                )
                .unwrap_or(50 * 1024 * 1024);
            let mut syslog = st.boolean(ini, section, &format!("{which}_syslog"), &top, false);
            let mut logfile = logfile;
            if logfile == LogfileName::Syslog {
                if let Some(e) = ini.get(section, &key) {
                    st.warn_at(
                        e,
                        format!(
                            "For [{}], {key}=syslog but this is deprecated and will be removed.  Use {which}_syslog=true to enable syslog instead.",
                            section.name
                        ),
                    );
                }
                logfile = LogfileName::None;
                syslog = true;
            }
            if syslog {
                let e = ini
                    .get(section, &format!("{which}_syslog"))
                    .or_else(|| ini.get(section, &key));
                if let Some(e) = e {
                    st.warn_at(
                        e,
                        format!(
                            "{which}_syslog in [{}] is not supported by tend: the output is not sent to syslog",
                            section.name
                        ),
                    );
                }
            }
            if logfile == LogfileName::Auto && maxbytes == 0 {
                let e = ini.get(section, &format!("{which}_logfile_maxbytes"));
                let (file, line) = e.map_or(at, |e| (e.file, e.line));
                st.warn(
                    file,
                    line,
                    format!(
                        "For [{}], AUTO logging used for {key} without rollover, set maxbytes > 0 to avoid filling up filesystem unintentionally",
                        section.name
                    ),
                );
            }
            channels.push(Channel {
                logfile,
                maxbytes,
                backups,
                capture_maxbytes: capture[i],
                events_enabled: events[i],
                syslog,
            });
        }
        if redirect_stderr {
            if let LogfileName::Path(_) = channels[1].logfile
                && let Some(e) = ini.get(section, "stderr_logfile")
            {
                st.warn_at(
                    e,
                    format!(
                        "For [{}], redirect_stderr=true but stderr_logfile has also been set to a filename, the filename has been ignored",
                        section.name
                    ),
                );
            }
            channels[1].logfile = LogfileName::None;
        }

        let command = match st.get(ini, section, "command", &top) {
            Some(g) => Some(g),
            None => {
                if ini.get(section, "command").is_none() {
                    st.error(
                        at.0,
                        at.1,
                        format!(
                            "program section {} does not specify a command",
                            section.name
                        ),
                    );
                }
                None
            }
        };
        let argv = command.as_ref().and_then(|g| {
            ProcessSpec::split_command(&g.value)
                .map_err(|e| st.error_at(g.entry, format!("command in [{}]: {e}", section.name)))
                .ok()
        });
        let name = match name_entry {
            Some(e) => st.expand(&process_name, e, &top, "process_name"),
            None => {
                // The default `%(program_name)s` cannot fail.
                Some(program_name.clone())
            }
        };
        let name = name.and_then(|n| {
            Name::new(n.trim())
                .map_err(|e| {
                    let (file, line) = name_entry.map_or(at, |e| (e.file, e.line));
                    st.error(
                        file,
                        line,
                        format!("invalid process name in [{}]: {e}", section.name),
                    );
                })
                .ok()
        });
        let group_name = match Name::new(group.name.as_str()) {
            Ok(g) => Some(g),
            Err(e) => {
                st.error(
                    at.0,
                    at.1,
                    format!("invalid group name for [{}]: {e}", section.name),
                );
                None
            }
        };
        let (Some(argv), Some(name), Some(group_name), Some(command)) =
            (argv, name, group_name, command)
        else {
            continue;
        };

        let mut spec = ProcessSpec::new(name.clone(), argv);
        spec.group = group_name.clone();
        spec.cwd = directory;
        spec.env.insert("SUPERVISOR_ENABLED".into(), "1".into());
        spec.env
            .insert("SUPERVISOR_PROCESS_NAME".into(), name.to_string());
        spec.env
            .insert("SUPERVISOR_GROUP_NAME".into(), group_name.to_string());
        if let Some(url) = serverurl.as_deref().or(ctx.auto_url) {
            spec.env
                .insert("SUPERVISOR_SERVER_URL".into(), url.to_string());
        }
        spec.env.extend(ctx.supervisord.environment.clone());
        spec.env.extend(program_env);
        spec.user = user.clone();
        spec.umask = umask;
        spec.autostart = autostart;
        spec.priority = spec_priority;
        spec.restart = autorestart;
        spec.success_exit_codes = exitcodes.clone();
        spec.start_secs = Duration::from_secs(u64::from(startsecs));
        // Supervisor gives every child a stdin pipe (sendProcessStdin, `fg`).
        spec.stdin_pipe = true;
        spec.backoff = supervisor_backoff(startretries);
        spec.stop = StopSpec {
            signal: stopsignal,
            timeout: Duration::from_secs(u64::from(stopwaitsecs)),
        };
        spec.logs = log_spec(st, section, ini, &name, &channels, redirect_stderr, ctx);
        if let Err(e) = spec.validate() {
            st.error(at.0, at.1, format!("[{}]: {e}", section.name));
            continue;
        }
        let channel = |c: &Channel, spec_target: &LogTarget| ChannelConf {
            logfile: match (&c.logfile, spec_target) {
                (LogfileName::None | LogfileName::Syslog, _) => None,
                (_, LogTarget::File(p)) => Some(p.clone()),
                (LogfileName::Path(p), _) => Some(p.clone()),
                (LogfileName::Auto, _) => None,
            },
            auto: c.logfile == LogfileName::Auto,
            maxbytes: c.maxbytes,
            backups: c.backups,
            capture_maxbytes: c.capture_maxbytes,
            events_enabled: c.events_enabled,
            syslog: c.syslog,
        };
        let details = ProcessDetails {
            section: section.name.clone(),
            command: command.value.clone(),
            group_priority,
            process_priority: priority,
            startretries,
            stopasgroup,
            killasgroup,
            serverurl: serverurl.clone(),
            uid,
            stdout: channel(&channels[0], &spec.logs.stdout),
            stderr: channel(&channels[1], &spec.logs.stderr),
        };
        procs.push(Proc {
            spec,
            details,
            file: at.0,
            line: at.1,
        });
    }
    procs
}

/// Supervisor's retry model: a start that dies before `startsecs` is retried
/// after 1 s, 2 s, 3 s, ... and `startretries` retries (so `startretries + 1`
/// spawns) end in `fatal`; a process that got past `startsecs` and exits is
/// restarted at once. No run counts as quick by its length alone
/// (`min_uptime` 0), which keeps the `startsecs = 0` trap of Supervisor.
pub(super) fn supervisor_backoff(startretries: u32) -> Backoff {
    Backoff {
        mode: BackoffMode::Linear {
            step: Duration::from_secs(1),
        },
        min_uptime: Duration::ZERO,
        give_up_after: Some(startretries.saturating_add(1)),
        ..Backoff::default()
    }
}

/// Where the two streams go. tend has one rotation rule per process:
/// the stdout file's, or the stderr file's when stdout is not a file.
fn log_spec(
    st: &mut St<'_>,
    section: &Section,
    ini: &Ini,
    name: &Name,
    channels: &[Channel],
    redirect_stderr: bool,
    ctx: &Ctx<'_>,
) -> LogSpec {
    let sd = ctx.supervisord;
    let mut target = |c: &Channel, which: &str| -> LogTarget {
        match &c.logfile {
            LogfileName::None | LogfileName::Syslog => LogTarget::Null,
            LogfileName::Auto => LogTarget::File(auto_log_path(
                &sd.childlogdir,
                name.as_str(),
                which,
                &sd.identifier,
            )),
            LogfileName::Path(p) => {
                let own = if which == "stdout" {
                    STDOUT_PATHS
                } else {
                    STDERR_PATHS
                };
                let other = if which == "stdout" {
                    STDERR_PATHS
                } else {
                    STDOUT_PATHS
                };
                let s = p.to_string_lossy();
                if own.contains(&s.as_ref()) || other.contains(&s.as_ref()) {
                    let key = format!("{which}_logfile");
                    if let Some(e) = ini.get(section, &key) {
                        if other.contains(&s.as_ref()) {
                            st.warn_at(
                                e,
                                format!(
                                    "{key}={s} in [{}]: tend writes a process's {which} to its own {which}",
                                    section.name
                                ),
                            );
                        }
                        if c.maxbytes != 0 {
                            st.warn_at(
                                e,
                                format!(
                                    "{key}={s} in [{}] cannot be rotated: {which}_logfile_maxbytes is ignored (set it to 0; supervisord fails with \"Illegal seek\" here)",
                                    section.name
                                ),
                            );
                        }
                    }
                    LogTarget::Inherit
                } else {
                    LogTarget::File(p.clone())
                }
            }
        }
    };
    let stdout = target(&channels[0], "stdout");
    let stderr = if redirect_stderr {
        stdout.clone()
    } else {
        target(&channels[1], "stderr")
    };
    let is_file = |t: &LogTarget| matches!(t, LogTarget::File(_));
    let rotation = if is_file(&stdout) || !is_file(&stderr) {
        &channels[0]
    } else {
        &channels[1]
    };
    if !redirect_stderr
        && is_file(&stdout)
        && is_file(&stderr)
        && (channels[0].maxbytes, channels[0].backups)
            != (channels[1].maxbytes, channels[1].backups)
    {
        let e = ini
            .get(section, "stderr_logfile_maxbytes")
            .or_else(|| ini.get(section, "stderr_logfile_backups"))
            .or_else(|| ini.get(section, "stdout_logfile_maxbytes"))
            .or_else(|| ini.get(section, "stdout_logfile_backups"));
        let (file, line) = e.map_or((section.file, section.line), |e| (e.file, e.line));
        st.warn(
            file,
            line,
            format!(
                "[{}] rotates stdout and stderr differently: tend rotates both log files of a process by one rule, stdout's ({} bytes, {} backups)",
                section.name, channels[0].maxbytes, channels[0].backups
            ),
        );
    }
    LogSpec {
        stdout,
        stderr,
        merge_stderr: redirect_stderr,
        strip_ansi: sd.strip_ansi,
        timestamps: false,
        max_size: rotation.maxbytes,
        backups: rotation.backups,
    }
}

/// Supervisor's AUTO log name, `<name>-<channel>---<identifier>-<random>.log`
/// (`mkstemp` in `childlogdir`). The "random" part is derived from the other
/// three, so the file is the same across restarts and reloads.
pub(super) fn auto_log_path(dir: &Path, name: &str, channel: &str, identifier: &str) -> PathBuf {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_";
    // FNV-1a: stable across runs and platforms, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name
        .bytes()
        .chain([0])
        .chain(channel.bytes())
        .chain([0])
        .chain(identifier.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let suffix: String = (0..8)
        .map(|i| {
            let idx = (h >> (i * 8)) % CHARS.len() as u64;
            char::from(CHARS[idx as usize])
        })
        .collect();
    dir.join(format!("{name}-{channel}---{identifier}-{suffix}.log"))
}
