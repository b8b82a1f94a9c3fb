//! Tests of the go-diskqueue import. The Go side is written byte for byte as
//! go-diskqueue v1.1 (nsqd v1.3) writes it: `[len i32 BE][payload]` records,
//! a new file when a record would pass `maxBytesPerFile`, the reader's
//! rotation and file deletion, and the text meta file.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "nsqd-upgrade-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[derive(Debug, Clone)]
struct GoMsg {
    id: [u8; 16],
    ts: i64,
    attempts: u16,
    body: Vec<u8>,
}

/// `n` messages with distinct IDs (`tag` keeps sets apart) and bodies of
/// varying sizes.
fn go_msgs(tag: u8, n: usize) -> Vec<GoMsg> {
    (0..n)
        .map(|i| {
            let mut id = [0u8; 16];
            id.copy_from_slice(format!("{tag:02x}{i:014x}").as_bytes());
            GoMsg {
                id,
                ts: 1_700_000_000_000_000_000 + i as i64,
                attempts: (i % 4) as u16,
                body: format!("msg-{tag}-{i}-{}", "x".repeat(i % 97)).into_bytes(),
            }
        })
        .collect()
}

/// go-diskqueue's writer and reader positions, writing real files.
struct GoWriter {
    dir: PathBuf,
    name: String,
    max_bytes: i64,
    read_file: i64,
    read_pos: i64,
    write_file: i64,
    write_pos: i64,
    depth: i64,
    /// Unread records: (file, position, total bytes).
    unread: VecDeque<(i64, i64, i64)>,
}

impl GoWriter {
    fn new(dir: &Path, name: &str, max_bytes: i64) -> GoWriter {
        GoWriter {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            max_bytes,
            read_file: 0,
            read_pos: 0,
            write_file: 0,
            write_pos: 0,
            depth: 0,
            unread: VecDeque::new(),
        }
    }

    fn file(&self, n: i64) -> PathBuf {
        self.dir
            .join(format!("{}.diskqueue.{:06}.dat", self.name, n))
    }

    /// diskQueue.writeOne of nsqd's message encoding (Message.WriteTo).
    fn put(&mut self, m: &GoMsg) {
        let mut data = Vec::new();
        data.extend_from_slice(&(m.ts as u64).to_be_bytes());
        data.extend_from_slice(&m.attempts.to_be_bytes());
        data.extend_from_slice(&m.id);
        data.extend_from_slice(&m.body);
        let total = 4 + data.len() as i64;
        if self.write_pos > 0 && self.write_pos + total > self.max_bytes {
            self.write_file += 1;
            self.write_pos = 0;
        }
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.file(self.write_file))
            .unwrap();
        let mut rec = (data.len() as i32).to_be_bytes().to_vec();
        rec.extend_from_slice(&data);
        f.write_all(&rec).unwrap();
        self.unread
            .push_back((self.write_file, self.write_pos, total));
        self.write_pos += total;
        self.depth += 1;
    }

    fn put_all(&mut self, msgs: &[GoMsg]) {
        for m in msgs {
            self.put(m);
        }
    }

    /// readOne + moveForward `n` times: a file read past is deleted.
    fn consume(&mut self, n: usize) {
        for _ in 0..n {
            let (file, pos, total) = self.unread.pop_front().unwrap();
            assert_eq!((file, pos), (self.read_file, self.read_pos));
            let mut next = (file, pos + total);
            if file < self.write_file {
                let size = fs::metadata(self.file(file)).unwrap().len() as i64;
                if next.1 >= size {
                    next = (file + 1, 0);
                    fs::remove_file(self.file(file)).unwrap();
                }
            }
            (self.read_file, self.read_pos) = next;
            self.depth -= 1;
        }
    }

    /// persistMetaData's text.
    fn write_meta(&self) {
        fs::write(
            self.dir.join(format!("{}.diskqueue.meta.dat", self.name)),
            format!(
                "{}\n{},{}\n{},{}\n",
                self.depth, self.read_file, self.read_pos, self.write_file, self.write_pos
            ),
        )
        .unwrap();
    }
}

