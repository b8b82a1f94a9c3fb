use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::files::list_dir;
use super::*;
use crate::config::Options;
use crate::message::IdGen;

/// A fresh directory under the system's temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("nsqd-queue-store-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// The names of the files in the directory, sorted.
    fn files(&self) -> Vec<String> {
        let mut names = list_dir(&self.0).unwrap();
        names.sort();
        names
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `make()`'s future on a fresh executor thread (the store's jobs
/// need glommio's blocking pool); false when no executor can be built here
/// (no io_uring), and the test is skipped.
fn on_executor<F, Fut>(make: F) -> bool
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(nsq_io::runtime::IO_MEMORY)
        .ring_depth(nsq_io::runtime::RING_DEPTH)
        .spawn(make);
    match handle {
        Ok(h) => {
            h.join().expect("executor thread");
            true
        }
        Err(e) => {
            eprintln!("skipping: no glommio executor here: {e}");
            false
        }
    }
}

fn ctx(dir: &Path, mem_queue_size: u64, max_msg_size: u64) -> Rc<ShardCtx> {
    let opts = Options {
        mem_queue_size,
        sync_every: 1,
        max_msg_size,
        ..Options::default()
    };
    Rc::new(ShardCtx::new(0, Arc::new(opts), dir.to_path_buf()))
}

/// A store of `kind` over queue `q` in `dir`, created at run time.
fn store(dir: &Path, kind: Kind, capacity: usize, max_msg_size: u64) -> QueueStore {
    store_with(ctx(dir, capacity as u64, max_msg_size), kind, capacity)
}

fn store_with(ctx: Rc<ShardCtx>, kind: Kind, capacity: usize) -> QueueStore {
    let disk = DiskSpec {
        name: "q".into(),
        kind,
        start: Start::Probe,
        eager: capacity == 0,
        on_ready: Box::new(|_| {}),
    };
    QueueStore::new(ctx, "CHANNEL(t:c)".into(), capacity, Some(disk)).0
}

fn message(ids: &IdGen, len: usize) -> Message {
    Message::new(ids.next_id(), Bytes::from(vec![b'x'; len]), None)
}

fn messages(ids: &IdGen, n: usize) -> Vec<Message> {
    (0..n).map(|_| message(ids, 10)).collect()
}

/// Every message of the store, memory first, then disk (finished).
fn drain(store: &QueueStore) -> Vec<MessageId> {
    let mut ids: Vec<MessageId> = store.take_front(usize::MAX).iter().map(|m| m.id).collect();
    while let Some(read) = store.read() {
        ids.push(read.msg.id);
        store.finish(&[read.pos]);
    }
    ids
}

type Append = fn(&QueueStore, &Message) -> Result<(), StoreError>;
/// The three kinds of append, by name.
const APPENDS: [(&str, Append); 3] = [
    ("append", |s, m| s.append(m).map(drop)),
    ("append_batch", |s, m| {
        s.append_batch(std::slice::from_ref(m)).map(drop)
    }),
    ("append_superseding", |s, m| {
        s.append_superseding(m).map(drop)
    }),
];

/// Issue 9: `append_superseding` (a REQ with a delay, rewritten on disk)
/// had drifted from the other appends and never reported a recovered disk
/// nor woke the sync task.
#[test]
fn every_append_reports_health_and_wakes_the_sync_task() {
    on_executor(|| async {
        let ids = IdGen::new(0, 0);
        for (kind, append) in APPENDS {
            let dir = Scratch::new(kind);
            let store = store(&dir.0, Kind::Channel, 0, 1024);
            store.idle().await;
            assert!(store.is_open(), "{kind}: eager store not open");
            store.inner.ctx.set_unhealthy("an earlier disk error");
            assert!(!store.inner.ctx.sync_wake.is_set());
            append(&store, &message(&ids, 10)).unwrap();
            assert_eq!(
                store.inner.ctx.health_error(),
                None,
                "{kind}: still unhealthy"
            );
            assert!(
                store.inner.ctx.sync_wake.is_set(),
                "{kind}: sync task not woken"
            );
        }
    });
}

#[test]
fn every_failed_append_makes_the_shard_unhealthy() {
    on_executor(|| async {
        let ids = IdGen::new(0, 0);
        for (kind, append) in APPENDS {
            let dir = Scratch::new(&format!("{kind}-fails"));
            let store = store(&dir.0, Kind::Channel, 0, 16);
            store.idle().await;
            // Over --max-msg-size: the disk queue refuses the record.
            let err = append(&store, &message(&ids, 1024)).unwrap_err();
            assert!(matches!(err, StoreError::Disk(_)), "{kind}: {err}");
            let health = store.inner.ctx.health_error().unwrap_or_default();
            assert!(
                health.starts_with("CHANNEL(t:c): record of"),
                "{kind}: {health:?}"
            );
        }
    });
}

