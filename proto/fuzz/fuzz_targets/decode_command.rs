//! Command decoding never panics, and splitting the input at arbitrary
//! points never changes the result (nats-server `FuzzParser` style).
//!
//! Input: `[flags][cut positions: 2 bytes each][stream]`. `flags` bit 0
//! picks small limits (so size errors are reachable) or nsqd's defaults;
//! bits 1-3 give the number of cuts. Every decoded command is also
//! re-encoded with `command::encode` and must decode to itself.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use nsq_proto::command::encode;
use nsq_proto::frame::encode_proto_error;
use nsq_proto::{decode_command, Command, ErrorCode, Limits};

#[derive(Debug, PartialEq)]
enum Outcome {
    Done(Vec<Command>, Vec<u8>),
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
                Err(err) => {
                    let mut frame = BytesMut::new();
                    encode_proto_error(&mut frame, &err);
                    let _ = err.verb();
                    let _ = err.topic();
                    return Outcome::Failed(out, err.code(), err.description());
                }
            }
        }
    }
    Outcome::Done(out, buf.to_vec())
}

fn encode(cmd: &Command, buf: &mut BytesMut) -> bool {
    match cmd {
        Command::Identify { body } => encode::identify(buf, body),
        Command::Auth { body } => encode::auth(buf, body),
        Command::Sub { topic, channel } => encode::sub(buf, topic, channel),
        Command::Pub { topic, body } => encode::pub_(buf, topic, body),
        Command::Mpub { topic, bodies } => encode::mpub(buf, topic, bodies),
        Command::Dpub {
            topic,
            defer_ms,
            body,
        } => encode::dpub(buf, topic, *defer_ms, body),
        Command::Rdy { count } => encode::rdy(buf, *count),
        // An ID ending in '\r' (from "FIN <15 bytes>\r\r\n") would lose that
        // byte to the optional-'\r' rule when re-encoded.
        Command::Fin { id } | Command::Touch { id } if id.0[15] == b'\r' => return false,
        Command::Fin { id } => encode::fin(buf, id),
        Command::Touch { id } => encode::touch(buf, id),
        // Negative REQ timeouts only come from nsqd's wrapping arithmetic
        // and cannot be written back as digits.
        Command::Req { timeout_ms, .. } if *timeout_ms < 0 => return false,
        Command::Req { id, timeout_ms } => encode::req(buf, id, *timeout_ms),
        Command::Cls => encode::cls(buf),
        Command::Nop => encode::nop(buf),
    }
    true
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let limits = if flags & 1 == 0 {
        Limits {
            max_msg_size: 100,
            max_body_size: 1000,
            max_req_timeout_ms: 3_600_000,
            max_rdy_count: 50,
        }
    } else {
        Limits::default()
    };
    let ncuts = usize::from((flags >> 1) & 7);
    let (cut_bytes, stream) = rest.split_at((ncuts * 2).min(rest.len()));
    let mut cuts: Vec<usize> = cut_bytes
        .chunks(2)
        .map(|c| c.iter().fold(0usize, |n, &b| n << 8 | usize::from(b)) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut chunks = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for cut in cuts {
        chunks.push(&stream[start..cut]);
        start = cut;
    }
    chunks.push(&stream[start..]);

    let whole = run(&[stream], &limits);
    assert_eq!(run(&chunks, &limits), whole);

    let commands = match &whole {
        Outcome::Done(commands, _) | Outcome::Failed(commands, ..) => commands,
    };
    for cmd in commands {
        let mut buf = BytesMut::new();
        if encode(cmd, &mut buf) {
            let again = decode_command(&mut buf, &limits);
            assert_eq!(again.ok().flatten().as_ref(), Some(cmd));
            assert!(buf.is_empty());
        }
    }
});
