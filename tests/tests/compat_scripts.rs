//! Real third-party clients from other languages: pynsq (Python) and nsqjs
//! (Node), run as small scripts against a TestNsqd. `./tests/run.sh`
//! installs them into `tests/.venv` and `tests/compat/node_modules`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nsq_tests::{unique_name, TempDir, TestNsqd};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn require(path: &Path, what: &str) -> Result<()> {
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
fn run_script(program: &Path, args: &[String]) -> Result<String> {
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

fn script_args(nsqd: &TestNsqd, topic: &str) -> Vec<String> {
    vec![
        "--tcp".into(),
        nsqd.tcp_addr().to_string(),
        "--http".into(),
        nsqd.http_addr().to_string(),
        "--topic".into(),
        topic.into(),
        "--count".into(),
        "300".into(),
        "--timeout".into(),
        "60".into(),
    ]
}

fn pynsq(shards: u32) -> Result<()> {
    let python = tests_dir().join(".venv/bin/python");
    require(&python, "pynsq (Python venv)")?;
    let nsqd = TestNsqd::start(&[&format!("--shards={shards}")])?;
    let mut args = vec![tests_dir()
        .join("compat/pynsq_check.py")
        .display()
        .to_string()];
    args.extend(script_args(&nsqd, &unique_name("pynsq")));
    let out = run_script(&python, &args)?;
    eprintln!("{out}");
    Ok(())
}

fn nsqjs(shards: u32) -> Result<()> {
    require(
        &tests_dir().join("compat/node_modules/nsqjs"),
        "nsqjs (node_modules)",
    )?;
    let nsqd = TestNsqd::start(&[&format!("--shards={shards}")])?;
    let mut args = vec![tests_dir()
        .join("compat/nsqjs_check.js")
        .display()
        .to_string()];
    args.extend(script_args(&nsqd, &unique_name("nsqjs")));
    let out = run_script(Path::new("node"), &args)?;
    eprintln!("{out}");
    Ok(())
}

#[test]
fn pynsq_round_trip_shards_1() -> Result<()> {
    pynsq(1)
}

#[test]
fn pynsq_round_trip_shards_2() -> Result<()> {
    pynsq(2)
}

#[test]
fn nsqjs_round_trip_shards_1() -> Result<()> {
    nsqjs(1)
}

#[test]
fn nsqjs_round_trip_shards_2() -> Result<()> {
    nsqjs(2)
}

/// A pynsq Writer (producer only) left idle across several 1 s heartbeat
/// intervals keeps its connection: nsqd heartbeats producers too.
#[test]
fn pynsq_idle_writer_stays_connected() -> Result<()> {
    let python = tests_dir().join(".venv/bin/python");
    require(&python, "pynsq (Python venv)")?;
    let nsqd = TestNsqd::start(&[])?;
    let args = vec![
        tests_dir()
            .join("compat/pynsq_idle_writer.py")
            .display()
            .to_string(),
        "--tcp".into(),
        nsqd.tcp_addr().to_string(),
        "--topic".into(),
        unique_name("idle"),
        "--idle".into(),
        "5".into(),
    ];
    let out = run_script(&python, &args)?;
    eprintln!("{out}");
    Ok(())
}
