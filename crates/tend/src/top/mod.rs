//! `tend top`: a live view of the daemon in the terminal, over the JSON API
//! and the `/v1/events` stream only (so `--host` works as for every verb).
//!
//! [`model`] is the state and what keys and events do to it, [`view`] draws
//! it; this module is the IO around them: one thread reads the event stream
//! (reconnecting by itself), one reads the terminal, one samples
//! `GET /v1/resources`, and each action runs on a thread of its own. They
//! all send [`Msg`]s to the loop here, which applies them and redraws: the
//! screen changes when something happened, never on a timer of its own.
//! CPU and memory are sampled when an event or a key asks for it, and at
//! most once per `--interval` (1 s by default) while something runs; an
//! idle daemon with nothing running is asked nothing.

pub mod model;
pub mod view;

use std::io::{BufRead, BufReader};
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{SigSet, Signal as NixSignal};
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use serde_json::Value;
use tend_server::api::{
    ActionResponse, LogItem, LogLineItem, LogsQuery, SignalRequest, StartRequest, TargetsRequest,
    percent_encode_into,
};
use tend_server::more::{Graph, Resources};

use crate::client::sse::Sse;
use crate::client::{Client, NO_BODY};
use model::{Command, Link, Model, Sampling, Verb};

/// How many recent lines the log pane starts with.
const BACKFILL: usize = 500;

/// Reconnecting waits this long at first, doubling up to [`RECONNECT_MAX`].
const RECONNECT_MIN: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// What the threads tell the loop.
enum Msg {
    /// A key or a resize.
    Term(Event),
    /// The terminal cannot be read.
    TermGone(String),
    /// The event stream is open.
    Connected,
    /// The last lines, read right after connecting.
    Backfill(Vec<LogLineItem>),
    /// One event of the stream.
    Event(Value),
    /// The stream broke (why); the thread reconnects.
    Down(String),
    /// The dependency graph.
    Graph(Graph),
    /// A sample of what the processes use (or why there is none).
    Resources(Result<Resources, String>),
    /// The daemon's answer to an action (text, is an error).
    Answer(String, bool),
    /// SIGTERM or SIGHUP came (its number).
    Stop(i32),
}

/// What `tend top` was asked for.
pub struct Options {
    /// The daemon, as the header names it.
    pub at: String,
    /// How often to read resources while something runs (zero: only when asked).
    pub interval: Duration,
    /// Only the processes these match (every process when empty).
    pub patterns: Vec<String>,
}

/// `tend top`: runs until `q` or Ctrl-C.
pub fn run(client: Client, options: Options) -> anyhow::Result<ExitCode> {
    let Options {
        at,
        interval,
        patterns,
    } = options;
    // A pattern the daemon would refuse is said now, not on every reconnect.
    for p in &patterns {
        tend_core::pattern::Pattern::parse(p)
            .map_err(|e| anyhow::anyhow!("bad pattern {p:?}: {e}"))?;
    }
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!("tend top needs a terminal (use `tend status` or `tend logs -f` in scripts)");
    }
    // SIGTERM and SIGHUP (the terminal closed) end it as `q` does, the
    // terminal restored: blocked here, before any thread is started (each
    // inherits the mask), and taken by one thread with sigwait.
    let mut stops = SigSet::empty();
    stops.add(NixSignal::SIGTERM);
    stops.add(NixSignal::SIGHUP);
    stops
        .thread_block()
        .context("cannot block SIGTERM and SIGHUP")?;
    let (tx, rx) = mpsc::channel();
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            if let Ok(sig) = stops.wait() {
                let _ = tx.send(Msg::Stop(sig as i32));
            }
        });
    }
    spawn_events(client.clone(), patterns.clone(), tx.clone());
    let sampler = spawn_sampler(client.clone(), tx.clone());
    let grapher = spawn_grapher(client.clone(), tx.clone());
    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            loop {
                match event::read() {
                    Ok(ev) => {
                        if tx.send(Msg::Term(ev)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Msg::TermGone(e.to_string()));
                        return;
                    }
                }
            }
        });
    }
    let at = if patterns.is_empty() {
        at
    } else {
        format!("{at} [{}]", patterns.join(" "))
    };
    let mut ui = Loop {
        model: Model::new(at),
        client,
        tx,
        sampler,
        grapher,
        sampling: Sampling::new(interval),
    };
    let result = ui.run(&mut terminal, &rx);
    let restored = ratatui::try_restore();
    let end = result?;
    restored.context("cannot restore the terminal")?;
    Ok(match end {
        End::Quit => ExitCode::SUCCESS,
        // As a shell reports a death by that signal.
        End::Signal(n) => ExitCode::from(u8::try_from(128 + n).unwrap_or(1)),
    })
}

