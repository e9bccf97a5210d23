//! Streaming removal of terminal escape sequences: see [`AnsiStripper`].

use memchr::{memchr, memchr3};

const ESC: u8 = 0x1B;
const BEL: u8 = 0x07;
const LF: u8 = b'\n';

/// The longest escape-sequence body removed; a longer one (an unterminated
/// OSC, say) is given up on and the bytes after it are kept as text.
pub const MAX_SEQUENCE: usize = 4096;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Ordinary text.
    #[default]
    Ground,
    /// Just after `ESC`.
    Escape,
    /// `ESC` and intermediate bytes (charset selection and the like).
    Intermediate,
    /// Inside `ESC [`.
    Csi,
    /// Inside OSC, DCS, SOS, PM or APC.
    Str,
}

/// Removes terminal escape sequences from a byte stream, keeping state across chunks.
///
/// A byte-level state machine, not a character decoder: every byte that is not
/// part of an escape sequence is kept exactly, including tabs, carriage
/// returns, other control bytes and invalid UTF-8. Its state survives between
/// calls, so a sequence split across two reads is removed exactly as if it had
/// arrived in one (Supervisor's `stripEscapes` works per chunk and leaks those).
///
/// What is removed, after an `ESC` (0x1B):
///
/// - CSI: `ESC [`, parameter and intermediate bytes (0x20–0x3F), and a final
///   byte (0x40–0x7E): colours, cursor movement, erasing.
/// - OSC `ESC ]` and the other string sequences (DCS `ESC P`, SOS `ESC X`,
///   PM `ESC ^`, APC `ESC _`), up to BEL (0x07) or ST (`ESC \`). Any other
///   `ESC` also ends the string (as xterm does) and starts a new sequence.
/// - `ESC`, intermediate bytes (0x20–0x2F), a final byte (0x30–0x7E): charset
///   selections (`ESC ( B`, `ESC ) 0`, `ESC * x`, `ESC + x`), `ESC # 8`, ...
/// - Two-byte escapes: `ESC` and one byte in 0x30–0x7E (`ESC =`, `ESC >`,
///   `ESC 7`, `ESC M`, `ESC c`, and ST `ESC \` on its own).
///
/// Decisions for input a terminal would not expect:
///
/// - `ESC` followed by a byte that cannot continue a sequence (a control byte,
///   DEL or a byte ≥ 0x80): only the `ESC` is removed, the byte is kept.
/// - A byte that cannot continue a CSI or charset sequence (a control byte
///   such as `\n`, DEL, a byte ≥ 0x80) ends it: the bytes so far are removed
///   and that byte is kept (an `ESC` starts a new sequence).
/// - A `\n` inside a string sequence ends it and is kept: no title, hyperlink
///   or status string contains one, and a broken OSC then costs at most the
///   rest of one line instead of merging lines.
/// - A sequence whose body (the bytes after `ESC` and its introducer, before
///   its terminator) grows past [`MAX_SEQUENCE`] bytes is given up on: the
///   `ESC`, the introducer and the first [`MAX_SEQUENCE`] body bytes are
///   dropped, and every byte after them is handled as ordinary text again.
///   Nothing is buffered, so a stripper never holds more than its state.
/// - The 8-bit C1 controls (0x80–0x9F, e.g. 0x9B as a one-byte CSI) are kept:
///   in UTF-8, which nearly all output is, those bytes are continuation bytes
///   of ordinary characters (`›` is `E2 80 BA`, `ě` is `C4 9B`), and telling
///   the two apart would need a UTF-8 decoder that could still guess wrong.
/// - An `ESC` (or an incomplete sequence) at the end of one input is not
///   output; the stripper remembers it, so the next input's first bytes finish
///   it. [`AnsiStripper::finish`] forgets it at the end of a stream.
///
/// The output therefore never contains `ESC`, is a subsequence of the input,
/// and stripping it again changes nothing.
#[derive(Debug, Default, Clone)]
pub struct AnsiStripper {
    state: State,
    /// Body bytes of the current sequence so far (bounded by [`MAX_SEQUENCE`]).
    len: usize,
}

