//! XOR masking (RFC 6455 section 5.3).
//!
//! [`apply_mask`] rotates the key to the phase of the first byte and widens it to a `u64`, then
//! XORs the buffer 8 bytes at a time; LLVM turns that loop into unrolled vector loads, XORs and
//! stores. On x86-64 the same loop is also compiled for AVX2 and picked at run time when the CPU
//! supports it (detected with `cpuid`, so it works without `std`).

use core::mem::MaybeUninit;

/// Buffers shorter than this skip the run-time CPU dispatch.
#[cfg(all(target_arch = "x86_64", not(target_feature = "avx2"), not(miri)))]
const DISPATCH_MIN: usize = 128;

/// XORs `buf` with `key`, where `buf[0]` is payload byte number `offset` of the frame (key phase
/// = `offset % 4`).
///
/// Masking is its own inverse: the same call masks and unmasks.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // Rotate so that `key[0]` applies to `buf[0]`; the byte order of `u32` cancels out.
    let shift = 8 * (offset & 3) as u32;
    let key = u32::from_le_bytes(key).rotate_right(shift).to_le_bytes();

    #[cfg(all(target_arch = "x86_64", not(target_feature = "avx2"), not(miri)))]
    if buf.len() >= DISPATCH_MIN && cpu::has_avx2() {
        // SAFETY: `cpu::has_avx2` confirmed that the CPU and the OS support AVX2.
        unsafe { mask_avx2(buf, key) };
        return;
    }

    mask_words(buf, key);
}

/// Writes `src` XORed with `key` to the start of `dst`, where `src[0]` is payload byte number
/// `offset` of the frame, and returns the written part of `dst` (as many bytes as the shorter of
/// the two holds).
///
/// One pass over the bytes where [`apply_mask`] followed by a copy takes two: for a caller that
/// moves payloads out of its read buffer anyway.
pub fn copy_masked<'d>(
    src: &[u8],
    dst: &'d mut [MaybeUninit<u8>],
    key: [u8; 4],
    offset: usize,
) -> &'d mut [u8] {
    let n = src.len().min(dst.len());
    let (src, dst) = (&src[..n], &mut dst[..n]);
    let shift = 8 * (offset & 3) as u32;
    let key = u32::from_le_bytes(key).rotate_right(shift).to_le_bytes();

    #[cfg(all(target_arch = "x86_64", not(target_feature = "avx2"), not(miri)))]
    if n >= DISPATCH_MIN && cpu::has_avx2() {
        // SAFETY: `cpu::has_avx2` confirmed that the CPU and the OS support AVX2.
        unsafe { copy_avx2(src, dst, key) };
    } else {
        copy_words(src, dst, key);
    }
    #[cfg(not(all(target_arch = "x86_64", not(target_feature = "avx2"), not(miri))))]
    copy_words(src, dst, key);

    // SAFETY: `copy_words` wrote every one of the `n` elements of `dst` (the two slices have the
    // same length: whole words, then the remainder byte by byte).
    unsafe { assume_init(dst) }
}

/// Copies `src` to the start of `dst` and returns the written part (an unmasked payload).
pub(crate) fn copy_plain<'d>(src: &[u8], dst: &'d mut [MaybeUninit<u8>]) -> &'d mut [u8] {
    let n = src.len().min(dst.len());
    let dst = &mut dst[..n];
    for (o, b) in dst.iter_mut().zip(src) {
        o.write(*b);
    }
    // SAFETY: the loop wrote all `n` elements of `dst` (`src` holds at least `n`).
    unsafe { assume_init(dst) }
}

/// `buf` as initialized bytes.
///
/// # Safety
/// Every element of `buf` must have been written.
unsafe fn assume_init(buf: &mut [MaybeUninit<u8>]) -> &mut [u8] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and the caller guarantees that every
    // element is initialized.
    unsafe { &mut *(buf as *mut [MaybeUninit<u8>] as *mut [u8]) }
}

/// Writes `src ^ key` to `dst` (same length) with a key already rotated to `src[0]`.
#[inline(always)]
fn copy_words(src: &[u8], dst: &mut [MaybeUninit<u8>], key: [u8; 4]) {
    let half = u64::from(u32::from_ne_bytes(key));
    let wide = half | (half << 32);
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (dw, sw) in (&mut d).zip(&mut s) {
        if let Ok(sw) = <[u8; 8]>::try_from(sw) {
            let v = (u64::from_ne_bytes(sw) ^ wide).to_ne_bytes();
            for (o, b) in dw.iter_mut().zip(v) {
                o.write(b);
            }
        }
    }
    for (i, (o, b)) in d.into_remainder().iter_mut().zip(s.remainder()).enumerate() {
        o.write(b ^ key[i & 3]);
    }
}

/// [`copy_words`] compiled with AVX2 enabled.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(all(target_arch = "x86_64", not(target_feature = "avx2"), not(miri)))]
#[target_feature(enable = "avx2")]
unsafe fn copy_avx2(src: &[u8], dst: &mut [MaybeUninit<u8>], key: [u8; 4]) {
    copy_words(src, dst, key);
}

