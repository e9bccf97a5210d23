//! Dependencies and checks: `depends_on`, the `[process.NAME.ready]` and
//! `[process.NAME.health]` tables, and the checks of the whole graph (unknown
//! names, cycles, conditions a dependency cannot meet).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use tend_core::probe::{Check, ProbeSpec};
use tend_core::spec::{Condition, Dependency};
use tend_core::{Name, ProcessSpec, RestartPolicy};
use toml::de::{DeTable, DeValue};

use super::process::positive_duration;
use super::value::{Field, Item, walk};
use crate::diag::{Cx, Span, did_you_mean};

/// One `depends_on` entry as written, with the place to point at.
#[derive(Debug, Clone)]
pub(super) struct DepEntry {
    pub(super) name: String,
    pub(super) condition: Condition,
    pub(super) restart: bool,
    /// The entry: the string in the array form, the key in the table form.
    pub(super) span: Span,
}

impl DepEntry {
    /// The spec's edge; `None` (with an error) for a name that cannot be one.
    pub(super) fn to_dependency(&self, cx: &mut Cx<'_>) -> Option<Dependency> {
        match Name::new(&self.name) {
            Ok(name) => Some(Dependency {
                name,
                condition: self.condition,
                restart: self.restart,
            }),
            Err(e) => {
                cx.error(
                    self.span.clone(),
                    format!("invalid process name in depends_on: {e}"),
                );
                None
            }
        }
    }
}

const CONDITIONS: [&str; 4] = ["started", "ready", "healthy", "completed"];

/// docker compose's and process-compose's spellings, for the suggestion.
const CONDITION_ALIASES: &[(&str, &str)] = &[
    ("service_started", "started"),
    ("service_healthy", "healthy"),
    ("service_completed_successfully", "completed"),
    ("process_started", "started"),
    ("process_healthy", "healthy"),
    ("process_completed", "completed"),
    ("process_completed_successfully", "completed"),
    ("process_log_ready", "ready"),
    ("running", "started"),
    ("success", "completed"),
    ("exited", "completed"),
];

fn read_condition(cx: &mut Cx<'_>, v: &Item<'_>) -> Option<Condition> {
    let s = cx.string(v)?;
    Some(match s {
        "started" => Condition::Started,
        "ready" => Condition::Ready,
        "healthy" => Condition::Healthy,
        "completed" => Condition::Completed,
        _ => {
            let hint = match CONDITION_ALIASES
                .iter()
                .find(|(a, _)| a.eq_ignore_ascii_case(s))
            {
                Some((_, right)) => format!(" (did you mean {right:?}?)"),
                None => did_you_mean(s, CONDITIONS),
            };
            cx.error(
                v.span(),
                format!(
                    "unknown condition {s:?}: expected \"started\", \"ready\", \"healthy\" or \"completed\"{hint}"
                ),
            );
            return None;
        }
    })
}

/// One edge written as a table: `db = { condition = "ready", restart = true }`.
struct EdgeDraft {
    condition: Condition,
    restart: bool,
}

const EDGE_FIELDS: &[Field<EdgeDraft>] = &[
    Field {
        key: "condition",
        read: |cx, e, _, v| e.condition = read_condition(cx, v).unwrap_or(e.condition),
    },
    Field {
        key: "restart",
        read: |cx, e, _, v| e.restart = cx.bool(v).unwrap_or(e.restart),
    },
];

