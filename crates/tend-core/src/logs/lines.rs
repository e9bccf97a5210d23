//! Splitting a byte stream into whole lines.
//!
//! Bytes are never interpreted: `\r\n` stays `\r\n`, invalid UTF-8 stays as
//! it is. The only byte ever added is a `\n`: after a line cut at `max_line`,
//! and after an unterminated last line at [`LineSplitter::finish`].

use memchr::{memchr, memchr_iter, memrchr};

/// A partial-line buffer bigger than this is freed once its line is complete.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Turns a byte stream into complete lines, keeping an incomplete tail between calls.
///
/// A line (the bytes between two `\n`) longer than `max_line` bytes is cut
/// into pieces of `max_line` bytes, each followed by an added `\n`; the last
/// piece is the rest of the line (1 to `max_line` bytes) with the line's own
/// `\n`. A line of exactly `max_line` bytes is not cut. The output is the same
/// however the input is split into calls: a cut is made only once the byte
/// after a full `max_line` piece is known not to be its `\n`, so up to
/// `max_line` bytes are held back.
///
/// [`LineSplitter::split`] copies as little as it can: the complete lines of
/// one call are the held line's completion (copied, one line) followed by a
/// slice of the input itself, so a caller can write both with one `writev`
/// without copying the read. The held partial line can be *shown* before it
/// is complete ([`LineSplitter::show_partial`]): it stays held, and the next
/// [`Split`] says how much of its first line was shown already.
#[derive(Debug)]
pub struct LineSplitter {
    /// The incomplete last line (at most `max_line` bytes).
    partial: Vec<u8>,
    /// Bytes at the start of `partial` handed out by `show_partial`.
    shown: usize,
    /// What `split` had to copy: the completed held line, and cut pieces.
    head: Vec<u8>,
    max_line: usize,
}

/// The complete lines one call of [`LineSplitter::split`] (or
/// [`LineSplitter::finish`]) found, in order: `head`, then `body`. Either may
/// be empty; together they are whole lines, each ending in `\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split<'a> {
    /// Copied bytes: the completion of the line held from earlier calls,
    /// and any piece that had to be cut.
    pub head: &'a [u8],
    /// A slice of the input: whole lines, uncopied.
    pub body: &'a [u8],
    /// Bytes at the start of `head` that [`LineSplitter::show_partial`]
    /// handed out before, while that line was incomplete.
    pub shown: usize,
}

impl Split<'_> {
    /// Bytes in all.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }

    /// No complete line.
    pub fn is_empty(&self) -> bool {
        self.head.is_empty() && self.body.is_empty()
    }

    /// `head` then `body`, appended to `out`.
    #[cfg(test)]
    pub fn append_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.len());
        out.extend_from_slice(self.head);
        out.extend_from_slice(self.body);
    }
}

