//! The receiving end of the mesh: one task per peer shard drains its queue
//! and applies what arrives to this shard.
//!
//! Lives on: every shard. Deliveries are applied inline, without awaiting,
//! so a receiver never waits on another shard and the mesh cannot deadlock;
//! control requests and adopted connections get a task each. It sits above
//! the protocol layer (it starts adopted connections there) and below the
//! server, which spawns it: the shard state never sees the mesh.

use std::rc::Rc;

use glommio::channels::shared_channel::ConnectedReceiver;

use crate::peers::msg::ShardMsg;
use crate::shard::Shard;

/// Drain the queue from peer shard `from` for as long as the process runs.
pub async fn run(shard: Rc<Shard>, from: usize, rx: ConnectedReceiver<ShardMsg>) {
    while let Some(msg) = rx.recv().await {
        shard.peers.taken_from(from);
        match msg {
            ShardMsg::Deliver {
                topic,
                channels,
                msgs,
                ack,
            } => {
                let unsettled = shard.deliver(&topic, &channels, msgs);
                if let Some(ack) = ack {
                    if unsettled.is_empty() {
                        let _ = ack.send(());
                    } else {
                        // A channel's disk is opening (blocking pool, not
                        // another shard): acknowledge once it wrote the
                        // batch, without holding up this queue.
                        glommio::spawn_local(async move {
                            for ch in unsettled {
                                ch.settled().await;
                            }
                            let _ = ack.send(());
                        })
                        .detach();
                    }
                }
            }
            ShardMsg::Adopt(handoff) => {
                glommio::spawn_local(crate::protocol::conn::adopt(shard.clone(), *handoff))
                    .detach();
            }
            ShardMsg::Control { op, reply } => {
                let shard = shard.clone();
                glommio::spawn_local(async move {
                    let answer = shard.handle_control(op).await;
                    if let Some(reply) = reply {
                        let _ = reply.send(answer);
                    }
                })
                .detach();
            }
        }
    }
}
