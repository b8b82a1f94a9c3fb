//! Damage on disk and what recovery and the reader make of it: flipped
//! bytes, torn tails, garbage segments, truncated files, a lost or damaged
//! meta, and random damage of every kind (never a panic, never a loop).

use super::test_util::{drain, fill, open, payload, rec_size, seg, seq_of, Rng};
use super::{format, DiskQueue, Event, MemStorage, Storage};

/// Segment header size.
const H: usize = 32;
/// Body length used below: a record is exactly 100 bytes, 9 per segment.
const L: usize = 84;

fn rec_at(i: usize) -> usize {
    H + i * rec_size(L)
}

fn zero_durable(s: &MemStorage, name: &str, from: usize, to: usize) {
    let mut c = s.contents(name).expect("file exists");
    c[from..to].fill(0);
    s.put_durable(name, &c);
}

#[test]
fn flipped_byte_in_a_synced_record_is_skipped_and_counted() {
    let s = MemStorage::new();
    let mut q = open(&s);
    fill(&mut q, 0, 20, L);
    q.sync().unwrap();
    drop(q);
    assert!(s.flip_byte(&seg(1), rec_at(3) + 26, 0x01));
    let mut q = open(&s);
    assert_eq!(q.depth(), 20);
    let want: Vec<u64> = (0..20).filter(|&x| x != 3).collect();
    assert_eq!(drain(&mut q), want);
    assert_eq!(q.stats().corrupt_records, 1);
    assert_eq!(q.stats().depth_resyncs, 0);
    assert_eq!(q.depth(), 0);
    let ev = q.drain_events();
    assert!(ev.contains(&Event::CorruptRecord {
        segment: 1,
        offset: rec_at(3) as u64,
        len: (L + 8) as u32
    }));
}

#[test]
fn flipped_length_field_is_caught_by_the_checksum() {
    let s = MemStorage::new();
    let mut q = open(&s);
    fill(&mut q, 0, 27, L);
    q.sync().unwrap();
    drop(q);
    // Record 2 of segment 2 claims 4 bytes fewer than it has: the checksum
    // fails and no record boundary follows, so the rest of the segment
    // cannot be framed: it is set aside and segment 3 is read.
    assert!(s.flip_byte(&seg(2), rec_at(2), 0x04));
    let mut q = open(&s);
    let got = drain(&mut q);
    let want: Vec<u64> = (0..11).chain(18..27).collect();
    assert_eq!(got, want);
    assert_eq!(q.stats().bad_segments, 1);
    assert!(s.names().contains(&format::bad_name("q", 2)));
}

#[test]
fn flipped_byte_in_the_unsynced_tail_keeps_the_records_after_it() {
    let s = MemStorage::new();
    let mut q = open(&s);
    fill(&mut q, 0, 5, L);
    q.sync_data().unwrap(); // data durable, meta still at the start
    drop(q);
    assert!(s.flip_byte(&seg(1), rec_at(2) + 40, 0x80));
    let mut q = open(&s);
    assert_eq!(
        q.stats().torn_tails,
        0,
        "a valid record follows: not a torn tail"
    );
    assert_eq!(drain(&mut q), vec![0, 1, 3, 4]);
    assert_eq!(q.stats().corrupt_records, 1);
}

#[test]
fn torn_tail_is_cut_and_appending_continues_cleanly() {
    let s = MemStorage::new();
    let mut q = open(&s);
    fill(&mut q, 0, 8, L);
    q.sync_data().unwrap();
    drop(q);
    // The second half of record 7 never reached the disk.
    zero_durable(&s, &seg(1), rec_at(7) + 50, rec_at(8));
    let mut q = open(&s);
    assert_eq!(q.stats().torn_tails, 1);
    assert!(q.drain_events().contains(&Event::TornTail {
        segment: 1,
        offset: rec_at(7) as u64
    }));
    assert_eq!(q.depth(), 7);
    fill(&mut q, 100, 3, L);
    q.sync().unwrap();
    drop(q);
    let mut q = open(&s);
    assert_eq!(drain(&mut q), vec![0, 1, 2, 3, 4, 5, 6, 100, 101, 102]);
    assert_eq!(q.stats().corrupt_records, 0);
}

