//! The state of `tend top` and what each key and each message from the
//! daemon does to it. No terminal and no socket here: the IO loop
//! (`super::run`) feeds it, the view draws it, and the tests drive it.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize;
use serde_json::Value;
use tend_core::{ExitInfo, Health, Signal, StateName};
use tend_server::api::LogLineItem;
use tend_server::more::{Edge, Resources};

/// The most log lines kept (over every process); older ones are dropped.
pub const MAX_LOG_LINES: usize = 10_000;

/// What the table shows of one process: the fields of `GET /v1/status` it
/// uses (the others are skipped, missing ones take their defaults).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Proc {
    /// The name.
    pub name: String,
    /// Its state.
    pub state: StateName,
    /// Main pid, while up.
    #[serde(default)]
    pub pid: Option<u32>,
    /// How long the run had lasted when the status was read.
    #[serde(default)]
    pub uptime_ms: Option<u64>,
    /// Automatic restarts so far.
    #[serde(default)]
    pub restarts: u64,
    /// How the last run ended.
    #[serde(default)]
    pub last_exit: Option<ExitInfo>,
    /// Whether the run is ready.
    #[serde(default)]
    pub ready: bool,
    /// Health verdict.
    #[serde(default)]
    pub health: Health,
    /// Lower starts first.
    #[serde(default)]
    pub priority: i32,
    /// What it waits for, in `waiting`.
    #[serde(default)]
    pub waiting_for: Option<String>,
    /// Why it is fatal, or the last spawn error.
    #[serde(default)]
    pub error: Option<String>,
    /// Milliseconds until the next automatic restart, in back-off.
    #[serde(default)]
    pub next_restart_in_ms: Option<u64>,
    /// Whether the config file has it or it was added at run time.
    #[serde(default)]
    pub origin: tend_core::Origin,
}

/// A process as the model keeps it: its last status and what it uses.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The last status the daemon sent.
    pub proc: Proc,
    /// When that status arrived (uptime goes on from there).
    pub seen: Instant,
    /// CPU % of one core between the last two samples.
    pub cpu: Option<f64>,
    /// Memory in use, from the last sample.
    pub memory: Option<u64>,
    /// The last sample: pid, CPU seconds, time.
    sample: Option<(u32, f64, jiff::Timestamp)>,
}

impl Entry {
    /// Uptime at `now`: the status's, plus the time since it came.
    pub fn uptime_ms(&self, now: Instant) -> Option<u64> {
        let since = now.saturating_duration_since(self.seen).as_millis();
        self.proc
            .uptime_ms
            .map(|u| u.saturating_add(u64::try_from(since).unwrap_or(u64::MAX)))
    }
}

/// A column the table can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// The daemon's order: priority, then name.
    Priority,
    /// Name.
    Name,
    /// State.
    State,
    /// Pid.
    Pid,
    /// Uptime.
    Uptime,
    /// Restarts.
    Restarts,
    /// CPU %.
    Cpu,
    /// Memory.
    Memory,
}

impl SortKey {
    /// The next key of the cycle `o` goes through.
    pub fn next(self) -> SortKey {
        match self {
            SortKey::Priority => SortKey::Name,
            SortKey::Name => SortKey::State,
            SortKey::State => SortKey::Pid,
            SortKey::Pid => SortKey::Uptime,
            SortKey::Uptime => SortKey::Restarts,
            SortKey::Restarts => SortKey::Cpu,
            SortKey::Cpu => SortKey::Memory,
            SortKey::Memory => SortKey::Priority,
        }
    }

    /// How the header line names it.
    pub fn label(self) -> &'static str {
        match self {
            SortKey::Priority => "priority",
            SortKey::Name => "name",
            SortKey::State => "state",
            SortKey::Pid => "pid",
            SortKey::Uptime => "uptime",
            SortKey::Restarts => "restarts",
            SortKey::Cpu => "cpu",
            SortKey::Memory => "memory",
        }
    }
}

