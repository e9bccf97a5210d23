//! Draws the [`Model`]: a header, the process table (or the dependency
//! tree), the log pane, the status line and the help line; the help
//! overlay on top when asked for.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};
use tend_core::{ExitInfo, Health, StateName};

use super::model::{Entry, Focus, Link, Mode, Model, SortKey};
use crate::output::uptime;

/// The keys, as the help line lists them.
/// `h help` first: a narrow terminal cuts the end off.
pub const HELP_LINE: &str = "h help  q quit  ↑↓ select  Tab focus  s start  x stop  r restart  k signal  / filter  o/O sort  t tree  a all logs  ? search  n/N next";

/// The help overlay's lines.
const HELP: &[(&str, &str)] = &[
    ("↑ ↓", "select a process (the log pane: scroll, after Tab)"),
    ("Tab", "move the arrows between the table and the log pane"),
    ("PgUp PgDn", "scroll the log pane a page"),
    ("Home End", "the oldest line; back to the newest (follow)"),
    ("s x r", "start, stop, restart the selected process"),
    ("k", "send a signal to it (type HUP, USR1, 9 ..., Enter)"),
    (
        "/",
        "filter the table by name as you type (Enter keeps it, Esc clears)",
    ),
    ("o  O", "sort by the next column; reverse the order"),
    ("t", "the dependency tree (what each process depends on)"),
    ("a", "the log pane: every process, or the selected one"),
    (
        "?",
        "search the log pane backwards (Enter); n older match, N newer",
    ),
    ("Esc", "clear the status line; leave a prompt"),
    ("q  Ctrl-C", "quit"),
];

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, m: &mut Model, now: Instant) {
    // The table as tall as its rows (up to 45% of the screen), the logs the rest.
    let rows = u16::try_from(m.rows().len()).unwrap_or(u16::MAX);
    let most = (frame.area().height * 45 / 100).max(5);
    let [header, table, logs, status, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(rows.saturating_add(3).clamp(5, most)),
        Constraint::Min(4),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_header(frame, m, header);
    draw_table(frame, m, table, now);
    draw_logs(frame, m, logs);
    draw_status(frame, m, status);
    frame.render_widget(
        Paragraph::new(HELP_LINE).style(Style::new().fg(Color::Black).bg(Color::Gray)),
        help,
    );
    if m.mode == Mode::Help {
        draw_help(frame, frame.area());
    }
}

fn draw_header(frame: &mut Frame, m: &Model, area: Rect) {
    let (link, style) = match &m.link {
        Link::Connecting => ("connecting".to_string(), Style::new().fg(Color::Yellow)),
        Link::Up => ("connected".to_string(), Style::new().fg(Color::Green)),
        Link::Down(why) => (
            format!("disconnected: {why} (reconnecting)"),
            Style::new().fg(Color::White).bg(Color::Red),
        ),
    };
    let running = m
        .procs
        .iter()
        .filter(|e| e.proc.state == StateName::Running)
        .count();
    let mut spans = vec![
        Span::styled("tend top", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(format!(" {} ", m.at)),
        Span::styled(link, style),
        Span::raw(format!(
            "  {} processes, {running} running  sort: {}{}",
            m.procs.len(),
            m.sort.label(),
            if m.reverse { " (reversed)" } else { "" }
        )),
    ];
    if !m.filter.is_empty() || m.mode == Mode::Filter {
        spans.push(Span::styled(
            format!("  filter: {}", m.filter),
            Style::new().fg(Color::Cyan),
        ));
    }
    if m.tree {
        spans.push(Span::styled("  tree", Style::new().fg(Color::Cyan)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn state_style(s: StateName) -> Style {
    match s {
        StateName::Running => Style::new().fg(Color::Green),
        StateName::Starting | StateName::Waiting | StateName::Stopping => {
            Style::new().fg(Color::Yellow)
        }
        StateName::Backoff | StateName::Fatal => Style::new().fg(Color::Red),
        StateName::Stopped | StateName::Exited => Style::new().fg(Color::DarkGray),
    }
}

fn last_exit(e: Option<ExitInfo>) -> String {
    match e {
        None => "-".into(),
        Some(ExitInfo::Code(c)) => format!("code {c}"),
        Some(ExitInfo::Signal(s)) => format!("sig {s}"),
    }
}

fn ready_health(e: &Entry, now: Instant) -> String {
    let p = &e.proc;
    if let Some(w) = &p.waiting_for {
        return format!("waits for {w}");
    }
    if let Some(ms) = p.next_restart_in_ms {
        let gone = u64::try_from(now.saturating_duration_since(e.seen).as_millis()).unwrap_or(0);
        return format!("restart in {}s", ms.saturating_sub(gone).div_ceil(1000));
    }
    if p.state == StateName::Fatal
        && let Some(why) = &p.error
    {
        return why.clone();
    }
    if !p.state.is_up() {
        return "-".into();
    }
    let ready = if p.ready { "ready" } else { "not ready" };
    match p.health {
        Health::Unknown => ready.into(),
        Health::Healthy => format!("{ready}, healthy"),
        Health::Unhealthy => format!("{ready}, unhealthy"),
    }
}

/// `12.3M`, `1.5G`, `512K`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

fn draw_table(frame: &mut Frame, m: &Model, area: Rect, now: Instant) {
    let title = |label: &str, key: SortKey| {
        if m.sort == key && !m.tree {
            format!("{label}{}", if m.reverse { "▲" } else { "▼" })
        } else {
            label.to_string()
        }
    };
    let header = Row::new(vec![
        title("NAME", SortKey::Name),
        title("STATE", SortKey::State),
        title("PID", SortKey::Pid),
        title("UPTIME", SortKey::Uptime),
        title("RESTARTS", SortKey::Restarts),
        "LAST EXIT".to_string(),
        "READY/HEALTH".to_string(),
        title("CPU%", SortKey::Cpu),
        title("MEM", SortKey::Memory),
    ])
    .style(Style::new().add_modifier(Modifier::BOLD));
    let rows: Vec<Row> = m
        .rows()
        .into_iter()
        .filter_map(|r| {
            let e = m.get(&r.name)?;
            let p = &e.proc;
            let name = if m.tree && r.depth > 0 {
                format!(
                    "{}└─ {}{}",
                    "   ".repeat(r.depth - 1),
                    r.name,
                    r.condition.map(|c| format!(" ({c})")).unwrap_or_default()
                )
            } else {
                r.name.clone()
            };
            // Added at run time: a restart of the daemon forgets it.
            let name = if p.origin == tend_core::Origin::Added {
                Line::from(vec![
                    Span::raw(name),
                    Span::styled(" +added", Style::new().fg(Color::Cyan)),
                ])
            } else {
                Line::from(name)
            };
            let up = e
                .uptime_ms(now)
                .filter(|_| p.state.is_up())
                .map_or_else(|| "-".into(), uptime);
            Some(Row::new(vec![
                Cell::from(name),
                Cell::from(p.state.as_str()).style(state_style(p.state)),
                Cell::from(p.pid.map_or_else(|| "-".into(), |p| p.to_string())),
                Cell::from(up),
                Cell::from(p.restarts.to_string()),
                Cell::from(last_exit(p.last_exit)),
                Cell::from(ready_health(e, now)),
                Cell::from(e.cpu.map_or_else(|| "-".into(), |c| format!("{c:.1}"))),
                Cell::from(e.memory.map_or_else(|| "-".into(), bytes)),
            ]))
        })
        .collect();
    let empty = rows.is_empty();
    let border = if m.focus == Focus::Table {
        Style::new().fg(Color::Cyan)
    } else {
        Style::new()
    };
    let block_title = if m.tree {
        " Dependencies (t: table) "
    } else {
        " Processes "
    };
    let table = Table::new(
        rows,
        [
            Constraint::Fill(1),
            Constraint::Length(9),
            Constraint::Length(7),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Fill(1),
            Constraint::Length(6),
            Constraint::Length(8),
        ],
    )
    .header(header)
    .block(
        Block::new()
            .borders(Borders::ALL)
            .border_style(border)
            .title(block_title),
    )
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
    .highlight_symbol("> ")
    .highlight_spacing(ratatui::widgets::HighlightSpacing::Always);
    let mut state = TableState::new().with_selected((!empty).then_some(m.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_logs(frame: &mut Frame, m: &mut Model, area: Rect) {
    let height = usize::from(area.height.saturating_sub(2));
    m.log_height = height.max(1);
    let lines = m.visible_logs();
    let n = lines.len();
    let bottom = n.saturating_sub(m.log_scroll);
    let top = bottom.saturating_sub(height);
    let width = lines[top..bottom]
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(0);
    let shown: Vec<Line> = lines[top..bottom]
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let at = top + i;
            let time = l.time.to_zoned(jiff::tz::TimeZone::system());
            let mut style = if l.stderr {
                Style::new().fg(Color::LightRed)
            } else {
                Style::new()
            };
            if m.matches(l) {
                style = style.bg(Color::Yellow).fg(Color::Black);
            }
            if m.search_at == Some(at) {
                style = style.add_modifier(Modifier::REVERSED);
            }
            Line::from(vec![
                Span::styled(
                    format!("{} ", time.strftime("%H:%M:%S")),
                    Style::new().fg(Color::DarkGray),
                ),
                Span::styled(
                    format!("{:width$} | ", l.name),
                    Style::new().fg(Color::Cyan),
                ),
                Span::styled(l.text.clone(), style),
            ])
        })
        .collect();
    drop(lines);
    let whose = match m.log_target() {
        Some(name) => name.to_string(),
        None => "all processes".to_string(),
    };
    let follow = if m.log_scroll == 0 {
        "following".to_string()
    } else {
        format!("{} lines back, End follows", m.log_scroll)
    };
    let search = m
        .search
        .as_deref()
        .map(|s| format!(", search: {s}"))
        .unwrap_or_default();
    let border = if m.focus == Focus::Logs {
        Style::new().fg(Color::Cyan)
    } else {
        Style::new()
    };
    frame.render_widget(
        Paragraph::new(shown).block(
            Block::new()
                .borders(Borders::ALL)
                .border_style(border)
                .title(format!(" Logs: {whose} ({follow}{search}) ")),
        ),
        area,
    );
}

fn draw_status(frame: &mut Frame, m: &Model, area: Rect) {
    let line = match &m.mode {
        Mode::Filter => Line::from(format!("filter: {}█", m.filter)),
        Mode::Search => Line::from(format!("search logs (backwards): {}█", m.input)),
        Mode::Signal(name) => Line::from(format!("signal to send to {name}: {}█", m.input)),
        _ => match &m.message {
            Some((text, true)) => Line::styled(text.clone(), Style::new().fg(Color::LightRed)),
            Some((text, false)) => Line::from(text.clone()),
            None => Line::from(""),
        },
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn draw_help(frame: &mut Frame, area: Rect) {
    let w = 90.min(area.width);
    let h = (HELP.len() as u16 + 4).min(area.height);
    let rect = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(
                    format!("{k:>10}  "),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from("any key closes this help"));
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::new().borders(Borders::ALL).title(" tend top: keys ")),
        rect,
    );
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use serde_json::json;
    use tend_server::more::Edge;

    use super::*;

    /// The screen `m` draws on a `width`x`height` terminal, line by line.
    fn screen(m: &mut Model, width: u16, height: u16) -> Vec<String> {
        let mut t = Terminal::new(TestBackend::new(width, height)).expect("terminal");
        t.draw(|f| draw(f, m, Instant::now())).expect("draw");
        let buf = t.backend().buffer();
        buf.content()
            .chunks(usize::from(width))
            .map(|row| row.iter().map(|c| c.symbol()).collect::<String>())
            .collect()
    }

    fn model() -> Model {
        let mut m = Model::new("unix:///srv/tend.sock");
        m.link = Link::Up;
        m.apply_event(
            &json!({"kind": "snapshot", "processes": [
                {"name": "db", "state": "running", "pid": 42, "uptime_ms": 125_000,
                 "restarts": 1, "last_exit": {"code": 3}, "ready": true, "health": "healthy"},
                {"name": "web", "state": "backoff", "restarts": 4,
                 "last_exit": {"signal": "KILL"}, "next_restart_in_ms": 2500,
                 "origin": "added"},
            ]}),
            Instant::now(),
        );
        m.set_edges(vec![Edge {
            from: "web".into(),
            to: "db".into(),
            condition: "ready".into(),
            restart: false,
        }]);
        m
    }

    fn line_of<'a>(lines: &'a [String], name: &str) -> &'a str {
        lines
            .iter()
            .find(|l| l.contains(&format!(" {name} ")))
            .map_or("", String::as_str)
    }

    #[test]
    fn the_table_shows_every_column_of_a_process() {
        let mut m = model();
        let lines = screen(&mut m, 140, 30);
        assert!(
            lines[0].starts_with("tend top unix:///srv/tend.sock connected"),
            "{lines:#?}"
        );
        let db = line_of(&lines, "db");
        for cell in ["> db", "running", "42", "2m 5s", "code 3", "ready, healthy"] {
            assert!(db.contains(cell), "{cell:?} in {db:?}");
        }
        assert!(!db.contains("added"), "{db:?}");
        let web = line_of(&lines, "web");
        for cell in ["web +added", "backoff", "sig KILL", "restart in 3s"] {
            assert!(web.contains(cell), "{cell:?} in {web:?}");
        }
        assert!(
            lines[29].starts_with("h help  q quit"),
            "the help line: {:?}",
            lines[29]
        );
    }

    #[test]
    fn the_tree_the_prompts_and_the_help_overlay_are_drawn() {
        let mut m = model();
        m.key(KeyEvent::new(KeyCode::Char('t'), KeyModifiers::NONE));
        let lines = screen(&mut m, 140, 30);
        let web = lines.iter().position(|l| l.contains(" web "));
        let db = lines.iter().position(|l| l.contains("└─ db (ready)"));
        assert!(web.is_some() && web < db, "{lines:#?}");
        m.key(KeyEvent::new(KeyCode::Char('k'), KeyModifiers::NONE));
        for c in "HUP".chars() {
            m.key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        }
        let lines = screen(&mut m, 140, 30);
        assert!(
            lines[28].starts_with("signal to send to db: HUP"),
            "{:?}",
            lines[28]
        );
        m.key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
        m.key(KeyEvent::new(KeyCode::Char('h'), KeyModifiers::NONE));
        let lines = screen(&mut m, 140, 30);
        assert!(
            lines.iter().any(|l| l.contains("tend top: keys")),
            "{lines:#?}"
        );
        // A tiny terminal is drawn without a panic.
        screen(&mut m, 20, 6);
    }

    #[test]
    fn a_lost_stream_says_so_in_the_header() {
        let mut m = model();
        m.link = Link::Down("the daemon closed the event stream".into());
        let lines = screen(&mut m, 140, 30);
        assert!(
            lines[0].contains("disconnected: the daemon closed the event stream (reconnecting)"),
            "{:?}",
            lines[0]
        );
    }

    #[test]
    fn sizes_read_short() {
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(3 * 1024 * 1024 + 300 * 1024), "3.3M");
        assert_eq!(bytes(5 << 30), "5.0G");
    }
}