/// `depends_on = ["db"]` (condition `started`, as docker compose's short
/// form), `depends_on = { db = "ready" }` or
/// `depends_on = { db = { condition = "ready", restart = true } }`.
pub(super) fn read_depends_on(cx: &mut Cx<'_>, section: &str, v: &Item<'_>) -> Vec<DepEntry> {
    let mut out: Vec<DepEntry> = Vec::new();
    match v.get_ref() {
        DeValue::Array(arr) => {
            for e in arr.iter() {
                let Some(name) = cx.string(e) else { continue };
                if out.iter().any(|d| d.name == name) {
                    cx.error(e.span(), format!("{name:?} is listed twice in depends_on"));
                    continue;
                }
                out.push(DepEntry {
                    name: name.to_string(),
                    condition: Condition::Started,
                    restart: false,
                    span: e.span(),
                });
            }
        }
        DeValue::Table(table) => {
            let mut entries: Vec<_> = table.iter().collect();
            entries.sort_by_key(|(k, _)| k.span().start);
            for (key, value) in entries {
                let name: &str = key.get_ref();
                let edge = match value.get_ref() {
                    DeValue::String(_) => read_condition(cx, value).map(|condition| EdgeDraft {
                        condition,
                        restart: false,
                    }),
                    DeValue::Table(t) => {
                        let mut edge = EdgeDraft {
                            condition: Condition::Started,
                            restart: false,
                        };
                        let where_ = format!("depends_on.{name} of {section}");
                        walk(cx, &where_, t, EDGE_FIELDS, &[], &mut edge);
                        Some(edge)
                    }
                    _ => {
                        cx.wrong_type(
                            value,
                            "a condition (\"started\", \"ready\", \"healthy\", \"completed\") or a table { condition, restart }",
                        );
                        None
                    }
                };
                if let Some(edge) = edge {
                    out.push(DepEntry {
                        name: name.to_string(),
                        condition: edge.condition,
                        restart: edge.restart,
                        span: key.span(),
                    });
                }
            }
        }
        DeValue::String(s) => {
            let msg = format!(
                "expected an array of process names or a table, found string (write depends_on = [{s:?}])"
            );
            cx.error(v.span(), msg);
        }
        _ => cx.wrong_type(
            v,
            "an array of process names or a table of conditions (depends_on = { db = \"ready\" })",
        ),
    }
    out
}