/// Why the loop ended.
enum End {
    /// `q`, Ctrl-C.
    Quit,
    /// SIGTERM or SIGHUP.
    Signal(i32),
}

struct Loop {
    model: Model,
    client: Client,
    tx: Sender<Msg>,
    sampler: Sender<()>,
    grapher: Sender<()>,
    sampling: Sampling,
}

impl Loop {
    fn run(
        &mut self,
        terminal: &mut ratatui::DefaultTerminal,
        rx: &Receiver<Msg>,
    ) -> anyhow::Result<End> {
        let mut dirty = true;
        loop {
            if dirty {
                terminal
                    .draw(|f| view::draw(f, &mut self.model, Instant::now()))
                    .context("cannot draw")?;
            }
            let first = match self.sampling.due() {
                Some(due) => match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return Ok(End::Quit),
                },
                None => match rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => return Ok(End::Quit),
                },
            };
            if self.sampling.tick(Instant::now(), self.can_sample()) {
                let _ = self.sampler.send(());
            }
            // Woken only to sample: the screen is as it was.
            dirty = first.is_some();
            // A burst (a batch of events, a pasted filter) is drawn once.
            let mut next = first;
            let mut handled = 0;
            while let Some(msg) = next {
                if let Some(end) = self.handle(msg)? {
                    return Ok(end);
                }
                handled += 1;
                next = if handled < 1000 {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
        }
    }

    /// Applies one message; `Some` to end.
    fn handle(&mut self, msg: Msg) -> anyhow::Result<Option<End>> {
        let now = Instant::now();
        match msg {
            Msg::Term(Event::Key(k)) if k.kind != KeyEventKind::Release => {
                match self.model.key(k) {
                    Some(Command::Quit) => return Ok(Some(End::Quit)),
                    Some(Command::Act(verb, name)) => self.act(verb, name),
                    None => {}
                }
                self.want_sample();
            }
            Msg::Term(_) => {}
            Msg::TermGone(e) => anyhow::bail!("cannot read the terminal: {e}"),
            Msg::Connected => {
                self.model.link = Link::Up;
                let _ = self.grapher.send(());
            }
            Msg::Backfill(items) => self.model.set_backfill(&items),
            Msg::Event(ev) => {
                if self.model.apply_event(&ev, now) {
                    let _ = self.grapher.send(());
                }
                if ev.get("kind").and_then(Value::as_str) != Some("log") {
                    self.want_sample();
                }
            }
            Msg::Down(why) => self.model.link = Link::Down(why),
            Msg::Graph(g) => self.model.set_edges(g.edges),
            Msg::Resources(r) => {
                match r {
                    Ok(r) => self.model.set_resources(&r),
                    Err(e) => self.model.message = Some((format!("resources: {e}"), true)),
                }
                if self.sampling.done(now, self.can_sample()) {
                    let _ = self.sampler.send(());
                }
            }
            Msg::Answer(text, error) => {
                self.model.message = Some((text, error));
            }
            Msg::Stop(sig) => return Ok(Some(End::Signal(sig))),
        }
        Ok(None)
    }

    /// Whether there is something to sample: a process up, and the daemon there.
    fn can_sample(&self) -> bool {
        self.model.link == Link::Up && self.model.any_up()
    }

    /// Samples now, or as soon as the last sample is old enough.
    fn want_sample(&mut self) {
        if self.sampling.want(Instant::now(), self.can_sample()) {
            let _ = self.sampler.send(());
        }
    }

    /// Runs an action on a thread of its own (a stop may take the stop timeout).
    fn act(&mut self, verb: Verb, name: String) {
        self.model.message = Some((format!("{} {name}...", verb.word()), false));
        let client = self.client.clone();
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            let targets = vec![name.clone()];
            let answer: Result<ActionResponse, _> = match verb {
                Verb::Start => client.call(
                    "POST",
                    "/v1/start",
                    Some(&StartRequest {
                        targets,
                        no_deps: false,
                    }),
                ),
                Verb::Stop => client.call("POST", "/v1/stop", Some(&TargetsRequest { targets })),
                Verb::Restart => {
                    client.call("POST", "/v1/restart", Some(&TargetsRequest { targets }))
                }
                Verb::Signal(signal) => client.call(
                    "POST",
                    "/v1/signal",
                    Some(&SignalRequest { targets, signal }),
                ),
            };
            let msg = match answer {
                Ok(resp) => {
                    let done = match verb {
                        Verb::Start => "started".to_string(),
                        Verb::Stop => "stopped".to_string(),
                        Verb::Restart => "restarted".to_string(),
                        Verb::Signal(s) => format!("sent {s}"),
                    };
                    let mut out = Vec::new();
                    let failed = crate::commands::report(&resp.results, &done, &mut out)
                        .map_or(true, |code| code != ExitCode::SUCCESS);
                    let text = String::from_utf8_lossy(&out).trim().replace('\n', "; ");
                    Msg::Answer(text, failed)
                }
                Err(e) => Msg::Answer(format!("{} {name}: {e}", verb.word()), true),
            };
            let _ = tx.send(msg);
        });
    }
}