#[test]
fn without_a_disk_appends_fail_and_health_is_untouched() {
    let ctx = Rc::new(ShardCtx::new(
        0,
        Arc::new(Options::default()),
        std::env::temp_dir(),
    ));
    let (store, _) = QueueStore::new(ctx, "TOPIC(t#ephemeral)".into(), 1, None);
    let ids = IdGen::new(0, 0);
    for (kind, append) in APPENDS {
        let err = append(&store, &message(&ids, 10)).unwrap_err();
        assert!(matches!(err, StoreError::NoDisk), "{kind}: {err}");
    }
    assert_eq!(store.inner.ctx.health_error(), None);
    assert!(!store.inner.ctx.sync_wake.is_set());
    assert!(store.read().is_none());
    assert!(!store.has_disk());
}

#[test]
fn memory_then_disk_in_order() {
    on_executor(|| async {
        let dir = Scratch::new("order");
        let store = store(&dir.0, Kind::Channel, 0, 1024);
        store.idle().await;
        let ids = IdGen::new(0, 0);
        let msgs = messages(&ids, 4);
        store.push(msgs[0].clone());
        store.extend([msgs[1].clone()]);
        store.append_batch(&msgs[2..]).unwrap();
        assert_eq!(store.depths(), (4, 2));
        let front = store.take_front(8);
        assert_eq!(front.len(), 2);
        assert!(store.is_empty());
        let a = store.read().unwrap();
        let b = store.read().unwrap();
        assert!(store.read().is_none());
        let got: Vec<_> = front.iter().chain([&a.msg, &b.msg]).map(|m| m.id).collect();
        let want: Vec<_> = msgs.iter().map(|m| m.id).collect();
        assert_eq!(got, want);
        store.finish(&[a.pos, b.pos]);
        assert_eq!(store.depths(), (0, 0));
    });
}

/// Issue 11: a queue that never overflows never has a file: the probe at
/// creation finds none, and nothing below 3/4 of the bound opens the disk,
/// not even a graceful close with nothing to flush.
#[test]
fn a_queue_that_never_overflows_creates_no_file() {
    on_executor(|| async {
        let dir = Scratch::new("absent");
        for kind in [Kind::Topic, Kind::Channel] {
            let store = store(&dir.0, kind, 100, 1024);
            assert!(matches!(*store.inner.disk.borrow(), Disk::Away), "probing");
            store.idle().await;
            assert!(matches!(*store.inner.disk.borrow(), Disk::Absent));
            let ids = IdGen::new(0, 0);
            for msg in messages(&ids, 74) {
                store.push(msg);
            }
            assert_eq!(store.take_front(10).len(), 10);
            for msg in messages(&ids, 10) {
                store.push(msg);
            }
            store.idle().await;
            assert!(matches!(*store.inner.disk.borrow(), Disk::Absent));
            assert_eq!(store.depths(), (74, 0));
            store.take_memory();
            store.close(&[]).await;
            store.empty();
            store.delete();
            assert!(dir.files().is_empty(), "{kind:?}: {:?}", dir.files());
        }
    });
}

/// Reaching 3/4 of the bound opens the disk off the core; what overflows
/// before it is open is held and written once it is, in order, nothing
/// lost; a restart finds it.
#[test]
fn overflow_creates_the_files_and_loses_nothing() {
    on_executor(|| async {
        let dir = Scratch::new("overflow");
        let ids = IdGen::new(0, 0);
        let store = store(&dir.0, Kind::Channel, 4, 1024);
        store.idle().await;
        let msgs = messages(&ids, 20);
        for msg in &msgs[..3] {
            store.push(msg.clone());
        }
        // 3 of 4: opening.
        assert!(matches!(*store.inner.disk.borrow(), Disk::Away));
        store.push(msgs[3].clone());
        let mut tickets = 0;
        for msg in &msgs[4..12] {
            if let Written::Held(_) = store.append(msg).unwrap() {
                tickets += 1;
            }
        }
        match store.append_batch(&msgs[12..]).unwrap() {
            Some(Written::Held(_)) => tickets += 1,
            Some(Written::At(_)) | None => {}
        }
        assert!(tickets > 0, "the open takes a pool round trip");
        assert!(!store.is_settled());
        assert_eq!(store.depths(), (20, 16));
        store.settled().await;
        assert!(store.is_open());
        assert_eq!(store.depths(), (20, 16));
        assert!(dir
            .files()
            .iter()
            .any(|f| f.starts_with("q.") && f.ends_with(".seg")));
        assert!(dir.files().contains(&"qacks.meta".to_string()));
        store.close(&[]).await;
        drop(store);
        // What a restart sees.
        let mut again = Backend::open(&dir.0, "q", &Options::default()).unwrap();
        let mut on_disk = Vec::new();
        while let Some(read) = again.read().unwrap() {
            on_disk.push(read.msg.id);
        }
        let want: Vec<MessageId> = msgs[4..].iter().map(|m| m.id).collect();
        assert_eq!(on_disk, want);
    });
}