/// What the keys go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The table and the log pane.
    Normal,
    /// Typing a filter for the names (`/`).
    Filter,
    /// Typing a search of the log pane (`?`).
    Search,
    /// Typing the signal to send to this process (`k`).
    Signal(String),
    /// The help overlay (`h`, F1).
    Help,
}

/// Which pane the arrow keys move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// Up and down select a process.
    Table,
    /// Up and down scroll the log pane.
    Logs,
}

/// The connection to the daemon's event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Not connected yet.
    Connecting,
    /// Events come.
    Up,
    /// Lost (why); reconnecting.
    Down(String),
}

/// Something the IO loop is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Act on a process through the API.
    Act(Verb, String),
    /// Leave.
    Quit,
}

/// An action on one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `POST /v1/start`.
    Start,
    /// `POST /v1/stop`.
    Stop,
    /// `POST /v1/restart`.
    Restart,
    /// `POST /v1/signal`.
    Signal(Signal),
}

impl Verb {
    /// The verb as the status line says it.
    pub fn word(self) -> String {
        match self {
            Verb::Start => "start".into(),
            Verb::Stop => "stop".into(),
            Verb::Restart => "restart".into(),
            Verb::Signal(s) => format!("signal {s}"),
        }
    }
}

/// One line of the log pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The process (empty for a notice of the daemon's, such as lines skipped).
    pub name: String,
    /// Whether it came on stderr.
    pub stderr: bool,
    /// When the daemon read it.
    pub time: jiff::Timestamp,
    /// The text (invalid UTF-8 replaced).
    pub text: String,
    /// Its newline has not come yet: the next piece goes on with it.
    partial: bool,
}

/// A row of the table: a process, and in the tree view its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The process.
    pub name: String,
    /// How deep in the tree (0 in the flat table).
    pub depth: usize,
    /// The edge's condition that led here (`ready`), in the tree view.
    pub condition: Option<String>,
}

/// The whole state of the screen.
#[derive(Debug)]
pub struct Model {
    /// Where the daemon is, for the header.
    pub at: String,
    /// The processes, in the daemon's order.
    pub procs: Vec<Entry>,
    /// Dependency edges (`from` depends on `to`).
    pub edges: Vec<Edge>,
    /// The log lines, oldest first.
    pub logs: VecDeque<LogLine>,
    /// The table's order.
    pub sort: SortKey,
    /// Sorted the other way.
    pub reverse: bool,
    /// Only names containing this (case-insensitive).
    pub filter: String,
    /// What the keys go to.
    pub mode: Mode,
    /// What is being typed in a prompt.
    pub input: String,
    /// The log search (`?`), case-insensitive.
    pub search: Option<String>,
    /// The line of the log pane the search is at (an index into
    /// [`Model::visible_logs`]).
    pub search_at: Option<usize>,
    /// The row selected.
    pub selected: usize,
    /// Its process, so that a re-sort keeps it selected.
    selected_name: Option<String>,
    /// Which pane the arrows move.
    pub focus: Focus,
    /// Log lines between the newest and the bottom line shown (0: following).
    pub log_scroll: usize,
    /// How many lines the log pane shows (set by the view).
    pub log_height: usize,
    /// The log pane shows every process, not the selected one.
    pub log_all: bool,
    /// The dependency tree instead of the flat table.
    pub tree: bool,
    /// The event stream.
    pub link: Link,
    /// The last answer or error, for the status line (text, is an error).
    pub message: Option<(String, bool)>,
    /// Lines after which backfilled lines stop being possible duplicates.
    backfill_until: Option<jiff::Timestamp>,
}

impl Model {
    /// An empty screen for the daemon at `at`.
    pub fn new(at: impl Into<String>) -> Model {
        Model {
            at: at.into(),
            procs: Vec::new(),
            edges: Vec::new(),
            logs: VecDeque::new(),
            sort: SortKey::Priority,
            reverse: false,
            filter: String::new(),
            mode: Mode::Normal,
            input: String::new(),
            search: None,
            search_at: None,
            selected: 0,
            selected_name: None,
            focus: Focus::Table,
            log_scroll: 0,
            log_height: 10,
            log_all: false,
            tree: false,
            link: Link::Connecting,
            message: None,
            backfill_until: None,
        }
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        self.procs.iter().find(|e| e.proc.name == name)
    }

