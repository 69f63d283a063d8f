//! Installing and starting kosoku, the Autobahn TestSuite runner from PyPI.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

/// The kosoku release the expectations were recorded with.
pub const KOSOKU_VERSION: &str = "0.1.0";

fn run(cmd: &mut std::process::Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The kosoku version installed in the venv whose interpreter is `python`, if any.
fn installed_version(python: &Path) -> Option<String> {
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('kosoku'))",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Makes sure the virtual environment `venv` exists (created with `python3`) and holds kosoku
/// [`KOSOKU_VERSION`]; returns the path of its `kosoku` executable.
pub fn ensure_venv(venv: &Path) -> Result<PathBuf, String> {
    let python = venv.join("bin").join("python");
    let exe = venv.join("bin").join("kosoku");
    if exe.exists() && installed_version(&python).as_deref() == Some(KOSOKU_VERSION) {
        return Ok(exe);
    }
    if !python.exists() {
        eprintln!("creating {} ...", venv.display());
        run(std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(venv))?;
    }
    eprintln!("installing kosoku=={KOSOKU_VERSION} ...");
    run(std::process::Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("kosoku=={KOSOKU_VERSION}"),
    ]))?;
    match installed_version(&python) {
        Some(v) if v == KOSOKU_VERSION && exe.exists() => Ok(exe),
        other => Err(format!(
            "kosoku {KOSOKU_VERSION} not usable in {} after install (found {other:?})",
            venv.display()
        )),
    }
}

/// Arguments selecting cases: `-i PATTERN` for each pattern (none runs the whole suite).
pub fn include_args(patterns: &[String]) -> Vec<String> {
    patterns
        .iter()
        .flat_map(|p| ["-i".to_owned(), p.clone()])
        .collect()
}

/// Arguments for kosoku driving the server under test at `target` (`host:port`).
pub fn fuzzingclient_args(
    target: &str,
    patterns: &[String],
    parallelism: usize,
    outdir: &Path,
) -> Vec<String> {
    let mut args = vec![
        "-m".to_owned(),
        "fuzzingclient".to_owned(),
        "-p".to_owned(),
        parallelism.to_string(),
        "-o".to_owned(),
        outdir.display().to_string(),
    ];
    args.extend(include_args(patterns));
    args.push(target.to_owned());
    args
}

/// Arguments for kosoku serving the cases to a client under test, bound to `bind` (`host:port`).
pub fn fuzzingserver_args(bind: &str, patterns: &[String], outdir: &Path) -> Vec<String> {
    let mut args = vec![
        "-m".to_owned(),
        "fuzzingserver".to_owned(),
        "-o".to_owned(),
        outdir.display().to_string(),
    ];
    args.extend(include_args(patterns));
    args.push(bind.to_owned());
    args
}

/// Starts `exe args`, stdout and stderr appended to `log`; the process is killed if dropped.
pub fn spawn(exe: &Path, args: &[String], log: &Path) -> Result<Child, String> {
    let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))
}

/// Waits for `child` at most `limit`; past that kills it and returns `None`.
pub async fn wait_or_kill(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => status.ok(),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    }
}

/// A loopback port that was free a moment ago, for a process that binds it itself.
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_arguments() {
        let pats = vec!["1.*".to_owned(), "9.1.1".to_owned()];
        assert_eq!(
            fuzzingclient_args("127.0.0.1:4000", &pats, 2, Path::new("/r/server")),
            [
                "-m",
                "fuzzingclient",
                "-p",
                "2",
                "-o",
                "/r/server",
                "-i",
                "1.*",
                "-i",
                "9.1.1",
                "127.0.0.1:4000"
            ]
        );
        assert_eq!(
            fuzzingserver_args("127.0.0.1:4001", &[], Path::new("/r/client")),
            ["-m", "fuzzingserver", "-o", "/r/client", "127.0.0.1:4001"]
        );
    }
}