/// A check table as written.
struct ProbeDraft {
    /// Each check key found: its name, the check (if its value was valid),
    /// and the span of the key.
    kinds: Vec<(&'static str, Option<Check>, Span, Span)>,
    spec: ProbeSpec,
}

const PROBE_FIELDS: &[Field<ProbeDraft>] = &[
    Field {
        key: "http",
        read: |cx, d, k, v| {
            let c = cx.expanded(v, "http").map(Check::Http);
            d.kinds.push(("http", c, k, v.span()))
        },
    },
    Field {
        key: "tcp",
        read: |cx, d, k, v| {
            let c = cx.expanded(v, "tcp").map(Check::Tcp);
            d.kinds.push(("tcp", c, k, v.span()))
        },
    },
    Field {
        key: "port_free",
        read: |cx, d, k, v| {
            let c = match cx.int::<u16>(v, "a port (1 to 65535)") {
                Some(0) => {
                    cx.error(v.span(), "0 is not a port (1 to 65535)");
                    None
                }
                p => p.map(Check::PortFree),
            };
            d.kinds.push(("port_free", c, k, v.span()))
        },
    },
    Field {
        key: "redis",
        read: |cx, d, k, v| {
            let c = read_redis(cx, v);
            d.kinds.push(("redis", c, k, v.span()))
        },
    },
    Field {
        key: "exec",
        read: |cx, d, k, v| {
            let argv = match v.get_ref() {
                DeValue::String(s) => ProcessSpec::split_command(s)
                    .map_err(|e| cx.error(v.span(), format!("exec check: {e}")))
                    .ok(),
                DeValue::Array(_) => cx.string_list(v),
                _ => {
                    cx.wrong_type(v, "an array of strings or a string");
                    None
                }
            }
            .and_then(|argv| cx.expand_argv(v, argv, "exec"));
            d.kinds.push(("exec", argv.map(Check::Exec), k, v.span()))
        },
    },
    Field {
        key: "initial_delay",
        read: |cx, d, _, v| d.spec.initial_delay = cx.duration(v).unwrap_or(d.spec.initial_delay),
    },
    Field {
        key: "period",
        read: |cx, d, _, v| {
            if let Some(p) = positive_duration(cx, v, "period") {
                d.spec.period = p;
            }
        },
    },
    Field {
        key: "timeout",
        read: |cx, d, _, v| {
            if let Some(t) = positive_duration(cx, v, "timeout") {
                d.spec.timeout = t;
            }
        },
    },
    Field {
        key: "failure_threshold",
        read: |cx, d, _, v| {
            if let Some(n) = at_least_one(cx, v, "failure_threshold") {
                d.spec.failure_threshold = n;
            }
        },
    },
    Field {
        key: "success_threshold",
        read: |cx, d, _, v| {
            if let Some(n) = at_least_one(cx, v, "success_threshold") {
                d.spec.success_threshold = n;
            }
        },
    },
];

/// Kubernetes' and docker compose's spellings.
const PROBE_ALIASES: &[(&str, &str)] = &[
    ("cmd", "exec"),
    ("command", "exec"),
    ("test", "exec"),
    ("url", "http"),
    ("port", "tcp"),
    ("interval", "period"),
    ("period_seconds", "period"),
    ("periodSeconds", "period"),
    ("initialDelaySeconds", "initial_delay"),
    ("initial_delay_seconds", "initial_delay"),
    ("start_period", "initial_delay"),
    ("timeout_seconds", "timeout"),
    ("timeoutSeconds", "timeout"),
    ("retries", "failure_threshold"),
    ("failureThreshold", "failure_threshold"),
    ("successThreshold", "success_threshold"),
];

fn at_least_one(cx: &mut Cx<'_>, v: &Item<'_>, key: &str) -> Option<u32> {
    let n = cx.int::<u32>(v, "a count (at least 1)")?;
    if n == 0 {
        cx.error(v.span(), format!("{key} must be at least 1"));
        return None;
    }
    Some(n)
}

/// `redis = "host:port"` or `redis = { addr = "...", password = "...", username = "..." }`,
/// each string `${VAR}` expanded (`password = "${REDIS_PASSWORD}"`).
fn read_redis(cx: &mut Cx<'_>, v: &Item<'_>) -> Option<Check> {
    #[derive(Default)]
    struct Redis {
        addr: Option<String>,
        password: Option<String>,
        username: Option<String>,
    }
    const FIELDS: &[Field<Redis>] = &[
        Field {
            key: "addr",
            read: |cx, r, _, v| r.addr = cx.expanded(v, "redis.addr"),
        },
        Field {
            key: "password",
            read: |cx, r, _, v| r.password = cx.expanded(v, "redis.password"),
        },
        Field {
            key: "username",
            read: |cx, r, _, v| r.username = cx.expanded(v, "redis.username"),
        },
    ];
    match v.get_ref() {
        DeValue::String(s) => Some(Check::Redis {
            addr: cx.expand(v, s, "redis")?,
            password: None,
            username: None,
        }),
        DeValue::Table(t) => {
            let before = cx.error_count();
            let mut r = Redis::default();
            walk(
                cx,
                "the redis check",
                t,
                FIELDS,
                &[("host", "addr")],
                &mut r,
            );
            let Some(addr) = r.addr else {
                // An addr that is there but wrong has its own error.
                if !t.contains_key("addr") {
                    cx.error(v.span(), "the redis check needs an \"addr\" (host:port)");
                }
                return None;
            };
            (cx.error_count() == before).then_some(Check::Redis {
                addr,
                password: r.password,
                username: r.username,
            })
        }
        _ => {
            cx.wrong_type(v, "\"host:port\" or a table { addr, password, username }");
            None
        }
    }
}

/// Reads a `[process.NAME.ready]` or `[process.NAME.health]` table:
/// exactly one check and Kubernetes' timing keys.
pub(super) fn read_probe(cx: &mut Cx<'_>, section: &str, v: &Item<'_>) -> Option<ProbeSpec> {
    let table: &DeTable<'_> = cx.table(v)?;
    let before = cx.error_count();
    let mut d = ProbeDraft {
        kinds: Vec::new(),
        // Replaced by the check found; the timing defaults are what matters.
        spec: ProbeSpec::new(Check::PortFree(1)),
    };
    walk(cx, section, table, PROBE_FIELDS, PROBE_ALIASES, &mut d);
    d.kinds.sort_by_key(|(_, _, k, _)| k.start);
    match d.kinds.as_slice() {
        [] => {
            cx.error(
                v.span(),
                format!(
                    "{section} needs a check: one of \"http\", \"tcp\", \"port_free\", \"redis\" or \"exec\""
                ),
            );
            None
        }
        [(_, check, _, value_span)] => {
            let check = check.clone()?;
            // Template text in a table with `replicas`: checked as copy 0's.
            let checked = if cx.vars.keeps_replica() {
                super::replicas::substitute_check(&check, "0")
            } else {
                check.clone()
            };
            if let Err(e) = checked.validate() {
                cx.error(value_span.clone(), e);
                return None;
            }
            if cx.error_count() > before {
                return None;
            }
            let mut spec = d.spec;
            spec.check = checked;
            // Everything was checked where it is written; this is a backstop.
            if let Err(e) = spec.validate() {
                cx.error(v.span(), format!("{section}: {e}"));
                return None;
            }
            spec.check = check;
            Some(spec)
        }
        [(first, ..), (second, _, key, _), ..] => {
            cx.error(
                key.clone(),
                format!(
                    "{section} has one check, found \"{first}\" and \"{second}\" (use a second process, or an exec check that does both)"
                ),
            );
            None
        }
    }
}

/// One edge of the graph as the file states it, for the checks of the whole graph.
pub(super) struct Edge {
    /// The dependent.
    pub(super) from: String,
    /// What it depends on.
    pub(super) to: String,
    pub(super) condition: Condition,
    /// Where the edge is written.
    pub(super) span: Span,
    /// `depends_on` of a `[process.x]` or `[task.x]`, or `before` of a task.
    pub(super) origin: Origin,
}

/// Where an edge comes from, for messages.
pub(super) enum Origin {
    /// `depends_on` in this section.
    DependsOn(String),
    /// `before` in this task's section.
    Before(String),
}

/// The checks only the whole file can tell: names that exist, conditions the
/// dependency can meet, and no cycle. `declared` holds every name in the
/// file, valid or not, so that a process with errors of its own is not
/// reported again as unknown.
pub(super) fn check_graph(
    cx: &mut Cx<'_>,
    specs: &[ProcessSpec],
    edges: &[Edge],
    declared: &[String],
) {
    let by_name: std::collections::HashMap<&str, &ProcessSpec> =
        specs.iter().map(|s| (s.name.as_str(), s)).collect();
    let spec_of = |n: &str| by_name.get(n).copied();
    let names: std::collections::HashSet<&str> = declared.iter().map(String::as_str).collect();
    let known = |n: &str| names.contains(n);
    for e in edges {
        match &e.origin {
            Origin::DependsOn(section) if !known(&e.to) => {
                let hint = did_you_mean(&e.to, declared.iter().map(String::as_str));
                cx.error(
                    e.span.clone(),
                    format!(
                        "unknown process {:?} in depends_on of {section}{hint}",
                        e.to
                    ),
                );
                continue;
            }
            Origin::Before(section) if !known(&e.from) => {
                let hint = did_you_mean(&e.from, declared.iter().map(String::as_str));
                cx.error(
                    e.span.clone(),
                    format!("unknown process {:?} in before of {section}{hint}", e.from),
                );
                continue;
            }
            _ => {}
        }
        let Some(target) = spec_of(&e.to) else {
            continue;
        };
        let at = match &e.origin {
            Origin::DependsOn(section) => format!("in depends_on of {section}"),
            Origin::Before(section) => format!("in before of {section}"),
        };
        match e.condition {
            Condition::Healthy if target.health.is_none() => cx.error(
                e.span.clone(),
                format!(
                    "{:?} has no health check, so it is never \"healthy\" ({at}): add a [process.{}.health] table, or wait for \"ready\"",
                    e.to, e.to
                ),
            ),
            Condition::Completed if target.restart == RestartPolicy::Always => cx.error(
                e.span.clone(),
                format!(
                    "{:?} is restarted after every exit, so it never stays \"completed\" ({at}): make it a [task.{}], or give it restart = \"on-failure\" or \"never\"",
                    e.to, e.to
                ),
            ),
            _ => {}
        }
    }
    report_cycles(cx, specs, edges);
}

/// One error per group of processes that depend on each other in a circle,
/// naming one cycle of it, at the first edge of it written in the file.
fn report_cycles(cx: &mut Cx<'_>, specs: &[ProcessSpec], edges: &[Edge]) {
    let known: BTreeSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for e in edges {
        if known.contains(e.from.as_str()) && known.contains(e.to.as_str()) {
            next.entry(e.from.as_str()).or_default().push(e.to.as_str());
        }
    }
    for component in strongly_connected(&known, &next) {
        let inside = |n: &str| component.contains(n);
        // The first edge in the file that lies on a cycle of this component.
        let Some(first) = edges
            .iter()
            .filter(|e| inside(&e.from) && inside(&e.to))
            .min_by_key(|e| e.span.start)
        else {
            continue;
        };
        // The shortest way back from its target to its source closes the cycle.
        let path = shortest_path(&next, &first.to, &first.from, &component);
        let mut cycle = vec![first.from.as_str()];
        cycle.extend(path);
        cx.error(
            first.span.clone(),
            format!("dependency cycle: {}", cycle.join(" -> ")),
        );
    }
}

/// Tarjan's algorithm: the strongly connected components that hold a cycle
/// (more than one node, or one node with an edge to itself).
fn strongly_connected<'a>(
    nodes: &BTreeSet<&'a str>,
    next: &BTreeMap<&'a str, Vec<&'a str>>,
) -> Vec<BTreeSet<&'a str>> {
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<BTreeSet<&'a str>>,
    }
    fn visit<'a>(n: &'a str, next: &BTreeMap<&'a str, Vec<&'a str>>, s: &mut State<'a>) {
        let i = s.index.len();
        s.index.insert(n, i);
        s.low.insert(n, i);
        s.stack.push(n);
        s.on_stack.insert(n);
        for &m in next.get(n).map(Vec::as_slice).unwrap_or(&[]) {
            if !s.index.contains_key(m) {
                visit(m, next, s);
                let lm = s.low[m];
                if let Some(l) = s.low.get_mut(n) {
                    *l = (*l).min(lm);
                }
            } else if s.on_stack.contains(m) {
                let im = s.index[m];
                if let Some(l) = s.low.get_mut(n) {
                    *l = (*l).min(im);
                }
            }
        }
        if s.low[n] == s.index[n] {
            let mut component = BTreeSet::new();
            while let Some(m) = s.stack.pop() {
                s.on_stack.remove(m);
                component.insert(m);
                if m == n {
                    break;
                }
            }
            let self_loop = next.get(n).is_some_and(|v| v.contains(&n));
            if component.len() > 1 || self_loop {
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for &n in nodes {
        if !s.index.contains_key(n) {
            visit(n, next, &mut s);
        }
    }
    s.out
}

/// The nodes from `from` to `to` (both included), breadth first inside `within`.
fn shortest_path<'a>(
    next: &BTreeMap<&'a str, Vec<&'a str>>,
    from: &'a str,
    to: &'a str,
    within: &BTreeSet<&'a str>,
) -> Vec<&'a str> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(n) = queue.pop_front() {
        if n == to {
            break;
        }
        for &m in next.get(n).map(Vec::as_slice).unwrap_or(&[]) {
            if within.contains(m) && seen.insert(m) {
                came_from.insert(m, n);
                queue.push_back(m);
            }
        }
    }
    let mut path = vec![to];
    let mut at = to;
    while at != from {
        match came_from.get(at) {
            Some(&prev) => {
                path.push(prev);
                at = prev;
            }
            // Cannot happen inside a strongly connected component; stop anyway.
            None => break,
        }
    }
    path.reverse();
    path
}
