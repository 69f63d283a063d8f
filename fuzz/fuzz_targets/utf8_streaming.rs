//! `Utf8Validator` over arbitrary splits against `core::str::from_utf8` of the whole: valid iff
//! every feed and the finish succeed, and an invalid sequence fails exactly the feed of the
//! chunk holding the first byte that rules out every valid continuation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_proto::utf8::{Utf8Validator, validate};
use ws_proto_fuzz::{chunks, split_schedule};

/// The index of the first byte after which `bytes[..=i]` can no longer begin valid UTF-8.
fn fail_index(bytes: &[u8]) -> Option<usize> {
    let e = core::str::from_utf8(bytes).err()?;
    let len = e.error_len()?;
    let last = e.valid_up_to() + len - 1;
    match core::str::from_utf8(&bytes[..=last]) {
        Err(e) if e.error_len().is_some() => Some(last),
        // The invalid sequence is a truncated character: the byte after it shows it.
        _ => {
            assert!(last + 1 < bytes.len());
            Some(last + 1)
        }
    }
}

/// Feeds `parts` in order; returns the index of the part whose feed failed, or the result of
/// `finish` when none did.
fn run(v: &mut Utf8Validator, parts: &[&[u8]]) -> Result<bool, usize> {
    for (i, part) in parts.iter().enumerate() {
        if v.feed(part).is_err() {
            return Err(i);
        }
    }
    Ok(v.finish().is_ok())
}

fuzz_target!(|data: &[u8]| {
    let (_, schedule, bytes) = split_schedule(data, 15);
    let whole = core::str::from_utf8(bytes);
    let fail_at = fail_index(bytes);

    match (validate(bytes), whole) {
        (Ok(s), Ok(w)) => assert_eq!(s, w),
        (Err(_), Err(_)) => {}
        (got, want) => panic!("validate gave {got:?}, from_utf8 {want:?}"),
    }

    let parts = chunks(bytes, schedule, 80);
    let mut v = Utf8Validator::new();
    match run(&mut v, &parts) {
        Ok(valid) => {
            assert_eq!(
                fail_at, None,
                "invalid byte at {fail_at:?} not caught by feed"
            );
            assert_eq!(valid, whole.is_ok(), "finish disagrees with from_utf8");
        }
        Err(i) => {
            let start: usize = parts[..i].iter().map(|p| p.len()).sum();
            let end = start + parts[i].len();
            let f = fail_at.expect("feed failed on a valid prefix");
            assert!(
                (start..end).contains(&f),
                "feed failed on bytes {start}..{end}, first invalid byte at {f}"
            );
        }
    }

    // A reset validator starts afresh, whatever state it was left in.
    v.reset();
    let again = run(&mut v, &[bytes]);
    match fail_at {
        Some(_) => assert_eq!(again, Err(0)),
        None => assert_eq!(again, Ok(whole.is_ok())),
    }
    // So does one after `finish`.
    let mut v = Utf8Validator::default();
    assert_eq!(v.feed(b"\xe2\x82"), Ok(()));
    assert!(v.finish().is_err());
    assert_eq!(run(&mut v, &parts), run(&mut Utf8Validator::new(), &parts));
});
