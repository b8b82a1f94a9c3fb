//! Real third-party clients from other languages: pynsq (Python) and nsqjs
//! (Node), run as small scripts against a TestNsqd. `./tests/run.sh`
//! installs them into `tests/.venv` and `tests/compat/node_modules`.

use std::path::Path;

use anyhow::Result;
use nsq_tests::{unique_name, TestNsqd};

use nsq_tests::scripts::{require, run_script, tests_dir};

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
