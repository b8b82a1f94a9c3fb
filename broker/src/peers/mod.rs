//! How a shard reaches the other shards: the [`Peers`] handle over the mesh,
//! what travels on it ([`msg`]), and who owns a channel ([`routing`]).
//!
//! Lives on: every shard (one `Rc<Peers>` each, shared by its topic parts,
//! which hand batches to other cores, and by the shard state, which runs
//! control operations across cores). Below topics and the shard state in the
//! module order: it knows the messages, not what applies them (that is
//! `crate::inbox` on the receiving side), like glommio's sharding example
//! where the state never sees the mesh.

pub mod msg;
pub mod routing;

use std::cell::RefCell;

use nsq_io::mesh::Mesh;

use msg::{ControlOp, ControlReply, ShardMsg};

/// This shard's ends of the queues to every other shard.
#[derive(Debug)]
pub struct Peers {
    /// This shard's index.
    pub id: usize,
    /// Number of shards.
    pub shards: usize,
    mesh: Mesh<ShardMsg>,
    /// Messages put into each peer's queue (for `/metrics`: with what the
    /// peer counted as taken, the queue's depth).
    sent: RefCell<Vec<u64>>,
    /// Messages taken from each peer's queue.
    received: RefCell<Vec<u64>>,
}

impl Peers {
    /// Wrap this shard's connected mesh.
    pub fn new(mesh: Mesh<ShardMsg>) -> Peers {
        let shards = mesh.shards();
        Peers {
            id: mesh.shard(),
            shards,
            mesh,
            sent: RefCell::new(vec![0; shards]),
            received: RefCell::new(vec![0; shards]),
        }
    }

    /// The other shards' indexes.
    pub fn others(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.shards).filter(move |s| *s != self.id)
    }

    /// Send to shard `to` (never this one), waiting while its queue is full:
    /// back-pressure. `Err` only when that shard is gone.
    pub async fn send(&self, to: usize, msg: ShardMsg) -> Result<(), ()> {
        self.mesh.send(to, msg).await.map_err(drop)?;
        self.count(&self.sent, to);
        Ok(())
    }

    /// Send without waiting; a full queue gives the message back.
    pub fn try_send(&self, to: usize, msg: ShardMsg) -> Result<(), Option<ShardMsg>> {
        self.mesh.try_send(to, msg)?;
        self.count(&self.sent, to);
        Ok(())
    }

    /// A message from shard `from` was taken off its queue (`inbox`).
    pub fn taken_from(&self, from: usize) {
        self.count(&self.received, from);
    }

    /// Messages sent per destination and taken per source, so far.
    pub fn mesh_counts(&self) -> (Vec<u64>, Vec<u64>) {
        (self.sent.borrow().clone(), self.received.borrow().clone())
    }

    fn count(&self, counts: &RefCell<Vec<u64>>, shard: usize) {
        if let Some(n) = counts.borrow_mut().get_mut(shard) {
            *n += 1;
        }
    }

    /// Run `op` on another shard and wait for its answer (`NotFound` if
    /// that shard is gone).
    pub async fn call(&self, to: usize, op: ControlOp) -> ControlReply {
        let (tx, rx) = flume::bounded(1);
        let msg = ShardMsg::Control {
            op,
            reply: Some(tx),
        };
        if self.send(to, msg).await.is_err() {
            return ControlReply::NotFound;
        }
        rx.recv_async().await.unwrap_or(ControlReply::NotFound)
    }

    /// Send `op` to every other shard; with `wait`, until all have applied
    /// it (in shard order, so the answers prove the order too).
    pub async fn broadcast(&self, op: ControlOp, wait: bool) {
        for to in self.others() {
            if wait {
                self.call(to, op.clone()).await;
            } else {
                let msg = ShardMsg::Control {
                    op: op.clone(),
                    reply: None,
                };
                let _ = self.send(to, msg).await;
            }
        }
    }
}