#[test]
fn stale_bytes_past_a_cut_never_come_back() {
    let s = MemStorage::new();
    let mut q = open(&s);
    fill(&mut q, 0, 4, L);
    q.sync_data().unwrap();
    drop(q);
    // Record 1 lost (a hole), records 2 and 3 survived behind it.
    zero_durable(&s, &seg(1), rec_at(1), rec_at(2));
    let mut q = open(&s);
    // A record of the same size lands exactly where record 1 was; records 2
    // and 3 must not reappear behind it.
    fill(&mut q, 50, 1, L);
    q.sync_data().unwrap();
    drop(q);
    let mut q = open(&s);
    assert_eq!(drain(&mut q), vec![0, 50]);
}

#[test]
fn garbage_segment_is_set_aside_and_reading_goes_on() {
    for variant in 0..3 {
        let s = MemStorage::new();
        let mut q = open(&s);
        fill(&mut q, 0, 27, L);
        q.sync().unwrap();
        drop(q);
        let mut c = s.contents(&seg(2)).unwrap();
        let mut rng = Rng::new(variant);
        let from = match variant {
            0 => 0,         // the header too
            1 => H,         // valid header, garbage records
            _ => rec_at(4), // garbage from the middle on
        };
        for b in &mut c[from..] {
            *b = rng.next() as u8;
        }
        s.put_durable(&seg(2), &c);
        let mut q = open(&s);
        let got = drain(&mut q);
        let kept = if variant == 2 { 4 } else { 0 };
        let want: Vec<u64> = (0..9 + kept).chain(18..27).collect();
        assert_eq!(got, want, "variant {variant}");
        assert_eq!(q.stats().bad_segments, 1, "variant {variant}");
        assert!(s.names().contains(&format::bad_name("q", 2)));
        assert!(!s.names().contains(&seg(2)));
        // The .bad file stays out of the way from then on.
        q.commit(q.read_pos()).unwrap();
        fill(&mut q, 100, 2, L);
        q.sync().unwrap();
        drop(q);
        let mut q = open(&s);
        assert_eq!(drain(&mut q), vec![100, 101]);
    }
}

#[test]
fn truncated_sealed_segment_yields_what_is_left() {
    let s = MemStorage::new();
    let mut q = open(&s);
    fill(&mut q, 0, 27, L);
    q.sync().unwrap();
    drop(q);
    assert!(s.truncate_durable(&seg(2), rec_at(4) + 50));
    let mut q = open(&s);
    let want: Vec<u64> = (0..13).chain(18..27).collect();
    assert_eq!(drain(&mut q), want);
    assert_eq!(q.stats().bad_segments, 1);
    assert_eq!(q.depth(), 0);
}

#[test]
fn truncated_on_a_record_boundary_is_just_a_shorter_segment() {
    let s = MemStorage::new();
    let mut q = open(&s);
    fill(&mut q, 0, 27, L);
    q.sync().unwrap();
    drop(q);
    assert!(s.truncate_durable(&seg(2), rec_at(4)));
    let mut q = open(&s);
    let want: Vec<u64> = (0..13).chain(18..27).collect();
    assert_eq!(drain(&mut q), want);
    // Five records fewer than counted: depth is corrected at the end.
    assert_eq!(q.stats().depth_resyncs, 1);
    assert_eq!(q.depth(), 0);
}

#[test]
fn damaged_meta_replays_from_the_oldest_segment() {
    let s = MemStorage::new();
    let mut q = open(&s);
    fill(&mut q, 0, 20, L);
    let mut last = None;
    for _ in 0..10 {
        last = q.read_next().unwrap();
    }
    q.commit(last.unwrap().next).unwrap();
    q.sync().unwrap();
    assert!(!s.names().contains(&seg(1)), "consumed segment removed");
    drop(q);
    assert!(s.flip_byte(&format::meta_name("q"), 20, 0x01));
    let mut q = open(&s);
    assert_eq!(q.stats().meta_invalid, 1);
    // Records 9.. live in segment 2 onwards: all of them come back, the
    // committed ones of segment 2 as duplicates.
    assert_eq!(drain(&mut q), (9..20).collect::<Vec<_>>());
}

