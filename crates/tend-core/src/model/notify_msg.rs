//! systemd's `sd_notify` messages, parsed.
//!
//! A process started with `notify = true` sends datagrams of
//! newline-separated `KEY=VALUE` assignments on its notify socket (the
//! runtime's `NotifySocket`), which [`parse`] turns into a [`NotifyMsg`]:
//!
//! | sent | means |
//! |---|---|
//! | `READY=1` | start-up is finished: the process is ready |
//! | `STATUS=text` | a free-form status line, shown in status |
//! | `STOPPING=1` | it is shutting down on its own |
//! | `RELOADING=1` | it is reloading its configuration |
//! | `WATCHDOG=1` | a watchdog keep-alive ping |
//! | `WATCHDOG_USEC=n` | a new watchdog timeout, in microseconds |
//! | `EXTEND_TIMEOUT_USEC=n` | it needs this much more time for the current phase |
//! | `MAINPID=n` | the main process is this pid |
//! | `ERRNO=n` | it failed with this errno |
//!
//! As in systemd, a flag counts only when it is exactly `=1`, the last
//! assignment of a key wins, lines that are not `KEY=VALUE` or whose key is
//! unknown are ignored (`FDSTORE`, `BARRIER`, `NOTIFYACCESS`, ...), and a
//! datagram longer than 4096 bytes (systemd's limit) is ignored as a whole.
//! `WATCHDOG=trigger` (systemd's "fail now") is not a ping and is ignored.

/// The longest datagram accepted, as in systemd (`PIPE_BUF`).
pub const MAX_DATAGRAM: usize = 4096;

/// One parsed datagram. Fields a message does not mention are `false` / `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotifyMsg {
    /// `READY=1`.
    pub ready: bool,
    /// `STOPPING=1`.
    pub stopping: bool,
    /// `RELOADING=1`.
    pub reloading: bool,
    /// `WATCHDOG=1`: a keep-alive ping.
    pub watchdog: bool,
    /// `STATUS=...` (UTF-8 only; an empty one clears the status).
    pub status: Option<String>,
    /// `MAINPID=...`.
    pub main_pid: Option<u32>,
    /// `WATCHDOG_USEC=...`: a new watchdog timeout.
    pub watchdog_usec: Option<u64>,
    /// `ERRNO=...`.
    pub errno: Option<i32>,
    /// `EXTEND_TIMEOUT_USEC=...`.
    pub extend_timeout_usec: Option<u64>,
}

/// Parses one datagram; see the module docs for the rules. Never fails:
/// what cannot be understood is ignored.
pub fn parse(datagram: &[u8]) -> NotifyMsg {
    let mut msg = NotifyMsg::default();
    if datagram.len() > MAX_DATAGRAM {
        return msg;
    }
    for line in datagram.split(|&b| b == b'\n') {
        let Some(eq) = memchr::memchr(b'=', line) else {
            continue;
        };
        let (key, value) = (&line[..eq], &line[eq + 1..]);
        match key {
            b"READY" => msg.ready = value == b"1",
            b"STOPPING" => msg.stopping = value == b"1",
            b"RELOADING" => msg.reloading = value == b"1",
            b"WATCHDOG" => msg.watchdog = value == b"1",
            b"STATUS" => {
                if let Ok(text) = std::str::from_utf8(value) {
                    msg.status = Some(text.to_string());
                }
            }
            b"MAINPID" => msg.main_pid = number(value).filter(|&p| p > 0).or(msg.main_pid),
            b"WATCHDOG_USEC" => msg.watchdog_usec = number(value).or(msg.watchdog_usec),
            b"EXTEND_TIMEOUT_USEC" => {
                msg.extend_timeout_usec = number(value).or(msg.extend_timeout_usec);
            }
            b"ERRNO" => msg.errno = number(value).or(msg.errno),
            _ => {}
        }
    }
    msg
}

/// A decimal value; `None` (the assignment is ignored) when malformed.
fn number<T: std::str::FromStr>(value: &[u8]) -> Option<T> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_key() {
        let msg = parse(
            b"READY=1\nSTATUS=Processing requests: 3\nMAINPID=4242\nWATCHDOG=1\n\
              WATCHDOG_USEC=5000000\nERRNO=2\nEXTEND_TIMEOUT_USEC=1000\nSTOPPING=1\nRELOADING=1",
        );
        assert_eq!(
            msg,
            NotifyMsg {
                ready: true,
                stopping: true,
                reloading: true,
                watchdog: true,
                status: Some("Processing requests: 3".into()),
                main_pid: Some(4242),
                watchdog_usec: Some(5_000_000),
                errno: Some(2),
                extend_timeout_usec: Some(1000),
            }
        );
    }

    #[test]
    fn ignores_what_it_does_not_understand() {
        assert_eq!(parse(b""), NotifyMsg::default());
        assert_eq!(
            parse(b"FDSTORE=1\nFDNAME=x\nBARRIER=1\nnonsense\n=1\nready=1\n\n"),
            NotifyMsg::default()
        );
        // Flags count only as `=1`; `WATCHDOG=trigger` is not a ping.
        assert_eq!(
            parse(b"READY=0\nREADY=yes\nWATCHDOG=trigger\nSTOPPING=\n"),
            NotifyMsg::default()
        );
        // Malformed numbers are dropped, not guessed at.
        assert_eq!(
            parse(b"MAINPID=0\nMAINPID=-3\nMAINPID=x\nWATCHDOG_USEC=-1\nERRNO=1.5"),
            NotifyMsg::default()
        );
        // A status that is not UTF-8 is dropped; the rest of the message stays.
        let msg = parse(b"STATUS=\xff\xfe\nREADY=1");
        assert_eq!(msg.status, None);
        assert!(msg.ready);
    }

    #[test]
    fn last_assignment_wins_and_values_keep_their_equals_signs() {
        let msg = parse(b"STATUS=a\nSTATUS=b=c\nERRNO=1\nERRNO=-2\n");
        assert_eq!(msg.status.as_deref(), Some("b=c"));
        assert_eq!(msg.errno, Some(-2));
        assert_eq!(parse(b"STATUS=").status.as_deref(), Some(""));
        assert!(!parse(b"READY=1\nREADY=0").ready);
    }

    #[test]
    fn oversized_datagrams_are_ignored_whole() {
        let mut big = b"READY=1\nSTATUS=".to_vec();
        big.resize(MAX_DATAGRAM, b'x');
        assert!(parse(&big).ready, "exactly the limit is fine");
        big.push(b'x');
        assert_eq!(parse(&big), NotifyMsg::default());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn any_status_line_comes_through(status in "[^\n]{0,200}", ready: bool) {
            let ready_line = if ready { "READY=1\n" } else { "" };
            let msg = parse(format!("{ready_line}STATUS={status}").as_bytes());
            proptest::prop_assert_eq!(msg.status, Some(status));
            proptest::prop_assert_eq!(msg.ready, ready);
        }
    }
}
