//! Where the daemon's socket goes when the config names none: beside the
//! config file, or, when that folder is read-only (a Kubernetes ConfigMap, a
//! read-only image), in a runtime directory where a daemon may write. The
//! daemon and its clients compute the same path from the same file.

use std::path::{Path, PathBuf};

use nix::unistd::{AccessFlags, Uid, access};
use sha1::{Digest, Sha1};

use crate::DEFAULT_SOCKET;

/// The default socket of the config file at `config` (absolute):
/// `tend.sock` beside it, or [`fallback_socket`] when its folder is on a
/// read-only file system. The test is the mount's, not the caller's rights,
/// so the daemon and a client of another user agree on the path.
pub fn default_socket(config: &Path) -> PathBuf {
    let dir = config.parent().unwrap_or(Path::new("/"));
    if read_only(dir) {
        fallback_socket(config)
    } else {
        dir.join(DEFAULT_SOCKET)
    }
}

/// Whether `dir` exists on a file system mounted read-only (a Kubernetes
/// ConfigMap, a read-only image or bind mount).
fn read_only(dir: &Path) -> bool {
    nix::sys::statvfs::statvfs(dir)
        .is_ok_and(|v| v.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// Whether this process may create files in `dir` (a read-only mount says
/// no even to root).
fn writable(dir: &Path) -> bool {
    access(dir, AccessFlags::W_OK).is_ok()
}

/// The socket of `config` in the runtime directory: `/run/tend` for root
/// (when `/run` is writable), else `$XDG_RUNTIME_DIR/tend`, else
/// `/tmp/tend-UID`; named after the config file and a hash of its path, so
/// that two configs never share one.
pub fn fallback_socket(config: &Path) -> PathBuf {
    let stem: String = config
        .file_stem()
        .map(|s| s.to_string_lossy().chars().take(32).collect())
        .unwrap_or_else(|| "tend".to_string());
    let digest = Sha1::digest(config.as_os_str().as_encoded_bytes());
    let hash: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    runtime_dir().join(format!("{stem}-{hash}.sock"))
}

/// The runtime directory for sockets (see [`fallback_socket`]).
pub fn runtime_dir() -> PathBuf {
    let uid = Uid::effective();
    if uid.is_root() && writable(Path::new("/run")) {
        return PathBuf::from("/run/tend");
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from)
        && dir.is_absolute()
        && writable(&dir)
    {
        return dir.join("tend");
    }
    std::env::temp_dir().join(format!("tend-{uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beside_the_config_unless_its_folder_is_read_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("supervisord.conf");
        assert_eq!(default_socket(&conf), dir.path().join("tend.sock"));
        let fallback = fallback_socket(&conf);
        assert!(
            fallback
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("supervisord-")),
            "{fallback:?}"
        );
        assert_eq!(fallback.parent(), Some(runtime_dir().as_path()));
        assert_ne!(fallback, fallback_socket(&dir.path().join("other.conf")));
        // A folder that does not exist is no read-only folder.
        let missing = Path::new("/nonexistent-tend-dir/supervisord.conf");
        assert_eq!(
            default_socket(missing),
            Path::new("/nonexistent-tend-dir/tend.sock")
        );
    }
}
