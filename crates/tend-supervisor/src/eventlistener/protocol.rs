//! One listener's side of the protocol: `READY`, `RESULT <n>` and what it
//! said, read from its stdout (pure: no I/O).

/// A listener's protocol state (`supervisor/states.py: EventListenerStates`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerState {
    /// Waiting for `READY\n` (a fresh listener starts here).
    Acknowledged,
    /// May be sent an event.
    Ready,
    /// Has an event; waiting for its `RESULT`.
    Busy,
    /// Broke the protocol; gets nothing more until it is restarted.
    Unknown,
}

impl ListenerState {
    /// Supervisor's name (`getEventListenerStateDescription`).
    pub fn sup_name(self) -> &'static str {
        match self {
            ListenerState::Acknowledged => "ACKNOWLEDGED",
            ListenerState::Ready => "READY",
            ListenerState::Busy => "BUSY",
            ListenerState::Unknown => "UNKNOWN",
        }
    }
}

/// What a listener's output meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// `READY\n`.
    Ready,
    /// A result: `true` for `OK`.
    Result(bool),
    /// It broke the protocol; why.
    Broken(String),
}

/// The reading side of the protocol for one listener: bytes in, meanings out.
#[derive(Debug, Clone)]
pub struct Protocol {
    pub(super) state: ListenerState,
    pub(super) buf: Vec<u8>,
    pub(super) result_len: Option<usize>,
    pub(super) result: Vec<u8>,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            state: ListenerState::Acknowledged,
            buf: Vec::new(),
            result_len: None,
            result: Vec::new(),
        }
    }
}

impl Protocol {
    /// The state.
    pub fn state(&self) -> ListenerState {
        self.state
    }

    /// An event was written: waiting for its result.
    pub fn sent(&mut self) {
        self.state = ListenerState::Busy;
        self.result_len = None;
        self.result.clear();
    }

    /// Feeds what the listener wrote; returns what it said, in order.
    /// Follows `handle_listener_state_change`, byte for byte.
    pub fn feed(&mut self, data: &[u8]) -> Vec<Said> {
        self.buf.extend_from_slice(data);
        let mut said = Vec::new();
        loop {
            match self.state {
                ListenerState::Unknown => {
                    self.buf.clear();
                    return said;
                }
                ListenerState::Acknowledged => {
                    const READY: &[u8] = b"READY\n";
                    if self.buf.len() < READY.len() {
                        return said;
                    }
                    if self.buf.starts_with(READY) {
                        self.buf.drain(..READY.len());
                        self.state = ListenerState::Ready;
                        said.push(Said::Ready);
                    } else {
                        let got = String::from_utf8_lossy(&self.buf).into_owned();
                        self.break_with(format!("expected READY, got {got:?}"), &mut said);
                        return said;
                    }
                }
                ListenerState::Ready => {
                    if self.buf.is_empty() {
                        return said;
                    }
                    let got = String::from_utf8_lossy(&self.buf).into_owned();
                    self.break_with(format!("wrote {got:?} while it had no event"), &mut said);
                    return said;
                }
                ListenerState::Busy => {
                    let Some(len) = self.result_len else {
                        let Some(pos) = self.buf.iter().position(|&b| b == b'\n') else {
                            return said;
                        };
                        let line: Vec<u8> = self.buf.drain(..=pos).collect();
                        let line = &line[..line.len() - 1];
                        // Supervisor takes what follows the first 7 bytes
                        // ("RESULT ") as Python's int() would.
                        let n = line
                            .get(7..)
                            .and_then(|s| std::str::from_utf8(s).ok())
                            .map(str::trim)
                            .map(|s| s.strip_prefix('+').unwrap_or(s))
                            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                            .and_then(|s| s.parse::<usize>().ok());
                        match n {
                            Some(n) => self.result_len = Some(n),
                            None => {
                                let line = String::from_utf8_lossy(line).into_owned();
                                self.break_with(format!("bad result line: '{line}'"), &mut said);
                                return said;
                            }
                        }
                        continue;
                    };
                    let take = (len - self.result.len()).min(self.buf.len());
                    self.result.extend(self.buf.drain(..take));
                    if self.result.len() < len {
                        return said;
                    }
                    said.push(Said::Result(self.result == b"OK"));
                    self.result.clear();
                    self.result_len = None;
                    self.state = ListenerState::Acknowledged;
                }
            }
        }
    }

    pub(super) fn break_with(&mut self, why: String, said: &mut Vec<Said>) {
        self.state = ListenerState::Unknown;
        self.buf.clear();
        self.result.clear();
        self.result_len = None;
        said.push(Said::Broken(why));
    }
}
