//! Helpers shared by the fuzz targets: input scheduling, frame checks and the connection driver.

pub mod conn;

use ws_proto::conn::ControlFrame;
use ws_proto::mask::apply_mask_naive;
use ws_proto::{FrameHeader, OpCode, Role};

/// Splits an input into a short schedule prefix and the rest.
///
/// The first byte gives the schedule length (`byte % (max + 1)`); that many bytes follow as the
/// schedule and everything after them is the payload. Inputs too short for their schedule use
/// what there is.
pub fn split_schedule(data: &[u8], max: usize) -> (u8, &[u8], &[u8]) {
    let Some((&head, rest)) = data.split_first() else {
        return (0, &[], &[]);
    };
    let k = (head as usize % (max + 1)).min(rest.len());
    let (schedule, payload) = rest.split_at(k);
    (head, schedule, payload)
}

/// Cycles through the schedule bytes; yields nothing when the schedule is empty.
#[derive(Debug, Clone)]
pub struct Cycle<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cycle<'a> {
    /// A cycle over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// The next byte, wrapping around at the end.
    pub fn next_byte(&mut self) -> Option<u8> {
        if self.bytes.is_empty() {
            return None;
        }
        let b = self.bytes[self.at % self.bytes.len()];
        self.at = self.at.wrapping_add(1);
        Some(b)
    }
}

/// Splits `payload` into chunks whose sizes come from `schedule` (`byte % modulus`, so 0 is a
/// possible size), cycling through it; one chunk of everything when the schedule is empty.
pub fn chunks<'a>(payload: &'a [u8], schedule: &[u8], modulus: usize) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut cycle = Cycle::new(schedule);
    let mut rest = payload;
    // Bounded: every non-empty schedule holds a non-zero size at most every `schedule.len()`
    // steps, or it is all zeros and the loop stops after one round.
    let mut zero_run = 0;
    while !rest.is_empty() {
        let Some(b) = cycle.next_byte() else {
            out.push(rest);
            return out;
        };
        let n = (b as usize % modulus).min(rest.len());
        if n == 0 {
            zero_run += 1;
            if zero_run > schedule.len() {
                out.push(rest);
                return out;
            }
        } else {
            zero_run = 0;
        }
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    out
}

/// Decodes a frame that `role` sends, checks it is a single valid frame for that role, and
/// returns its header and unmasked payload.
pub fn check_sent_frame(role: Role, bytes: &[u8]) -> (FrameHeader, Vec<u8>) {
    let (h, n) = match FrameHeader::decode(bytes) {
        Ok(Some(hn)) => hn,
        other => panic!("sent frame {bytes:02x?} does not decode: {other:?}"),
    };
    assert_eq!(h.rsv, 0, "sent frame with RSV bits");
    assert_eq!(
        h.mask.is_some(),
        role == Role::Client,
        "{role:?} sent a frame with mask {:?}",
        h.mask
    );
    assert_eq!(
        n as u64 + h.payload_len,
        bytes.len() as u64,
        "sent frame length differs from its header"
    );
    assert_eq!(
        h.encode().as_bytes(),
        &bytes[..n],
        "sent header not minimal"
    );
    let mut payload = bytes[n..].to_vec();
    if let Some(key) = h.mask {
        apply_mask_naive(&mut payload, key, 0);
    }
    (h, payload)
}

/// Checks a frame from `poll_transmit`: a valid final control frame of at most 125 bytes for the
/// role, whose opcode matches the frame's own report. Returns the opcode and unmasked payload.
pub fn check_control_frame(role: Role, frame: &ControlFrame) -> (OpCode, Vec<u8>) {
    let (h, payload) = check_sent_frame(role, frame.as_bytes());
    assert!(h.fin, "control frame without FIN");
    assert!(h.opcode.is_control(), "poll_transmit gave a data frame");
    assert_eq!(h.opcode, frame.opcode());
    assert!(payload.len() <= 125, "control payload over 125 bytes");
    (h.opcode, payload)
}

/// Tracks how much of a growing byte string is known valid UTF-8, in linear time overall.
#[derive(Debug, Default, Clone)]
pub struct Utf8Prefix {
    valid_up_to: usize,
}

impl Utf8Prefix {
    /// Checks that `bytes` (the previous bytes plus new ones) is still a prefix of valid UTF-8.
    pub fn check(&mut self, bytes: &[u8]) {
        match core::str::from_utf8(&bytes[self.valid_up_to..]) {
            Ok(_) => self.valid_up_to = bytes.len(),
            Err(e) => {
                assert!(
                    e.error_len().is_none(),
                    "delivered text is not a UTF-8 prefix: {:02x?}",
                    &bytes[self.valid_up_to..]
                );
                self.valid_up_to += e.valid_up_to();
            }
        }
    }

    /// Whether all bytes checked so far are complete, valid UTF-8.
    pub fn complete(&self, bytes: &[u8]) -> bool {
        self.valid_up_to == bytes.len()
    }
}

/// The head is longer than the limit allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadTooLong;

/// Reference for [`ws_proto::handshake::HeadScanner`]: the head length when `"\r\n\r\n"` ends
/// within the first `limit` bytes, `Err` when more than `limit` bytes hold no terminator there.
pub fn reference_head_len(bytes: &[u8], limit: usize) -> Result<Option<usize>, HeadTooLong> {
    let window = &bytes[..bytes.len().min(limit)];
    match window.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => Ok(Some(i + 4)),
        None if bytes.len() > limit => Err(HeadTooLong),
        None => Ok(None),
    }
}

/// Feeds `bytes` to a fresh [`HeadScanner`](ws_proto::handshake::HeadScanner) as a buffer
/// growing by `chunks`, as a reader would, stopping at the first head length or error; checks
/// the answer against [`reference_head_len`] and against one scan of the whole buffer.
/// Returns the head length, if one was found.
pub fn scan_head(bytes: &[u8], schedule: &[u8], limit: usize) -> Option<usize> {
    use ws_proto::handshake::HeadScanner;
    use ws_proto::{Error, Limit};

    let reference = reference_head_len(bytes, limit);
    let whole = HeadScanner::new(limit).scan(bytes);
    match (&whole, reference) {
        (Ok(got), Ok(want)) => assert_eq!(*got, want, "head length (one scan)"),
        (Err(e), Err(HeadTooLong)) => assert_eq!(*e, Error::LimitExceeded(Limit::HeaderBytes)),
        (got, want) => panic!("one scan gave {got:?}, expected {want:?}"),
    }

    let mut scanner = HeadScanner::new(limit);
    let mut buf = Vec::new();
    let mut incremental = scanner.scan(&buf);
    assert_eq!(incremental, Ok(None), "empty buffer");
    for chunk in chunks(bytes, schedule, 64) {
        buf.extend_from_slice(chunk);
        incremental = scanner.scan(&buf);
        if !matches!(incremental, Ok(None)) {
            break;
        }
    }
    if let Ok(Some(n)) = incremental {
        // The found length stays put, even as the buffer grows.
        assert_eq!(scanner.scan(bytes), Ok(Some(n)), "head length changed");
        assert!(n <= limit && n <= bytes.len() && bytes[..n].ends_with(b"\r\n\r\n"));
        scanner.reset();
        assert_eq!(scanner.scan(bytes), Ok(Some(n)), "after reset");
    }
    assert_eq!(incremental, whole, "incremental scan differs from one scan");
    whole.ok().flatten()
}
