//! Reading log files the way Supervisor's `readFile` and `tailFile`
//! (`supervisor/options.py`) do, offsets and all.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// Why `read_file` failed: the name of the fault Supervisor raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// A negative offset with a length, or a negative length.
    BadArguments,
    /// The file could not be read.
    Failed,
    /// The slice asked for is larger than the cap.
    TooLarge,
}

/// `readFile(filename, offset, length)`:
/// - `offset < 0`, `length == 0`: the last `-offset` bytes;
/// - `offset >= 0`, `length == 0`: from `offset` to the end;
/// - `offset >= 0`, `length > 0`: `length` bytes from `offset`;
/// - anything else: `BAD_ARGUMENTS`.
///
/// A file that does not exist reads as empty: tend creates a process's log
/// file at its first output, so a process that has written nothing has none
/// yet (supervisord creates it at spawn, and its readers see an empty file).
///
/// More than `cap` bytes is `TooLarge` (after reading one byte past it).
pub(crate) fn read_file(
    path: &Path,
    offset: i64,
    length: i64,
    cap: u64,
) -> Result<Vec<u8>, ReadError> {
    if offset < 0 && length != 0 || offset >= 0 && length < 0 {
        return Err(ReadError::BadArguments);
    }
    let read = || -> io::Result<Vec<u8>> {
        let mut f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut data = Vec::new();
        if offset < 0 {
            let size = f.seek(SeekFrom::End(0))?;
            let back = offset.unsigned_abs();
            f.seek(SeekFrom::Start(size.saturating_sub(back)))?;
            f.take(back.min(cap.saturating_add(1)))
                .read_to_end(&mut data)?;
        } else {
            f.seek(SeekFrom::Start(offset.unsigned_abs()))?;
            let want = if length == 0 {
                u64::MAX
            } else {
                length.unsigned_abs()
            };
            f.take(want.min(cap.saturating_add(1)))
                .read_to_end(&mut data)?;
        }
        Ok(data)
    };
    match read() {
        Ok(data) if data.len() as u64 > cap => Err(ReadError::TooLarge),
        Ok(data) => Ok(data),
        Err(_) => Err(ReadError::Failed),
    }
}

/// `tailFile(filename, offset, length)`: `(bytes, new offset, overflow)`.
///
/// When the file has grown past `offset + length`, `overflow` is set and the
/// last `length` bytes are returned; otherwise the bytes from `offset` on.
/// The returned offset is always the size of the file. A file that cannot be
/// read gives `("", offset, false)`.
pub(crate) fn tail_file(path: &Path, offset: i64, length: i64) -> (Vec<u8>, i64, bool) {
    let tail = || -> io::Result<(Vec<u8>, i64, bool)> {
        let mut f = File::open(path)?;
        let sz = i64::try_from(f.seek(SeekFrom::End(0))?).unwrap_or(i64::MAX);
        let (mut offset, mut length) = (offset, length);
        let mut overflow = false;
        if sz > offset.saturating_add(length) {
            overflow = true;
            offset = sz - 1;
        }
        if offset.saturating_add(length) > sz {
            if offset > sz - 1 {
                length = 0;
            }
            offset = sz - length;
        }
        offset = offset.max(0);
        length = length.max(0);
        let mut data = Vec::new();
        if length > 0 {
            f.seek(SeekFrom::Start(offset.unsigned_abs()))?;
            f.take(length.unsigned_abs()).read_to_end(&mut data)?;
        }
        Ok((data, sz, overflow))
    };
    tail().unwrap_or((Vec::new(), offset, false))
}

/// Empties a log file in place, as `clearProcessLogs` and `clearLog` do
/// (Supervisor removes and reopens it; truncating keeps tend's open file
/// valid). A file that does not exist is already clear.
pub(crate) fn clear(path: &Path) -> io::Result<()> {
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(f) => f.set_len(0),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Bytes as text: Supervisor decodes UTF-8 strictly and fails the whole
/// call (HTTP 500) on a cut character; a replacement character is more useful.
pub(crate) fn text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        std::fs::write(&path, content).expect("write");
        (dir, path)
    }

    #[test]
    fn read_file_follows_supervisor_offsets() {
        let (_d, p) = file(b"0123456789");
        assert_eq!(read_file(&p, -3, 0, u64::MAX), Ok(b"789".to_vec()));
        assert_eq!(read_file(&p, -30, 0, u64::MAX), Ok(b"0123456789".to_vec()));
        assert_eq!(read_file(&p, 4, 0, u64::MAX), Ok(b"456789".to_vec()));
        assert_eq!(read_file(&p, 4, 2, u64::MAX), Ok(b"45".to_vec()));
        assert_eq!(read_file(&p, 40, 2, u64::MAX), Ok(Vec::new()));
        assert_eq!(read_file(&p, -3, 1, u64::MAX), Err(ReadError::BadArguments));
        assert_eq!(read_file(&p, 0, -1, u64::MAX), Err(ReadError::BadArguments));
        // Bounded: at most the cap, whatever was asked for.
        assert_eq!(read_file(&p, 0, 0, 10), Ok(b"0123456789".to_vec()));
        assert_eq!(read_file(&p, 0, 0, 9), Err(ReadError::TooLarge));
        assert_eq!(read_file(&p, -10, 0, 9), Err(ReadError::TooLarge));
        assert_eq!(read_file(&p, 2, 5, 5), Ok(b"23456".to_vec()));
        // Not created yet: tend creates log files at the first output.
        assert_eq!(
            read_file(&p.with_extension("none"), -3, 0, u64::MAX),
            Ok(Vec::new())
        );
        let dir = p.parent().expect("in a directory");
        assert_eq!(read_file(dir, 0, 0, u64::MAX), Err(ReadError::Failed));
    }

    #[test]
    fn tail_file_matches_python() {
        // Expected values from supervisor.options.tailFile on the same input.
        let (_d, p) = file(b"0123456789");
        assert_eq!(tail_file(&p, 0, 4), (b"6789".to_vec(), 10, true));
        assert_eq!(tail_file(&p, 0, 100), (b"0123456789".to_vec(), 10, false));
        assert_eq!(tail_file(&p, 8, 100), (b"0123456789".to_vec(), 10, false));
        assert_eq!(tail_file(&p, 10, 5), (Vec::new(), 10, false));
        assert_eq!(tail_file(&p, 6, 4), (b"6789".to_vec(), 10, false));
        assert_eq!(tail_file(&p, 20, 5), (Vec::new(), 10, false));
        assert_eq!(
            tail_file(&p.with_extension("none"), 7, 5),
            (Vec::new(), 7, false)
        );
    }

    #[test]
    fn clear_truncates_and_tolerates_a_missing_file() {
        let (_d, p) = file(b"abc");
        clear(&p).expect("clear");
        assert_eq!(std::fs::read(&p).expect("read"), b"");
        clear(&p.with_extension("none")).expect("missing is fine");
    }
}