fn opts() -> Options {
    Options {
        max_bytes_per_file: 64 * 1024,
        ..Options::default()
    }
}

/// Every message in our disk queue `name`, in order.
fn read_ours(dir: &Path, name: &str) -> Vec<Message> {
    let mut b = Backend::open(dir, name, &opts()).unwrap();
    let mut out = Vec::new();
    while let Some(r) = b.read().unwrap() {
        out.push(r.msg);
    }
    out
}

fn assert_same(got: &[Message], want: &[GoMsg]) {
    assert_eq!(got.len(), want.len(), "message count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.id.0, w.id, "id of message {i}");
        assert_eq!(g.timestamp, w.ts, "timestamp of message {i}");
        assert_eq!(g.attempts(), w.attempts, "attempts of message {i}");
        assert_eq!(&g.body[..], &w.body[..], "body of message {i}");
        assert!(g.deliver_at().is_none());
    }
}

/// Files of `dir` (not folders), sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

fn go_files(dir: &Path) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|f| f.contains(".diskqueue."))
        .collect()
}

fn import(dir: &Path, topics: &mut Vec<TopicMeta>) -> Summary {
    run(dir, &opts(), topics, None).unwrap()
}

fn report<'a>(s: &'a Summary, name: &str) -> &'a QueueReport {
    s.reports.get(name).unwrap()
}

#[test]
fn file_names() {
    use GoFile::*;
    let cases: &[(&str, Option<(&str, GoFile)>)] = &[
        ("t.diskqueue.meta.dat", Some(("t", Meta))),
        ("t.diskqueue.000000.dat", Some(("t", Data(0)))),
        ("t:c.diskqueue.000012.dat", Some(("t:c", Data(12)))),
        ("t.diskqueue.1234567.dat", Some(("t", Data(1_234_567)))),
        ("t.diskqueue.000003.dat.bad", Some(("t", Bad(3)))),
        (
            "t.diskqueue.meta.dat.5577006791947779410.tmp",
            Some(("t", MetaTmp)),
        ),
        // A topic whose name contains ".diskqueue.".
        (
            "a.diskqueue.b.diskqueue.meta.dat",
            Some(("a.diskqueue.b", Meta)),
        ),
        (
            "a.diskqueue.meta.diskqueue.000001.dat",
            Some(("a.diskqueue.meta", Data(1))),
        ),
        ("nsqd.dat", None),
        ("t~0.000000001.seg", None),
        ("t~0.meta", None),
        ("t.diskqueue.x1.dat", None),
        ("t.diskqueue..dat", None),
        ("t.diskqueue.meta.dat.x.tmp", None),
        ("t.diskqueue.000001.dat.old", None),
    ];
    for (file, want) in cases {
        assert_eq!(parse_file_name(file), *want, "{file}");
    }
    assert_eq!(
        QueueId::from_go_name("t:c").unwrap().our_name(),
        "t:c~".to_string()
    );
    assert_eq!(QueueId::from_go_name("t").unwrap().our_name(), "t~0");
    assert!(QueueId::from_go_name("t#ephemeral").is_err());
    assert!(QueueId::from_go_name("t:c#ephemeral").is_err());
    assert!(QueueId::from_go_name("bad name").is_err());
    assert!(QueueId::from_go_name("t:c:d").is_err());
    assert!(QueueId::from_go_name("").is_err());
}

