//! The pid file (`[supervisord] pidfile`).

use std::path::{Path, PathBuf};

use tracing::warn;

/// Writes the pid file; returns its path to remove at exit. A failure is
/// logged (`supervisord`: as a critical `could not write pidfile PATH`).
pub(super) fn write_pidfile(path: &Path, supervisord: bool) -> Option<PathBuf> {
    match std::fs::write(path, format!("{}\n", std::process::id())) {
        Ok(()) => Some(path.to_path_buf()),
        Err(e) if supervisord => {
            super::suplog::emit(
                tend_config::LogLevel::Critical,
                &format!("could not write pidfile {}", path.display()),
            );
            tracing::debug!("{}: {e}", path.display());
            None
        }
        Err(e) => {
            warn!("cannot write the pid file {}: {e}", path.display());
            None
        }
    }
}

/// Removes the pid file if it still holds this daemon's pid.
pub(super) fn remove_pidfile(path: Option<&Path>) {
    let Some(path) = path else { return };
    let ours =
        std::fs::read_to_string(path).is_ok_and(|s| s.trim() == std::process::id().to_string());
    if ours {
        let _ = std::fs::remove_file(path);
    }
}
