//! A full mesh of bounded single-producer/single-consumer queues between shards.
//!
//! Built on glommio's `shared_channel` (lock-free SPSC ring with cross-executor
//! wake-ups). Every ordered pair of shards (i, j), i != j, gets its own queue, so
//! no two cores ever contend on one queue and there is no lock on the path.
//! Capacity is bounded: a full queue makes the sender wait, which turns overload
//! into back-pressure on the sender instead of unbounded memory growth.

use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use glommio::{GlommioError, ResourceType};

/// The unconnected ends of the mesh for one shard; `Send`, so it can be moved
/// into the shard's executor thread before it is connected there.
pub struct MeshPart<T: Send + 'static> {
    shard: usize,
    senders: Vec<Option<SharedSender<T>>>,
    receivers: Vec<Option<SharedReceiver<T>>>,
}

impl<T: Send + 'static> std::fmt::Debug for MeshPart<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshPart")
            .field("shard", &self.shard)
            .finish()
    }
}

/// Build the mesh for `shards` shards; element `i` of the result belongs to shard `i`.
pub fn build<T: Send + 'static>(shards: usize, capacity: usize) -> Vec<MeshPart<T>> {
    let mut parts: Vec<MeshPart<T>> = (0..shards)
        .map(|shard| MeshPart {
            shard,
            senders: (0..shards).map(|_| None).collect(),
            receivers: (0..shards).map(|_| None).collect(),
        })
        .collect();
    for from in 0..shards {
        for to in 0..shards {
            if from == to {
                continue;
            }
            let (tx, rx) = shared_channel::new_bounded(capacity);
            parts[from].senders[to] = Some(tx);
            parts[to].receivers[from] = Some(rx);
        }
    }
    parts
}

/// The connected ends of the mesh on one shard.
///
/// Lives on: one shard. `senders[j]` sends to shard j; `receivers` yields
/// `(from_shard, receiver)` pairs, one per peer, for the shard to drain.
pub struct Mesh<T: Send + 'static> {
    shard: usize,
    senders: Vec<Option<ConnectedSender<T>>>,
}

impl<T: Send + 'static> std::fmt::Debug for Mesh<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh").field("shard", &self.shard).finish()
    }
}

impl<T: Send + 'static> MeshPart<T> {
    /// Connect every end on the current executor. Each shard must do this for
    /// the peers to finish connecting, so call it early on every shard.
    pub async fn connect(self) -> (Mesh<T>, Vec<(usize, ConnectedReceiver<T>)>) {
        // Every end waits for its peer end on another shard, so connect them
        // all concurrently: awaiting them one by one deadlocks two shards
        // that each wait on their first sender.
        //
        // glommio re-checks pending connections only when its reactor wakes
        // up, and a peer connecting does not wake it: an executor asleep in
        // io_uring with nothing else to do would wait forever (seen as a
        // startup hang about 1 in 25 starts on a busy machine). A 1 ms ticker
        // keeps the reactor turning until every end is connected.
        let connecting = Rc::new(Cell::new(true));
        let ticking = connecting.clone();
        glommio::spawn_local(async move {
            while ticking.get() {
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
        })
        .detach();
        let receivers: Vec<_> = self
            .receivers
            .into_iter()
            .enumerate()
            .filter_map(|(from, rx)| rx.map(|rx| (from, glommio::spawn_local(rx.connect()))))
            .collect();
        let senders: Vec<_> = self
            .senders
            .into_iter()
            .map(|tx| tx.map(|tx| glommio::spawn_local(tx.connect())))
            .collect();
        let mut connected_senders = Vec::with_capacity(senders.len());
        for tx in senders {
            connected_senders.push(match tx {
                Some(task) => Some(task.await),
                None => None,
            });
        }
        let mut connected_receivers = Vec::with_capacity(receivers.len());
        for (from, task) in receivers {
            connected_receivers.push((from, task.await));
        }
        connecting.set(false);
        (
            Mesh {
                shard: self.shard,
                senders: connected_senders,
            },
            connected_receivers,
        )
    }
}

impl<T: Send + 'static> Mesh<T> {
    /// This shard's index.
    pub fn shard(&self) -> usize {
        self.shard
    }

    /// Number of shards in the mesh.
    pub fn shards(&self) -> usize {
        self.senders.len()
    }

    /// Send to shard `to`, waiting while its queue is full. On failure (`to`
    /// is this shard, out of range, or its executor is gone) the item comes
    /// back when glommio returns it.
    pub async fn send(&self, to: usize, item: T) -> Result<(), Option<T>> {
        match self.senders.get(to) {
            Some(Some(tx)) => tx.send(item).await.map_err(recover),
            _ => Err(Some(item)),
        }
    }

    /// Send without waiting; fails (giving the item back) when the queue is full.
    pub fn try_send(&self, to: usize, item: T) -> Result<(), Option<T>> {
        match self.senders.get(to) {
            Some(Some(tx)) => tx.try_send(item).map_err(recover),
            _ => Err(Some(item)),
        }
    }
}

/// Take the rejected item back out of a channel error.
fn recover<T>(err: GlommioError<T>) -> Option<T> {
    match err {
        GlommioError::WouldBlock(ResourceType::Channel(item))
        | GlommioError::Closed(ResourceType::Channel(item)) => Some(item),
        _ => None,
    }
}
