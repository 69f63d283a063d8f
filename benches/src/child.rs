//! Servers run as child processes of the driver binaries (the driver itself, started again
//! with `--serve ...`), so that their CPU time and memory can be read from `/proc/<pid>`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// A running server child: this same executable started with `args`. Killed when dropped.
/// Its standard input is a pipe held open by this handle, so a server started with
/// `--exit-on-stdin-eof`-style handling also ends if the driver dies.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// Where it listens (loopback).
    pub addr: SocketAddr,
}

impl Server {
    /// Starts this executable with `args` and waits for it to print `PORT <port>`.
    pub fn start(args: &[String]) -> std::io::Result<Server> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let port: u16 = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("server said {line:?}")))?;
        Ok(Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
