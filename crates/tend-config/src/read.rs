//! Reading a config file, bounded: a config file is a door into the
//! daemon (and into `tend check`) like a socket is, so what one read may
//! take is bounded in kind (regular files only: a FIFO would block the
//! reader forever, `/dev/zero` never ends) and in size (per file and, for
//! a supervisord.conf and its `[include]`s, in all).

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest config file read (16 MiB): far beyond any real config (a
/// thousand processes take about 100 KiB), far below what hurts.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The most read for one config, the main file and every `[include]`d one
/// together (64 MiB).
pub const MAX_TOTAL_BYTES: u64 = 64 << 20;

/// What a config read may still take, in bytes, over all its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    left: u64,
}

impl Budget {
    /// [`MAX_TOTAL_BYTES`] to spend.
    pub fn new() -> Budget {
        Budget {
            left: MAX_TOTAL_BYTES,
        }
    }

    /// `bytes` to spend (for tests).
    pub fn with(bytes: u64) -> Budget {
        Budget { left: bytes }
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new()
    }
}

/// Why a config file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Opening or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not a regular file (a FIFO, a device, a socket, a directory).
    #[error("it is {0}, not a regular file")]
    NotAFile(&'static str),
    /// Larger than [`MAX_FILE_BYTES`].
    #[error("it is larger than {} MiB", MAX_FILE_BYTES >> 20)]
    TooLarge,
    /// The files read so far and this one together exceed the budget.
    #[error("the config files together are larger than {} MiB", MAX_TOTAL_BYTES >> 20)]
    BudgetSpent,
}

impl ReadError {
    /// Whether the file is simply missing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// What kind of file `ft` is, in words, unless it is a regular file.
fn odd_kind(ft: std::fs::FileType) -> Option<&'static str> {
    if ft.is_file() {
        None
    } else if ft.is_dir() {
        Some("a directory")
    } else if ft.is_fifo() {
        Some("a FIFO")
    } else if ft.is_char_device() {
        Some("a character device")
    } else if ft.is_block_device() {
        Some("a block device")
    } else if ft.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

/// Reads `path` as bytes, within `budget` and [`MAX_FILE_BYTES`]; only a
/// regular file (symbolic links are followed) is read.
///
/// The file is opened with `O_NONBLOCK`, so that opening a FIFO does not wait
/// for a writer, and its kind is checked on the open descriptor, so that no
/// file swapped in between a check and the open is read.
pub fn read_bytes(path: &Path, budget: &mut Budget) -> Result<Vec<u8>, ReadError> {
    // A quick look first: a FIFO would still be opened (without blocking),
    // a device not even opened.
    if let Ok(meta) = std::fs::metadata(path)
        && let Some(kind) = odd_kind(meta.file_type())
    {
        return Err(ReadError::NotAFile(kind));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if let Some(kind) = odd_kind(meta.file_type()) {
        return Err(ReadError::NotAFile(kind));
    }
    let cap = MAX_FILE_BYTES.min(budget.left);
    if meta.len() > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge);
    }
    if meta.len() > cap {
        return Err(ReadError::BudgetSpent);
    }
    // The size may change while it is read (a file being written): read at
    // most one byte more than allowed to tell.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(cap + 1).read_to_end(&mut bytes)?;
    let n = bytes.len() as u64;
    if n > cap {
        return Err(if n > MAX_FILE_BYTES {
            ReadError::TooLarge
        } else {
            ReadError::BudgetSpent
        });
    }
    budget.left -= n;
    Ok(bytes)
}

/// [`read_bytes`] as UTF-8 text; invalid UTF-8 is an [`std::io::Error`] of
/// kind `InvalidData` that gives the offset of the first bad byte.
pub fn read_text(path: &Path, budget: &mut Budget) -> Result<String, ReadError> {
    let bytes = read_bytes(path, budget)?;
    String::from_utf8(bytes).map_err(|e| {
        ReadError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "it is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn reads_regular_files_and_refuses_the_rest_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a.toml");
        std::fs::write(&file, "x = 1\n").expect("write");
        let mut budget = Budget::new();
        assert_eq!(read_text(&file, &mut budget).expect("read"), "x = 1\n");
        assert_eq!(budget, Budget::with(MAX_TOTAL_BYTES - 6));

        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let t = Instant::now();
        let e = read_text(&fifo, &mut budget).expect_err("a fifo");
        assert_eq!(e.to_string(), "it is a FIFO, not a regular file");
        assert!(t.elapsed() < Duration::from_secs(1));

        for (path, kind) in [
            ("/dev/zero", "a character device"),
            ("/dev/null", "a character device"),
            ("/", "a directory"),
        ] {
            let e = read_text(Path::new(path), &mut budget).expect_err(path);
            assert_eq!(e.to_string(), format!("it is {kind}, not a regular file"));
        }
        let e = read_text(&dir.path().join("missing"), &mut budget).expect_err("missing");
        assert!(e.is_not_found(), "{e}");
    }

    #[test]
    fn bounds_each_file_and_all_of_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("big");
        let f = std::fs::File::create(&file).expect("create");
        f.set_len(MAX_FILE_BYTES + 1).expect("sparse file");
        let e = read_bytes(&file, &mut Budget::new()).expect_err("too large");
        assert!(matches!(e, ReadError::TooLarge), "{e}");

        std::fs::write(&file, "0123456789").expect("write");
        let mut budget = Budget::with(15);
        read_bytes(&file, &mut budget).expect("first");
        let e = read_bytes(&file, &mut budget).expect_err("over the budget");
        assert!(matches!(e, ReadError::BudgetSpent), "{e}");

        std::fs::write(&file, b"ok \xff").expect("write");
        let e = read_text(&file, &mut Budget::new()).expect_err("not utf-8");
        assert_eq!(
            e.to_string(),
            "it is not UTF-8 text (invalid byte at offset 3)"
        );
    }
}
