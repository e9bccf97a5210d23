//! The bounded in-memory tail of a process's output.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use memchr::memchr;

use super::lines::Lines;

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
}

impl Stream {
    /// `"stdout"` or `"stderr"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lines read from one stream at one time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// When they were read.
    pub time: Timestamp,
    /// Which stream.
    pub stream: Stream,
    /// Lines, each ending in `\n`, but for a last one shown before its end
    /// came (a prompt, a progress bar): the next chunk of the stream holds
    /// the rest of it, and [`Tail::push`] joins them.
    pub data: Arc<[u8]>,
}

/// A chunk and how much of its front has been evicted.
#[derive(Debug)]
struct Entry {
    chunk: Chunk,
    /// The kept part is `chunk.data[start..]`, which starts at a line start.
    start: usize,
}

impl Entry {
    fn data(&self) -> &[u8] {
        &self.chunk.data[self.start..]
    }
}

/// The last bytes of a process's output, as chunks of complete lines with their arrival time.
///
/// At most `capacity` bytes of lines are kept; the oldest lines go first, a
/// whole line at a time (the oldest chunk may be trimmed at a line start
/// without copying, so its buffer stays shared until it is evicted whole: the
/// memory held is at most `capacity` plus one chunk). An empty tail holds no
/// allocation.
#[derive(Debug)]
pub struct Tail {
    entries: VecDeque<Entry>,
    bytes: usize,
    capacity: usize,
}

/// The first line start at or after `at` in `data`, if there is one before its end.
fn line_start_from(data: &[u8], at: usize) -> Option<usize> {
    if at == 0 {
        return Some(0);
    }
    let k = memchr(b'\n', data.get(at - 1..)?)?;
    let p = at + k;
    (p < data.len()).then_some(p)
}

impl Tail {
    /// A tail keeping at most `capacity_bytes` bytes of lines (0 keeps nothing).
    pub fn new(capacity_bytes: usize) -> Self {
        Tail {
            entries: VecDeque::new(),
            bytes: 0,
            capacity: capacity_bytes,
        }
    }

    /// Keeps `chunk` (shares the Arc; no copy), evicting the oldest chunks beyond capacity.
    ///
    /// A chunk bigger than the capacity replaces everything, and only its last
    /// lines that fit are kept, copied into a buffer of their own so the big
    /// one is freed; if not even its last line fits, the last `capacity` bytes
    /// of that line are kept.
    ///
    /// When the stream's last kept chunk ends in a line without its `\n`,
    /// `chunk` continues that line: the two are joined in place (with the
    /// older time), so a line shown in parts is still one line.
    pub fn push(&mut self, chunk: Chunk) {
        let len = chunk.data.len();
        if len == 0 || self.capacity == 0 {
            return;
        }
        let open = self
            .entries
            .iter()
            .rposition(|e| e.chunk.stream == chunk.stream)
            .filter(|&i| self.entries[i].data().last() != Some(&b'\n'));
        if let Some(i) = open {
            let old = &self.entries[i];
            let mut joined = Vec::with_capacity(old.data().len() + len);
            joined.extend_from_slice(old.data());
            joined.extend_from_slice(&chunk.data);
            let time = old.chunk.time;
            if joined.len() > self.capacity {
                if let Some(e) = self.entries.remove(i) {
                    self.bytes -= e.data().len();
                }
                self.push(Chunk {
                    time,
                    stream: chunk.stream,
                    data: Arc::from(joined),
                });
                return;
            }
            let e = &mut self.entries[i];
            self.bytes += len;
            e.chunk.data = Arc::from(joined);
            e.start = 0;
            self.evict();
            return;
        }
        if len > self.capacity {
            let excess = len - self.capacity;
            let start = line_start_from(&chunk.data, excess).unwrap_or(excess);
            let data: Arc<[u8]> = Arc::from(&chunk.data[start..]);
            self.entries.clear();
            self.bytes = data.len();
            self.entries.push_back(Entry {
                chunk: Chunk { data, ..chunk },
                start: 0,
            });
            return;
        }
        self.bytes += len;
        self.entries.push_back(Entry { chunk, start: 0 });
        self.evict();
    }

    /// Drops the oldest lines until at most `capacity` bytes are kept.
    fn evict(&mut self) {
        while self.bytes > self.capacity {
            let excess = self.bytes - self.capacity;
            let Some(front) = self.entries.front_mut() else {
                break;
            };
            let data = front.data();
            match line_start_from(data, excess) {
                Some(cut) => {
                    front.start += cut;
                    self.bytes -= cut;
                }
                None => {
                    self.bytes -= data.len();
                    self.entries.pop_front();
                }
            }
        }
    }