#[test]
fn meta_text() {
    assert_eq!(
        GoMeta::parse("232\n3,0\n6,2331\n"),
        Some(GoMeta {
            depth: 232,
            read_file: 3,
            read_pos: 0,
            write_file: 6,
            write_pos: 2331
        })
    );
    assert!(GoMeta::parse("0\n0,0\n0,0\n").unwrap().is_consistent());
    assert!(!GoMeta::parse("1\n2,0\n1,5\n").unwrap().is_consistent());
    assert!(!GoMeta::parse("1\n1,9\n1,5\n").unwrap().is_consistent());
    assert!(!GoMeta::parse("1\n-1,0\n1,5\n").unwrap().is_consistent());
    for bad in [
        "",
        "1\n",
        "1\n0,0\n",
        "x\n0,0\n0,0\n",
        "1\n0;0\n0,0\n",
        "1\n0,0\n0,0\njunk\n",
    ] {
        assert_eq!(GoMeta::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn journal_text() {
    let j = Journal {
        queue: "t:c".into(),
        into: "t:c~".into(),
        base: 42,
        max_len: 1_048_602,
        imported: false,
    };
    assert_eq!(Journal::decode(&j.encode()), Some(j.clone()));
    let done = Journal {
        imported: true,
        ..j.clone()
    };
    assert_eq!(Journal::decode(&done.encode()), Some(done));
    assert_eq!(Journal::decode("garbage"), None);
    assert_eq!(
        Journal::decode(&j.encode().replace("importing", "maybe")),
        None
    );
    let dir = TempDir::new("journal");
    fs::write(dir.0.join(JOURNAL_FILE), "edited by hand").unwrap();
    assert!(Journal::load(&dir.0).is_err());
}

#[test]
fn nothing_to_import_touches_nothing() {
    let dir = TempDir::new("none");
    let mut topics = Vec::new();
    let s = import(&dir.0, &mut topics);
    assert_eq!(s.queues, 0);
    assert!(topics.is_empty());
    assert!(files(&dir.0).is_empty());
    assert!(!dir.0.join(ASIDE_DIR).exists());
}

/// A topic queue spanning many files, none read yet.
#[test]
fn multi_file_topic_queue_in_order() {
    let dir = TempDir::new("multi");
    let msgs = go_msgs(1, 2000);
    let mut w = GoWriter::new(&dir.0, "orders", 4096);
    w.put_all(&msgs);
    w.write_meta();
    assert!(w.write_file >= 20, "spans {} files", w.write_file + 1);
    let before = go_files(&dir.0);

    let mut topics = Vec::new();
    let s = import(&dir.0, &mut topics);
    assert_eq!(s.queues, 1);
    assert_eq!(s.messages, 2000);
    let r = report(&s, "orders");
    assert_eq!(r.files_read, w.write_file as u64 + 1);
    assert_eq!(r.damaged_files, 0);
    assert_eq!(
        r.bytes,
        msgs.iter().map(|m| m.body.len() as u64).sum::<u64>()
    );
    assert_same(&read_ours(&dir.0, "orders~0"), &msgs);

    // Old files set aside, untouched; journal gone; topic in nsqd.dat.
    assert!(go_files(&dir.0).is_empty());
    assert_eq!(files(&dir.0.join(ASIDE_DIR)), before);
    assert!(!dir.0.join(JOURNAL_FILE).exists());
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].name, "orders");
    let saved = metadata::load(&dir.0).unwrap().unwrap().valid_topics();
    assert_eq!(saved[0].name, "orders");

    // A second start imports nothing more.
    let s = import(&dir.0, &mut topics);
    assert_eq!(s.queues, 0);
    assert_eq!(read_ours(&dir.0, "orders~0").len(), 2000);
}

/// A channel queue partly consumed: reading starts at readPos of readFileNum > 0.
#[test]
fn partially_read_channel_queue() {
    let dir = TempDir::new("partial");
    let msgs = go_msgs(2, 600);
    let mut w = GoWriter::new(&dir.0, "t:c", 2048);
    w.put_all(&msgs);
    w.consume(237);
    w.write_meta();
    assert!(
        w.read_file > 0 && w.read_pos > 0,
        "mid-file: {},{}",
        w.read_file,
        w.read_pos
    );
    assert!(!w.file(0).exists(), "consumed files are deleted by nsqd");

    let mut topics = vec![TopicMeta {
        name: "t".into(),
        paused: true,
        channels: Some(vec![ChannelMeta {
            name: "c".into(),
            paused: true,
        }]),
    }];
    let s = import(&dir.0, &mut topics);
    assert_eq!(s.messages, 363);
    assert_same(&read_ours(&dir.0, "t:c~"), &msgs[237..]);
    // Already listed: nothing added, nsqd.dat not rewritten, paused kept.
    assert_eq!(topics.len(), 1);
    assert!(topics[0].paused);
    assert!(!dir.0.join(metadata::FILE_NAME).exists());
}

/// nsqd with data in file N, consumed up to its end: read == write.
#[test]
fn empty_queue_creates_topic_and_sets_files_aside() {
    let dir = TempDir::new("empty");
    let msgs = go_msgs(3, 50);
    let mut w = GoWriter::new(&dir.0, "quiet", 1024);
    w.put_all(&msgs);
    w.consume(50);
    w.write_meta();
    assert_eq!(w.depth, 0);
    let mut topics = Vec::new();
    let s = import(&dir.0, &mut topics);
    assert_eq!(s.queues, 1);
    assert_eq!(s.messages, 0);
    // Nothing to read: no journal, no queue of ours, files only moved.
    assert!(!dir.0.join("quiet~0.meta").exists());
    assert!(!dir.0.join(JOURNAL_FILE).exists());
    assert!(read_ours(&dir.0, "quiet~0").is_empty());
    assert_eq!(topics.len(), 1);
    assert!(go_files(&dir.0).is_empty());
    assert!(!files(&dir.0.join(ASIDE_DIR)).is_empty());

    // A meta file alone (nsqd created the queue, never wrote).
    let dir = TempDir::new("empty2");
    fs::write(dir.0.join("t:c.diskqueue.meta.dat"), "0\n0,0\n0,0\n").unwrap();
    let mut topics = Vec::new();
    let s = import(&dir.0, &mut topics);
    assert_eq!((s.queues, s.messages), (1, 0));
    assert_eq!(topics[0].name, "t");
    assert_eq!(topics[0].channels.as_ref().unwrap()[0].name, "c");
}

/// Topic plus two channels, only one channel listed in nsqd.dat.
#[test]
fn topic_and_channels_missing_from_nsqd_dat_are_created() {
    let dir = TempDir::new("meta");
    let (a, b, t) = (go_msgs(4, 300), go_msgs(5, 200), go_msgs(6, 100));
    for (name, msgs) in [("ev:a", &a), ("ev:b", &b), ("ev", &t)] {
        let mut w = GoWriter::new(&dir.0, name, 8192);
        w.put_all(msgs);
        w.write_meta();
    }
    let mut topics = vec![
        TopicMeta {
            name: "ev".into(),
            paused: false,
            channels: Some(vec![ChannelMeta {
                name: "a".into(),
                paused: true,
            }]),
        },
        TopicMeta {
            name: "other".into(),
            paused: true,
            channels: Some(vec![]),
        },
    ];
    metadata::save(&dir.0, &Metadata::merge(vec![topics.clone()])).unwrap();
    let s = import(&dir.0, &mut topics);
    assert_eq!((s.queues, s.messages), (3, 600));
    assert_same(&read_ours(&dir.0, "ev:a~"), &a);
    assert_same(&read_ours(&dir.0, "ev:b~"), &b);
    assert_same(&read_ours(&dir.0, "ev~0"), &t);
    let saved = metadata::load(&dir.0).unwrap().unwrap().valid_topics();
    let ev = saved.iter().find(|t| t.name == "ev").unwrap();
    let chans: Vec<(&str, bool)> = ev
        .channels
        .iter()
        .flatten()
        .map(|c| (c.name.as_str(), c.paused))
        .collect();
    assert_eq!(chans, vec![("a", true), ("b", false)]);
    assert!(saved.iter().any(|t| t.name == "other" && t.paused));
}

/// The last record of the last file cut short (nsqd killed mid-write).
#[test]
fn truncated_last_record_keeps_the_rest() {
    let dir = TempDir::new("trunc");
    let msgs = go_msgs(7, 400);
    let mut w = GoWriter::new(&dir.0, "t", 4096);
    w.put_all(&msgs);
    w.write_meta();
    let last = w.file(w.write_file);
    let len = fs::metadata(&last).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let s = import(&dir.0, &mut Vec::new());
    assert_eq!(report(&s, "t").damaged_files, 1);
    assert_same(&read_ours(&dir.0, "t~0"), &msgs[..399]);

    // Cut inside the 4-byte length of a record.
    let dir = TempDir::new("trunc2");
    let mut w = GoWriter::new(&dir.0, "t", 1 << 20);
    w.put_all(&msgs[..10]);
    let (_, pos, _) = w.unread[9];
    fs::OpenOptions::new()
        .write(true)
        .open(w.file(0))
        .unwrap()
        .set_len(pos as u64 + 2)
        .unwrap();
    w.write_meta();
    let s = import(&dir.0, &mut Vec::new());
    assert_eq!(report(&s, "t").damaged_files, 1);
    assert_same(&read_ours(&dir.0, "t~0"), &msgs[..9]);
}

/// Overwrite the length of record `index` with `len`.
fn corrupt_length(w: &GoWriter, index: usize, len: [u8; 4]) -> i64 {
    let (file, pos, _) = w.unread[index];
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(w.file(file))
        .unwrap();
    f.seek(SeekFrom::Start(pos as u64)).unwrap();
    f.write_all(&len).unwrap();
    file
}

/// A corrupt length in the middle of a file: the messages before it in that
/// file are kept, the rest of that file is skipped, later files imported.
#[test]
fn corrupt_length_skips_the_rest_of_that_file_only() {
    for (tag, bad) in [
        (8u8, (-1i32).to_be_bytes()),       // negative
        (9, 0i32.to_be_bytes()),            // zeros
        (10, 25i32.to_be_bytes()),          // below the header
        (11, 0x7fff_0000i32.to_be_bytes()), // above --max-msg-size
    ] {
        let dir = TempDir::new("corrupt");
        let msgs = go_msgs(tag, 500);
        let mut w = GoWriter::new(&dir.0, "t:c", 4096);
        w.put_all(&msgs);
        w.write_meta();
        let file = corrupt_length(&w, 100, bad);
        let first_of_file = w.unread.iter().position(|r| r.0 == file).unwrap();
        let first_of_next = w.unread.iter().position(|r| r.0 == file + 1).unwrap();
        assert!(first_of_file < 100 && 100 < first_of_next);
        let s = import(&dir.0, &mut Vec::new());
        assert_eq!(report(&s, "t:c").damaged_files, 1, "length {bad:?}");
        let want: Vec<GoMsg> = msgs[..100]
            .iter()
            .chain(&msgs[first_of_next..])
            .cloned()
            .collect();
        assert_same(&read_ours(&dir.0, "t:c~"), &want);
        // The damaged file is set aside with the others, as it was.
        assert!(go_files(&dir.0).is_empty());
    }
}

/// A length that runs past the end of a file that is not the last.
#[test]
fn length_past_end_of_file() {
    let dir = TempDir::new("pastend");
    let msgs = go_msgs(12, 300);
    let mut w = GoWriter::new(&dir.0, "t", 4096);
    w.put_all(&msgs);
    w.write_meta();
    let next = w.unread.iter().position(|r| r.0 == 1).unwrap();
    // The last record of file 0 claims 4000 bytes: fits --max-msg-size,
    // not the file.
    corrupt_length(&w, next - 1, 4000i32.to_be_bytes());
    let s = import(&dir.0, &mut Vec::new());
    assert_eq!(report(&s, "t").damaged_files, 1);
    let want: Vec<GoMsg> = msgs[..next - 1]
        .iter()
        .chain(&msgs[next..])
        .cloned()
        .collect();
    assert_same(&read_ours(&dir.0, "t~0"), &want);
}

/// No meta file (nsqd killed before its first sync): every file from 0.
#[test]
fn no_meta_reads_every_file() {
    let dir = TempDir::new("nometa");
    let msgs = go_msgs(13, 300);
    let mut w = GoWriter::new(&dir.0, "t", 4096);
    w.put_all(&msgs);
    let s = import(&dir.0, &mut Vec::new());
    assert_eq!(s.messages, 300);
    assert_same(&read_ours(&dir.0, "t~0"), &msgs);

    // An unreadable meta is the same.
    let dir = TempDir::new("badmeta");
    let mut w = GoWriter::new(&dir.0, "t", 4096);
    w.put_all(&msgs);
    fs::write(dir.0.join("t.diskqueue.meta.dat"), "\0\0garbage").unwrap();
    let s = import(&dir.0, &mut Vec::new());
    assert_eq!(s.messages, 300);
}

/// A meta synced before the last writes: what lies past writePos is read
/// too (nsqd's own salvage), and files before readFileNum are not.
#[test]
fn stale_meta_and_leftover_files() {
    let dir = TempDir::new("stale");
    let msgs = go_msgs(14, 500);
    let mut w = GoWriter::new(&dir.0, "t", 4096);
    w.put_all(&msgs[..450]);
    w.consume(120);
    w.write_meta(); // synced here
    w.put_all(&msgs[450..]); // not in the meta
                             // A consumed file nsqd failed to delete, and a .bad file.
    let read_file = w.read_file;
    assert!(read_file >= 1);
    fs::write(w.file(read_file - 1), b"old consumed data").unwrap();
    fs::write(
        dir.0
            .join(format!("t.diskqueue.{:06}.dat.bad", read_file - 1)),
        b"bad",
    )
    .unwrap();
    fs::write(dir.0.join("t.diskqueue.meta.dat.123.tmp"), b"1\n").unwrap();
    let s = import(&dir.0, &mut Vec::new());
    assert_same(&read_ours(&dir.0, "t~0"), &msgs[120..]);
    assert_eq!(report(&s, "t").damaged_files, 0);
    assert!(go_files(&dir.0).is_empty(), "leftovers set aside too");
}

/// Ephemeral and invalid names: left where they are, not imported.
#[test]
fn ephemeral_and_invalid_names_left_alone() {
    let dir = TempDir::new("eph");
    let msgs = go_msgs(15, 10);
    for name in ["t#ephemeral", "t:c#ephemeral", "bad$name"] {
        let mut w = GoWriter::new(&dir.0, name, 4096);
        w.put_all(&msgs);
        w.write_meta();
    }
    let before = go_files(&dir.0);
    let mut topics = Vec::new();
    let s = import(&dir.0, &mut topics);
    assert_eq!(s.queues, 0);
    assert!(topics.is_empty());
    assert_eq!(go_files(&dir.0), before);
}

/// A message larger than our --max-msg-size is treated as corrupt, as nsqd
/// with the same flag would.
#[test]
fn message_over_max_msg_size() {
    let dir = TempDir::new("big");
    let mut msgs = go_msgs(16, 5);
    msgs[2].body = vec![b'b'; 2000];
    let mut w = GoWriter::new(&dir.0, "t", 1 << 20);
    w.put_all(&msgs);
    w.write_meta();
    let mut o = opts();
    o.max_msg_size = 1000;
    let s = run(&dir.0, &o, &mut Vec::new(), None).unwrap();
    assert_eq!(report(&s, "t").damaged_files, 1);
    assert_same(&read_ours(&dir.0, "t~0"), &msgs[..2]);
}

/// Killed at each step of a queue's import, then started again: every
/// message exactly once, in order, in both queues; also into a destination
/// that already held messages.
#[test]
fn crash_at_any_step_then_restart_imports_exactly_once() {
    let crashes = [
        Crash::AfterJournal,
        Crash::AfterMessages(1),
        Crash::AfterMessages(1024),
        Crash::AfterMessages(1500),
        Crash::AfterMessages(2999),
        Crash::BeforeImportedMark,
        Crash::AfterMoves(0),
        Crash::AfterMoves(3),
        Crash::BeforeJournalRemoved,
    ];
    for existing in [false, true] {
        for crash in crashes {
            let dir = TempDir::new("crash");
            let first = go_msgs(17, 3000);
            let second = go_msgs(18, 700);
            let mut w = GoWriter::new(&dir.0, "t:a", 16 * 1024);
            w.put_all(&first);
            w.write_meta();
            let mut w = GoWriter::new(&dir.0, "t:b", 16 * 1024);
            w.put_all(&second);
            w.write_meta();
            let mut ours = Vec::new();
            if existing {
                // Messages already in our queue of t:a (our own earlier run).
                let mut b = Backend::open(&dir.0, "t:a~", &opts()).unwrap();
                let old = go_msgs(19, 50);
                let batch: Vec<Message> = old
                    .iter()
                    .map(|m| {
                        Message::published_at(MessageId(m.id), m.body.clone().into(), None, m.ts)
                            .with_attempts(m.attempts)
                    })
                    .collect();
                b.put_batch(&batch).unwrap();
                b.sync().unwrap();
                ours = old;
            }
            let mut topics = Vec::new();
            let err = run(&dir.0, &opts(), &mut topics, Some(crash)).unwrap_err();
            assert!(err.to_string().contains("simulated"), "{crash:?}: {err:#}");
            assert!(dir.0.join(JOURNAL_FILE).exists(), "{crash:?}");

            // As the server does: what nsqd.dat says, written before the crash.
            let mut topics = metadata::load(&dir.0).unwrap().unwrap().valid_topics();
            let s = import(&dir.0, &mut topics);
            let want: Vec<GoMsg> = ours.iter().chain(&first).cloned().collect();
            assert_same(&read_ours(&dir.0, "t:a~"), &want);
            assert_same(&read_ours(&dir.0, "t:b~"), &second);
            assert!(!dir.0.join(JOURNAL_FILE).exists(), "{crash:?}");
            assert!(go_files(&dir.0).is_empty(), "{crash:?}");
            if let Crash::AfterMessages(n) = crash {
                assert_eq!(report(&s, "t:a").resumed, n, "{crash:?}");
            }
            let names: Vec<&str> = topics[0]
                .channels
                .iter()
                .flatten()
                .map(|c| c.name.as_str())
                .collect();
            assert_eq!(names, vec!["a", "b"]);
            // And once more: nothing new.
            let s = import(&dir.0, &mut topics);
            assert_eq!(s.messages, 0);
            assert_eq!(read_ours(&dir.0, "t:a~").len(), want.len());
        }
    }
}

/// Files already in the aside folder (an earlier upgrade) are not
/// overwritten.
#[test]
fn aside_names_never_clobber() {
    let dir = TempDir::new("clobber");
    let msgs = go_msgs(20, 10);
    for round in 0..3 {
        let mut w = GoWriter::new(&dir.0, "t", 1 << 20);
        w.put_all(&msgs);
        w.write_meta();
        import(&dir.0, &mut Vec::new());
        assert_eq!(files(&dir.0.join(ASIDE_DIR)).len(), 2 * (round + 1));
    }
    assert_eq!(read_ours(&dir.0, "t~0").len(), 30);
}

/// Only files nsqd itself set aside (`.bad`) and a cut meta write: moved,
/// nothing imported, no topic created.
#[test]
fn leftovers_only_are_moved() {
    let dir = TempDir::new("leftovers");
    fs::write(dir.0.join("gone.diskqueue.000004.dat.bad"), b"junk").unwrap();
    fs::write(dir.0.join("gone.diskqueue.meta.dat.42.tmp"), b"1\n").unwrap();
    let mut topics = Vec::new();
    let s = import(&dir.0, &mut topics);
    assert_eq!((s.queues, s.messages), (0, 0));
    assert!(topics.is_empty());
    assert!(go_files(&dir.0).is_empty());
    assert_eq!(files(&dir.0.join(ASIDE_DIR)).len(), 2);
}

/// A journal whose queue's files were removed by hand: dropped, the other
/// queues imported.
#[test]
fn journal_for_a_vanished_queue() {
    let dir = TempDir::new("vanished");
    let msgs = go_msgs(21, 20);
    let mut w = GoWriter::new(&dir.0, "t", 4096);
    w.put_all(&msgs);
    w.write_meta();
    Journal {
        queue: "gone".into(),
        into: "gone~0".into(),
        base: 0,
        max_len: 1000,
        imported: false,
    }
    .store(&dir.0)
    .unwrap();
    let s = import(&dir.0, &mut Vec::new());
    assert_eq!(s.messages, 20);
    assert!(!dir.0.join(JOURNAL_FILE).exists());
    assert_same(&read_ours(&dir.0, "t~0"), &msgs);
}