/// The obvious byte loop; reference for tests and fuzzing.
pub fn apply_mask_naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[offset.wrapping_add(i) & 3];
    }
}

/// Masks `buf` with a key already rotated so that `key[0]` applies to `buf[0]`.
#[inline(always)]
fn mask_words(buf: &mut [u8], key: [u8; 4]) {
    // Two copies of the key; 8 is a multiple of 4, so every word starts at key phase 0.
    let half = u64::from(u32::from_ne_bytes(key));
    let wide = half | (half << 32);
    let mut words = buf.chunks_exact_mut(8);
    for word in &mut words {
        if let Ok(word) = <&mut [u8; 8]>::try_from(word) {
            *word = (u64::from_ne_bytes(*word) ^ wide).to_ne_bytes();
        }
    }
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// [`mask_words`] compiled with AVX2 enabled (32-byte vectors instead of 16).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(all(target_arch = "x86_64", not(target_feature = "avx2"), not(miri)))]
#[target_feature(enable = "avx2")]
unsafe fn mask_avx2(buf: &mut [u8], key: [u8; 4]) {
    mask_words(buf, key);
}

/// Run-time CPU feature detection that works without `std`.
#[cfg(all(target_arch = "x86_64", not(target_feature = "avx2"), not(miri)))]
pub(crate) mod cpu {
    use core::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
    use core::sync::atomic::{AtomicU8, Ordering};

    const UNKNOWN: u8 = 0;
    const AVX2: u8 = 1 << 1;
    const SSE42: u8 = 1 << 2;
    const DETECTED: u8 = 1 << 7;

    /// Cached result of [`detect`]; `UNKNOWN` until the first query.
    static FEATURES: AtomicU8 = AtomicU8::new(UNKNOWN);

    /// True when the CPU and the OS support AVX2.
    #[inline]
    pub(crate) fn has_avx2() -> bool {
        features() & AVX2 != 0
    }

    /// True when the CPU supports SSE4.2.
    #[inline]
    pub(crate) fn has_sse42() -> bool {
        features() & SSE42 != 0
    }

    #[inline]
    fn features() -> u8 {
        let cached = FEATURES.load(Ordering::Relaxed);
        if cached != UNKNOWN {
            return cached;
        }
        let found = detect();
        FEATURES.store(found, Ordering::Relaxed);
        found
    }

    #[cold]
    fn detect() -> u8 {
        let mut found = DETECTED;
        // SAFETY: `cpuid` exists on every x86-64 CPU. (The block is needed on toolchains where
        // `__cpuid` is still an `unsafe fn`.)
        #[allow(unused_unsafe)]
        let (max_leaf, leaf1) = unsafe { (__cpuid(0).eax, __cpuid(1)) };
        if leaf1.ecx & (1 << 20) != 0 {
            found |= SSE42;
        }
        let osxsave = leaf1.ecx & (1 << 27) != 0;
        let avx = leaf1.ecx & (1 << 28) != 0;
        if max_leaf < 7 || !osxsave || !avx {
            return found;
        }
        // SAFETY: OSXSAVE is set, so the CPU supports `xgetbv` and the OS has enabled it.
        let xcr0 = unsafe { _xgetbv(0) };
        // The OS must save and restore both the XMM (bit 1) and the YMM (bit 2) state.
        let ymm_enabled = xcr0 & 0b110 == 0b110;
        // SAFETY: leaf 7 is within the range reported by leaf 0.
        #[allow(unused_unsafe)]
        let leaf7 = unsafe { __cpuid_count(7, 0) };
        if ymm_enabled && leaf7.ebx & (1 << 5) != 0 {
            found |= AVX2;
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    const KEYS: [[u8; 4]; 3] = [[0x12, 0x34, 0x56, 0x78], [0xff, 0x00, 0xa5, 0x5a], [0; 4]];

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn matches_naive_for_small_offsets_and_lengths() {
        let max_len = if cfg!(miri) { 70 } else { 200 };
        for key in KEYS {
            for offset in 0..8 {
                for len in 0..max_len {
                    let mut fast = pattern(len);
                    let mut slow = fast.clone();
                    apply_mask(&mut fast, key, offset);
                    apply_mask_naive(&mut slow, key, offset);
                    assert_eq!(fast, slow, "key {key:?} offset {offset} len {len}");
                }
            }
        }
    }

    #[test]
    fn matches_naive_for_large_buffers_and_unaligned_starts() {
        let data = pattern(if cfg!(miri) { 300 } else { 70_000 });
        for start in 0..5 {
            for offset in [0, 1, 2, 3, 5, usize::MAX] {
                let mut fast = data[start..].to_vec();
                let mut slow = fast.clone();
                apply_mask(&mut fast, KEYS[0], offset);
                apply_mask_naive(&mut slow, KEYS[0], offset);
                assert_eq!(fast, slow, "start {start} offset {offset}");
            }
        }
    }

    /// `copy_masked` of `src` into a destination `extra` bytes longer (negative: shorter).
    fn copy_masked_vec(src: &[u8], extra: isize, key: [u8; 4], offset: usize) -> Vec<u8> {
        let len = src.len().saturating_add_signed(extra);
        let mut dst = vec![MaybeUninit::new(0xC3u8); len];
        let written = copy_masked(src, &mut dst, key, offset).to_vec();
        assert_eq!(written.len(), src.len().min(len));
        // SAFETY: every element was initialized when the vector was made.
        let rest: Vec<u8> = dst[written.len()..]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        assert!(rest.iter().all(|&b| b == 0xC3), "wrote past the copy");
        written
    }

    #[test]
    fn copy_masked_matches_naive() {
        let (max_len, offsets) = if cfg!(miri) { (20, 2) } else { (300, 5) };
        for key in KEYS {
            for offset in 0..offsets {
                for len in 0..max_len {
                    let src = pattern(len);
                    let mut slow = src.clone();
                    apply_mask_naive(&mut slow, key, offset);
                    assert_eq!(copy_masked_vec(&src, 0, key, offset), slow, "len {len}");
                    assert_eq!(copy_masked_vec(&src, 9, key, offset), slow, "len {len}");
                    let short = len.saturating_sub(3);
                    assert_eq!(
                        copy_masked_vec(&src, -3, key, offset),
                        slow[..short],
                        "len {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn copy_plain_copies() {
        for len in [0, 1, 7, 8, 9, 100] {
            let src = pattern(len);
            let mut dst = vec![MaybeUninit::new(0u8); len + 2];
            assert_eq!(copy_plain(&src, &mut dst), &src[..]);
            let mut short = vec![MaybeUninit::new(0u8); len / 2];
            assert_eq!(copy_plain(&src, &mut short), &src[..len / 2]);
        }
    }

    #[test]
    fn rfc_example() {
        // RFC 6455 section 5.7: masked "Hello".
        let mut payload = *b"\x7f\x9f\x4d\x51\x58";
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&payload, b"Hello");
    }

    #[test]
    fn portable_path_matches_naive() {
        for offset in 0..4 {
            let mut fast = pattern(1000);
            let mut slow = fast.clone();
            let mut key = KEYS[1];
            apply_mask_naive(&mut slow, key, offset);
            key.rotate_left(offset & 3);
            mask_words(&mut fast, key);
            assert_eq!(fast, slow);
        }
    }

    #[cfg(all(target_arch = "x86_64", not(target_feature = "avx2"), not(miri)))]
    #[test]
    fn avx2_path_matches_naive() {
        if !cpu::has_avx2() {
            return;
        }
        for len in [0, 1, 63, 64, 65, 127, 128, 129, 1000, 4099] {
            let mut fast = pattern(len);
            let mut slow = fast.clone();
            apply_mask_naive(&mut slow, KEYS[0], 0);
            // SAFETY: AVX2 support was checked above.
            unsafe { mask_avx2(&mut fast, KEYS[0]) };
            assert_eq!(fast, slow, "len {len}");
        }
    }

    fn config() -> ProptestConfig {
        if cfg!(miri) {
            ProptestConfig {
                cases: 8,
                failure_persistence: None,
                ..ProptestConfig::default()
            }
        } else {
            ProptestConfig::with_cases(256)
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn prop_matches_naive(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            key in any::<[u8; 4]>(),
            offset in any::<usize>(),
        ) {
            let mut fast = data.clone();
            let mut slow = data;
            apply_mask(&mut fast, key, offset);
            apply_mask_naive(&mut slow, key, offset);
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn prop_copy_masked_matches_naive(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            key in any::<[u8; 4]>(),
            offset in any::<usize>(),
            start in 0usize..8,
        ) {
            let src = &data[start.min(data.len())..];
            let mut slow = src.to_vec();
            apply_mask_naive(&mut slow, key, offset);
            prop_assert_eq!(copy_masked_vec(src, 0, key, offset), slow);
        }

        #[test]
        fn prop_masking_twice_is_identity(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            key in any::<[u8; 4]>(),
            offset in any::<usize>(),
        ) {
            let mut buf = data.clone();
            apply_mask(&mut buf, key, offset);
            apply_mask(&mut buf, key, offset);
            prop_assert_eq!(buf, data);
        }

        #[test]
        fn prop_split_equals_whole(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            key in any::<[u8; 4]>(),
            offset in 0usize..1 << 40,
            split in any::<prop::sample::Index>(),
        ) {
            let at = split.index(data.len() + 1);
            let mut whole = data.clone();
            apply_mask(&mut whole, key, offset);
            let mut pieces = data;
            let (first, second) = pieces.split_at_mut(at);
            apply_mask(first, key, offset);
            apply_mask(second, key, offset + at);
            prop_assert_eq!(pieces, whole);
        }
    }
}