#[test]
fn lost_meta_loses_nothing() {
    let s = MemStorage::new();
    let mut q = open(&s);
    fill(&mut q, 0, 20, L);
    q.sync_data().unwrap();
    drop(q);
    s.remove(&format::meta_name("q")).unwrap();
    s.sync_dir().unwrap();
    let mut q = open(&s);
    assert_eq!(q.depth(), 20);
    assert_eq!(drain(&mut q), (0..20).collect::<Vec<_>>());
}

#[test]
fn consumed_segment_resurrected_by_a_crash_is_removed() {
    let s = MemStorage::new();
    let mut q = open(&s);
    fill(&mut q, 0, 20, L);
    let mut last = None;
    for _ in 0..12 {
        last = q.read_next().unwrap();
    }
    q.commit(last.unwrap().next).unwrap();
    // Meta durable, segment 1 removed, but put it back as a crash can
    // (its removal was never made durable).
    let before = s.contents(&seg(1)).unwrap();
    q.sync().unwrap();
    drop(q);
    s.put_durable(&seg(1), &before);
    let mut q = open(&s);
    assert_eq!(q.stats().stray_segments, 1);
    assert!(!s.names().contains(&seg(1)));
    assert_eq!(drain(&mut q), (12..20).collect::<Vec<_>>());
}

#[test]
fn missing_middle_segment_is_skipped() {
    let s = MemStorage::new();
    let mut q = open(&s);
    fill(&mut q, 0, 27, L);
    q.sync().unwrap();
    drop(q);
    s.remove(&seg(2)).unwrap();
    let mut q = open(&s);
    let want: Vec<u64> = (0..9).chain(18..27).collect();
    assert_eq!(drain(&mut q), want);
}

/// Random damage of every kind to every file, then open and read: no
/// panic, no endless loop, only intact records, in order.
#[test]
fn random_damage_never_panics_or_loops() {
    for seed in 0..300u64 {
        let mut rng = Rng::new(seed);
        let s = MemStorage::new();
        let mut q = open(&s);
        let n = 10 + rng.below(60);
        for seq in 0..n {
            q.append(&payload(seq, rng.below(300) as usize)).unwrap();
        }
        if rng.below(2) == 0 {
            let _ = q.read_next().unwrap();
        }
        if rng.below(2) == 0 {
            q.sync().unwrap();
        } else {
            q.sync_data().unwrap();
        }
        drop(q);
        for _ in 0..1 + rng.below(4) {
            let names = s.names();
            let name = &names[rng.below(names.len() as u64) as usize];
            let mut c = s.contents(name).unwrap();
            if c.is_empty() {
                continue;
            }
            let at = rng.below(c.len() as u64) as usize;
            let to = (at + 1 + rng.below(200) as usize).min(c.len());
            match rng.below(4) {
                0 => c[at] ^= 1 << rng.below(8),
                1 => c[at..to].iter_mut().for_each(|b| *b = rng.next() as u8),
                2 => c.truncate(at),
                _ => c[at..to].fill(0),
            }
            s.put_durable(name, &c);
        }
        let mut q = DiskQueue::open(s.clone(), "q", super::test_util::small())
            .unwrap_or_else(|e| panic!("seed {seed}: open: {e}"));
        let mut last = None;
        let mut reads = 0;
        while let Some(r) = q
            .read_next()
            .unwrap_or_else(|e| panic!("seed {seed}: read: {e}"))
        {
            let seq =
                seq_of(&r.data).unwrap_or_else(|| panic!("seed {seed}: damaged body delivered"));
            assert!(last.is_none_or(|l| seq > l), "seed {seed}: out of order");
            last = Some(seq);
            reads += 1;
            assert!(reads <= n, "seed {seed}: more records than appended");
        }
        assert_eq!(q.depth(), 0);
        // Still a working queue.
        q.append(&payload(1000, 10)).unwrap();
        q.sync().unwrap();
        drop(q);
        let mut q = open(&s);
        let rest = drain(&mut q);
        assert_eq!(rest.last(), Some(&1000), "seed {seed}");
    }
}
