//! systemd's `sd_notify` protocol, the service manager's side: the socket.
//!
//! A process started with `notify = true` gets `NOTIFY_SOCKET=<path>` in its
//! environment: a Unix datagram socket of its own, bound by a
//! [`NotifySocket`]. It (or a helper it runs, such as `systemd-notify`, or any
//! `sd_notify(3)` implementation) sends datagrams that
//! [`crate::model::notify_msg::parse`] reads (the keys and rules are there).
//!
//! File descriptors sent along a message (`FDSTORE=1`, or the pipe of
//! `systemd-notify`'s `BARRIER=1`) are never accepted: the socket is read
//! without room for ancillary data, so the kernel closes them. That closing is
//! what `systemd-notify` (without `--no-block`) waits for before it exits, so
//! the stock binary works as is: `systemd-notify --ready --status=up`.
//!
//! ## Permissions
//!
//! The child may run as another user than the daemon, and it must be able to
//! send, so the socket is made mode `0666`. That is safe only when the
//! directory that holds it is controlled by the daemon's user (for example
//! the daemon's runtime directory, mode `0700` or `0755`, owned by it): nobody
//! else can then replace the socket or reach it where the directory is
//! `0700`. Keep the path short: a Unix socket path has at most 107 bytes.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixDatagram;

use crate::model::notify_msg::{MAX_DATAGRAM, NotifyMsg, parse};

/// A bound notify socket for one process: a Unix datagram socket at a path,
/// removed when dropped.
#[derive(Debug)]
pub struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    /// `(dev, ino)` of the socket file we created, so that dropping this one
    /// never removes a newer socket bound at the same path (a restarted
    /// process's) in the meantime.
    file_id: (u64, u64),
}