    /// The last `n` lines (of the given streams, `None` = both) at or after `since`, oldest first,
    /// as (time, stream, line-without-newline). Lines from one chunk share its time.
    pub fn last_lines(
        &self,
        n: usize,
        stream: Option<Stream>,
        since: Option<Timestamp>,
    ) -> Vec<(Timestamp, Stream, Vec<u8>)> {
        let mut out = Vec::new();
        if n == 0 {
            return out;
        }
        // Every chunk is checked: wall-clock times need not be monotonic.
        let wanted = self.entries.iter().rev().filter(|e| {
            stream.is_none_or(|s| s == e.chunk.stream) && since.is_none_or(|t| e.chunk.time >= t)
        });
        'chunks: for e in wanted {
            for line in Lines::new(e.data()).rev() {
                out.push((e.chunk.time, e.chunk.stream, line.to_vec()));
                if out.len() == n {
                    break 'chunks;
                }
            }
        }
        out.reverse();
        out
    }

    #[cfg(test)]
    /// The kept chunks, oldest first, as (time, stream, complete lines).
    pub fn chunks(&self) -> impl DoubleEndedIterator<Item = (Timestamp, Stream, &[u8])> {
        self.entries
            .iter()
            .map(|e| (e.chunk.time, e.chunk.stream, e.data()))
    }

    #[cfg(test)]
    /// Bytes of lines kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    /// The most bytes kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    #[cfg(test)]
    /// Nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[cfg(test)]
    /// Forgets everything and frees the memory.
    pub fn clear(&mut self) {
        self.entries = VecDeque::new();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn chunk(secs: i64, stream: Stream, data: &str) -> Chunk {
        Chunk {
            time: at(secs),
            stream,
            data: Arc::from(data.as_bytes()),
        }
    }

    fn texts(lines: &[(Timestamp, Stream, Vec<u8>)]) -> Vec<String> {
        lines
            .iter()
            .map(|(_, _, l)| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    fn all(t: &Tail) -> Vec<String> {
        texts(&t.last_lines(usize::MAX, None, None))
    }

    use Stream::{Stderr, Stdout};

    #[test]
    fn empty_tail_holds_no_memory() {
        let t = Tail::new(1 << 20);
        assert_eq!(t.entries.capacity(), 0);
        assert!(t.is_empty());
        assert_eq!(t.bytes(), 0);
        assert!(t.last_lines(10, None, None).is_empty());
        let mut t = Tail::new(0);
        t.push(chunk(0, Stdout, "a\n"));
        assert!(t.is_empty());
        assert_eq!(t.entries.capacity(), 0);
    }

    #[test]
    fn a_line_shown_in_part_is_joined_with_its_rest() {
        let mut t = Tail::new(100);
        t.push(chunk(0, Stdout, "a\nPass"));
        t.push(chunk(1, Stderr, "err\n"));
        assert_eq!(all(&t), ["a", "Pass", "err"]);
        t.push(chunk(2, Stdout, "word: "));
        assert_eq!(all(&t), ["a", "Password: ", "err"]);
        t.push(chunk(3, Stdout, "x\nb\n"));
        assert_eq!(all(&t), ["a", "Password: x", "b", "err"]);
        assert_eq!(t.bytes(), "a\nPassword: x\nb\nerr\n".len());
        // The joined line keeps its first part's time.
        let got = t.last_lines(usize::MAX, Some(Stdout), None);
        assert_eq!(got[1].0, at(0));
        // Joined past the capacity, only the last lines that fit are kept.
        let mut t = Tail::new(8);
        t.push(chunk(0, Stdout, "12345"));
        t.push(chunk(1, Stdout, "678\nab\n"));
        assert_eq!(all(&t), ["ab"]);
    }

    #[test]
    fn shares_the_buffer() {
        let mut t = Tail::new(100);
        let c = chunk(0, Stdout, "a\nb\n");
        let data = c.data.clone();
        t.push(c);
        assert_eq!(Arc::strong_count(&data), 2);
        t.clear();
        assert_eq!(Arc::strong_count(&data), 1);
        assert_eq!(t.entries.capacity(), 0);
    }

    #[test]
    fn evicts_the_oldest_lines() {
        let mut t = Tail::new(10);
        t.push(chunk(0, Stdout, "aa\nbb\n")); // 6
        t.push(chunk(1, Stdout, "cc\n")); // 9
        assert_eq!(t.bytes(), 9);
        assert_eq!(all(&t), ["aa", "bb", "cc"]);
        // 12 > 10: the oldest line goes, trimmed out of the first chunk.
        t.push(chunk(2, Stderr, "dd\n"));
        assert_eq!(t.bytes(), 9);
        assert_eq!(all(&t), ["bb", "cc", "dd"]);
        // The rest of the first chunk goes whole.
        t.push(chunk(3, Stdout, "e\n"));
        assert_eq!(t.bytes(), 8);
        assert_eq!(all(&t), ["cc", "dd", "e"]);
        assert_eq!(t.entries.len(), 3);
        // Exactly at capacity.
        t.push(chunk(4, Stdout, "f\n"));
        assert_eq!(t.bytes(), 10);
        assert_eq!(all(&t), ["cc", "dd", "e", "f"]);
        assert!(t.bytes() <= t.capacity());
        let kept: Vec<&[u8]> = t.chunks().map(|(_, _, d)| d).collect();
        assert_eq!(kept, [&b"cc\n"[..], b"dd\n", b"e\n", b"f\n"]);
    }

    #[test]
    fn last_n_lines_with_times() {
        let mut t = Tail::new(1000);
        t.push(chunk(0, Stdout, "1\n2\n3\n"));
        t.push(chunk(1, Stdout, "4\n5\n"));
        let got = t.last_lines(3, None, None);
        assert_eq!(texts(&got), ["3", "4", "5"]);
        assert_eq!(
            got.iter().map(|l| l.0).collect::<Vec<_>>(),
            [at(0), at(1), at(1)]
        );
        assert_eq!(texts(&t.last_lines(1, None, None)), ["5"]);
        assert_eq!(texts(&t.last_lines(0, None, None)), Vec::<String>::new());
        assert_eq!(
            texts(&t.last_lines(99, None, None)),
            ["1", "2", "3", "4", "5"]
        );
        // Empty lines are lines.
        t.push(chunk(2, Stdout, "\n\n"));
        assert_eq!(texts(&t.last_lines(3, None, None)), ["5", "", ""]);
    }

    #[test]
    fn stream_and_since_filters() {
        let mut t = Tail::new(1000);
        t.push(chunk(0, Stdout, "o1\n"));
        t.push(chunk(1, Stderr, "e1\ne2\n"));
        t.push(chunk(2, Stdout, "o2\n"));
        t.push(chunk(3, Stderr, "e3\n"));
        assert_eq!(texts(&t.last_lines(10, Some(Stdout), None)), ["o1", "o2"]);
        assert_eq!(texts(&t.last_lines(2, Some(Stderr), None)), ["e2", "e3"]);
        let got = t.last_lines(10, None, Some(at(2)));
        assert_eq!(texts(&got), ["o2", "e3"]);
        assert_eq!(
            got.iter().map(|l| l.1).collect::<Vec<_>>(),
            [Stdout, Stderr]
        );
        assert_eq!(
            texts(&t.last_lines(10, Some(Stderr), Some(at(1)))),
            ["e1", "e2", "e3"]
        );
        assert!(t.last_lines(10, None, Some(at(4))).is_empty());
        // A clock that went back: filtered per chunk, not by stopping early.
        t.push(chunk(-5, Stdout, "back\n"));
        t.push(chunk(5, Stdout, "later\n"));
        assert_eq!(
            texts(&t.last_lines(10, None, Some(at(2)))),
            ["o2", "e3", "later"]
        );
    }

    #[test]
    fn a_big_chunk_keeps_its_last_lines() {
        let mut t = Tail::new(10);
        t.push(chunk(0, Stdout, "old\n"));
        let big = chunk(1, Stderr, "line one\nline two\nabc\ndefg\n");
        let data = big.data.clone();
        t.push(big);
        assert_eq!(all(&t), ["abc", "defg"]);
        assert_eq!(t.bytes(), 9);
        // Copied: the big buffer is not held.
        assert_eq!(Arc::strong_count(&data), 1);
        // A single line longer than the capacity: its end is kept.
        t.push(chunk(2, Stdout, "0123456789abcdef\n"));
        assert_eq!(all(&t), ["789abcdef"]);
        assert_eq!(t.bytes(), 10);
        // Then normal pushes evict it.
        t.push(chunk(3, Stdout, "x\n"));
        assert_eq!(all(&t), ["x"]);
    }
}
