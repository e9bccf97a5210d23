//! Output capture with real processes through the real launcher: Twisted's
//! scenarios 18 to 21 (whole lines tagged with their stream, invalid UTF-8,
//! a partial last line flushed at exit) and the file, tail and subscriber paths.

use std::time::Duration;

use crate::logs::Stream;
use crate::runtime::{LogChunk, LogQuery};
use crate::spec::{LogTarget, ProcessSpec};
use crate::{Name, Options, Supervisor};

fn sh(name: &str, script: &str) -> ProcessSpec {
    let mut s = ProcessSpec::new(
        Name::new(name).unwrap(),
        vec!["sh".into(), "-c".into(), script.into()],
    );
    s.restart = crate::RestartPolicy::Never;
    s.logs.stdout = LogTarget::Null;
    s.logs.stderr = LogTarget::Null;
    s
}

/// Collects chunks of `name` until both streams reached end of output, i.e.
/// until the process has exited and `want` lines arrived.
async fn lines_of(
    rx: &mut tokio::sync::broadcast::Receiver<LogChunk>,
    want: usize,
) -> Vec<(Stream, Vec<u8>)> {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while got.len() < want {
            let c = rx.recv().await.expect("log channel open");
            got.extend(c.lines().map(|l| (c.stream, l.to_vec())));
        }
    })
    .await
    .expect("lines arrived");
    got
}

async fn run(spec: ProcessSpec, want: usize) -> (Supervisor, Vec<(Stream, Vec<u8>)>) {
    let (sup, _task) = Supervisor::spawn(Options::default(), false).unwrap();
    let mut rx = sup.subscribe_logs();
    sup.add(spec).await.unwrap();
    let name = sup.status().await.unwrap()[0].name.clone();
    sup.start(name.as_str()).await.unwrap();
    let got = lines_of(&mut rx, want).await;
    (sup, got)
}

/// Twisted 18 and 19: a complete line on stdout and on stderr is one line each,
/// tagged with its stream, without its newline.
#[tokio::test]
async fn t18_t19_complete_lines_tagged_by_stream() {
    let (_sup, got) = run(
        sh(
            "foo",
            "printf 'hello world!\\n'; printf 'hello world!\\n' >&2",
        ),
        2,
    )
    .await;
    assert_eq!(got.len(), 2);
    assert!(
        got.contains(&(Stream::Stdout, b"hello world!".to_vec())),
        "{got:?}"
    );
    assert!(
        got.contains(&(Stream::Stderr, b"hello world!".to_vec())),
        "{got:?}"
    );
}

/// Twisted 20: bytes that are not UTF-8 are kept exactly.
#[tokio::test]
async fn t20_invalid_utf8_is_kept() {
    let (_sup, got) = run(sh("foo", "printf '\\377hello world!\\n'"), 1).await;
    assert_eq!(got, vec![(Stream::Stdout, b"\xffhello world!".to_vec())]);
}

/// Twisted 21: a last line without a newline is emitted when the process ends.
#[tokio::test]
async fn t21_partial_line_flushed_at_exit() {
    let (sup, got) = run(sh("foo", "printf 'hello world!'"), 1).await;
    assert_eq!(got, vec![(Stream::Stdout, b"hello world!".to_vec())]);
    let tail = sup.log_lines(&LogQuery {
        names: vec![Name::new("foo").unwrap()],
        last: 10,
        stream: None,
        since: None,
    });
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].line, b"hello world!");
}

#[tokio::test]
async fn files_get_whole_lines_and_merge_keeps_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("logs/foo.out.log");
    let mut s = sh(
        "foo",
        "printf 'one\\n'; printf 'two\\n' >&2; printf 'three'",
    );
    s.logs.stdout = LogTarget::File(out.clone());
    s.logs.merge_stderr = true;
    let (_sup, got) = run(s, 3).await;
    assert!(
        got.iter().all(|(st, _)| *st == Stream::Stdout),
        "merged into stdout"
    );
    // Files are written before lines are published, so the file is complete.
    assert_eq!(std::fs::read(&out).unwrap(), b"one\ntwo\nthree\n");
}

#[tokio::test]
async fn strip_ansi_and_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("foo.log");
    let mut s = sh("foo", "printf '\\033[31mred\\033[0m\\tx\\r\\n'");
    s.logs.stdout = LogTarget::File(out.clone());
    s.logs.strip_ansi = true;
    s.logs.timestamps = true;
    let (_sup, got) = run(s, 1).await;
    assert_eq!(got, vec![(Stream::Stdout, b"red\tx\r".to_vec())]);
    let text = String::from_utf8(std::fs::read(&out).unwrap()).unwrap();
    let (stamp, rest) = text.split_once(' ').unwrap();
    assert!(
        stamp.parse::<jiff::Timestamp>().is_ok(),
        "{stamp:?} is RFC 3339"
    );
    assert_eq!(rest, "red\tx\r\n");
}