/// `--mem-queue-size=0`: the disk opens at creation; a publish made before
/// it is open waits for its ticket and is then on disk.
#[test]
fn a_held_publish_is_on_disk_when_its_ticket_resolves() {
    on_executor(|| async {
        let dir = Scratch::new("mem0");
        let ids = IdGen::new(0, 0);
        let store = store(&dir.0, Kind::Topic, 0, 1024);
        let msg = message(&ids, 10);
        let Written::Held(ticket) = store.append(&msg).unwrap() else {
            panic!("the disk cannot be open before the pool ran");
        };
        let pos = store.wait_written(&ticket).await.unwrap();
        assert!(pos.is_some());
        // fsync-before-ack still works on it.
        store.wait_durable(pos.unwrap_or_default()).await.unwrap();
        let mut again = Backend::open(&dir.0, "q", &Options::default()).unwrap();
        assert_eq!(again.read().unwrap().map(|r| r.msg.id), Some(msg.id));
        // Then writes go straight to disk.
        assert!(matches!(store.append(&msg), Ok(Written::At(_))));
    });
}

/// Files left over (a crash before nsqd.dat listed the queue) are found by
/// the probe at run time and recovered; the channel learns what the open
/// found.
#[test]
fn the_probe_recovers_leftover_files() {
    on_executor(|| async {
        let dir = Scratch::new("leftover");
        let ids = IdGen::new(0, 0);
        let msgs = messages(&ids, 5);
        {
            let mut b = Backend::open(&dir.0, "q", &Options::default()).unwrap();
            b.put_batch(&msgs).unwrap();
            b.sync().unwrap();
        }
        let found = Rc::new(RefCell::new(None));
        let seen = found.clone();
        let disk = DiskSpec {
            name: "q".into(),
            kind: Kind::Channel,
            start: Start::Probe,
            eager: false,
            on_ready: Box::new(move |f| *seen.borrow_mut() = f.map(|f| f.backlog)),
        };
        let (store, _) = QueueStore::new(ctx(&dir.0, 100, 1024), "c".into(), 100, Some(disk));
        assert_eq!(store.depths(), (0, 0), "probing");
        store.idle().await;
        assert!(store.is_open());
        assert_eq!(*found.borrow(), Some(true));
        assert_eq!(drain(&store), msgs.iter().map(|m| m.id).collect::<Vec<_>>());
    });
}

/// Startup: the one listing decides; a queue without files is absent, one
/// with files is open at once, with what the open found.
#[test]
fn restore_from_the_listing() {
    on_executor(|| async {
        let dir = Scratch::new("listed");
        let ids = IdGen::new(0, 0);
        {
            let mut b = Backend::open(&dir.0, "q", &Options::default()).unwrap();
            b.put_batch(&messages(&ids, 3)).unwrap();
            b.sync().unwrap();
        }
        let mut inventory = Inventory::list(&dir.0).unwrap();
        for (name, open) in [("q", true), ("other", false)] {
            let disk = DiskSpec {
                name: name.into(),
                kind: Kind::Channel,
                start: Start::Listed(inventory.take(name, Kind::Channel)),
                eager: false,
                on_ready: Box::new(|_| {}),
            };
            let (store, found) =
                QueueStore::new(ctx(&dir.0, 100, 1024), "c".into(), 100, Some(disk));
            assert_eq!(store.is_open(), open, "{name}");
            assert_eq!(found.is_some(), open, "{name}");
            assert!(!store.inner.running.get(), "{name}: no job");
            if open {
                assert_eq!(store.depths(), (3, 3));
            }
        }
        assert!(!dir.files().iter().any(|f| f.starts_with("other")));
    });
}