    /// The process of `name`.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entry(name)
    }

    /// Whether some process is up (there is something to sample).
    pub fn any_up(&self) -> bool {
        self.procs.iter().any(|e| e.proc.state.is_up())
    }

    // ---- what the daemon sends ----

    /// The whole list (a snapshot, `GET /v1/status`): replaces what was known.
    pub fn set_status(&mut self, list: Vec<Proc>, now: Instant) {
        let mut old: HashMap<String, Entry> = self
            .procs
            .drain(..)
            .map(|e| (e.proc.name.clone(), e))
            .collect();
        for p in list {
            let entry = match old.remove(&p.name) {
                Some(mut e) => {
                    e.proc = p;
                    e.seen = now;
                    e
                }
                None => Entry {
                    proc: p,
                    seen: now,
                    cpu: None,
                    memory: None,
                    sample: None,
                },
            };
            self.procs.push(entry);
        }
        self.fix_selection();
    }

    /// One process's new status.
    pub fn upsert(&mut self, p: Proc, now: Instant) {
        if let Some(e) = self.procs.iter_mut().find(|e| e.proc.name == p.name) {
            if !p.state.is_up() {
                e.cpu = None;
                e.memory = None;
            }
            e.proc = p;
            e.seen = now;
        } else {
            self.procs.push(Entry {
                proc: p,
                seen: now,
                cpu: None,
                memory: None,
                sample: None,
            });
            self.procs.sort_by(|a, b| {
                (a.proc.priority, &a.proc.name).cmp(&(b.proc.priority, &b.proc.name))
            });
        }
        self.fix_selection();
    }

    /// One event of `GET /v1/events`. Returns whether the dependency graph
    /// may have changed (read it again).
    pub fn apply_event(&mut self, ev: &Value, now: Instant) -> bool {
        let kind = ev.get("kind").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "snapshot" => {
                let list = ev
                    .get("processes")
                    .and_then(|p| Vec::<Proc>::deserialize(p).ok())
                    .unwrap_or_default();
                self.set_status(list, now);
                true
            }
            "log" => {
                if let Ok(item) = LogLineItem::deserialize(ev) {
                    self.log_line(&item, true);
                }
                false
            }
            "log_lagged" => {
                let n = ev.get("lagged").and_then(Value::as_u64).unwrap_or(0);
                self.push_line(LogLine {
                    name: String::new(),
                    stderr: true,
                    time: jiff::Timestamp::now(),
                    text: format!("[tend top read too slowly: {n} batches of lines skipped]"),
                    partial: false,
                });
                false
            }
            "removed" => {
                if let Some(name) = ev.get("name").and_then(Value::as_str) {
                    self.procs.retain(|e| e.proc.name != name);
                    self.fix_selection();
                }
                true
            }
            _ => {
                if let Some(p) = ev.get("status").and_then(|s| Proc::deserialize(s).ok()) {
                    self.upsert(p, now);
                }
                matches!(kind, "added" | "reloaded")
            }
        }
    }

    /// The dependency graph (`GET /v1/graph`).
    pub fn set_edges(&mut self, edges: Vec<Edge>) {
        self.edges = edges;
        self.fix_selection();
    }

    /// A sample of `GET /v1/resources`: CPU % from the previous one.
    pub fn set_resources(&mut self, r: &Resources) {
        let by_name: HashMap<&str, _> = r.processes.iter().map(|u| (u.name.as_str(), u)).collect();
        for e in &mut self.procs {
            let Some(u) = by_name.get(e.proc.name.as_str()) else {
                e.cpu = None;
                e.memory = None;
                e.sample = None;
                continue;
            };
            e.memory = Some(u.rss_bytes);
            e.cpu = match e.sample {
                Some((pid, cpu, time)) if pid == u.pid => {
                    let dt = r.time.duration_since(time).as_secs_f64();
                    if dt > 0.0 {
                        Some(((u.cpu_seconds - cpu) / dt * 100.0).max(0.0))
                    } else {
                        e.cpu
                    }
                }
                _ => None,
            };
            e.sample = Some((u.pid, u.cpu_seconds, r.time));
        }
    }

    /// The last lines (`GET /v1/logs`) read on connecting: they replace the
    /// pane's lines; lines of the stream already among them are not added twice.
    pub fn set_backfill(&mut self, items: &[LogLineItem]) {
        self.logs.clear();
        for item in items {
            self.log_line(item, false);
        }
        self.backfill_until = items.iter().map(|i| i.time).max();
        self.search_at = None;
        self.log_scroll = 0;
    }

    fn log_line(&mut self, item: &LogLineItem, live: bool) {
        let text = match item.bytes() {
            Some(b) => String::from_utf8_lossy(&b).into_owned(),
            None => String::new(),
        };
        let stderr = item.stream == tend_server::api::Stream::Stderr;
        if live
            && self.backfill_until.is_some_and(|t| item.time <= t)
            && self
                .logs
                .iter()
                .rev()
                .take(MAX_LOG_LINES)
                .any(|l| l.time == item.time && l.name == item.name && l.text.ends_with(&text))
        {
            return;
        }
        if item.continues
            && let Some(last) = self
                .logs
                .iter_mut()
                .rev()
                .find(|l| l.name == item.name && l.stderr == stderr)
            && last.partial
        {
            last.text.push_str(&text);
            last.partial = item.partial;
            return;
        }
        self.push_line(LogLine {
            name: item.name.clone(),
            stderr,
            time: item.time,
            text,
            partial: item.partial,
        });
    }

    fn push_line(&mut self, line: LogLine) {
        let shown = self.shows(&line);
        if self.logs.len() >= MAX_LOG_LINES
            && let Some(old) = self.logs.pop_front()
            && self.shows(&old)
        {
            self.search_at = self.search_at.and_then(|i| i.checked_sub(1));
        }
        self.logs.push_back(line);
        if shown && self.log_scroll > 0 {
            // Scrolled back: the lines shown stay where they are.
            self.log_scroll += 1;
        }
    }

    /// The process whose lines the log pane shows; `None`: every process.
    pub fn log_target(&self) -> Option<&str> {
        if self.log_all {
            None
        } else {
            self.selected_name.as_deref()
        }
    }

    fn shows(&self, line: &LogLine) -> bool {
        match self.log_target() {
            None => true,
            Some(name) => line.name == name || line.name.is_empty(),
        }
    }

    /// The lines the log pane shows, oldest first.
    pub fn visible_logs(&self) -> Vec<&LogLine> {
        self.logs.iter().filter(|l| self.shows(l)).collect()
    }

    /// Whether `line` matches the search.
    pub fn matches(&self, line: &LogLine) -> bool {
        self.search
            .as_deref()
            .is_some_and(|s| !s.is_empty() && contains_ci(&line.text, s))
    }

    // ---- the table ----

    /// The rows of the table (or of the tree), filtered and sorted.
    pub fn rows(&self) -> Vec<Row> {
        let keep = |name: &str| self.filter.is_empty() || contains_ci(name, &self.filter);
        if self.tree {
            return self
                .tree_rows()
                .into_iter()
                .filter(|r| keep(&r.name))
                .collect();
        }
        let mut list: Vec<&Entry> = self.procs.iter().filter(|e| keep(&e.proc.name)).collect();
        let now = Instant::now();
        list.sort_by(|a, b| {
            let (p, q) = (&a.proc, &b.proc);
            let o = match self.sort {
                SortKey::Priority => (p.priority, &p.name).cmp(&(q.priority, &q.name)),
                SortKey::Name => p.name.cmp(&q.name),
                SortKey::State => p.state.as_str().cmp(q.state.as_str()),
                SortKey::Pid => p.pid.cmp(&q.pid),
                SortKey::Uptime => a.uptime_ms(now).cmp(&b.uptime_ms(now)),
                SortKey::Restarts => p.restarts.cmp(&q.restarts),
                SortKey::Cpu => a
                    .cpu
                    .partial_cmp(&b.cpu)
                    .unwrap_or(std::cmp::Ordering::Equal),
                SortKey::Memory => a.memory.cmp(&b.memory),
            };
            let o = o.then_with(|| p.name.cmp(&q.name));
            if self.reverse { o.reverse() } else { o }
        });
        list.into_iter()
            .map(|e| Row {
                name: e.proc.name.clone(),
                depth: 0,
                condition: None,
            })
            .collect()
    }

    /// The dependency tree, as `systemctl list-dependencies` shows it: each
    /// process that nothing depends on at the top, what it depends on below it.
    fn tree_rows(&self) -> Vec<Row> {
        let names: Vec<&str> = self.procs.iter().map(|e| e.proc.name.as_str()).collect();
        let depended: std::collections::HashSet<&str> =
            self.edges.iter().map(|e| e.to.as_str()).collect();
        let mut out = Vec::new();
        for root in names.iter().filter(|n| !depended.contains(**n)) {
            self.walk(root, 0, None, &mut Vec::new(), &mut out);
        }
        // A cycle (which the config checker refuses) would leave some out.
        for n in &names {
            if !out.iter().any(|r: &Row| r.name == *n) {
                self.walk(n, 0, None, &mut Vec::new(), &mut out);
            }
        }
        out
    }

    fn walk<'a>(
        &'a self,
        name: &'a str,
        depth: usize,
        condition: Option<&str>,
        path: &mut Vec<&'a str>,
        out: &mut Vec<Row>,
    ) {
        out.push(Row {
            name: name.to_string(),
            depth,
            condition: condition.map(str::to_string),
        });
        if path.contains(&name) || depth > 32 {
            return;
        }
        path.push(name);
        for e in self.edges.iter().filter(|e| e.from == name) {
            self.walk(&e.to, depth + 1, Some(&e.condition), path, out);
        }
        path.pop();
    }

    /// The selected process.
    #[cfg(test)]
    pub fn selected_name(&self) -> Option<&str> {
        self.selected_name.as_deref()
    }

    /// Keeps the selection on the same process after the rows changed.
    fn fix_selection(&mut self) {
        let rows = self.rows();
        if rows.is_empty() {
            // Nothing shown, nothing selected: no key acts on a hidden row.
            self.selected = 0;
            self.selected_name = None;
            return;
        }
        let at = |i: usize| rows.get(i).map(|r| r.name.as_str());
        match self.selected_name.as_deref() {
            Some(n) if at(self.selected) == Some(n) => {}
            Some(n) => match rows.iter().position(|r| r.name == n) {
                Some(i) => self.selected = i,
                None => self.select(self.selected.min(rows.len() - 1), &rows),
            },
            None => self.select(0, &rows),
        }
    }

    fn select(&mut self, i: usize, rows: &[Row]) {
        let before = self.selected_name.clone();
        self.selected = i;
        self.selected_name = rows.get(i).map(|r| r.name.clone());
        if before != self.selected_name && !self.log_all {
            self.log_scroll = 0;
            self.search_at = None;
        }
    }

    fn move_selection(&mut self, by: isize) {
        let rows = self.rows();
        if rows.is_empty() {
            return;
        }
        let i = self.selected.saturating_add_signed(by).min(rows.len() - 1);
        self.select(i, &rows);
    }

    // ---- keys ----

    /// What `key` does. Returns what the IO loop must do, if anything.
    pub fn key(&mut self, key: KeyEvent) -> Option<Command> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c')) {
            return Some(Command::Quit);
        }
        match self.mode.clone() {
            Mode::Help => {
                self.mode = Mode::Normal;
                None
            }
            Mode::Filter => {
                match key.code {
                    KeyCode::Esc => {
                        self.filter.clear();
                        self.mode = Mode::Normal;
                    }
                    KeyCode::Enter => self.mode = Mode::Normal,
                    KeyCode::Backspace => {
                        self.filter.pop();
                    }
                    KeyCode::Char(c) if !ctrl => self.filter.push(c),
                    _ => {}
                }
                self.fix_selection();
                None
            }
            Mode::Search => {
                match key.code {
                    KeyCode::Esc => self.mode = Mode::Normal,
                    KeyCode::Enter => {
                        self.mode = Mode::Normal;
                        let s = std::mem::take(&mut self.input);
                        if s.is_empty() {
                            self.search = None;
                            self.search_at = None;
                        } else {
                            self.search = Some(s);
                            self.search_at = None;
                            self.find(true);
                        }
                    }
                    KeyCode::Backspace => {
                        self.input.pop();
                    }
                    KeyCode::Char(c) if !ctrl => self.input.push(c),
                    _ => {}
                }
                None
            }
            Mode::Signal(name) => match key.code {
                KeyCode::Esc => {
                    self.mode = Mode::Normal;
                    None
                }
                KeyCode::Enter => {
                    self.mode = Mode::Normal;
                    let text = std::mem::take(&mut self.input);
                    match text.parse::<Signal>() {
                        Ok(sig) => Some(Command::Act(Verb::Signal(sig), name)),
                        Err(e) => {
                            self.message = Some((e.to_string(), true));
                            None
                        }
                    }
                }
                KeyCode::Backspace => {
                    self.input.pop();
                    None
                }
                KeyCode::Char(c) if !ctrl => {
                    self.input.push(c);
                    None
                }
                _ => None,
            },
            Mode::Normal => self.normal_key(key),
        }
    }

    fn normal_key(&mut self, key: KeyEvent) -> Option<Command> {
        let page = self.log_height.saturating_sub(1).max(1);
        let act = |m: &mut Model, verb: Verb| match m.selected_name.clone() {
            Some(name) => Some(Command::Act(verb, name)),
            None => {
                m.message = Some(("no process selected".into(), true));
                None
            }
        };
        match key.code {
            KeyCode::Char('q') => return Some(Command::Quit),
            KeyCode::Esc => {
                self.message = None;
            }
            KeyCode::Char('h') | KeyCode::F(1) => self.mode = Mode::Help,
            KeyCode::Char('/') => self.mode = Mode::Filter,
            KeyCode::Char('?') => {
                self.input.clear();
                self.mode = Mode::Search;
            }
            KeyCode::Char('n') => self.find(true),
            KeyCode::Char('N') => self.find(false),
            KeyCode::Char('o') => {
                self.sort = self.sort.next();
                self.fix_selection();
            }
            KeyCode::Char('O') => {
                self.reverse = !self.reverse;
                self.fix_selection();
            }
            KeyCode::Char('t') => {
                self.tree = !self.tree;
                self.fix_selection();
            }
            KeyCode::Char('a') => {
                self.log_all = !self.log_all;
                self.log_scroll = 0;
                self.search_at = None;
            }
            KeyCode::Tab => {
                self.focus = match self.focus {
                    Focus::Table => Focus::Logs,
                    Focus::Logs => Focus::Table,
                }
            }
            KeyCode::Char('s') => return act(self, Verb::Start),
            KeyCode::Char('x') => return act(self, Verb::Stop),
            KeyCode::Char('r') => return act(self, Verb::Restart),
            KeyCode::Char('k') => match self.selected_name.clone() {
                Some(name) => {
                    self.input.clear();
                    self.mode = Mode::Signal(name);
                }
                None => self.message = Some(("no process selected".into(), true)),
            },
            KeyCode::Up if self.focus == Focus::Table => self.move_selection(-1),
            KeyCode::Down if self.focus == Focus::Table => self.move_selection(1),
            KeyCode::Up => self.scroll(1),
            KeyCode::Down => self.scroll(-1),
            KeyCode::PageUp => self.scroll(page as isize),
            KeyCode::PageDown => self.scroll(-(page as isize)),
            KeyCode::Home => self.scroll(isize::MAX / 2),
            KeyCode::End => self.log_scroll = 0,
            _ => {}
        }
        None
    }

    /// Scrolls the log pane `by` lines back (negative: forward).
    fn scroll(&mut self, by: isize) {
        let max = self.visible_logs().len().saturating_sub(1);
        self.log_scroll = self.log_scroll.saturating_add_signed(by).min(max);
    }

    /// Moves to the next match: `back`, older than the one at (or, the first
    /// time, at or above the bottom line shown); else newer.
    fn find(&mut self, back: bool) {
        let Some(pattern) = self.search.clone() else {
            self.message = Some(("no search: type ? and a pattern".into(), true));
            return;
        };
        let lines = self.visible_logs();
        let n = lines.len();
        let bottom = n.saturating_sub(1 + self.log_scroll);
        let hit = |i: &usize| contains_ci(&lines[*i].text, &pattern);
        let found = match (back, self.search_at) {
            (true, None) => (0..n.min(bottom + 1)).rev().find(hit),
            (true, Some(at)) => (0..at.min(n)).rev().find(hit),
            (false, None) => (bottom..n).find(hit),
            (false, Some(at)) => (at + 1..n).find(hit),
        };
        drop(lines);
        match found {
            Some(i) => {
                self.search_at = Some(i);
                // The match a few lines above the bottom, when it can be.
                let below = (self.log_height / 3).min(n - 1 - i);
                self.log_scroll = n - 1 - i - below;
                self.message = None;
            }
            None => {
                let way = if back { "above" } else { "below" };
                self.message = Some((format!("{pattern:?}: no match {way}"), true));
            }
        }
    }
}

