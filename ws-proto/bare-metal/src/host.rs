//! Output and exit through semihosting, with no `core::fmt` (numbers are written by hand).

use cortex_m_semihosting::{debug, hio};

/// The host's standard output and the count of checks passed so far.
pub struct Host {
    out: Option<hio::HostStream>,
    passed: u32,
}

impl Host {
    /// Opens the host's standard output.
    pub fn new() -> Host {
        Host {
            out: hio::hstdout().ok(),
            passed: 0,
        }
    }

    /// Writes `s`.
    pub fn put(&mut self, s: &str) {
        if let Some(out) = self.out.as_mut() {
            // Nothing better to do when the host refuses output: the exit status still tells.
            let _ = out.write_all(s.as_bytes());
        }
    }

    /// Writes `n` in decimal (32 bits: 64-bit division would bring in 1 KiB of compiler-builtins).
    pub fn num(&mut self, n: u32) {
        let mut digits = [0u8; 10];
        let mut at = digits.len();
        let mut n = n;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if let Some(out) = self.out.as_mut() {
            let _ = out.write_all(&digits[at..]);
        }
    }

    /// Writes a `label value unit` line.
    pub fn figure(&mut self, label: &str, value: usize, unit: &str) {
        self.put(label);
        self.put(" ");
        self.num(value as u32);
        self.put(unit);
        self.put("\n");
    }

    /// Counts a passed check, or reports the failed one and exits with a failure status.
    pub fn check(&mut self, ok: bool, what: &str) {
        if ok {
            self.passed += 1;
        } else {
            self.fail(what);
        }
    }

    /// The value of a result that must be `Ok`, or a failure exit naming `what`.
    pub fn ok<T, E>(&mut self, result: Result<T, E>, what: &str) -> T {
        match result {
            Ok(v) => {
                self.passed += 1;
                v
            }
            Err(_) => self.fail(what),
        }
    }

    /// The value of an option that must be `Some`, or a failure exit naming `what`.
    #[cfg_attr(not(feature = "handshake"), allow(dead_code))]
    pub fn some<T>(&mut self, option: Option<T>, what: &str) -> T {
        match option {
            Some(v) => {
                self.passed += 1;
                v
            }
            None => self.fail(what),
        }
    }

    /// Reports a failed check and exits with a failure status.
    pub fn fail(&mut self, what: &str) -> ! {
        self.put("FAIL: ");
        self.put(what);
        self.put("\nbare-metal: ");
        self.num(self.passed);
        self.put(" passed, 1 failed\n");
        exit(false)
    }

    /// Reports success (the line run.sh looks for) and exits with a success status.
    pub fn pass(&mut self) -> ! {
        self.put("bare-metal: ");
        self.num(self.passed);
        self.put(" passed, 0 failed\n");
        exit(true)
    }
}

/// Ends the program: QEMU exits with status 0 for success and 1 for failure.
pub fn exit(success: bool) -> ! {
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Only reached when a debugger lets the program go on after the exit request.
    loop {
        core::hint::spin_loop();
    }
}
