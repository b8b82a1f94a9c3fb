//! Each injected fault on its own: short write, ENOSPC (write, fallocate,
//! create), fsync failure, flipped byte on write, truncated file at open.

use super::test_util::{drain, fill, open, payload, seg, small};
use super::{format, DiskQueue, Fault, FaultOp, Faulty, MemStorage};

type Fs = Faulty<MemStorage>;

fn faulty() -> Fs {
    Faulty::new(MemStorage::new())
}

#[test]
fn short_write_is_completed() {
    let s = faulty();
    let mut q = open(&s);
    s.arm(FaultOp::Write, 0, Fault::ShortWrite);
    fill(&mut q, 0, 3, 200);
    assert_eq!(s.fired(), 1);
    assert_eq!(drain(&mut q), vec![0, 1, 2]);
    q.sync().unwrap();
    drop(q);
    s.inner().reboot();
    let mut q = open(&s);
    assert_eq!(drain(&mut q), vec![0, 1, 2]);
}

#[test]
fn enospc_on_write_fails_that_append_only() {
    let s = faulty();
    let mut q = open(&s);
    fill(&mut q, 0, 2, 50);
    s.arm(FaultOp::Write, 0, Fault::NoSpace);
    let err = q.append(&payload(2, 50)).unwrap_err();
    assert!(err.is_no_space(), "{err}");
    fill(&mut q, 3, 2, 50);
    assert_eq!(q.depth(), 4);
    assert_eq!(drain(&mut q), vec![0, 1, 3, 4]);
}

#[test]
fn enospc_at_roll_is_an_error_and_leaves_no_file() {
    let s = faulty();
    let mut q = open(&s);
    fill(&mut q, 0, 9, 84); // segment 1 is full
    let before = s.inner().names();
    s.arm(FaultOp::Allocate, 0, Fault::NoSpace);
    let err = q.append(&payload(9, 84)).unwrap_err();
    assert!(err.is_no_space(), "{err}");
    assert_eq!(s.inner().names(), before, "no half-made segment left");
    // Creating the file itself can fail the same way.
    s.arm(FaultOp::Create, 0, Fault::NoSpace);
    assert!(q.append(&payload(9, 84)).unwrap_err().is_no_space());
    // Space is back: the queue carries on.
    fill(&mut q, 10, 3, 84);
    assert_eq!(drain(&mut q), vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12]);
    q.commit(q.read_pos()).unwrap();
    q.sync().unwrap();
    drop(q);
    s.inner().reboot();
    let mut q = open(&s);
    assert_eq!(drain(&mut q), Vec::<u64>::new());
}

#[test]
fn enospc_at_open_still_opens_for_draining() {
    let s = faulty();
    let mut q = open(&s);
    fill(&mut q, 0, 9, 84);
    q.sync().unwrap();
    drop(q);
    // Reopening preallocates the active segment again: no room.
    s.arm(FaultOp::Allocate, 0, Fault::NoSpace);
    s.arm(FaultOp::Allocate, 0, Fault::NoSpace);
    let mut q = open(&s);
    assert_eq!(s.pending(), 0);
    assert_eq!(drain(&mut q), (0..9).collect::<Vec<_>>());
    // Space is back: the next append makes the segment it needs.
    let end = q.append(&payload(9, 84)).unwrap();
    assert_eq!(end.segment, 2);
    assert_eq!(drain(&mut q), vec![9]);
}

#[test]
fn short_write_then_enospc_leaves_no_false_corruption() {
    let s = faulty();
    let mut q = open(&s);
    fill(&mut q, 0, 1, 300);
    s.arm(FaultOp::Write, 0, Fault::ShortWrite);
    s.arm(FaultOp::Write, 0, Fault::NoSpace);
    assert!(q.append(&payload(1, 600)).unwrap_err().is_no_space());
    // The next record does not fit: the segment is sealed with half a
    // record lying past its end.
    fill(&mut q, 2, 1, 700);
    assert_eq!(drain(&mut q), vec![0, 2]);
    assert_eq!(q.stats().corrupt_records, 0);
    q.sync().unwrap();
    drop(q);
    s.inner().reboot();
    let mut q = open(&s);
    assert_eq!(drain(&mut q), vec![0, 2]);
    assert_eq!(q.stats().corrupt_records + q.stats().bad_segments, 0);
}

