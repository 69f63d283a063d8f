//! Streaming, fail-fast UTF-8 validation.
//!
//! Each chunk is split into a body that ends on a character boundary (validated in one call to
//! the SIMD validator of `simdutf8`) and an unfinished character of at most 3 bytes at its end,
//! which is checked to be a possible prefix and carried into the next chunk.

/// The bytes can no longer be (a prefix of) valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error;

impl core::fmt::Display for Utf8Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("invalid UTF-8")
    }
}

impl core::error::Error for Utf8Error {}

/// Validates a text message chunk by chunk, failing as soon as the bytes seen so far cannot
/// begin a valid UTF-8 string. Carries at most 3 bytes of an unfinished character.
///
/// After an error, every further [`feed`](Self::feed) fails too, until
/// [`finish`](Self::finish) or [`reset`](Self::reset).
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    /// The unfinished character in `partial[..len]`; the 4th byte is room to complete it.
    partial: [u8; 4],
    /// Number of carried bytes, 0..=3.
    len: u8,
    /// An error was reported for the current message.
    failed: bool,
}

/// How a short byte sequence relates to UTF-8.
enum Prefix {
    /// One or more complete characters.
    Complete,
    /// A valid start of a character that needs more bytes.
    Unfinished,
    /// Cannot start valid UTF-8.
    Invalid,
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub const fn new() -> Self {
        Self {
            partial: [0; 4],
            len: 0,
            failed: false,
        }
    }

    /// Validates the next chunk of the message.
    ///
    /// Fails as soon as the bytes seen so far (all chunks of this message) cannot be a prefix
    /// of valid UTF-8. An unfinished character at the end of the chunk is carried.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), Utf8Error> {
        if self.failed {
            return Err(Utf8Error);
        }
        let result = self.feed_inner(chunk);
        if result.is_err() {
            self.failed = true;
            self.len = 0;
        }
        result
    }

    fn feed_inner(&mut self, chunk: &[u8]) -> Result<(), Utf8Error> {
        let mut rest = chunk;
        if self.len != 0 {
            // Complete the carried character with the bytes it still needs.
            let have = usize::from(self.len);
            let need = lead_width(self.partial[0]).saturating_sub(have);
            let take = need.min(rest.len());
            let (head, tail) = rest.split_at(take);
            self.partial[have..have + take].copy_from_slice(head);
            rest = tail;
            let have = have + take;
            match classify(&self.partial[..have]) {
                Prefix::Complete => self.len = 0,
                Prefix::Invalid => return Err(Utf8Error),
                Prefix::Unfinished => {
                    // `take < need`, so the chunk is used up.
                    debug_assert!(rest.is_empty());
                    self.len = have as u8;
                    return Ok(());
                }
            }
        }

        let split = unfinished_suffix_start(rest);
        let (body, tail) = rest.split_at(split);
        // `body` ends on a character boundary or right before a byte that starts a character,
        // so an unfinished character inside it is an error, not something to carry.
        fast_from_utf8(body)?;
        if !tail.is_empty() {
            match classify(tail) {
                Prefix::Unfinished => {
                    self.partial[..tail.len()].copy_from_slice(tail);
                    self.len = tail.len() as u8;
                }
                Prefix::Invalid => return Err(Utf8Error),
                // Not produced by `unfinished_suffix_start`; nothing to carry either way.
                Prefix::Complete => {}
            }
        }
        Ok(())
    }

    /// Ends the message: fails if an unfinished character remains (or an error was reported).
    /// Always resets the validator for the next message.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let ok = self.is_boundary() && !self.failed;
        self.reset();
        if ok { Ok(()) } else { Err(Utf8Error) }
    }

    /// Forgets carried bytes and any earlier error.
    pub fn reset(&mut self) {
        self.len = 0;
        self.failed = false;
    }

    /// True when no unfinished character is carried.
    pub fn is_boundary(&self) -> bool {
        self.len == 0
    }
}

/// One-shot validation of a complete string (for close reasons etc.), using the fast path.
pub fn validate(bytes: &[u8]) -> Result<&str, Utf8Error> {
    fast_from_utf8(bytes)
}