impl NotifySocket {
    /// Binds a datagram socket at `path` and makes it mode `0666` (see the
    /// module docs on permissions). A stale socket left at `path` (by a
    /// daemon that crashed) is removed first; any other kind of file there is
    /// an error, never deleted. Must be called inside a tokio runtime.
    pub fn bind(path: &Path) -> io::Result<Self> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::other(
                "NotifySocket::bind must be called inside a tokio runtime",
            ));
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let socket = UnixDatagram::bind(path)?;
        let finish = || -> io::Result<(u64, u64)> {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
            let meta = std::fs::symlink_metadata(path)?;
            Ok((meta.dev(), meta.ino()))
        };
        match finish() {
            Ok(file_id) => Ok(NotifySocket {
                socket,
                path: path.to_path_buf(),
                file_id,
            }),
            Err(e) => {
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    }

    /// Where the socket is: the value of the child's `NOTIFY_SOCKET`.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next message. Datagrams over [`MAX_DATAGRAM`] bytes are
    /// skipped. Cancel-safe: a message is never lost when this future is
    /// dropped unfinished (as in `tokio::select!`).
    pub async fn recv(&self) -> io::Result<NotifyMsg> {
        // One byte more than the limit, to tell "exactly the limit" from
        // "truncated by the kernel".
        let mut buf = vec![0u8; MAX_DATAGRAM + 1];
        loop {
            let n = self.socket.recv(&mut buf).await?;
            if n > MAX_DATAGRAM {
                tracing::debug!(path = %self.path.display(), "ignoring an oversized notify datagram");
                continue;
            }
            return Ok(parse(&buf[..n]));
        }
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| (meta.dev(), meta.ino()) == self.file_id);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram as StdDatagram;
    use std::time::Duration;

    /// Real time: these wait for real datagrams from real processes.
    const DEADLINE: Duration = Duration::from_secs(10);

    async fn next(sock: &NotifySocket) -> NotifyMsg {
        tokio::time::timeout(DEADLINE, sock.recv())
            .await
            .expect("a message in time")
            .expect("recv")
    }

    fn send(path: &Path, msg: &[u8]) {
        let client = StdDatagram::unbound().expect("client socket");
        client.send_to(msg, path).expect("send");
    }

    #[test]
    fn bind_needs_a_runtime() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = NotifySocket::bind(&dir.path().join("n.sock")).expect_err("no runtime");
        assert!(err.to_string().contains("tokio runtime"), "{err}");
    }

    #[tokio::test]
    async fn receives_from_a_rust_client() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let sock = NotifySocket::bind(&path).expect("bind");
        assert_eq!(sock.path(), path);
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o666);

        send(&path, b"READY=1\nSTATUS=up");
        send(&path, b"WATCHDOG=1");
        send(&path, b"STOPPING=1");
        let ready = next(&sock).await;
        assert!(ready.ready);
        assert_eq!(ready.status.as_deref(), Some("up"));
        assert_eq!(
            next(&sock).await,
            NotifyMsg {
                watchdog: true,
                ..NotifyMsg::default()
            }
        );
        assert_eq!(
            next(&sock).await,
            NotifyMsg {
                stopping: true,
                ..NotifyMsg::default()
            }
        );
    }

    #[tokio::test]
    async fn skips_oversized_datagrams() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let sock = NotifySocket::bind(&path).expect("bind");
        let mut big = b"READY=1\nSTATUS=".to_vec();
        big.resize(MAX_DATAGRAM + 100, b'x');
        send(&path, &big);
        send(&path, b"STATUS=small");
        assert_eq!(next(&sock).await.status.as_deref(), Some("small"));
    }

    #[tokio::test]
    async fn stale_sockets_are_replaced_and_other_files_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        // A socket left behind by a daemon that died.
        let stale = StdDatagram::bind(&path).expect("stale");
        drop(stale);
        assert!(path.exists());
        let sock = NotifySocket::bind(&path).expect("rebind over a stale socket");
        send(&path, b"READY=1");
        assert!(next(&sock).await.ready);
        drop(sock);
        assert!(!path.exists(), "removed on drop");

        let file = dir.path().join("precious");
        std::fs::write(&file, "data").expect("write");
        let err = NotifySocket::bind(&file).expect_err("not a socket");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&file).expect("still there"), "data");
    }

    #[tokio::test]
    async fn dropping_an_old_socket_keeps_a_newer_one_at_the_same_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let old = NotifySocket::bind(&path).expect("bind");
        let new = NotifySocket::bind(&path).expect("rebind");
        drop(old);
        assert!(path.exists(), "the newer socket's file was removed");
        send(&path, b"READY=1");
        assert!(next(&new).await.ready);
    }

    /// The stock `systemd-notify` (systemd 252 on Debian 12). Without
    /// `--no-block` it also sends `BARRIER=1` with a pipe and waits until the
    /// receiver closes it, which this socket does by never accepting fds; the
    /// test would hang (and time out) otherwise.
    #[tokio::test]
    async fn the_real_systemd_notify() {
        let Some(bin) = tend_testkit::require_program("systemd-notify") else {
            return;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let sock = NotifySocket::bind(&path).expect("bind");

        // Without `--no-block`: the message, then the barrier, which it waits on.
        let child = std::process::Command::new(&bin)
            .args(["--ready", "--status=hi"])
            .env("NOTIFY_SOCKET", &path)
            .spawn()
            .expect("spawn systemd-notify");
        let msg = next(&sock).await;
        assert!(msg.ready, "{msg:?}");
        assert_eq!(msg.status.as_deref(), Some("hi"));
        assert_eq!(next(&sock).await, NotifyMsg::default(), "BARRIER=1");
        let status = wait(child).await;
        assert!(status.success(), "systemd-notify failed: {status}");

        let child = std::process::Command::new(&bin)
            .args(["--ready", "--no-block", "--status=hi"])
            .env("NOTIFY_SOCKET", &path)
            .spawn()
            .expect("spawn systemd-notify");
        let msg = next(&sock).await;
        assert!(msg.ready, "{msg:?}");
        assert_eq!(msg.status.as_deref(), Some("hi"));
        assert!(wait(child).await.success());

        // `--pid` adds MAINPID; `WATCHDOG=1` passes through as an assignment.
        let child = std::process::Command::new(&bin)
            .args(["--pid=4242", "--no-block", "WATCHDOG=1"])
            .env("NOTIFY_SOCKET", &path)
            .spawn()
            .expect("spawn systemd-notify");
        let msg = next(&sock).await;
        assert!(msg.watchdog, "{msg:?}");
        assert_eq!(msg.main_pid, Some(4242));
        assert!(wait(child).await.success());
    }

    /// Waits for a test's own child off the runtime's threads, with a
    /// deadline. The launcher's reaper only reaps the launcher's children.
    async fn wait(mut child: std::process::Child) -> std::process::ExitStatus {
        #[expect(
            clippy::disallowed_methods,
            reason = "the test waits for its own child, not one of the launcher's"
        )]
        let waiting = tokio::task::spawn_blocking(move || child.wait());
        tokio::time::timeout(DEADLINE, waiting)
            .await
            .expect("the child exits in time")
            .expect("join")
            .expect("wait")
    }
}