impl AnsiStripper {
    /// A stripper in the ground state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the stripped form of `input` to `out`.
    pub fn strip_into(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut i = 0;
        while i < input.len() {
            let rest = &input[i..];
            match self.state {
                State::Ground => match memchr(ESC, rest) {
                    None => {
                        out.extend_from_slice(rest);
                        return;
                    }
                    Some(k) => {
                        out.extend_from_slice(&rest[..k]);
                        i += k + 1;
                        self.enter(State::Escape);
                    }
                },
                State::Str => {
                    // Skip the body in one scan; this is the same as stepping
                    // through it byte by byte.
                    let room = MAX_SEQUENCE - self.len;
                    let window = &rest[..rest.len().min(room + 1)];
                    match memchr3(BEL, ESC, LF, window) {
                        Some(k) => {
                            self.len += k;
                            i += k + 1;
                            self.step(rest[k], out);
                        }
                        None if window.len() > room => {
                            // The byte at `room` is one too many: give up and
                            // treat it as text.
                            i += room;
                            self.state = State::Ground;
                        }
                        None => {
                            self.len += window.len();
                            i += window.len();
                        }
                    }
                }
                State::Csi => {
                    // Parameters in one tight loop (colour codes are most of
                    // what a coloured log holds); the byte that stops it, a
                    // final byte or one past the cap, goes through `step`.
                    let limit = rest.len().min(MAX_SEQUENCE - self.len);
                    let k = rest[..limit]
                        .iter()
                        .position(|b| !matches!(b, 0x20..=0x3F))
                        .unwrap_or(limit);
                    self.len += k;
                    i += k;
                    if let Some(&b) = input.get(i) {
                        i += 1;
                        self.step(b, out);
                    }
                }
                State::Escape | State::Intermediate => {
                    i += 1;
                    self.step(rest[0], out);
                }
            }
        }
    }

    #[cfg(test)]
    /// End of stream: forgets an incomplete sequence (a trailing lone `ESC`,
    /// say), so the next input starts as plain text. Its bytes were already
    /// left out of the output.
    pub fn finish(&mut self) {
        *self = Self::default();
    }

    fn enter(&mut self, state: State) {
        self.state = state;
        self.len = 0;
    }

    #[inline]
    fn step(&mut self, b: u8, out: &mut Vec<u8>) {
        match self.state {
            State::Ground => self.text(b, out),
            State::Escape => match b {
                b'[' => self.enter(State::Csi),
                b']' | b'P' | b'X' | b'^' | b'_' => self.enter(State::Str),
                0x20..=0x2F => self.enter(State::Intermediate),
                0x30..=0x7E => self.state = State::Ground,
                ESC => self.enter(State::Escape),
                _ => self.text(b, out),
            },
            State::Intermediate => match b {
                0x20..=0x2F => self.body(b, out),
                0x30..=0x7E => self.state = State::Ground,
                _ => self.text(b, out),
            },
            State::Csi => match b {
                0x20..=0x3F => self.body(b, out),
                0x40..=0x7E => self.state = State::Ground,
                _ => self.text(b, out),
            },
            State::Str => match b {
                BEL => self.state = State::Ground,
                ESC => self.enter(State::Escape),
                LF => self.text(b, out),
                _ => self.body(b, out),
            },
        }
    }

    /// One more byte of a sequence's body, unless that makes it too long.
    fn body(&mut self, b: u8, out: &mut Vec<u8>) {
        if self.len >= MAX_SEQUENCE {
            self.text(b, out);
        } else {
            self.len += 1;
        }
    }

    /// Back to ground with `b` as its first byte.
    fn text(&mut self, b: u8, out: &mut Vec<u8>) {
        if b == ESC {
            self.enter(State::Escape);
        } else {
            self.state = State::Ground;
            out.push(b);
        }
    }
}

