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
use super::ini::{Entry, Ini, Section, py_repr, py_strip};
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

/// A `[group:x]` as read: the group, the program sections it takes (each
/// then makes its processes for this group), and its section.
type Heterogeneous<'i> = Vec<(GroupRef, Vec<&'i str>, &'i Section)>;

/// Reads every process section, in stages: the `[group:x]` sections (which
/// programs leave their own group), the programs, the event-listener pools,
/// then the groups in Supervisor's order.
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
    let (memberships, heterogeneous) = read_group_sections(ini, st);
    let mut made = Made::default();
    let mut names = Names::default();
    let (produced, homogeneous) = read_programs(
        ini,
        st,
        &ctx,
        &memberships,
        &heterogeneous,
        &mut made,
        &mut names,
    );
    read_pools(ini, st, &ctx, &mut made, &mut names);
    assemble_groups(ini, st, &heterogeneous, &produced, homogeneous, &mut made);
    made
}

/// Process names taken so far, each with the section that took it.
#[derive(Default)]
struct Names(HashMap<Name, String>);

impl Names {
    /// Records `p` in `made`'s details; `false` (with an error) when its name
    /// is taken.
    fn add(&mut self, st: &mut St<'_>, made: &mut Made, p: &Proc) -> bool {
        if let Some(first) = self.0.get(&p.spec.name) {
            // supervisord runs both (as `a:x` and `b:x`); tend's names are
            // unique, so the second is left out and the rest runs.
            st.fail(
                p.file,
                p.line,
                format!(
                    "process name {:?} of [{}] is already used by [{first}]: tend needs unique process names, even in different groups, so this one does not run (supervisord runs both)",
                    p.spec.name.as_str(),
                    p.details.section
                ),
            );
            return false;
        }
        self.0
            .insert(p.spec.name.clone(), p.details.section.clone());
        made.details.insert(p.spec.name.clone(), p.details.clone());
        true
    }
}

/// `[group:x]`: which programs leave their own group for which group
/// (program section name -> indexes into the groups).
fn read_group_sections<'i>(
    ini: &'i Ini,
    st: &mut St<'_>,
) -> (HashMap<&'i str, Vec<usize>>, Heterogeneous<'i>) {
    let top = Top::new();
    let program_names: Vec<&str> = ini
        .sections
        .iter()
        .filter_map(|s| s.name.strip_prefix("program:"))
        .collect();
    let mut memberships: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut heterogeneous: Heterogeneous<'i> = Vec::new();
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
    (memberships, heterogeneous)
}

/// The processes each (program section, `[group:x]` index) made.
type Produced<'i> = HashMap<(&'i str, usize), Vec<Name>>;
/// A program's own group: name, priority, members, section.
type Homogeneous<'i> = Vec<(String, i32, Vec<Name>, &'i Section)>;

/// `[program:x]`: the processes of each program, for each `[group:x]` that
/// takes it, or for its own group.
fn read_programs<'i>(
    ini: &'i Ini,
    st: &mut St<'_>,
    ctx: &Ctx<'_>,
    memberships: &HashMap<&'i str, Vec<usize>>,
    heterogeneous: &Heterogeneous<'i>,
    made: &mut Made,
    names: &mut Names,
) -> (Produced<'i>, Homogeneous<'i>) {
    let mut produced: Produced<'i> = HashMap::new();
    let mut homogeneous = Vec::new();
    for section in &ini.sections {
        if !section.name.starts_with("program:") {
            continue;
        }
        if let Some(groups) = memberships.get(section.name.as_str()) {
            for &g in groups {
                let procs = read_program(ini, st, section, &heterogeneous[g].0, false, ctx);
                let mut members = Vec::new();
                for p in procs {
                    if names.add(st, made, &p) {
                        members.push(p.spec.name.clone());
                        made.processes.push(p.spec);
                    }
                }
                produced.insert((section.name.as_str(), g), members);
            }
            continue;
        }
        let raw = &section.name["program:".len()..];
        // A bad name makes no group; read_program reports it.
        let own = values::process_or_group_name(raw).unwrap_or_default();
        let group = GroupRef {
            name: own,
            priority: 999,
            explicit: false,
            kind: GroupKind::Program,
        };
        let procs = read_program(ini, st, section, &group, false, ctx);
        if group.name.is_empty() {
            continue;
        }
        let mut members = Vec::new();
        let mut priority = 999;
        for p in procs {
            priority = p.details.group_priority;
            if names.add(st, made, &p) {
                members.push(p.spec.name.clone());
                made.processes.push(p.spec);
            }
        }
        homogeneous.push((group.name, priority, members, section));
    }
    (produced, homogeneous)
}

