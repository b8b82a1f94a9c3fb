//! A full disk: publishes fail with an error (never a crash, never a silent
//! drop) and /ping reports unhealthy. Needs a small tmpfs, so it runs where
//! the test may mount one (root in CI); elsewhere it says it skipped.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{ensure, Result};
use bytes::BytesMut;
use nsq_proto::frame::Frame;
use nsq_tests::TestNsqd;

/// Unmounts and removes the tmpfs when the test ends, however it ends.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn mount_small_tmpfs() -> Option<Tmpfs> {
    let dir = std::env::temp_dir().join(format!("nsqd-full-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let _ = std::fs::remove_dir(&dir);
        return None;
    }
    Some(Tmpfs(dir))
}

#[test]
fn full_disk_fails_publishes_and_ping() -> Result<()> {
    let Some(fs) = mount_small_tmpfs() else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return Ok(());
    };
    let nsqd = TestNsqd::start_in(
        &fs.0,
        &[
            "--mem-queue-size=0",
            "--max-bytes-per-file=1048576",
            "--shards=1",
        ],
    )?;
    let body = vec![b'x'; 100_000];
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let (status, _) = nsqd.http_post("/pub?topic=full", &body)?;
        statuses.push(status);
    }
    ensure!(statuses[0] == 200, "first publish: {statuses:?}");
    ensure!(
        statuses.iter().all(|s| *s == 200 || *s == 500),
        "only OK or 500: {statuses:?}"
    );
    ensure!(
        statuses.contains(&500),
        "3 MiB cannot hold 4 MB: {statuses:?}"
    );
    let (status, text) = nsqd.http_get("/ping")?;
    ensure!(
        status == 500 && text.starts_with("NOK - "),
        "/ping: {status} {text}"
    );

    // Over TCP the publisher gets E_PUB_FAILED, and the broker keeps running.
    let mut c = nsqd.connect()?;
    let mut cmd = BytesMut::new();
    nsq_proto::command::encode::pub_(&mut cmd, "full", &body);
    c.send(&cmd)?;
    match c.read_frame()? {
        Frame::Error(e) => ensure!(e.starts_with(b"E_PUB_FAILED"), "{:?}", e),
        other => anyhow::bail!("expected E_PUB_FAILED, got {other:?}"),
    }
    let (status, _) = nsqd.http_get("/stats?format=json")?;
    ensure!(status == 200, "the broker still answers");
    Ok(())
}