impl LineSplitter {
    /// `max_line`: a line longer than this (without a newline) is cut and emitted as a line of its
    /// own, so a child that never writes `\n` cannot grow memory without bound. A `max_line` of 0
    /// is taken as 1.
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            partial: Vec::new(),
            shown: 0,
            head: Vec::new(),
            max_line: max_line.max(1),
        }
    }

    /// Appends to `out` every complete line now available (each ending in `\n`), in order, and keeps the rest.
    #[cfg(test)]
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.split(input).append_to(out);
    }

    /// The complete lines now available (see [`Split`]); the rest is kept.
    pub fn split<'a>(&'a mut self, input: &'a [u8]) -> Split<'a> {
        if self.head.capacity() > KEEP_CAPACITY {
            // A long line is over: do not hold its buffer for good.
            self.head = Vec::new();
        }
        self.head.clear();
        let shown = std::mem::take(&mut self.shown);
        let max = self.max_line;
        let mut pos = 0;
        if !self.partial.is_empty() {
            // Finish the held line first: its newline may come within the room
            // left, or right after a full line.
            let room = max - self.partial.len();
            let window = &input[..input.len().min(room.saturating_add(1))];
            if let Some(k) = memchr(b'\n', window) {
                self.head.extend_from_slice(&self.partial);
                self.head.extend_from_slice(&input[..=k]);
                self.partial.clear();
                pos = k + 1;
            } else if window.len() > room {
                self.head.extend_from_slice(&self.partial);
                self.head.extend_from_slice(&input[..room]);
                self.head.push(b'\n');
                self.partial.clear();
                pos = room;
            } else {
                self.partial.extend_from_slice(input);
                self.shown = shown;
                return Split {
                    head: &[],
                    body: &[],
                    shown: 0,
                };
            }
        }
        // At a line start. Every window of `max + 1` bytes from a line start
        // holds a newline unless a cut is due, so jumping from the last newline
        // of each window checks all line lengths in one pass; when `max` is at
        // least the input's length this is a single `memrchr`. Cut pieces are
        // copied into `head`; the lines after the last cut stay in the input.
        let mut start = pos;
        loop {
            let end = input.len().min(pos.saturating_add(max).saturating_add(1));
            match memrchr(b'\n', &input[pos..end]) {
                Some(k) => {
                    pos += k + 1;
                    if pos == input.len() {
                        break;
                    }
                }
                None if end - pos > max => {
                    self.head.extend_from_slice(&input[start..pos + max]);
                    self.head.push(b'\n');
                    pos += max;
                    start = pos;
                }
                None => break,
            }
        }
        if self.partial.is_empty() && self.partial.capacity() > KEEP_CAPACITY {
            self.partial = Vec::new();
        }
        self.partial.extend_from_slice(&input[pos..]);
        Split {
            head: &self.head,
            body: &input[start..pos],
            shown,
        }
    }

    /// End of stream: the incomplete last line (if any), terminated with `\n`.
    pub fn finish(&mut self) -> Split<'_> {
        self.head.clear();
        let shown = std::mem::take(&mut self.shown);
        if !self.partial.is_empty() {
            self.head.append(&mut self.partial);
            self.head.push(b'\n');
        }
        // A stream is over: give its memory back (`head` once read).
        self.partial = Vec::new();
        Split {
            head: &self.head,
            body: &[],
            shown,
        }
    }

    /// Drops the buffers a finished stream still holds.
    pub fn release(&mut self) {
        self.head = Vec::new();
        self.partial = Vec::new();
        self.shown = 0;
    }

    /// Marks the held incomplete line shown and returns where its unshown
    /// bytes begin in [`LineSplitter::partial`] (0: none of it was shown
    /// before; more: those bytes continue what was); `None` when nothing new
    /// is held.
    pub fn show_partial(&mut self) -> Option<usize> {
        if self.partial.len() <= self.shown {
            return None;
        }
        Some(std::mem::replace(&mut self.shown, self.partial.len()))
    }

    /// The held incomplete line, all of it (shown or not).
    pub fn partial(&self) -> &[u8] {
        &self.partial
    }

    /// Bytes of the held line not shown yet.
    pub fn unshown(&self) -> usize {
        self.partial.len() - self.shown
    }

    #[cfg(test)]
    /// Bytes held back.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }
}

/// Iterates over the lines of a buffer of complete lines (each without its `\n`).
///
/// A last line without a `\n` is yielded too; an empty buffer has no lines.
pub fn lines(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    Lines { rest: buf }
}

/// The lines of a buffer, from either end.
#[derive(Debug, Clone)]
pub(crate) struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Lines<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Lines { rest: buf }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        match memchr(b'\n', self.rest) {
            Some(k) => {
                let line = &self.rest[..k];
                self.rest = &self.rest[k + 1..];
                Some(line)
            }
            None => Some(std::mem::take(&mut self.rest)),
        }
    }
}

impl<'a> DoubleEndedIterator for Lines<'a> {
    fn next_back(&mut self) -> Option<&'a [u8]> {
        let body = match self.rest {
            [] => return None,
            [body @ .., b'\n'] => body,
            body => body,
        };
        let start = memrchr(b'\n', body).map_or(0, |k| k + 1);
        let line = &body[start..];
        self.rest = &self.rest[..start];
        Some(line)
    }
}