#[test]
fn fsync_failure_is_reported_and_the_next_append_rolls() {
    let s = faulty();
    let mut q = open(&s);
    fill(&mut q, 0, 3, 50);
    s.arm(FaultOp::SyncData, 0, Fault::Eio);
    assert!(q.sync().is_err());
    assert_eq!(q.stats().sync_failures, 1);
    assert!(q
        .drain_events()
        .iter()
        .any(|e| matches!(e, super::Event::SyncFailed { .. })));
    let seg_before = q.write_pos().segment;
    let end = q.append(&payload(3, 50)).unwrap();
    assert_eq!(
        end.segment,
        seg_before + 1,
        "data after a failed fsync goes to a new segment"
    );
    q.sync().unwrap();
    assert!(q.synced_pos() >= end);
    drop(q);
    s.inner().reboot();
    let mut q = open(&s);
    assert_eq!(drain(&mut q), vec![0, 1, 2, 3]);
}

#[test]
fn fsync_failure_at_roll_fails_the_append() {
    let s = faulty();
    let mut q = open(&s);
    fill(&mut q, 0, 9, 84);
    s.arm(FaultOp::SyncData, 0, Fault::Eio);
    assert!(q.append(&payload(9, 84)).is_err());
    fill(&mut q, 10, 1, 84);
    assert_eq!(q.write_pos().segment, 2);
    assert_eq!(drain(&mut q), vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 10]);
}

#[test]
fn failed_meta_write_keeps_the_old_meta() {
    let s = faulty();
    let mut q = open(&s);
    fill(&mut q, 0, 5, 50);
    let mut last = None;
    for _ in 0..3 {
        last = q.read_next().unwrap();
    }
    q.commit(last.unwrap().next).unwrap();
    s.arm(FaultOp::Rename, 0, Fault::Eio);
    assert!(q.sync().is_err());
    drop(q);
    s.inner().reboot();
    let mut q = open(&s);
    // Data was synced before the meta step failed; the commit was not.
    assert_eq!(drain(&mut q), vec![0, 1, 2, 3, 4]);
    assert!(!s.inner().names().contains(&format::meta_tmp_name("q")));
}

#[test]
fn flipped_byte_on_write_is_skipped_and_counted() {
    let s = faulty();
    let mut q = open(&s);
    fill(&mut q, 0, 2, 100);
    s.arm(FaultOp::Write, 0, Fault::FlipByte);
    fill(&mut q, 2, 3, 100);
    assert_eq!(drain(&mut q), vec![0, 1, 3, 4]);
    assert_eq!(q.stats().corrupt_records, 1);
    q.sync().unwrap();
    drop(q);
    let mut q = open(&s);
    assert_eq!(drain(&mut q), vec![0, 1, 3, 4]);
}

#[test]
fn truncated_meta_at_open_replays_everything() {
    let s = faulty();
    let mut q = open(&s);
    fill(&mut q, 0, 5, 50);
    q.sync().unwrap();
    drop(q);
    // The first file open() opens is the meta.
    s.arm(FaultOp::Open, 0, Fault::Truncate);
    let mut q = open(&s);
    assert_eq!(q.stats().meta_invalid, 1);
    assert_eq!(drain(&mut q), vec![0, 1, 2, 3, 4]);
}

#[test]
fn truncated_segment_at_read_time() {
    let s = faulty();
    let mut q = DiskQueue::open(s.clone(), "q", small()).unwrap();
    fill(&mut q, 0, 27, 84);
    q.sync().unwrap();
    drop(q);
    let mut q = open(&s);
    let opens = s.count(FaultOp::Open);
    // The reader's next open is segment 1: it comes back half as long.
    s.arm(FaultOp::Open, 0, Fault::Truncate);
    let got = drain(&mut q);
    assert_eq!(s.count(FaultOp::Open), opens + 3);
    assert_eq!(got[..4], [0, 1, 2, 3]);
    assert!(got.ends_with(&(9..27).collect::<Vec<_>>()));
}

#[test]
fn read_error_leaves_the_cursor_in_place() {
    let s = faulty();
    let mut q = open(&s);
    fill(&mut q, 0, 3, 50);
    s.arm(FaultOp::Read, 0, Fault::Eio);
    assert!(q.read_next().is_err());
    assert_eq!(drain(&mut q), vec![0, 1, 2]);
}

#[test]
fn open_errors_are_errors_and_retry_works() {
    let s = faulty();
    let mut q = open(&s);
    fill(&mut q, 0, 4, 50);
    q.sync_data().unwrap();
    drop(q);
    for op in [
        FaultOp::Read,
        FaultOp::Truncate,
        FaultOp::SyncDir,
        FaultOp::SyncData,
    ] {
        s.arm(op, 0, Fault::Eio);
        assert!(DiskQueue::open(s.clone(), "q", small()).is_err(), "{op:?}");
        assert_eq!(s.pending(), 0, "{op:?} did not fire");
    }
    let mut q = open(&s);
    assert_eq!(drain(&mut q), vec![0, 1, 2, 3]);
    assert!(s.inner().names().contains(&seg(1)));
}