#[tokio::test]
async fn tail_serves_null_targets_and_filters_streams() {
    let (sup, _) = run(
        sh("foo", "for i in 1 2 3; do echo out$i; echo err$i >&2; done"),
        6,
    )
    .await;
    let q = |last, stream| LogQuery {
        names: vec![Name::new("foo").unwrap()],
        last,
        stream,
        since: None,
    };
    let text = |v: Vec<crate::runtime::LogLine>| {
        v.into_iter()
            .map(|l| String::from_utf8(l.line).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        text(sup.log_lines(&q(2, Some(Stream::Stdout)))),
        ["out2", "out3"]
    );
    assert_eq!(
        text(sup.log_lines(&q(10, Some(Stream::Stderr)))),
        ["err1", "err2", "err3"]
    );
    assert_eq!(sup.log_lines(&q(10, None)).len(), 6);
}

/// Nothing a child wrote is lost at shutdown: by the time `shutdown()` returns,
/// the last words it printed on SIGTERM are in its file.
#[tokio::test]
async fn shutdown_returns_after_the_last_lines_are_written() {
    {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("foo.log");
        let mut s = sh(
            "foo",
            "trap 'seq 1 2000; echo bye; exit 0' TERM; echo up; while :; do sleep 0.05; done",
        );
        s.logs.stdout = LogTarget::File(out.clone());
        let (sup, task) = Supervisor::spawn(Options::default(), false).unwrap();
        let mut rx = sup.subscribe_logs();
        sup.add(s).await.unwrap();
        sup.start("foo").await.unwrap();
        lines_of(&mut rx, 1).await; // "up": the trap is set
        sup.shutdown().await.unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(
            text.ends_with("2000\nbye\n"),
            "last lines missing: {:?}",
            &text[text.len().saturating_sub(40)..]
        );
        task.await.unwrap();
    }
}

/// The drain is what guarantees the above: `drained` returns only once every
/// pipe reached end-of-file and its last (partial) line is in the file, and
/// gives up after its limit when something keeps a pipe open.
#[tokio::test]
async fn drained_waits_for_end_of_file() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.log");
    let hub = std::sync::Arc::new(super::LogHub::new(1024, 16));
    let spec = crate::spec::LogSpec {
        stdout: LogTarget::File(out.clone()),
        ..Default::default()
    };
    let (r, mut w) = std::io::pipe().unwrap();
    hub.attach(&Name::new("x").unwrap(), &spec, Some(r.into()), None);
    w.write_all(b"first\n").unwrap();

    let t = tokio::time::Instant::now();
    hub.drained(Duration::from_millis(100)).await;
    assert!(
        t.elapsed() >= Duration::from_millis(100),
        "returned while the pipe was open"
    );

    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        w.write_all(b"last words").unwrap();
        // Dropping `w` closes the pipe.
    });
    hub.drained(Duration::from_secs(10)).await;
    assert_eq!(std::fs::read(&out).unwrap(), b"first\nlast words\n");
    writer.join().unwrap();
}

#[tokio::test]
async fn stdin_pipe_carries_input_and_errors_say_why() {
    let (sup, _task) = Supervisor::spawn(Options::default(), false).unwrap();
    let mut rx = sup.subscribe_logs();
    let mut echo = sh("echo", "read line; echo \"got $line\"; sleep 1000");
    echo.stdin_pipe = true;
    sup.add(echo).await.unwrap();
    sup.add(sh("plain", "sleep 1000")).await.unwrap();
    sup.start("echo").await.unwrap();
    sup.start("plain").await.unwrap();

    sup.send_stdin("echo", b"hello\n".to_vec()).unwrap();
    assert_eq!(
        lines_of(&mut rx, 1).await,
        vec![(Stream::Stdout, b"got hello".to_vec())]
    );
    assert_eq!(
        sup.send_stdin("plain", b"x".to_vec()),
        Err(crate::Error::NoStdin(Name::new("plain").unwrap()))
    );
    assert_eq!(
        sup.send_stdin("nope", b"x".to_vec()),
        Err(crate::Error::NotRunning(Name::new("nope").unwrap()))
    );
    sup.stop("echo").await.unwrap();
    assert_eq!(
        sup.send_stdin("echo", b"x".to_vec()),
        Err(crate::Error::NotRunning(Name::new("echo").unwrap()))
    );
    let st = sup.status().await.unwrap();
    let echo = st.iter().find(|s| s.name.as_str() == "echo").unwrap();
    assert!(echo.stopped_at.is_some() && echo.stopped_at >= echo.started_at);
    sup.shutdown().await.unwrap();
}