#[cfg(test)]
/// Convenience for a whole buffer: `input` without its escape sequences (an
/// incomplete one at the end is dropped too).
pub fn strip(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    AnsiStripper::new().strip_into(input, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunked(parts: &[&[u8]]) -> Vec<u8> {
        let mut s = AnsiStripper::new();
        let mut out = Vec::new();
        for p in parts {
            s.strip_into(p, &mut out);
        }
        out
    }

    #[test]
    fn colours_and_cursor_moves() {
        assert_eq!(strip(b"\x1b[31mred\x1b[0m plain\n"), b"red plain\n");
        assert_eq!(strip(b"\x1b[1;38;5;208mbold\x1b[m"), b"bold");
        assert_eq!(strip(b"\x1b[38:2::255:0:0mrgb"), b"rgb");
        assert_eq!(
            strip(b"a\x1b[2J\x1b[H\x1b[10;20Hb\x1b[Kc\x1b[?25l\x1b[?1049h"),
            b"abc"
        );
        assert_eq!(strip(b"x\x1b[ q y"), b"x y"); // intermediate byte, final 'q'
        assert_eq!(strip(b"progress\r\x1b[2K 50%\n"), b"progress\r 50%\n");
    }

    #[test]
    fn osc_with_bel_and_st() {
        assert_eq!(strip(b"\x1b]0;my title\x07after"), b"after");
        assert_eq!(strip(b"\x1b]2;title\x1b\\after"), b"after");
        assert_eq!(
            strip(b"see \x1b]8;;https://example.com/\x1b\\link\x1b]8;;\x1b\\ here"),
            b"see link here"
        );
        // UTF-8 in a title is part of the sequence.
        assert_eq!(strip("\x1b]0;t\u{e9}t\u{e9}\x07ok".as_bytes()), b"ok");
        // Another ESC ends the string and starts its own sequence.
        assert_eq!(strip(b"\x1b]0;t\x1b[31mred"), b"red");
    }

    #[test]
    fn other_string_sequences() {
        assert_eq!(strip(b"a\x1bPq#0;2;0;0;0#0~~@@\x1b\\b"), b"ab"); // DCS (sixel)
        assert_eq!(strip(b"a\x1bXsos\x1b\\b"), b"ab");
        assert_eq!(strip(b"a\x1b^pm\x1b\\b"), b"ab");
        assert_eq!(strip(b"a\x1b_apc\x1b\\b"), b"ab");
        // tmux passthrough: a DCS whose body has doubled ESCs.
        assert_eq!(strip(b"\x1bPtmux;\x1b\x1b]0;t\x07\x1b\\x"), b"x");
    }

    #[test]
    fn charset_and_two_byte_escapes() {
        assert_eq!(strip(b"\x1b(Bplain\x1b)0\x1b*x\x1b+y."), b"plain.");
        assert_eq!(strip(b"\x1b#8\x1b%G\x1b F."), b".");
        assert_eq!(strip(b"\x1b=\x1b>\x1b7\x1b8\x1bM\x1bc\x1bD\x1bEok"), b"ok");
        assert_eq!(strip(b"a\x1b\\b"), b"ab"); // a lone ST
    }

    #[test]
    fn every_other_byte_is_kept() {
        assert_eq!(strip(b"a\tb\r\n"), b"a\tb\r\n");
        assert_eq!(
            strip(b"\xff\xfe bad \xc3( utf8 \x9b31m"),
            b"\xff\xfe bad \xc3( utf8 \x9b31m"
        );
        assert_eq!(
            strip("caf\u{e9} \u{203a} \u{1f600}".as_bytes()),
            "caf\u{e9} \u{203a} \u{1f600}".as_bytes()
        );
        assert_eq!(strip(b"\x00\x01\x07\x08\x7f"), b"\x00\x01\x07\x08\x7f");
        assert_eq!(strip(b"\x1b[31m\xff\x1b[0m"), b"\xff");
    }

    #[test]
    fn odd_input() {
        // ESC then a byte that cannot continue: only the ESC goes.
        assert_eq!(strip(b"a\x1b\nb"), b"a\nb");
        assert_eq!(strip(b"a\x1b\xc3\xa9"), "a\u{e9}".as_bytes());
        assert_eq!(strip(b"a\x1b\x7fb"), b"a\x7fb");
        // ESC ESC: the first one is dropped, the second starts the sequence.
        assert_eq!(strip(b"\x1b\x1b[31mx"), b"x");
        // A broken CSI ends at the first byte that cannot continue it.
        assert_eq!(strip(b"\x1b[12\nnext"), b"\nnext");
        assert_eq!(strip(b"\x1b[12\x1b[0mx"), b"x");
        // A newline ends an OSC and is kept.
        assert_eq!(strip(b"\x1b]0;never ended\nline 2\n"), b"\nline 2\n");
        // A trailing lone ESC or an incomplete sequence produces nothing.
        assert_eq!(strip(b"abc\x1b"), b"abc");
        assert_eq!(strip(b"abc\x1b[3"), b"abc");
    }

    #[test]
    fn lone_esc_is_held_until_the_next_chunk() {
        assert_eq!(chunked(&[b"abc\x1b", b"[31mred"]), b"abcred");
        assert_eq!(chunked(&[b"abc\x1b", b"Mx"]), b"abcx");
        let mut s = AnsiStripper::new();
        let mut out = Vec::new();
        s.strip_into(b"abc\x1b", &mut out);
        s.finish();
        s.strip_into(b"[31m", &mut out);
        assert_eq!(out, b"abc[31m");
    }

    #[test]
    fn overlong_sequences_are_given_up() {
        // OSC: ESC, ']', then MAX_SEQUENCE body bytes are dropped, the rest kept.
        let mut input = b"\x1b]".to_vec();
        input.extend(std::iter::repeat_n(b'a', 10_000));
        input.extend_from_slice(b"\x07z");
        let mut want = vec![b'a'; 10_000 - MAX_SEQUENCE];
        want.extend_from_slice(b"\x07z");
        assert_eq!(strip(&input), want);
        // Exactly MAX_SEQUENCE body bytes and a terminator: removed entirely.
        let mut input = b"\x1b]".to_vec();
        input.extend(std::iter::repeat_n(b'a', MAX_SEQUENCE));
        input.extend_from_slice(b"\x07z");
        assert_eq!(strip(&input), b"z");
        // CSI with endless parameters.
        let mut input = b"\x1b[".to_vec();
        input.extend(std::iter::repeat_n(b'1', MAX_SEQUENCE + 3));
        input.push(b'm');
        assert_eq!(strip(&input), b"111m");
        // Charset-style intermediates.
        let mut input = b"\x1b(".to_vec();
        input.extend(std::iter::repeat_n(b'!', MAX_SEQUENCE + 1));
        input.push(b'B');
        assert_eq!(strip(&input), b"!B");
        // The same, fed one byte at a time.
        let mut input = b"\x1b]".to_vec();
        input.extend(std::iter::repeat_n(b'a', MAX_SEQUENCE + 2));
        let parts: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(chunked(&parts), b"aa");
    }

    /// Bytes biased towards the ones that matter to the state machine.
    fn interesting() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            4 => any::<u8>(),
            4 => Just(ESC),
            1 => Just(b'['),
            1 => Just(b']'),
            1 => Just(b'\\'),
            1 => Just(BEL),
            1 => Just(b'\n'),
            1 => Just(b'('),
            1 => Just(b'P'),
            1 => Just(b';'),
            1 => Just(b'm'),
            1 => Just(b'3'),
            1 => Just(b'a'),
            1 => Just(0x9b_u8),
        ];
        proptest::collection::vec(byte, 0..200)
    }

    fn is_subsequence(small: &[u8], big: &[u8]) -> bool {
        let mut it = big.iter();
        small.iter().all(|b| it.any(|c| c == b))
    }

    proptest! {
        #[test]
        fn never_outputs_esc(input in interesting()) {
            let out = strip(&input);
            prop_assert!(!out.contains(&ESC));
            prop_assert!(is_subsequence(&out, &input));
        }

        #[test]
        fn never_outputs_esc_any_bytes(input in proptest::collection::vec(any::<u8>(), 0..300)) {
            let out = strip(&input);
            prop_assert!(!out.contains(&ESC));
            prop_assert_eq!(strip(&out), out);
        }

        #[test]
        fn idempotent(input in interesting()) {
            let once = strip(&input);
            prop_assert_eq!(strip(&once), once);
        }

        #[test]
        fn text_without_esc_is_unchanged(input in proptest::collection::vec(any::<u8>(), 0..300)) {
            let input: Vec<u8> = input.into_iter().filter(|&b| b != ESC).collect();
            prop_assert_eq!(strip(&input), input);
        }

        #[test]
        fn split_at_every_boundary(input in interesting()) {
            let whole = strip(&input);
            for i in 0..=input.len() {
                prop_assert_eq!(&chunked(&[&input[..i], &input[i..]]), &whole, "split at {}", i);
            }
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            prop_assert_eq!(chunked(&bytes), whole);
        }

        #[test]
        fn random_multi_splits(input in interesting(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10)) {
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
            at.sort_unstable();
            let mut parts = Vec::new();
            let mut prev = 0;
            for a in at {
                parts.push(&input[prev..a]);
                prev = a;
            }
            parts.push(&input[prev..]);
            prop_assert_eq!(chunked(&parts), strip(&input));
        }

        #[test]
        fn long_sequences_split_anywhere(
            intro in prop::sample::select(vec![&b"\x1b]"[..], b"\x1b[", b"\x1b(", b"\x1bP"]),
            body_len in (MAX_SEQUENCE - 3)..(MAX_SEQUENCE + 3),
            body in prop::sample::select(vec![b'1', b'!', b'a']),
            tail in interesting(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut input = intro.to_vec();
            input.extend(std::iter::repeat_n(body, body_len));
            input.extend_from_slice(&tail);
            let at = cut.index(input.len() + 1);
            prop_assert_eq!(chunked(&[&input[..at], &input[at..]]), strip(&input));
        }
    }
}