/// The least time between two reads of `GET /v1/resources`.
pub const MIN_SAMPLE_GAP: Duration = Duration::from_secs(1);

/// When to read `GET /v1/resources`: after an event or a key (at most once
/// per [`MIN_SAMPLE_GAP`]), and every `interval` while something runs.
/// Nothing is read while nothing is up. Times are given, not read, so the
/// tests run it on made-up instants.
#[derive(Debug, Clone)]
pub struct Sampling {
    interval: Duration,
    last: Option<Instant>,
    due: Option<Instant>,
    in_flight: bool,
    wanted: bool,
}

impl Sampling {
    /// Samples every `interval` while something runs (zero: only when asked).
    pub fn new(interval: Duration) -> Sampling {
        Sampling {
            interval,
            last: None,
            due: None,
            in_flight: false,
            wanted: false,
        }
    }

    /// When the loop must wake up to sample, if ever.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    fn later(&mut self, at: Instant) {
        self.due = Some(self.due.map_or(at, |d| d.min(at)));
    }

    /// Something happened at `now`: `true` to read now (else it is due later,
    /// or a read is under way and another follows it).
    pub fn want(&mut self, now: Instant, any_up: bool) -> bool {
        if !any_up {
            return false;
        }
        if self.in_flight {
            self.wanted = true;
            return false;
        }
        match self.last {
            Some(last) if now < last + MIN_SAMPLE_GAP => {
                self.later(last + MIN_SAMPLE_GAP);
                false
            }
            _ => {
                self.last = Some(now);
                self.in_flight = true;
                self.due = None;
                true
            }
        }
    }

    /// A read came back at `now`: `true` to read again now.
    pub fn done(&mut self, now: Instant, any_up: bool) -> bool {
        self.in_flight = false;
        let again = std::mem::take(&mut self.wanted) && self.want(now, any_up);
        if !again && !self.interval.is_zero() && any_up {
            self.later(now + self.interval.max(MIN_SAMPLE_GAP));
        }
        again
    }

    /// The loop woke up at `now`: `true` to read now.
    pub fn tick(&mut self, now: Instant, any_up: bool) -> bool {
        match self.due {
            Some(d) if d <= now => {
                self.due = None;
                self.want(now, any_up)
            }
            _ => false,
        }
    }
}

/// Whether `hay` contains `needle`, ignoring case.
fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(&needle.to_lowercase())
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
