//! The API contract: cursors and commit, sync policy, empty, delete, record
//! size limits, offloaded data sync, names.

use super::test_util::{drain, fill, open, payload, seg, small, TempDir};
use super::{format, DiskQueue, Error, Event, FileStorage, MemStorage, Options, Storage};

#[test]
fn commit_rules() {
    let s = MemStorage::new();
    let mut q = open(&s);
    fill(&mut q, 0, 5, 10);
    let a = q.read_next().unwrap().unwrap();
    let b = q.read_next().unwrap().unwrap();
    assert!(a.next < b.next);
    // Past the read cursor: refused.
    let mut ahead = b.next;
    ahead.offset += 1;
    assert!(matches!(q.commit(ahead), Err(Error::BadPosition { .. })));
    q.commit(b.next).unwrap();
    // Going back is a no-op, not an error.
    q.commit(a.next).unwrap();
    assert_eq!(q.committed_pos(), b.next);
    assert_eq!(q.persisted_commit().offset, 32);
    q.sync().unwrap();
    assert_eq!(q.persisted_commit(), b.next);
}

#[test]
fn reboot_replays_exactly_the_uncommitted_reads() {
    let s = MemStorage::new();
    let mut q = open(&s);
    fill(&mut q, 0, 30, 84);
    let mut recs = Vec::new();
    for _ in 0..20 {
        recs.push(q.read_next().unwrap().unwrap());
    }
    // Finished 0..12; 12..20 still in flight.
    q.commit(recs[11].next).unwrap();
    q.sync().unwrap();
    assert_eq!(q.depth(), 10);
    // Segment 1 (records 0..9) is consumed and gone.
    assert!(!s.names().contains(&seg(1)));
    drop(q);
    s.reboot();
    let mut q = open(&s);
    assert_eq!(q.depth(), 18);
    assert_eq!(drain(&mut q), (12..30).collect::<Vec<_>>());
}

#[test]
fn sync_every_and_dirty() {
    let s = MemStorage::new();
    let opts = Options {
        sync_every: 3,
        max_bytes_per_file: 1 << 20,
        ..Options::default()
    };
    let mut q = DiskQueue::open(s.clone(), "q", opts).unwrap();
    assert!(!q.needs_sync());
    assert!(!q.is_dirty());
    fill(&mut q, 0, 2, 10);
    assert!(!q.needs_sync());
    assert!(q.is_dirty());
    let _ = q.read_next().unwrap();
    assert!(q.needs_sync(), "appends and reads count");
    assert!(q.maybe_sync().unwrap());
    assert!(!q.needs_sync());
    assert!(!q.is_dirty());
    assert!(!q.maybe_sync().unwrap());
    // A roll always asks for a sync.
    let mut q = DiskQueue::open(s.clone(), "r", small()).unwrap();
    fill(&mut q, 10, 11, 84);
    assert!(q.needs_sync());
}

#[test]
fn sync_data_moves_synced_pos_past_appends() {
    let s = MemStorage::new();
    let mut q = open(&s);
    let end = q.append(b"x").unwrap();
    assert!(q.synced_pos() < end);
    q.sync_data().unwrap();
    assert!(q.synced_pos() >= end);
    // And it is enough to survive a crash without a meta write.
    drop(q);
    s.reboot();
    let mut q = open(&s);
    assert_eq!(q.read_next().unwrap().unwrap().data.as_ref(), b"x");
}

#[test]
fn data_sync_can_run_on_another_thread() {
    let dir = TempDir::new("datasync");
    let s = FileStorage::new(dir.path()).unwrap();
    let mut q = open(&s);
    let end = q.append(&payload(1, 100)).unwrap();
    let ds = q.begin_sync_data().unwrap().expect("real files offload");
    assert_eq!(ds.upto(), end);
    let (ds, res) = std::thread::spawn(move || {
        let r = ds.run();
        (ds, r)
    })
    .join()
    .unwrap();
    q.finish_sync_data(ds, res).unwrap();
    assert!(q.synced_pos() >= end);
    assert!(q.begin_sync_data().unwrap().is_none(), "nothing left");
}

#[test]
fn empty_drops_everything_durably() {
    let s = MemStorage::new();
    let mut q = open(&s);
    fill(&mut q, 0, 30, 84);
    let r = q.read_next().unwrap().unwrap();
    q.empty().unwrap();
    assert_eq!(q.depth(), 0);
    assert!(q.read_next().unwrap().is_none());
    // Positions from before are harmless.
    q.commit(r.next).unwrap();
    assert_eq!(q.segment_count(), 1);
    let segs = s.names().iter().filter(|n| n.ends_with(".seg")).count();
    assert_eq!(segs, 1);
    fill(&mut q, 100, 2, 10);
    q.sync().unwrap();
    drop(q);
    s.reboot();
    let mut q = open(&s);
    assert_eq!(drain(&mut q), vec![100, 101]);
}

#[test]
fn delete_removes_every_file_of_the_queue_only() {
    let s = MemStorage::new();
    let mut other = DiskQueue::open(s.clone(), "q.1", small()).unwrap();
    fill(&mut other, 0, 3, 10);
    let mut q = open(&s);
    fill(&mut q, 0, 30, 84);
    q.sync().unwrap();
    s.put_durable(&format::bad_name("q", 99), b"junk");
    q.delete().unwrap();
    assert!(
        s.names().iter().all(|n| n.starts_with("q.1.")),
        "{:?}",
        s.names()
    );
    assert_eq!(drain(&mut other), vec![0, 1, 2]);
}

