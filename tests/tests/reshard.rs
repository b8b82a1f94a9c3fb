//! Restarting with fewer shards must not strand messages: the disk queues
//! of topic parts of shards that no longer run are moved at startup.

use std::collections::HashSet;

use anyhow::{ensure, Result};
use nsq_proto::frame::Frame;
use nsq_tests::TestNsqd;

#[test]
fn fewer_shards_after_restart_keeps_every_message() -> Result<()> {
    let mut nsqd = TestNsqd::start(&["--shards=2", "--mem-queue-size=0"])?;
    let topic = "reshard";
    let mut sent = HashSet::new();
    // Several connections, so publishes land on both cores (SO_REUSEPORT).
    for conn in 0..8 {
        let mut p = nsqd.connect()?;
        for i in 0..250 {
            let body = format!("m-{conn}-{i}");
            p.pub_ok(topic, body.as_bytes())?;
            sent.insert(body);
        }
    }
    nsqd.set_args(&["--shards=1", "--mem-queue-size=0"]);
    nsqd.restart()?;
    let mut c = nsqd.connect()?;
    c.sub(topic, "c")?;
    c.rdy(500)?;
    let mut got = HashSet::new();
    while got.len() < sent.len() {
        match c.read_frame_skip_heartbeats()? {
            Frame::Message(m) => {
                c.fin(&m.id)?;
                let body = String::from_utf8_lossy(&m.body).into_owned();
                ensure!(got.insert(body.clone()), "duplicate {body}");
            }
            Frame::Response(_) => {} // SUB's OK
            other => anyhow::bail!("unexpected frame {other:?}"),
        }
    }
    ensure!(got == sent, "lost {} messages", sent.len() - got.len());
    let leftovers: Vec<String> = std::fs::read_dir(nsqd.data_path())?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("reshard~1."))
        .collect();
    ensure!(
        leftovers.is_empty(),
        "shard 1's queue left behind: {leftovers:?}"
    );
    Ok(())
}