/// Length of the character that `lead` starts, or 1 for a byte that cannot start a multi-byte
/// character (ASCII, continuation bytes and bytes never valid in UTF-8).
fn lead_width(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

/// Start of the unfinished character at the end of `bytes`, or `bytes.len()` if the last
/// character is complete by length.
///
/// An unfinished character is a lead byte followed by at most 2 continuation bytes, so only the
/// last 3 bytes need to be examined.
fn unfinished_suffix_start(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for (back, &b) in bytes.iter().rev().take(3).enumerate() {
        if b & 0xC0 != 0x80 {
            let start = len - 1 - back;
            return if lead_width(b) > back + 1 { start } else { len };
        }
    }
    len
}

/// Classifies a sequence of at most 4 bytes.
fn classify(bytes: &[u8]) -> Prefix {
    match core::str::from_utf8(bytes) {
        Ok(_) => Prefix::Complete,
        Err(e) if e.error_len().is_none() => Prefix::Unfinished,
        Err(_) => Prefix::Invalid,
    }
}

/// Validates `bytes` with the fastest `simdutf8` implementation the CPU supports.
///
/// Without `std`, `simdutf8` only uses SIMD when it is enabled at compile time, so on x86-64 the
/// SIMD implementations are selected here at run time.
#[inline]
fn fast_from_utf8(bytes: &[u8]) -> Result<&str, Utf8Error> {
    #[cfg(all(target_arch = "x86_64", not(target_feature = "avx2"), not(miri)))]
    if bytes.len() >= SIMD_MIN {
        use crate::mask::cpu;
        use simdutf8::basic::imp::x86;
        let checked = if cpu::has_avx2() {
            // SAFETY: the CPU and the OS support AVX2.
            Some(unsafe { x86::avx2::validate_utf8(bytes) })
        } else if cpu::has_sse42() {
            // SAFETY: the CPU supports SSE4.2.
            Some(unsafe { x86::sse42::validate_utf8(bytes) })
        } else {
            None
        };
        match checked {
            // SAFETY: `simdutf8` has just confirmed that `bytes` is valid UTF-8.
            Some(Ok(())) => return Ok(unsafe { core::str::from_utf8_unchecked(bytes) }),
            Some(Err(_)) => return Err(Utf8Error),
            None => {}
        }
    }
    simdutf8::basic::from_utf8(bytes).map_err(|_| Utf8Error)
}

/// Inputs shorter than one SIMD block of `simdutf8` use the scalar validator.
#[cfg(all(target_arch = "x86_64", not(target_feature = "avx2"), not(miri)))]
const SIMD_MIN: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::string::String;
    use std::vec::Vec;

    /// Feeds `chunks` in order; returns the index of the first failing chunk, or `chunks.len()`
    /// if `finish` failed, or `None` if everything passed.
    fn run(chunks: &[&[u8]]) -> Option<usize> {
        let mut v = Utf8Validator::new();
        for (i, chunk) in chunks.iter().enumerate() {
            if v.feed(chunk).is_err() {
                return Some(i);
            }
        }
        v.finish().err().map(|_| chunks.len())
    }

    /// Splits `bytes` at the given (unsorted, possibly repeated) positions.
    fn split_at_points<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
        let mut points: Vec<usize> = points.iter().map(|&p| p.min(bytes.len())).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for p in points {
            chunks.push(&bytes[start..p]);
            start = p;
        }
        chunks.push(&bytes[start..]);
        chunks
    }

    /// Index of the first byte after which the prefix can no longer be valid UTF-8.
    fn first_impossible_byte(bytes: &[u8]) -> Option<usize> {
        let e = core::str::from_utf8(bytes).err()?;
        e.error_len()?;
        (e.valid_up_to()..bytes.len())
            .find(|&p| core::str::from_utf8(&bytes[..=p]).is_err_and(|e| e.error_len().is_some()))
    }

    /// Checks the streaming validator against `core::str::from_utf8` on the whole input,
    /// including the chunk on which it must fail.
    fn check_against_core(bytes: &[u8], points: &[usize]) -> Result<(), TestCaseError> {
        let chunks = split_at_points(bytes, points);
        let got = run(&chunks);
        let expected = match core::str::from_utf8(bytes) {
            Ok(_) => None,
            Err(e) if e.error_len().is_none() => Some(chunks.len()),
            Err(_) => {
                let p = first_impossible_byte(bytes);
                prop_assert!(p.is_some());
                let p = p.unwrap_or_default();
                // The chunk that contains byte `p` (empty chunks before it pass).
                let mut end = 0;
                let idx = chunks
                    .iter()
                    .position(|c| {
                        end += c.len();
                        end > p
                    })
                    .unwrap_or(chunks.len());
                Some(idx)
            }
        };
        prop_assert_eq!(got, expected, "chunks {:02x?}", chunks);

        // After every accepted chunk, `is_boundary` tells whether the prefix is complete.
        let mut v = Utf8Validator::new();
        let mut seen = 0;
        for chunk in &chunks {
            if v.feed(chunk).is_err() {
                break;
            }
            seen += chunk.len();
            prop_assert_eq!(
                v.is_boundary(),
                core::str::from_utf8(&bytes[..seen]).is_ok()
            );
        }
        Ok(())
    }

    const VALID: &[&str] = &[
        "",
        "a",
        "hello, world",
        "\u{7f}\u{80}\u{7ff}\u{800}\u{fff}\u{1000}\u{d7ff}\u{e000}\u{fffd}\u{ffff}",
        "\u{10000}\u{10ffff}\u{1f600}",
        "Grüße, 世界! 🎉 Καλημέρα κόσμε, мир",
    ];

    #[test]
    fn valid_strings_split_at_every_position() {
        for s in VALID {
            let b = s.as_bytes();
            assert_eq!(run(&[b]), None, "{s:?}");
            for i in 0..=b.len() {
                assert_eq!(run(&[&b[..i], &b[i..]]), None, "{s:?} at {i}");
                // Three pieces: every pair of split points (fewer under Miri, which is slow).
                let step = if cfg!(miri) { 5 } else { 1 };
                for j in (i..=b.len()).step_by(step) {
                    assert_eq!(run(&[&b[..i], &b[i..j], &b[j..]]), None, "{s:?} at {i},{j}");
                }
            }
            let bytes: Vec<&[u8]> = b.chunks(1).collect();
            assert_eq!(run(&bytes), None, "{s:?} byte by byte");
        }
    }

    #[test]
    fn invalid_sequences_fail() {
        let cases: &[&[u8]] = &[
            b"\xc0\x80",         // overlong NUL
            b"\xc1\xbf",         // overlong
            b"\xe0\x80\x80",     // overlong, 3 bytes
            b"\xe0\x9f\xbf",     // overlong, 3 bytes
            b"\xf0\x80\x80\x80", // overlong, 4 bytes
            b"\xf0\x8f\xbf\xbf", // overlong, 4 bytes
            b"\xed\xa0\x80",     // surrogate U+D800
            b"\xed\xbf\xbf",     // surrogate U+DFFF
            b"\xf4\x90\x80\x80", // U+110000
            b"\xf5\x80\x80\x80", // lead byte never valid
            b"\xff",
            b"\xfe",
            b"\x80",     // lone continuation
            b"\xbf",     // lone continuation
            b"a\x80b",   // lone continuation inside text
            b"\xe2\x82", // truncated in the middle of the message
            b"\xc3\x28", // continuation expected
            b"\xe2\x28\xa1",
            b"\xf0\x28\x8c\xbc",
        ];
        for case in cases {
            let mut bytes = case.to_vec();
            bytes.extend_from_slice(b"tail");
            assert!(core::str::from_utf8(&bytes).is_err());
            assert!(validate(&bytes).is_err(), "{bytes:02x?}");
            for i in 0..=bytes.len() {
                let got = run(&[&bytes[..i], &bytes[i..]]);
                assert!(got.is_some(), "{bytes:02x?} split at {i}");
            }
            let single: Vec<&[u8]> = bytes.chunks(1).collect();
            assert!(run(&single).is_some(), "{bytes:02x?} byte by byte");
        }
    }

    #[test]
    fn truncated_at_end_fails_only_at_finish() {
        let cases: &[&[u8]] = &[
            b"\xc3",
            b"\xe2\x82",
            b"\xe2",
            b"\xf0\x9f\x98",
            b"ab\xf0\x9f",
        ];
        for case in cases {
            for i in 0..=case.len() {
                let mut v = Utf8Validator::new();
                assert_eq!(v.feed(&case[..i]), Ok(()));
                assert_eq!(v.feed(&case[i..]), Ok(()));
                assert!(!v.is_boundary());
                assert_eq!(v.finish(), Err(Utf8Error), "{case:02x?}");
                // `finish` resets: the next message starts clean.
                assert!(v.is_boundary());
                assert_eq!(v.feed(b"ok"), Ok(()));
                assert_eq!(v.finish(), Ok(()));
            }
        }
    }

    #[test]
    fn fails_fast() {
        // Each case: chunks, index of the chunk that must fail.
        let cases: &[(&[&[u8]], usize)] = &[
            (&[b"abc\xf4\x90"], 0),
            (&[b"abc\xf4", b"\x90"], 1),
            (&[b"abc\xf4", b"", b"\x90\x80\x80"], 2),
            (&[b"\xe2", b"\x82", b"A"], 2),
            (&[b"\xe2", b"\x82\x41"], 1),
            (&[b"\xed", b"\xa0"], 1),
            (&[b"\xe0", b"\x80"], 1),
            (&[b"\xf0", b"\x8f"], 1),
            (&[b"\xf0\x90", b"\x80", b"\x80\x80"], 2),
            (&[b"ok", b"\xc0"], 1),
            (&[b"ok", b"\xc2\xa9\xff"], 1),
            (&[b"\xf5"], 0),
            (&[b"\x80"], 0),
        ];
        for (chunks, fail_at) in cases {
            assert_eq!(run(chunks), Some(*fail_at), "{chunks:02x?}");
        }
        // A possible prefix is carried, not rejected.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"price: \xe2\x82"), Ok(()));
        assert!(!v.is_boundary());
        assert_eq!(v.feed(b"\xac"), Ok(()));
        assert!(v.is_boundary());
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn errors_are_sticky_until_reset() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xff"), Err(Utf8Error));
        assert_eq!(v.feed(b"fine"), Err(Utf8Error));
        v.reset();
        assert_eq!(v.feed(b"fine"), Ok(()));
        assert_eq!(v.finish(), Ok(()));

        assert_eq!(v.feed(b"\xed\xa0"), Err(Utf8Error));
        assert_eq!(v.finish(), Err(Utf8Error));
        assert_eq!(v.feed(b"fine"), Ok(()));
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn reset_forgets_carried_bytes() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xf0\x9f"), Ok(()));
        v.reset();
        assert!(v.is_boundary());
        assert_eq!(v.feed(b"abc"), Ok(()));
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn validator_is_small() {
        assert!(core::mem::size_of::<Utf8Validator>() <= 8);
    }

    #[test]
    fn long_inputs_use_fast_path_correctly() {
        let base: String = "Grüße 世界 🎉 abc ".repeat(40);
        let base = if cfg!(miri) { &base[..80] } else { &base[..] }.as_bytes();
        assert_eq!(validate(base).map(str::len), Ok(base.len()));
        let step = if cfg!(miri) { 13 } else { 1 };
        for pos in (0..base.len()).step_by(step) {
            for bad in [0x80u8, 0xc0, 0xff, 0xed] {
                let mut bytes = base.to_vec();
                bytes[pos] = bad;
                let expected = core::str::from_utf8(&bytes).is_ok();
                assert_eq!(
                    validate(&bytes).is_ok(),
                    expected,
                    "pos {pos} byte {bad:#x}"
                );
                let mut v = Utf8Validator::new();
                let streamed = v.feed(&bytes).is_ok() && v.finish().is_ok();
                assert_eq!(streamed, expected, "pos {pos} byte {bad:#x}");
            }
        }
    }

    #[test]
    fn validate_returns_the_str() {
        assert_eq!(validate(b"bye"), Ok("bye"));
        assert_eq!(validate(b""), Ok(""));
        assert_eq!(validate(b"\xe2\x82"), Err(Utf8Error));
    }

    fn config() -> ProptestConfig {
        if cfg!(miri) {
            ProptestConfig {
                cases: 4,
                failure_persistence: None,
                ..ProptestConfig::default()
            }
        } else {
            ProptestConfig::with_cases(512)
        }
    }

    /// Valid text with some bytes overwritten, inserted or removed.
    fn corrupted_text() -> impl Strategy<Value = Vec<u8>> {
        (
            proptest::collection::vec(any::<char>(), 0..120),
            proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..3),
        )
            .prop_map(|(chars, edits)| {
                let mut bytes = chars.into_iter().collect::<String>().into_bytes();
                for (at, byte, kind) in edits {
                    if bytes.is_empty() {
                        bytes.push(byte);
                        continue;
                    }
                    let i = at.index(bytes.len());
                    match kind {
                        0 => bytes[i] = byte,
                        1 => bytes.insert(i, byte),
                        _ => {
                            bytes.remove(i);
                        }
                    }
                }
                bytes
            })
    }

    /// Mostly multi-byte characters, so that most splits fall inside one.
    fn text_of_wide_chars() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                Just('a'),
                Just('é'),
                Just('€'),
                Just('\u{ffff}'),
                Just('😀'),
                Just('\u{10ffff}')
            ],
            0..120,
        )
        .prop_map(|chars| chars.into_iter().collect::<String>().into_bytes())
    }

    fn splits() -> impl Strategy<Value = Vec<usize>> {
        proptest::collection::vec(0usize..400, 0..6)
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn prop_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300), points in splits()) {
            check_against_core(&bytes, &points)?;
        }

        #[test]
        fn prop_utf8_like_bytes(
            bytes in proptest::collection::vec(
                prop_oneof![0u8..0x80, 0x80u8..0xc0, 0xc0u8..0xe0, 0xe0u8..0xf0, 0xf0u8..=0xff],
                0..300,
            ),
            points in splits(),
        ) {
            check_against_core(&bytes, &points)?;
        }

        #[test]
        fn prop_corrupted_text(bytes in corrupted_text(), points in splits()) {
            check_against_core(&bytes, &points)?;
        }

        #[test]
        fn prop_valid_wide_text(bytes in text_of_wide_chars(), points in splits()) {
            prop_assert!(core::str::from_utf8(&bytes).is_ok());
            check_against_core(&bytes, &points)?;
        }

        #[test]
        fn prop_validate_matches_core(bytes in corrupted_text()) {
            prop_assert_eq!(validate(&bytes).ok(), core::str::from_utf8(&bytes).ok());
        }
    }
}
