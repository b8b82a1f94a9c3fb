//! Splitting the input never changes what the decoder returns: a seeded,
//! stable-Rust version of `fuzz/fuzz_targets/decode_command.rs`, run over
//! generated streams of valid, truncated and corrupted commands.

use bytes::BytesMut;
use nsq_proto::command::encode;
use nsq_proto::frame::{self, decode_frame};
use nsq_proto::message::id_from_u64;
use nsq_proto::{decode_command, Command, ErrorCode, Limits};

#[derive(Debug, PartialEq)]
enum Outcome {
    /// All input decoded; what is left is an incomplete command.
    Done(Vec<Command>, Vec<u8>),
    /// Commands before the first error, and the error.
    Failed(Vec<Command>, ErrorCode, String),
}

fn run(chunks: &[&[u8]], limits: &Limits) -> Outcome {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match decode_command(&mut buf, limits) {
                Ok(Some(cmd)) => {
                    assert!(buf.len() < before, "a command must consume bytes");
                    out.push(cmd);
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "Ok(None) must consume nothing");
                    break;
                }
                Err(err) => return Outcome::Failed(out, err.code(), err.description()),
            }
        }
    }
    Outcome::Done(out, buf.to_vec())
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn random_stream(rng: &mut Rng) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let topics = ["t", "topic.a_b-c", "x!", "", "e#ephemeral"];
    for _ in 0..rng.below(12) + 1 {
        let topic = topics[rng.below(topics.len())];
        let body: Vec<u8> = (0..rng.below(120)).map(|i| i as u8).collect();
        match rng.below(14) {
            0 => encode::identify(&mut buf, br#"{"client_id":"c"}"#),
            1 => encode::auth(&mut buf, b"secret"),
            2 => encode::sub(&mut buf, topic, "ch"),
            3 => encode::pub_(&mut buf, topic, &body),
            4 => {
                let bodies: Vec<Vec<u8>> = (0..rng.below(4))
                    .map(|_| vec![b'm'; rng.below(110)])
                    .collect();
                encode::mpub(&mut buf, topic, &bodies);
            }
            5 => encode::dpub(&mut buf, topic, rng.below(4_000_000) as i64 - 10, &body),
            6 => encode::rdy(&mut buf, rng.below(60) as i64),
            7 => encode::fin(&mut buf, &id_from_u64(rng.next())),
            8 => encode::req(&mut buf, &id_from_u64(rng.next()), rng.below(100) as i64),
            9 => encode::touch(&mut buf, &id_from_u64(rng.next())),
            10 => encode::cls(&mut buf),
            11 => encode::nop(&mut buf),
            12 => buf.extend_from_slice(b"BOGUS cmd\r\n"),
            _ => buf.extend_from_slice(b"RDY\n"),
        }
    }
    let mut v = buf.to_vec();
    // Corrupt a few bytes, or cut the tail, some of the time.
    if rng.below(3) == 0 && !v.is_empty() {
        for _ in 0..rng.below(4) + 1 {
            let i = rng.below(v.len());
            v[i] = rng.next() as u8;
        }
    }
    if rng.below(4) == 0 && !v.is_empty() {
        let keep = rng.below(v.len());
        v.truncate(keep);
    }
    v
}

fn split_randomly<'a>(rng: &mut Rng, data: &'a [u8]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = (0..rng.below(8))
        .map(|_| rng.below(data.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for cut in cuts {
        chunks.push(&data[start..cut]);
        start = cut;
    }
    chunks.push(&data[start..]);
    chunks
}

#[test]
fn chunked_equals_whole_on_generated_streams() {
    let limits = Limits {
        max_msg_size: 100,
        max_body_size: 300,
        max_req_timeout_ms: 3_600_000,
        max_rdy_count: 50,
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut errors = 0;
    for _ in 0..3000 {
        let data = random_stream(&mut rng);
        let whole = run(&[&data], &limits);
        if matches!(whole, Outcome::Failed(..)) {
            errors += 1;
        }
        let chunks = split_randomly(&mut rng, &data);
        assert_eq!(run(&chunks, &limits), whole, "chunks {chunks:?}");
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(run(&bytes, &limits), whole);
    }
    // The generator must exercise both paths.
    assert!(errors > 300 && errors < 2700, "errors {errors}");
}

#[test]
fn decoders_never_panic_on_random_bytes() {
    let limits = Limits::default();
    let mut rng = Rng(42);
    for _ in 0..5000 {
        let len = rng.below(64);
        let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Bias towards real verbs so the parsers get past the first word.
        if rng.below(2) == 0 {
            let verbs: [&[u8]; 6] = [
                b"PUB t\n",
                b"MPUB t\n",
                b"RDY ",
                b"REQ ",
                b"DPUB t ",
                b"IDENTIFY\n",
            ];
            let mut v = verbs[rng.below(verbs.len())].to_vec();
            v.extend_from_slice(&data);
            data = v;
        }
        let _ = run(&[&data], &limits);
        let mut buf = BytesMut::from(&data[..]);
        while let Ok(Some(_)) = decode_frame(&mut buf, 1 << 20) {}
    }
}

#[test]
fn frames_chunked_equal_whole() {
    let mut rng = Rng(7);
    for _ in 0..500 {
        let mut buf = BytesMut::new();
        for _ in 0..rng.below(6) {
            match rng.below(4) {
                0 => frame::encode_response(&mut buf, b"OK"),
                1 => frame::encode_error(&mut buf, ErrorCode::Invalid, "bad"),
                2 => frame::encode_heartbeat(&mut buf),
                _ => frame::encode_message_frame(
                    &mut buf,
                    rng.next() as i64,
                    rng.next() as u16,
                    &id_from_u64(rng.next()),
                    &vec![1u8; rng.below(50)],
                ),
            }
        }
        let data = buf.to_vec();
        let decode = |chunks: &[&[u8]]| {
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for chunk in chunks {
                buf.extend_from_slice(chunk);
                while let Some(f) = decode_frame(&mut buf, 1024).unwrap() {
                    out.push(f);
                }
            }
            (out, buf.len())
        };
        let whole = decode(&[&data]);
        let chunks = split_randomly(&mut rng, &data);
        assert_eq!(decode(&chunks), whole);
        assert_eq!(whole.1, 0);
    }
}
