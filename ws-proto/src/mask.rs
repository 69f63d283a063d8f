//! XOR masking (RFC 6455 section 5.3).

/// XORs `buf` with `key`, where `buf[0]` is payload byte number `offset` of the frame.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(offset + i) & 3];
    }
}
/// The obvious byte loop.
pub fn apply_mask_naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
    apply_mask(buf, key, offset)
}
