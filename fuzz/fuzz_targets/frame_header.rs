//! `FrameHeader::decode` on arbitrary bytes: a decoded header re-encodes to exactly the bytes it
//! was decoded from, every shorter prefix is incomplete, and the result depends only on the
//! first 14 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_proto::frame::{MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use ws_proto::{CloseCode, Error, FrameHeader};

fuzz_target!(|data: &[u8]| {
    let result = FrameHeader::decode(data);
    let head = &data[..data.len().min(MAX_HEADER_LEN)];
    assert_eq!(
        FrameHeader::decode(head),
        result,
        "decode looks past 14 bytes"
    );
    match result {
        Ok(Some((h, n))) => {
            assert!((2..=MAX_HEADER_LEN).contains(&n) && n <= data.len());
            assert_eq!(h.encoded_len(), n);
            assert_eq!(h.encode().as_bytes(), &data[..n], "re-encoding differs");
            for cut in 0..n {
                assert_eq!(FrameHeader::decode(&data[..cut]), Ok(None), "prefix {cut}");
            }
            assert!(h.rsv <= 0b111);
            assert!(h.payload_len >> 63 == 0);
            if h.opcode.is_control() {
                assert!(h.fin && h.payload_len <= MAX_CONTROL_PAYLOAD as u64);
            }
        }
        Ok(None) => {
            assert!(data.len() < MAX_HEADER_LEN);
            for cut in 0..data.len() {
                assert_eq!(FrameHeader::decode(&data[..cut]), Ok(None), "prefix {cut}");
            }
        }
        Err(e) => {
            assert!(matches!(e, Error::Protocol(_)), "{e:?}");
            assert_eq!(e.close_code(), Some(CloseCode::PROTOCOL_ERROR));
            // More bytes never turn an error into a header.
            let mut longer = data.to_vec();
            longer.extend_from_slice(&[0; MAX_HEADER_LEN]);
            assert_eq!(FrameHeader::decode(&longer), Err(e));
        }
    }
});
