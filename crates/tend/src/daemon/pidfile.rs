//! The pid file (`[supervisord] pidfile`).

use std::path::{Path, PathBuf};

use tracing::warn;

/// Writes the pid file; returns its path to remove at exit.
pub(super) fn write_pidfile(path: &Path) -> Option<PathBuf> {
    match std::fs::write(path, format!("{}\n", std::process::id())) {
        Ok(()) => Some(path.to_path_buf()),
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
