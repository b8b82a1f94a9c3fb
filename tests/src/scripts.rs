//! Running the third-party client scripts in `tests/compat/` (pynsq in
//! `tests/.venv`, nsqjs in `tests/compat/node_modules`), bounded, with their
//! output in the failure message. Shared by `compat_scripts.rs` and
//! `compat_tls.rs`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::TempDir;

/// How long one client script may run.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

/// The `tests/` directory.
pub fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fails with how to install `what` unless `path` exists.
pub fn require(path: &Path, what: &str) -> Result<()> {
    if !path.exists() {
        bail!(
            "{what} is not installed ({} is missing): run the test command `./tests/run.sh`, \
             which creates tests/.venv and tests/compat/node_modules",
            path.display()
        );
    }
    Ok(())
}

/// Runs `program args` (bounded), failing with its output unless it exits 0.
pub fn run_script(program: &Path, args: &[String]) -> Result<String> {
    let dir = TempDir::new("nsq-test-script")?;
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = Command::new(program)
        .args(args)
        .current_dir(tests_dir().join("compat"))
        .stdin(Stdio::null())
        .stdout(File::create(&out_path)?)
        .stderr(File::create(&err_path)?)
        .spawn()
        .with_context(|| format!("spawning {}", program.display()))?;
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(out),
        Some(s) => bail!("{} {args:?} failed ({s})\n--- stdout ---\n{out}\n--- stderr ---\n{err}", program.display()),
        None => bail!(
            "{} {args:?} still running after {SCRIPT_TIMEOUT:?}, killed\n--- stdout ---\n{out}\n--- stderr ---\n{err}",
            program.display()
        ),
    }
}
