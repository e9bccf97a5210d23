//! Serving the API on a Unix socket.

use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use axum::Router;
use nix::sys::stat::{Mode, umask};

use super::Limits;

/// Why the socket could not be set up or served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A live daemon answers on the socket.
    #[error("another tend is already running on {}", .0.display())]
    AlreadyRunning(PathBuf),
    /// Something that is not a socket is in the way.
    #[error("{} exists and is not a socket; refusing to replace it", .0.display())]
    NotASocket(PathBuf),
    /// A TCP socket could not be bound or served.
    #[error("cannot {op} {addr}: {source}")]
    Tcp {
        /// What was being done.
        op: &'static str,
        /// `host:port`.
        addr: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A system call failed.
    #[error("cannot {op} {}: {source}", .path.display())]
    Io {
        /// What was being done (`bind`, `remove stale socket`, ...).
        op: &'static str,
        /// The socket path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ServeError + 'a {
    move |source| ServeError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A bound, listening Unix socket, not yet serving.
///
/// Binding and serving are separate so a daemon can report readiness once the
/// socket accepts connections (they queue until [`UnixServer::serve`] runs).
/// The socket file is removed when the server is dropped, if it is still ours.
#[derive(Debug)]
pub struct UnixServer {
    listener: Option<tokio::net::UnixListener>,
    path: PathBuf,
    /// (device, inode) of the socket file we created, so we never remove
    /// another daemon's socket that replaced ours.
    id: (u64, u64),
}

impl UnixServer {
    /// Binds `path` with file mode `mode` (e.g. `0o600`). Must be called inside
    /// a tokio runtime.
    ///
    /// A stale socket file (nobody answers) is removed first; a live one is
    /// [`ServeError::AlreadyRunning`]. The mode is in force before the socket
    /// exists under its name: a restrictive umask is set around `bind(2)`, so
    /// no client can connect through looser permissions in between.
    pub fn bind(path: &Path, mode: u32) -> Result<UnixServer, ServeError> {
        remove_stale(path)?;
        let mode = mode & 0o777;
        // umask is process-wide; the window is one bind(2) call, and it can only
        // make files created meanwhile by other threads stricter, never looser.
        let old = umask(Mode::from_bits_truncate(0o777 & !mode));
        let bound = std::os::unix::net::UnixListener::bind(path);
        umask(old);
        let std_listener = bound.map_err(io_err("bind", path))?;
        // The umask cannot add bits the old one removed; set the exact mode.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(io_err("set the mode of", path))?;
        let meta = std::fs::symlink_metadata(path).map_err(io_err("stat", path))?;
        std_listener
            .set_nonblocking(true)
            .map_err(io_err("configure", path))?;
        let listener =
            tokio::net::UnixListener::from_std(std_listener).map_err(io_err("listen on", path))?;
        Ok(UnixServer {
            listener: Some(listener),
            path: path.to_path_buf(),
            id: (meta.dev(), meta.ino()),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves `router` until `until` resolves, lets in-flight requests finish,
    /// then removes the socket file.
    pub async fn serve(
        self,
        router: Router,
        until: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        self.serve_with(router, Limits::default(), until).await
    }

    /// [`UnixServer::serve`] within `limits`.
    pub async fn serve_with(
        mut self,
        router: Router,
        limits: Limits,
        until: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Some(listener) = self.listener.take() else {
            return Ok(());
        };
        // Every request carries the peer's uid (`SO_PEERCRED`): it lets the
        // owner of the daemon past HTTP auth.
        let serving = super::conn::Serving {
            limits,
            counts: super::Connections::new(),
            tls: None,
        };
        let served = super::conn::serve(listener, router, serving, until).await;
        served.map_err(io_err("serve on", &self.path))
        // `self` drops here and removes the socket file.
    }
}

impl Drop for UnixServer {
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.id
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds `path` (see [`UnixServer::bind`]) and serves `router` until `until`
/// resolves; the socket file is removed afterwards.
pub async fn serve_unix(
    path: &Path,
    mode: u32,
    router: Router,
    until: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    UnixServer::bind(path, mode)?.serve(router, until).await
}

fn remove_stale(path: &Path) -> Result<(), ServeError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("stat", path)(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(ServeError::NotASocket(path.to_path_buf()));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(ServeError::AlreadyRunning(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path).map_err(io_err("remove the stale socket", path))
        }
        Err(e) => Err(io_err("check whether a daemon listens on", path)(e)),
    }
}