/// `[eventlistener:x]`: each pool's listeners and its group.
fn read_pools(ini: &Ini, st: &mut St<'_>, ctx: &Ctx<'_>, made: &mut Made, names: &mut Names) {
    for section in &ini.sections {
        let Some(pool) = section.name.strip_prefix("eventlistener:") else {
            continue;
        };
        let Some(listener) = read_listener_pool(ini, st, section, pool) else {
            continue;
        };
        let procs = read_program(ini, st, section, &listener.0, true, ctx);
        let mut members = Vec::new();
        for mut p in procs {
            if names.add(st, made, &p) {
                // The listener's stdout is Supervisor's protocol channel.
                p.spec.logs.protocol_stdout = true;
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
}

/// The groups in Supervisor's order: `[group:x]` in file order, then the
/// programs' own, then the pools (already in `made`, moved to the end); a
/// group name used twice is an error.
fn assemble_groups(
    ini: &Ini,
    st: &mut St<'_>,
    heterogeneous: &Heterogeneous<'_>,
    produced: &Produced<'_>,
    homogeneous: Homogeneous<'_>,
    made: &mut Made,
) {
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
    // Two groups of one name: supervisord adds the first (by priority) and
    // silently skips the other; tend does the same, and says so.
    let mut order: Vec<usize> = (0..made.groups.len()).collect();
    order.sort_by_key(|&i| made.groups[i].priority);
    let mut group_seen: HashMap<Name, GroupKind> = HashMap::new();
    let mut dropped = Vec::new();
    for i in order {
        let g = &made.groups[i];
        if group_seen.insert(g.name.clone(), g.kind).is_some() {
            let section = ini.sections.iter().rev().find(|s| {
                s.name
                    .split_once(':')
                    .is_some_and(|(_, n)| n.trim() == g.name.as_str())
            });
            let (file, line) = section.map_or((0, 1), |s| (s.file, s.line));
            st.fail(
                file,
                line,
                format!(
                    "group name {:?} is used twice (a [group:x], [program:x] outside any group, or [eventlistener:x] of that name): the group of [{}] does not run, as supervisord keeps only the first",
                    g.name.as_str(),
                    section.map_or("?", |s| s.name.as_str())
                ),
            );
            dropped.push(i);
        }
    }
    dropped.sort_unstable();
    for i in dropped.into_iter().rev() {
        let g = made.groups.remove(i);
        made.processes.retain(|p| !g.members.contains(&p.name));
        made.eventlisteners
            .retain(|l| !g.members.contains(&l.spec.name));
        for m in &g.members {
            made.details.remove(m);
        }
    }
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

/// The section-wide options of one `[program:x]` or `[eventlistener:x]`,
/// read and checked once, before `numprocs` expands them into processes.
/// Options that may name `%(process_num)s` (environment, directory, log
/// files, command, process name) are read per process instead.
struct Options<'i> {
    program_name: String,
    /// `priority` as Supervisor reads it (999 by default).
    priority: i32,
    /// The priority of its group, as Supervisor reports it.
    group_priority: i32,
    /// The priority tend orders the processes by.
    spec_priority: i32,
    autostart: bool,
    autorestart: RestartPolicy,
    startsecs: u32,
    startretries: u32,
    stopsignal: Signal,
    stopwaitsecs: u32,
    stopasgroup: bool,
    killasgroup: bool,
    exitcodes: Vec<i32>,
    redirect_stderr: bool,
    numprocs: i64,
    numprocs_start: i128,
    capture: [u64; 2],
    events: [bool; 2],
    serverurl: Option<String>,
    user: Option<String>,
    uid: Option<u32>,
    umask: Option<u32>,
    /// `process_name` before expansion, and its entry when written.
    process_name: String,
    name_entry: Option<&'i Entry>,
}

/// The processes of one `[program:x]` or `[eventlistener:x]` for `group`,
/// in three stages: the section's options, then each `process_num` with its
/// expansions, then each process's spec.
fn read_program(
    ini: &Ini,
    st: &mut St<'_>,
    section: &Section,
    group: &GroupRef,
    listener: bool,
    ctx: &Ctx<'_>,
) -> Vec<Proc> {
    let Some(opts) = Options::read(ini, st, section, group, listener) else {
        return Vec::new();
    };
    let Some(end) = opts.numprocs_start.checked_add(i128::from(opts.numprocs)) else {
        let e = ini
            .get(section, "numprocs_start")
            .or_else(|| ini.get(section, "numprocs"));
        let (file, line) = e.map_or((section.file, section.line), |e| (e.file, e.line));
        st.error(
            file,
            line,
            format!(
                "numprocs_start = {} with numprocs = {} in [{}] runs past the largest process number",
                opts.numprocs_start, opts.numprocs, section.name
            ),
        );
        return Vec::new();
    };
    let mut top = Top::from([
        (
            "program_name".to_string(),
            Val::Str(opts.program_name.clone()),
        ),
        ("group_name".to_string(), Val::Str(group.name.clone())),
        ("host_node_name".to_string(), Val::Str(st.host.node.clone())),
    ]);
    (opts.numprocs_start..end)
        .filter_map(|n| one_process(ini, st, section, group, &opts, &mut top, n, ctx))
        .collect()
}

impl<'i> Options<'i> {
    /// Reads the section's options; `None` (with the reason reported) when
    /// the section makes no process at all.
    fn read(
        ini: &'i Ini,
        st: &mut St<'_>,
        section: &'i Section,
        group: &GroupRef,
        listener: bool,
    ) -> Option<Options<'i>> {
        let at = (section.file, section.line);
        let raw_name = section.name.split_once(':').map_or("", |(_, n)| n);
        let program_name = match values::process_or_group_name(raw_name) {
            Ok(n) => n,
            Err(why) => {
                st.error(at.0, at.1, why);
                return None;
            }
        };
        let top = Top::from([
            ("program_name".to_string(), Val::Str(program_name.clone())),
            ("group_name".to_string(), Val::Str(group.name.clone())),
            ("host_node_name".to_string(), Val::Str(st.host.node.clone())),
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
            .typed(ini, section, "numprocs_start", &top, values::integer_wide)
            .unwrap_or(0);
        let (capture, events) = read_capture(ini, st, section, &top);
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
                    return None;
                }
            },
            None => "%(program_name)s".to_string(),
        };
        check_groups_of_signals(ini, st, section, stopasgroup, killasgroup);
        if !check_numprocs(ini, st, section, numprocs, &process_name, name_entry) {
            return None;
        }
        let (group_priority, spec_priority) = priorities(ini, st, section, group, own_priority);
        Some(Options {
            program_name,
            priority,
            group_priority,
            spec_priority,
            autostart,
            autorestart,
            startsecs,
            startretries,
            stopsignal,
            stopwaitsecs,
            stopasgroup,
            killasgroup,
            exitcodes,
            redirect_stderr,
            numprocs,
            numprocs_start,
            capture,
            events,
            serverurl,
            user,
            uid,
            umask,
            process_name,
            name_entry,
        })
    }
}

/// `*_capture_maxbytes` (warned about: tend sends no
/// `PROCESS_COMMUNICATION` events) and `*_events_enabled`, per stream.
fn read_capture(ini: &Ini, st: &mut St<'_>, section: &Section, top: &Top) -> ([u64; 2], [bool; 2]) {
    let mut capture = [0u64; 2];
    let mut events = [false; 2];
    for (i, which) in ["stdout", "stderr"].into_iter().enumerate() {
        let key = format!("{which}_capture_maxbytes");
        capture[i] = st.typed(ini, section, &key, top, values::size).unwrap_or(0);
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
        events[i] = st.boolean(ini, section, &key, top, false);
    }
    (capture, events)
}

/// `stopasgroup` and `killasgroup`: Supervisor's one refusal, and a warning
/// where tend cannot do what was asked.
fn check_groups_of_signals(
    ini: &Ini,
    st: &mut St<'_>,
    section: &Section,
    stopasgroup: bool,
    killasgroup: bool,
) {
    if stopasgroup && !killasgroup {
        let e = ini.get(section, "killasgroup");
        let (file, line) = e.map_or((section.file, section.line), |e| (e.file, e.line));
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
}

/// Whether `numprocs` makes processes: an error when it is too many or the
/// names would collide, a warning when it is none.
fn check_numprocs(
    ini: &Ini,
    st: &mut St<'_>,
    section: &Section,
    numprocs: i64,
    process_name: &str,
    name_entry: Option<&Entry>,
) -> bool {
    if numprocs > 1 && !process_name.contains("%(process_num)") {
        let (file, line) = name_entry.map_or((section.file, section.line), |e| (e.file, e.line));
        st.error(
            file,
            line,
            format!(
                "%(process_num) must be present within process_name when numprocs > 1 (in [{}])",
                section.name
            ),
        );
        return false;
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
        return false;
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
        return false;
    }
    true
}

/// `(group priority as Supervisor reports it, priority tend orders by)`.
///
/// Supervisor uses the program's priority for its own group, and the pool's
/// for a listener pool; a `[group:x]`'s is its own. tend orders processes by
/// their own priority alone, so it takes the group's where that is what
/// decides Supervisor's order, and says so where the two differ.
fn priorities(
    ini: &Ini,
    st: &mut St<'_>,
    section: &Section,
    group: &GroupRef,
    own_priority: Option<i32>,
) -> (i32, i32) {
    let priority = own_priority.unwrap_or(999);
    let group_priority = match group.kind {
        GroupKind::Program => priority,
        GroupKind::Group | GroupKind::EventListenerPool => group.priority,
    };
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
    (group_priority, spec_priority)
}

/// The process `process_num` of a section: its expansions (environment,
/// directory, log files, command, name), then its spec.
#[allow(clippy::too_many_arguments)]
fn one_process(
    ini: &Ini,
    st: &mut St<'_>,
    section: &Section,
    group: &GroupRef,
    opts: &Options<'_>,
    top: &mut Top,
    process_num: i128,
    ctx: &Ctx<'_>,
) -> Option<Proc> {
    let host = st.host;
    let at = (section.file, section.line);
    top.insert("process_num".to_string(), Val::Int(process_num));
    top.insert("numprocs".to_string(), Val::Int(i128::from(opts.numprocs)));
    let mut program_env: BTreeMap<String, String> = BTreeMap::new();
    if let Some(e) = ini.get(section, "environment")
        && let Some(text) = st.expand(&e.value, e, top, "environment")
    {
        match values::key_value_pairs(&text) {
            Ok(pairs) => program_env.extend(pairs),
            Err(why) => st.error_at(e, format!("environment in [{}]: {why}", section.name)),
        }
    }
    for (k, v) in &program_env {
        top.insert(format!("ENV_{k}"), Val::Str(v.clone()));
    }
    let directory = st.get(ini, section, "directory", top).map(|g| {
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
    let channels = read_channels(ini, st, section, top, opts);

    let command = st.get(ini, section, "command", top);
    if command.is_none() && ini.get(section, "command").is_none() {
        st.error(
            at.0,
            at.1,
            format!(
                "program section {} does not specify a command",
                section.name
            ),
        );
    }
    // A command that does not split fails its program when it starts, as
    // in supervisord (`can't parse command ...`); the rest of the file runs.
    let mut spawn_error = None;
    let argv = command
        .as_ref()
        .map(|g| match ProcessSpec::split_command(&g.value) {
            Ok(argv) => argv,
            Err(_) => {
                let why = command_error(&g.value);
                st.fail(
                    g.entry.file,
                    g.entry.line,
                    format!(
                        "command in [{}]: {why}: this program cannot start (as under supervisord); the others run",
                        section.name
                    ),
                );
                spawn_error = Some(why);
                vec![g.value.clone()]
            }
        });
    let name = match opts.name_entry {
        Some(e) => st.expand(&opts.process_name, e, top, "process_name"),
        // The default `%(program_name)s` cannot fail.
        None => Some(opts.program_name.clone()),
    };
    let name = name.and_then(|n| {
        Name::new(n.trim())
            .map_err(|e| {
                let (file, line) = opts.name_entry.map_or(at, |e| (e.file, e.line));
                st.error(
                    file,
                    line,
                    format!("invalid process name in [{}]: {e}", section.name),
                );
            })
            .ok()
    });
    let group_name = Name::new(group.name.as_str())
        .map_err(|e| {
            st.error(
                at.0,
                at.1,
                format!("invalid group name for [{}]: {e}", section.name),
            );
        })
        .ok();
    let (Some(argv), Some(name), Some(group_name), Some(command)) =
        (argv, name, group_name, command)
    else {
        return None;
    };
    let mut spec = ProcessSpec::new(name.clone(), argv);
    spec.spawn_error = spawn_error;
    spec.group = group_name.clone();
    spec.cwd = directory;
    spec.env.insert("SUPERVISOR_ENABLED".into(), "1".into());
    spec.env
        .insert("SUPERVISOR_PROCESS_NAME".into(), name.to_string());
    spec.env
        .insert("SUPERVISOR_GROUP_NAME".into(), group_name.to_string());
    if let Some(url) = opts.serverurl.as_deref().or(ctx.auto_url) {
        spec.env
            .insert("SUPERVISOR_SERVER_URL".into(), url.to_string());
    }
    spec.env.extend(ctx.supervisord.environment.clone());
    spec.env.extend(program_env);
    opts.apply(&mut spec);
    spec.logs = log_spec(
        st,
        section,
        ini,
        &name,
        &channels,
        opts.redirect_stderr,
        ctx,
    );
    if let Err(e) = spec.validate() {
        st.error(at.0, at.1, format!("[{}]: {e}", section.name));
        return None;
    }
    let mut details = opts.details(section, command.value, &channels, &spec);
    if opts.numprocs > 1 {
        details.numbered = Some(super::Numbered {
            process_num,
            start: opts.numprocs_start,
            numprocs: opts.numprocs,
            formats: process_num_formats(section),
        });
    }
    Some(Proc {
        spec,
        details,
        file: at.0,
        line: at.1,
    })
}

/// The conversions `%(process_num)` is written with in `section`'s options
/// other than `process_name` (`d` of `%(process_num)d`, `02d`), in order, once.
fn process_num_formats(section: &Section) -> Vec<String> {
    const KEY: &str = "%(process_num)";
    let mut out: Vec<String> = Vec::new();
    for e in section.entries.iter().filter(|e| e.key != "process_name") {
        let v = e.value.as_str();
        let mut i = 0;
        while let Some(at) = v[i..].find('%') {
            let at = i + at;
            if v[at..].starts_with("%%") {
                i = at + 2;
                continue;
            }
            if !v[at..].starts_with(KEY) {
                i = at + 1;
                continue;
            }
            let rest = &v[at + KEY.len()..];
            let flags = rest
                .find(|c: char| !"-+ #0123456789.".contains(c))
                .unwrap_or(rest.len());
            let end = rest[flags..]
                .chars()
                .next()
                .map_or(flags, |c| flags + c.len_utf8());
            let f = rest[..end].to_string();
            if !out.contains(&f) {
                out.push(f);
            }
            i = at + KEY.len() + end;
        }
    }
    out
}

/// supervisord's `BadCommand` message for a command `shlex.split` refuses or
/// that is empty (`Subprocess.get_execv_args`).
fn command_error(command: &str) -> String {
    if py_strip(command).is_empty() {
        return "command is empty".to_string();
    }
    // shlex: an open quote at the end, else a backslash with nothing after it.
    let (mut quote, mut escaped) = (None::<char>, false);
    for c in command.chars() {
        match (quote, escaped, c) {
            (_, true, _) => escaped = false,
            (None | Some('"'), false, '\\') => escaped = true,
            (None, false, '\'' | '"') => quote = Some(c),
            (Some(q), false, c) if c == q => quote = None,
            _ => {}
        }
    }
    let why = if quote.is_some() {
        "No closing quotation"
    } else {
        "No escaped character"
    };
    format!("can't parse command {}: {why}", py_repr(command))
}

/// The `stdout_*` and `stderr_*` options of one process, with Supervisor's
/// warnings about them.
fn read_channels(
    ini: &Ini,
    st: &mut St<'_>,
    section: &Section,
    top: &Top,
    opts: &Options<'_>,
) -> Vec<Channel> {
    let host = st.host;
    let at = (section.file, section.line);
    let mut channels = Vec::with_capacity(2);
    for (i, which) in ["stdout", "stderr"].into_iter().enumerate() {
        let key = format!("{which}_logfile");
        let logfile = st
            .typed(ini, section, &key, top, |s| {
                values::logfile_name(s, &host.cwd, &host.env)
            })
            .unwrap_or(LogfileName::Auto);
        let backups = st.count(ini, section, &format!("{which}_logfile_backups"), top, 10);
        let maxbytes = st
            .typed(
                ini,
                section,
                &format!("{which}_logfile_maxbytes"),
                top,
                values::size,
            )
            .unwrap_or(50 * 1024 * 1024);
        let mut syslog = st.boolean(ini, section, &format!("{which}_syslog"), top, false);
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
            capture_maxbytes: opts.capture[i],
            events_enabled: opts.events[i],
            syslog,
        });
    }
    if opts.redirect_stderr {
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
    channels
}

impl Options<'_> {
    /// The section-wide settings of a process's spec.
    fn apply(&self, spec: &mut ProcessSpec) {
        spec.user = self.user.clone();
        spec.umask = self.umask;
        spec.autostart = self.autostart;
        spec.priority = self.spec_priority;
        spec.restart = self.autorestart;
        spec.success_exit_codes = self.exitcodes.clone();
        spec.start_secs = Duration::from_secs(u64::from(self.startsecs));
        // Supervisor gives every child a stdin pipe (sendProcessStdin, `fg`).
        spec.stdin_pipe = true;
        spec.backoff = supervisor_backoff(self.startretries);
        spec.stop = StopSpec {
            signal: self.stopsignal,
            timeout: Duration::from_secs(u64::from(self.stopwaitsecs)),
            ..StopSpec::default()
        };
    }

    /// What Supervisor's face reports of a process that `spec` runs.
    fn details(
        &self,
        section: &Section,
        command: String,
        channels: &[Channel],
        spec: &ProcessSpec,
    ) -> ProcessDetails {
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
        ProcessDetails {
            section: section.name.clone(),
            command,
            group_priority: self.group_priority,
            process_priority: self.priority,
            startretries: self.startretries,
            stopasgroup: self.stopasgroup,
            killasgroup: self.killasgroup,
            serverurl: self.serverurl.clone(),
            uid: self.uid,
            stdout: channel(&channels[0], &spec.logs.stdout),
            stderr: channel(&channels[1], &spec.logs.stderr),
            numbered: None,
        }
    }
}

/// Supervisor's retry model: a start that dies before `startsecs` is retried
/// after 1 s, 2 s, 3 s, ... and `startretries` retries (so `startretries + 1`
/// spawns) end in `fatal`; a process that got past `startsecs` and exits is
/// restarted at once. No run counts as quick by its length alone
/// (`min_uptime` 0), which keeps the `startsecs = 0` trap of Supervisor,
/// but at supervisord's own pace: its main loop wakes once a second, so a
/// program that exits at once is respawned about once a second, and so it
/// is here (`floor` 1 s), never in a hot loop.
pub(super) fn supervisor_backoff(startretries: u32) -> Backoff {
    Backoff {
        mode: BackoffMode::Linear {
            step: Duration::from_secs(1),
        },
        min_uptime: Duration::ZERO,
        give_up_after: Some(startretries.saturating_add(1)),
        floor: SUPERVISORD_FLOOR,
        ..Backoff::default()
    }
}

/// The least time between two automatic spawns of a supervisord.conf
/// program: supervisord's pace (its poll timeout is one second).
pub(super) const SUPERVISORD_FLOOR: Duration = Duration::from_secs(1);

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
            // No file: read only if PROCESS_LOG events want the bytes.
            LogfileName::None | LogfileName::Syslog if c.events_enabled => LogTarget::Memory,
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
        protocol_stdout: false,
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