/// Graceful exit with messages only in memory opens an absent disk to
/// flush them.
#[test]
fn close_opens_an_absent_disk_to_flush_memory() {
    on_executor(|| async {
        let dir = Scratch::new("close");
        let ids = IdGen::new(0, 0);
        let store = store(&dir.0, Kind::Topic, 100, 1024);
        store.idle().await;
        let msgs = messages(&ids, 3);
        for msg in &msgs {
            store.push(msg.clone());
        }
        let memory = store.take_memory();
        store.close(&memory).await;
        let mut again = Backend::open(&dir.0, "q", &Options::default()).unwrap();
        assert_eq!(again.depth(), 3);
        assert_eq!(again.read().unwrap().map(|r| r.msg.id), Some(msgs[0].id));
    });
}

/// Empty and delete run on the pool; messages arriving while the files
/// are emptied are kept; a queue deleted and created again (same name)
/// opens only after the old files are gone.
#[test]
fn empty_and_delete_off_the_core() {
    on_executor(|| async {
        let dir = Scratch::new("empty-delete");
        let ids = IdGen::new(0, 0);
        let ctx = ctx(&dir.0, 0, 1024);
        let store = store_with(ctx.clone(), Kind::Channel, 0);
        store.idle().await;
        store.append_batch(&messages(&ids, 5)).unwrap();
        store.empty();
        assert_eq!(store.depths(), (0, 0));
        let kept = message(&ids, 10);
        assert!(matches!(store.append(&kept), Ok(Written::Held(_))));
        store.idle().await;
        assert_eq!(drain(&store), vec![kept.id]);

        store.append_batch(&messages(&ids, 5)).unwrap();
        store.delete();
        assert!(matches!(store.append(&kept), Err(StoreError::NoDisk)));
        // The same queue again, right away: it must not find the old files.
        let again = store_with(ctx, Kind::Channel, 0);
        again.idle().await;
        store.idle().await;
        assert!(again.is_open());
        assert_eq!(again.depths(), (0, 0));
        assert!(matches!(*store.inner.disk.borrow(), Disk::Deleted));
        again.delete();
        again.idle().await;
        assert!(dir.files().is_empty(), "{:?}", dir.files());
    });
}

/// A channel whose disk cannot be opened keeps what it held in memory
/// (never drop what was accepted); a topic refuses it.
#[test]
fn a_failed_open_keeps_a_channels_messages_and_refuses_a_topics() {
    on_executor(|| async {
        let dir = Scratch::new("failed");
        // A file where the data directory should be: every open fails.
        let path = dir.0.join("not-a-dir");
        std::fs::write(&path, b"").unwrap();
        let ids = IdGen::new(0, 0);
        for kind in [Kind::Channel, Kind::Topic] {
            let store = store(&path, kind, 0, 1024);
            let msg = message(&ids, 10);
            let Ok(Written::Held(ticket)) = store.append(&msg) else {
                panic!("held while opening");
            };
            store.settled().await;
            assert!(store.wait_written(&ticket).await.is_err());
            assert!(store.inner.ctx.health_error().is_some());
            let kept = store.take_memory().len();
            assert_eq!(kept, usize::from(kind == Kind::Channel), "{kind:?}");
            assert!(matches!(store.append(&msg), Err(StoreError::NoDisk)));
        }
    });
}

/// What goes to the blocking pool must be `Send`.
#[test]
fn jobs_and_their_outcomes_are_send() {
    fn send<T: Send>() {}
    send::<Job>();
    send::<Done>();
    send::<Spec>();
}

/// A drained queue gives back the slots a burst grew; a small one keeps
/// them, so a queue hovering near empty does not reallocate.
#[test]
fn a_drained_queue_releases_its_slots() {
    let ids = IdGen::new(0, 0);
    let mut memory: VecDeque<Message> = (0..10_000)
        .map(|_| Message::new(ids.next_id(), Bytes::from_static(b"m"), None))
        .collect();
    memory.drain(..9_999);
    assert_eq!(release_if_drained(&mut memory), 0);
    assert!(memory.capacity() >= 10_000, "not empty yet: kept");
    memory.pop_front();
    assert!(release_if_drained(&mut memory) >= 10_000);
    assert_eq!(memory.capacity(), 0, "empty after a burst: released");

    let mut small: VecDeque<Message> = (0..100)
        .map(|_| Message::new(ids.next_id(), Bytes::new(), None))
        .collect();
    small.clear();
    let kept = small.capacity();
    assert_eq!(release_if_drained(&mut small), 0);
    assert_eq!(small.capacity(), kept);
}
