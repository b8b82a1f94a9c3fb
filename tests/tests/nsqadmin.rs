//! The original nsqadmin (v1.3) pointed at our nsqd, as a new user would
//! try it: every topic, channel and node page and their API answers load
//! without an error, with `--graphite-url` unset.
//!
//! Runs only when `NSQ_REFERENCE_BIN` names the directory holding the
//! original NSQ binaries (`nsqadmin` among them); says it skipped otherwise.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use nsq_tests::{consumer, http, unique_name, wait_until, TestNsqd};
use serde_json::json;

/// Kills nsqadmin when the test ends, however it ends.
struct Admin(Child);

impl Drop for Admin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn original_nsqadmin_shows_every_page() -> Result<()> {
    let Some(bin_dir) = std::env::var_os("NSQ_REFERENCE_BIN").map(PathBuf::from) else {
        eprintln!(
            "skipped: NSQ_REFERENCE_BIN not set (the directory holding the original nsqadmin v1.3)"
        );
        return Ok(());
    };
    let nsqd = TestNsqd::start(&[
        "--broadcast-address=127.0.0.1",
        "--e2e-processing-latency-percentile=0.99",
    ])?;
    let topic = unique_name("admin");
    let mut producer = nsqd.connect()?;
    for i in 0..5 {
        producer.pub_ok(&topic, format!("m{i}").as_bytes())?;
    }
    let _consumer = consumer(
        nsqd.tcp_addr(),
        &topic,
        "c",
        2,
        json!({"client_id": "admin-test"}),
    )?;
    nsqd.http_post(
        &format!("/channel/create?topic={topic}&channel=paused"),
        b"",
    )?;
    nsqd.http_post(&format!("/channel/pause?topic={topic}&channel=paused"), b"")?;

    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let admin_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let _admin = Admin(
        Command::new(bin_dir.join("nsqadmin"))
            .arg(format!("--http-address={admin_addr}"))
            .arg(format!("--nsqd-http-address={}", nsqd.http_addr()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nsqadmin")?,
    );
    wait_until(Duration::from_secs(10), "nsqadmin answers /ping", || {
        Ok(http::get(admin_addr, "/ping").is_ok_and(|(status, _)| status == 200))
    })?;

    let node = format!("127.0.0.1:{}", nsqd.http_addr().port());
    for path in [
        "/api/topics".to_string(),
        format!("/api/topics/{topic}"),
        format!("/api/topics/{topic}/c"),
        format!("/api/topics/{topic}/paused"),
        "/api/nodes".to_string(),
        format!("/api/nodes/{node}"),
        "/api/counter".to_string(),
    ] {
        let (status, body) = http::get(admin_addr, &path)?;
        ensure!(status == 200, "{path}: {status} {body}");
        let v: serde_json::Value = serde_json::from_str(&body).context(path.clone())?;
        // nsqadmin reports upstream errors in "message" ("" when none).
        let message = v.get("message").and_then(|m| m.as_str()).unwrap_or("");
        ensure!(message.is_empty(), "{path}: {body}");
    }
    let (_, body) = http::get(admin_addr, &format!("/api/topics/{topic}/c"))?;
    let channel: serde_json::Value = serde_json::from_str(&body)?;
    ensure!(
        channel["depth"].is_i64() && channel["clients"].is_array(),
        "{body}"
    );
    let (_, body) = http::get(admin_addr, &format!("/api/topics/{topic}/paused"))?;
    ensure!(
        serde_json::from_str::<serde_json::Value>(&body)?["paused"] == json!(true),
        "{body}"
    );
    for page in [
        "/",
        "/topics",
        &format!("/topics/{topic}"),
        &format!("/topics/{topic}/c"),
        "/nodes",
        &format!("/nodes/{node}"),
        "/counter",
        "/lookup",
    ] {
        let (status, _) = http::get(admin_addr, page)?;
        ensure!(status == 200, "{page}: {status}");
    }
    // An action through nsqadmin reaches our nsqd.
    let r = http::request(
        admin_addr,
        "POST",
        &format!("/api/topics/{topic}/paused"),
        br#"{"action":"unpause"}"#,
    )?;
    ensure!(r.status == 200, "unpause: {} {}", r.status, r.text());
    let stats = nsqd.stats(&format!("format=json&topic={topic}&channel=paused"))?;
    ensure!(
        stats["topics"][0]["channels"][0]["paused"] == json!(false),
        "{stats}"
    );
    Ok(())
}