/// The thread that reads `GET /v1/resources` each time it is asked.
fn spawn_sampler(client: Client, tx: Sender<Msg>) -> Sender<()> {
    let (ask, asked) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        while asked.recv().is_ok() {
            let r = client
                .call::<Resources>("GET", "/v1/resources", NO_BODY)
                .map_err(|e| e.to_string());
            if tx.send(Msg::Resources(r)).is_err() {
                return;
            }
        }
    });
    ask
}

/// The thread that reads `GET /v1/graph` each time it is asked.
fn spawn_grapher(client: Client, tx: Sender<Msg>) -> Sender<()> {
    let (ask, asked) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        while asked.recv().is_ok() {
            // Several asks in a row are one read.
            while asked.try_recv().is_ok() {}
            if let Ok(g) = client.call::<Graph>("GET", "/v1/graph", NO_BODY)
                && tx.send(Msg::Graph(g)).is_err()
            {
                return;
            }
        }
    });
    ask
}

/// The thread that follows `GET /v1/events` (with a snapshot and the log
/// lines), and opens it again whenever it breaks.
fn spawn_events(client: Client, patterns: Vec<String>, tx: Sender<Msg>) {
    std::thread::spawn(move || {
        let mut wait = RECONNECT_MIN;
        loop {
            match follow(&client, &patterns, &tx) {
                Ok(Flow::Quit) => return,
                Ok(Flow::Ended(why)) => {
                    wait = RECONNECT_MIN;
                    if tx.send(Msg::Down(why)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    if tx.send(Msg::Down(e)).is_err() {
                        return;
                    }
                }
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(RECONNECT_MAX);
        }
    });
}

enum Flow {
    /// The loop is gone.
    Quit,
    /// The stream ended after it was open (why).
    Ended(String),
}

/// One connection of the event stream, until it ends.
fn follow(client: &Client, patterns: &[String], tx: &Sender<Msg>) -> Result<Flow, String> {
    // `names` matching nothing is no error for the stream: processes added
    // later that match come in.
    let mut path = "/v1/events?snapshot=1&logs=1".to_string();
    for p in patterns {
        path.push_str("&names=");
        percent_encode_into(p, &mut path);
    }
    let body = client.stream(&path).map_err(|e| e.to_string())?;
    if tx.send(Msg::Connected).is_err() {
        return Ok(Flow::Quit);
    }
    // The recent lines, read once the stream is open: none is lost between
    // the two (the pane drops the ones the stream sends again).
    let query = LogsQuery {
        n: Some(BACKFILL),
        patterns: patterns.to_vec(),
        ..LogsQuery::default()
    };
    match client.request("GET", &query.path(), None) {
        Ok(resp) if resp.status == 200 => {
            let items: Vec<LogLineItem> = resp
                .body
                .split(|b| *b == b'\n')
                .filter_map(|l| serde_json::from_slice::<LogItem>(l).ok())
                .filter_map(|i| match i {
                    LogItem::Line(l) => Some(l),
                    LogItem::Lagged { .. } => None,
                })
                .collect();
            if tx.send(Msg::Backfill(items)).is_err() {
                return Ok(Flow::Quit);
            }
        }
        // Without the right to read logs, the pane shows only what the
        // stream sends (the daemon leaves those lines out too).
        _ => {}
    }
    let mut reader = BufReader::new(body);
    let mut sse = Sse::default();
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return Ok(Flow::Ended("the daemon closed the event stream".into())),
            Ok(_) => {}
            Err(e) => return Ok(Flow::Ended(format!("the event stream broke: {e}"))),
        }
        let Some(data) = sse.line(&line) else {
            continue;
        };
        // Not JSON: not an event this version knows.
        let Ok(ev) = serde_json::from_str::<Value>(&data) else {
            continue;
        };
        if ev.get("kind").and_then(Value::as_str) == Some("cutoff") {
            return Ok(Flow::Ended("tend top read the events too slowly".into()));
        }
        if tx.send(Msg::Event(ev)).is_err() {
            return Ok(Flow::Quit);
        }
    }
}
