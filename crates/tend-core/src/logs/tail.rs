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

/// Complete lines read from one stream at one time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// When they were read.
    pub time: Timestamp,
    /// Which stream.
    pub stream: Stream,
    /// Complete lines, each ending in `\n`.
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
///
/// Besides the complete lines, each stream may have a *partial* line: the
/// start of a line whose newline has not come yet, shown because its pipe
/// went quiet (a prompt, a progress bar). It is the newest line of its
/// stream until the line ends, when the complete line replaces it.
#[derive(Debug)]
pub struct Tail {
    entries: VecDeque<Entry>,
    bytes: usize,
    capacity: usize,
    /// The partial line of stdout and of stderr, if any (at most `capacity`
    /// bytes: its end).
    partial: [Option<Chunk>; 2],
}

/// One line of a tail: (time, stream, the line without its newline, whether
/// it is a partial line that has not ended yet).
pub type TailLine = (Timestamp, Stream, Vec<u8>, bool);

fn index(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
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
            partial: [None, None],
        }
    }

    /// The line being written on `chunk.stream`, as far as it goes (no
    /// newline): replaces the partial line shown before. Only its last
    /// `capacity` bytes are kept.
    pub fn set_partial(&mut self, mut chunk: Chunk) {
        if self.capacity == 0 || chunk.data.is_empty() {
            return;
        }
        if chunk.data.len() > self.capacity {
            chunk.data = Arc::from(&chunk.data[chunk.data.len() - self.capacity..]);
        }
        let i = index(chunk.stream);
        self.partial[i] = Some(chunk);
    }

    /// The partial line of `stream` ended (its complete line is pushed), or
    /// the stream did.
    pub fn end_partial(&mut self, stream: Stream) {
        self.partial[index(stream)] = None;
    }

    /// Keeps `chunk` (shares the Arc; no copy), evicting the oldest chunks beyond capacity.
    ///
    /// A chunk bigger than the capacity replaces everything, and only its last
    /// lines that fit are kept, copied into a buffer of their own so the big
    /// one is freed; if not even its last line fits, the last `capacity` bytes
    /// of that line are kept.
    pub fn push(&mut self, chunk: Chunk) {
        let len = chunk.data.len();
        if len == 0 || self.capacity == 0 {
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
    /// as (time, stream, line-without-newline, partial). Lines from one chunk share its time; the
    /// partial lines, if any, come last.
    pub fn last_lines(
        &self,
        n: usize,
        stream: Option<Stream>,
        since: Option<Timestamp>,
    ) -> Vec<TailLine> {
        let mut out = Vec::new();
        if n == 0 {
            return out;
        }
        let wanted =
            |c: &Chunk| stream.is_none_or(|s| s == c.stream) && since.is_none_or(|t| c.time >= t);
        let mut partials: Vec<&Chunk> = self
            .partial
            .iter()
            .flatten()
            .filter(|c| wanted(c))
            .collect();
        partials.sort_by_key(|c| std::cmp::Reverse(c.time));
        for c in partials {
            out.push((c.time, c.stream, c.data.to_vec(), true));
            if out.len() == n {
                out.reverse();
                return out;
            }
        }
        // Every chunk is checked: wall-clock times need not be monotonic.
        'chunks: for e in self.entries.iter().rev().filter(|e| wanted(&e.chunk)) {
            for line in Lines::new(e.data()).rev() {
                out.push((e.chunk.time, e.chunk.stream, line.to_vec(), false));
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
        self.partial = [None, None];
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

    fn texts(lines: &[TailLine]) -> Vec<String> {
        lines
            .iter()
            .map(|(_, _, l, _)| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    fn all(t: &Tail) -> Vec<String> {
        texts(&t.last_lines(usize::MAX, None, None))
    }

    use Stream::{Stderr, Stdout};

    /// Issue 11's test of a line shown in part, on this tail's model: the
    /// part is the stream's partial line (`set_partial`, replaced as it
    /// grows), and the line, once ended, is pushed whole (`end_partial`), so
    /// it is one line, counted once.
    #[test]
    fn a_line_shown_in_part_is_joined_with_its_rest() {
        let mut t = Tail::new(100);
        t.push(chunk(0, Stdout, "a\n"));
        t.set_partial(chunk(0, Stdout, "Pass"));
        t.push(chunk(1, Stderr, "err\n"));
        assert_eq!(all(&t), ["a", "err", "Pass"]);
        t.set_partial(chunk(2, Stdout, "Password: "));
        assert_eq!(all(&t), ["a", "err", "Password: "]);
        t.end_partial(Stdout);
        t.push(chunk(3, Stdout, "Password: x\nb\n"));
        assert_eq!(all(&t), ["a", "err", "Password: x", "b"]);
        assert_eq!(t.bytes(), "a\nerr\nPassword: x\nb\n".len());
        let got = t.last_lines(usize::MAX, Some(Stdout), None);
        assert!(got.iter().all(|l| !l.3), "none partial any more");
        // Past the capacity, only the last lines that fit are kept.
        let mut t = Tail::new(8);
        t.set_partial(chunk(0, Stdout, "12345"));
        t.end_partial(Stdout);
        t.push(chunk(1, Stdout, "12345678\nab\n"));
        assert_eq!(all(&t), ["ab"]);
    }

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

    #[test]
    fn a_partial_line_is_the_newest_until_it_ends() {
        let mut t = Tail::new(100);
        t.push(chunk(0, Stdout, "one\n"));
        t.set_partial(chunk(1, Stdout, "Password: "));
        t.push(chunk(2, Stderr, "warn\n"));
        let got = t.last_lines(10, None, None);
        assert_eq!(texts(&got), ["one", "warn", "Password: "]);
        assert_eq!(
            got.iter().map(|l| l.3).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert_eq!(texts(&t.last_lines(1, None, None)), ["Password: "]);
        assert_eq!(texts(&t.last_lines(10, Some(Stderr), None)), ["warn"]);
        assert!(t.last_lines(10, Some(Stdout), Some(at(2))).is_empty());
        // More of it, then its end: the complete line replaces it.
        t.set_partial(chunk(3, Stdout, "Password: ***"));
        assert_eq!(texts(&t.last_lines(1, None, None)), ["Password: ***"]);
        t.push(chunk(4, Stdout, "Password: ***ok\n"));
        t.end_partial(Stdout);
        let got = t.last_lines(10, None, None);
        assert_eq!(texts(&got), ["one", "warn", "Password: ***ok"]);
        assert!(got.iter().all(|l| !l.3));
        // A partial longer than the tail keeps its end.
        let mut t = Tail::new(4);
        t.set_partial(chunk(0, Stdout, "\r10%\r20%"));
        assert_eq!(texts(&t.last_lines(1, None, None)), ["\r20%"]);
    }
}