/// The meta is removed last, and not at all if another file could not be
/// removed: a queue without a meta has no data left.
#[test]
fn delete_removes_the_meta_last() {
    let s = super::Faulty::new(MemStorage::new());
    let mut q = DiskQueue::open(s.clone(), "q", small()).unwrap();
    fill(&mut q, 0, 30, 84);
    q.sync().unwrap();
    s.arm(super::FaultOp::Remove, 0, super::Fault::Eio);
    assert!(q.delete().is_err());
    assert!(s.list().unwrap().contains(&super::meta_file("q")));
    let s = super::Faulty::new(MemStorage::new());
    let mut q = DiskQueue::open(s.clone(), "q", small()).unwrap();
    fill(&mut q, 0, 30, 84);
    q.sync().unwrap();
    let segments = s
        .list()
        .unwrap()
        .iter()
        .filter(|n| n.ends_with(".seg"))
        .count();
    assert!(segments > 1);
    // Every segment goes; removing the meta, the last, fails.
    s.arm(super::FaultOp::Remove, segments as u64, super::Fault::Eio);
    assert!(q.delete().is_err());
    assert_eq!(s.list().unwrap(), vec![super::meta_file("q")]);
}

/// Opening with a listing made beforehand finds the same queue, and a
/// queue known to have no file is created without listing.
#[test]
fn open_listed_matches_open() {
    let s = MemStorage::new();
    let mut q = DiskQueue::open_listed(s.clone(), "q", small(), &[]).unwrap();
    fill(&mut q, 0, 30, 84);
    q.sync().unwrap();
    drop(q);
    let files = s.list().unwrap();
    let mut q = DiskQueue::open_listed(s.clone(), "q", small(), &files).unwrap();
    assert_eq!(drain(&mut q), (0..30).collect::<Vec<_>>());
}

#[test]
fn record_larger_than_a_segment_gets_its_own() {
    let s = MemStorage::new();
    let mut q = open(&s);
    fill(&mut q, 0, 1, 10);
    fill(&mut q, 1, 1, 5000);
    fill(&mut q, 2, 1, 10);
    assert_eq!(drain(&mut q), vec![0, 1, 2]);
    q.sync().unwrap();
    drop(q);
    s.reboot();
    let mut q = open(&s);
    fill(&mut q, 3, 1, 3000);
    assert_eq!(drain(&mut q), vec![0, 1, 2, 3]);
}

#[test]
fn too_large_and_bad_names_and_options() {
    let s = MemStorage::new();
    let opts = Options {
        max_record_size: 100,
        ..small()
    };
    let mut q = DiskQueue::open(s.clone(), "q", opts).unwrap();
    assert!(matches!(
        q.append(&[0; 101]),
        Err(Error::TooLarge { len: 101, max: 100 })
    ));
    q.append(&[7; 100]).unwrap();
    q.append(b"").unwrap();
    assert_eq!(q.read_next().unwrap().unwrap().data.len(), 100);
    assert_eq!(
        q.read_next().unwrap().unwrap().data.len(),
        0,
        "empty records are records"
    );
    for bad in ["", "a/b", "a\0b"] {
        assert!(matches!(
            DiskQueue::open(s.clone(), bad, small()),
            Err(Error::BadName(_))
        ));
    }
    let tiny = Options {
        max_bytes_per_file: 16,
        ..small()
    };
    assert!(matches!(
        DiskQueue::open(s, "z", tiny),
        Err(Error::BadOptions(_))
    ));
}

#[test]
fn events_render_as_log_lines() {
    let e = Event::BadSegment {
        segment: 3,
        offset: 132,
        reason: "bad segment magic",
        renamed_to: Some("q.000000003.seg.bad".into()),
    };
    assert_eq!(
        e.to_string(),
        "segment 3 damaged at offset 132 (bad segment magic); renamed to q.000000003.seg.bad"
    );
}

#[test]
fn real_files_round_trip_in_every_mode() {
    use super::{ReadMode, WriteMode};
    let dir = TempDir::new("modes");
    for (i, (w, r)) in [
        (WriteMode::Pwrite, ReadMode::Pread),
        (WriteMode::Mmap, ReadMode::Mmap),
        (WriteMode::Mmap, ReadMode::Pread),
    ]
    .into_iter()
    .enumerate()
    {
        let s = FileStorage::new(dir.path().join(i.to_string()))
            .unwrap()
            .with_write_mode(w)
            .with_read_mode(r);
        let mut q = open(&s);
        fill(&mut q, 0, 50, 84);
        fill(&mut q, 50, 1, 4000);
        assert_eq!(drain(&mut q).len(), 51);
        q.sync().unwrap();
        drop(q);
        let mut q = open(&s);
        assert_eq!(drain(&mut q), (0..51).collect::<Vec<_>>());
        // Preallocated: each segment file is max_bytes_per_file long.
        let len = std::fs::metadata(s.dir().join(seg(2))).unwrap().len();
        assert_eq!(len, 1024);
        q.delete().unwrap();
        assert!(s.list().unwrap().is_empty());
    }
}

#[test]
fn append_batch_spans_segments_in_order() {
    let s = MemStorage::new();
    let mut q = open(&s);
    let recs: Vec<Vec<u8>> = (0..40).map(|i| payload(i, 84)).collect();
    let end = q.append_batch(&recs).unwrap();
    assert_eq!(end.seq, 40);
    assert_eq!(end, q.write_pos());
    assert!(q.segment_count() >= 4);
    let big = vec![vec![0u8; 10], vec![0u8; 200_000_000]];
    assert!(matches!(q.append_batch(&big), Err(Error::TooLarge { .. })));
    assert_eq!(q.write_pos().seq, 40, "nothing appended");
    q.sync().unwrap();
    drop(q);
    s.reboot();
    let mut q = open(&s);
    assert_eq!(drain(&mut q), (0..40).collect::<Vec<_>>());
}