/// The number of lines [`lines`] yields for `buf`.
pub fn count_lines(buf: &[u8]) -> usize {
    let n = memchr_iter(b'\n', buf).count();
    if buf.last().is_some_and(|&b| b != b'\n') {
        n + 1
    } else {
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(max: usize, parts: &[&[u8]], finish: bool) -> (Vec<u8>, usize) {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for p in parts {
            s.feed(p, &mut out);
        }
        let pending = s.pending();
        if finish {
            s.finish().append_to(&mut out);
            assert_eq!(s.pending(), 0);
        }
        (out, pending)
    }

    /// What the splitter must produce: every line cut into pieces of `max`.
    fn model(input: &[u8], max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let body = input.strip_suffix(b"\n").unwrap_or(input);
        if input.is_empty() {
            return out;
        }
        for line in body.split(|&b| b == b'\n') {
            if line.is_empty() {
                out.push(b'\n');
            }
            for piece in line.chunks(max) {
                out.extend_from_slice(piece);
                out.push(b'\n');
            }
        }
        out
    }

    #[test]
    fn partial_line_across_calls() {
        let mut s = LineSplitter::new(100);
        let mut out = Vec::new();
        s.feed(b"hel", &mut out);
        assert_eq!((out.as_slice(), s.pending()), (&b""[..], 3));
        s.feed(b"lo\nwor", &mut out);
        assert_eq!((out.as_slice(), s.pending()), (&b"hello\n"[..], 3));
        s.feed(b"ld\n", &mut out);
        assert_eq!((out.as_slice(), s.pending()), (&b"hello\nworld\n"[..], 0));
    }

    #[test]
    fn many_lines_in_one_call() {
        let (out, pending) = run(100, &[b"a\nbb\n\nccc\ndd"], false);
        assert_eq!(out, b"a\nbb\n\nccc\n");
        assert_eq!(pending, 2);
    }

    #[test]
    fn a_line_split_at_every_boundary() {
        let input = b"first line\nsecond\r\n\xff\xfe\n";
        for i in 0..=input.len() {
            let (out, pending) = run(100, &[&input[..i], &input[i..]], false);
            assert_eq!(out, input, "split at {i}");
            assert_eq!(pending, 0);
        }
    }

    #[test]
    fn finish_with_and_without_partial() {
        assert_eq!(run(100, &[b"a\nb"], true).0, b"a\nb\n");
        assert_eq!(run(100, &[b"a\nb\n"], true).0, b"a\nb\n");
        assert_eq!(run(100, &[], true).0, b"");
        // After finish the splitter starts clean.
        let mut s = LineSplitter::new(100);
        let mut out = Vec::new();
        s.feed(b"x", &mut out);
        s.finish().append_to(&mut out);
        s.feed(b"y\n", &mut out);
        assert_eq!(out, b"x\ny\n");
    }

    #[test]
    fn max_line_cuts() {
        // Exactly max: not cut, even when the newline comes in the next call.
        assert_eq!(run(4, &[b"abcd\n"], false).0, b"abcd\n");
        assert_eq!(run(4, &[b"abcd", b"\n"], false).0, b"abcd\n");
        assert_eq!(
            run(4, &[b"ab", b"cd", b"\nx"], false),
            (b"abcd\n".to_vec(), 1)
        );
        // Longer: cut into pieces of max.
        assert_eq!(run(4, &[b"abcdefghij\n"], false).0, b"abcd\nefgh\nij\n");
        assert_eq!(run(4, &[b"abcdefgh\n"], false).0, b"abcd\nefgh\n");
        // No newline at all: memory stays bounded.
        let mut s = LineSplitter::new(4);
        let mut out = Vec::new();
        for _ in 0..1000 {
            s.feed(b"xyz", &mut out);
            assert!(s.pending() <= 4);
        }
        // 3000 bytes are 750 pieces; the last one waits for the byte after it.
        assert_eq!(out.len(), 749 * 5);
        assert_eq!(s.pending(), 4);
        assert!(
            out.chunks(5)
                .all(|c| c == b"xyzx\n" || c == b"yzxy\n" || c == b"zxyz\n")
        );
        // A full piece is held until the next byte shows whether it is the end.
        assert_eq!(run(4, &[b"abcd"], false), (Vec::new(), 4));
        assert_eq!(run(4, &[b"abcd", b"e"], false), (b"abcd\n".to_vec(), 1));
        assert_eq!(run(4, &[b"abcd"], true).0, b"abcd\n");
        // max 0 acts as 1.
        assert_eq!(run(0, &[b"ab\n"], false).0, b"a\nb\n");
    }

    #[test]
    fn a_long_line_does_not_keep_its_buffer() {
        let mut s = LineSplitter::new(1 << 20);
        let mut out = Vec::new();
        s.feed(&[b'x'; 300_000], &mut out);
        assert!(s.partial.capacity() >= 300_000);
        s.feed(b"\nshort", &mut out);
        assert_eq!(out.len(), 300_001);
        assert_eq!(s.pending(), 5);
        assert!(s.partial.capacity() < KEEP_CAPACITY);
    }

    #[test]
    fn split_copies_only_the_held_line() {
        let mut s = LineSplitter::new(100);
        let input = b"one\ntwo\nthr".to_vec();
        let sp = s.split(&input);
        assert_eq!(
            (sp.head, sp.body, sp.shown),
            (&b""[..], &b"one\ntwo\n"[..], 0)
        );
        // The body is the input itself, not a copy.
        assert_eq!(sp.body.as_ptr(), input.as_ptr());
        let input = b"ee\nfour\nfi".to_vec();
        let sp = s.split(&input);
        assert_eq!((sp.head, sp.body), (&b"three\n"[..], &b"four\n"[..]));
        assert_eq!(sp.body.as_ptr(), input[3..].as_ptr());
        assert_eq!(s.partial(), b"fi");
        // Nothing complete: nothing out, the line grows.
        assert!(s.split(b"v").is_empty());
        assert_eq!(s.partial(), b"fiv");
        let sp = s.finish();
        assert_eq!((sp.head, sp.body), (&b"fiv\n"[..], &b""[..]));
    }

    #[test]
    fn a_shown_partial_line_is_still_held_and_its_end_says_so() {
        let mut s = LineSplitter::new(100);
        assert_eq!(s.show_partial(), None);
        assert!(s.split(b"ok\nPassword: ").head.is_empty());
        assert_eq!(s.unshown(), 10);
        assert_eq!(s.show_partial(), Some(0));
        assert_eq!((s.unshown(), s.show_partial()), (0, None));
        // More of the same line: only that is new.
        assert!(s.split(b"***").is_empty());
        assert_eq!(s.unshown(), 3);
        assert_eq!(s.show_partial(), Some(10));
        assert_eq!(&s.partial()[10..], b"***");
        // Its end: the whole line, and how much of it was shown.
        let sp = s.split(b"\nnext");
        assert_eq!(
            (sp.head, sp.body, sp.shown),
            (&b"Password: ***\n"[..], &b""[..], 13)
        );
        assert_eq!((s.partial(), s.unshown()), (&b"next"[..], 4));
        assert_eq!(s.show_partial(), Some(0));
        let sp = s.finish();
        assert_eq!((sp.head, sp.shown), (&b"next\n"[..], 4));
        // A shown line cut at the maximum still says what was shown.
        let mut s = LineSplitter::new(4);
        s.split(b"abc");
        assert_eq!(s.show_partial(), Some(0));
        let sp = s.split(b"de\n");
        assert_eq!(
            (sp.head, sp.body, sp.shown),
            (&b"abcd\n"[..], &b"e\n"[..], 3)
        );
        assert!(s.partial().is_empty());
    }

    #[test]
    fn bytes_are_untouched() {
        let input = b"\xff\xc3(\r\n\x00\x1b[31m\r\n";
        assert_eq!(run(100, &[input], false).0, input);
    }

    #[test]
    fn lines_iterator() {
        let got: Vec<&[u8]> = lines(b"a\n\nbc\n").collect();
        assert_eq!(got, [&b"a"[..], b"", b"bc"]);
        let got: Vec<&[u8]> = lines(b"a\nb").collect();
        assert_eq!(got, [&b"a"[..], b"b"]);
        assert_eq!(lines(b"").count(), 0);
        assert_eq!(lines(b"\n").collect::<Vec<_>>(), [&b""[..]]);
        let back: Vec<&[u8]> = Lines::new(b"a\n\nbc\n").rev().collect();
        assert_eq!(back, [&b"bc"[..], b"", b"a"]);
        let back: Vec<&[u8]> = Lines::new(b"a\nb").rev().collect();
        assert_eq!(back, [&b"b"[..], b"a"]);
        assert_eq!(count_lines(b"a\n\nbc\n"), 3);
        assert_eq!(count_lines(b"a\nb"), 2);
        assert_eq!(count_lines(b""), 0);
    }

    fn stream() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![3 => any::<u8>(), 2 => Just(b'\n'), 1 => Just(b'\r')],
            0..300,
        )
    }

    fn cut_into<'a>(input: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
        at.sort_unstable();
        let mut parts = Vec::new();
        let mut prev = 0;
        for a in at {
            parts.push(&input[prev..a]);
            prev = a;
        }
        parts.push(&input[prev..]);
        parts
    }

    proptest! {
        #[test]
        fn output_is_input_plus_final_newline(
            input in stream(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let parts = cut_into(&input, &cuts);
            let (out, _) = run(usize::MAX, &parts, true);
            let mut want = input.clone();
            if !input.is_empty() && !input.ends_with(b"\n") {
                want.push(b'\n');
            }
            prop_assert_eq!(out, want);
        }

        #[test]
        fn cuts_only_where_documented(
            input in stream(),
            max in 1usize..12,
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let parts = cut_into(&input, &cuts);
            let (out, _) = run(max, &parts, true);
            prop_assert_eq!(&out, &model(&input, max));
            // Every call's output is whole lines.
            let mut s = LineSplitter::new(max);
            for p in &parts {
                let mut o = Vec::new();
                s.feed(p, &mut o);
                prop_assert!(o.is_empty() || o.ends_with(b"\n"));
                prop_assert!(s.pending() <= max);
            }
        }

        #[test]
        fn lines_back_and_forth(input in stream()) {
            let fwd: Vec<&[u8]> = lines(&input).collect();
            let mut back: Vec<&[u8]> = Lines::new(&input).rev().collect();
            back.reverse();
            prop_assert_eq!(&fwd, &back);
            prop_assert_eq!(fwd.len(), count_lines(&input));
        }
    }
}
