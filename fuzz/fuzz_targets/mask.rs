//! `apply_mask` against `apply_mask_naive` and a byte-by-byte reference, at arbitrary key
//! phases, lengths and buffer alignments, whole and split in two at an arbitrary point; and
//! `copy_masked` into destinations of every alignment, shorter or longer than the source.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::mem::MaybeUninit;

use ws_proto::mask::{apply_mask, apply_mask_naive, copy_masked};

#[derive(Arbitrary, Debug)]
struct Input {
    key: [u8; 4],
    /// Payload byte number of the first byte (any phase, up to `usize::MAX`).
    offset: usize,
    /// Where to split the buffer in two.
    split: u16,
    /// Leading bytes before the buffer, to vary its alignment.
    align: u8,
    data: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let Input {
        key,
        offset,
        split,
        align,
        data,
    } = input;
    let pad = usize::from(align % 64);
    let n = data.len();

    let reference: Vec<u8> = data
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[offset.wrapping_add(i) % 4])
        .collect();

    let mut naive = data.clone();
    apply_mask_naive(&mut naive, key, offset);
    assert_eq!(naive, reference, "apply_mask_naive");

    let mut storage = vec![0xA5u8; pad + n + 64];
    storage[pad..pad + n].copy_from_slice(&data);
    apply_mask(&mut storage[pad..pad + n], key, offset);
    assert_eq!(&storage[pad..pad + n], reference.as_slice(), "apply_mask");
    assert!(
        storage[..pad].iter().all(|&b| b == 0xA5),
        "wrote before the buffer"
    );
    assert!(
        storage[pad + n..].iter().all(|&b| b == 0xA5),
        "wrote past the buffer"
    );

    // Masking again restores the data.
    apply_mask(&mut storage[pad..pad + n], key, offset);
    assert_eq!(&storage[pad..pad + n], data.as_slice(), "masking twice");

    // Two pieces masked with the right offsets give the same as the whole.
    let s = usize::from(split) % (n + 1);
    let mut pieces = data.clone();
    let (a, b) = pieces.split_at_mut(s);
    apply_mask(a, key, offset);
    apply_mask(b, key, offset.wrapping_add(s));
    assert_eq!(pieces, reference, "split at {s}");

    // Copied while masked: into a destination at another alignment, `s` bytes shorter or
    // longer than the source; nothing outside the written part is touched.
    let dpad = usize::from(align / 64);
    let dlen = if split & 1 == 0 { n + s } else { n - s };
    let mut dst = vec![MaybeUninit::new(0x5Au8); dpad + dlen + 64];
    let written = copy_masked(&data, &mut dst[dpad..dpad + dlen], key, offset);
    let w = n.min(dlen);
    assert_eq!(written, &reference[..w], "copy_masked");
    // SAFETY: every element was initialized (to 0x5A, then partly overwritten).
    let dst: Vec<u8> = dst.iter().map(|b| unsafe { b.assume_init() }).collect();
    assert_eq!(&dst[dpad..dpad + w], &reference[..w], "copy_masked result");
    assert!(
        dst[..dpad]
            .iter()
            .chain(&dst[dpad + w..])
            .all(|&b| b == 0x5A),
        "copy_masked wrote outside its part"
    );

    // Only the phase of the offset matters.
    let mut phase = data.clone();
    apply_mask(&mut phase, key, offset % 4);
    assert_eq!(phase, reference, "offset phase");
});
