//! `/pub` and `/mpub`: stored on this shard's topic part, like TCP PUB.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nsq_io::http::Request;

use super::Reply;
use crate::message::Message;
use crate::shard::Shard;
use crate::topic::{PutError, Stored, Topic};

/// nsqd's getTopicFromQuery: the topic must be named and valid; it is created.
fn topic_from_query(shard: &Rc<Shard>, req: &Request) -> Result<Rc<Topic>, Reply> {
    let Some(name) = req.query_get("topic") else {
        return Err(Reply::Err(400, "MISSING_ARG_TOPIC"));
    };
    if !nsq_proto::names::is_valid_topic_name(name) {
        return Err(Reply::Err(400, "INVALID_TOPIC"));
    }
    Ok(shard.get_or_create_topic(name))
}

/// Answer a publish: OK once stored (held while the disk queue opens: once
/// written), or with `--ack-after-fsync` once the fdatasync covering it is
/// done.
async fn stored(topic: &Topic, result: Result<Stored, PutError>) -> Reply {
    match result {
        Ok(Stored::Disk(_)) if !topic.durable_acks() => Reply::Text(b"OK".to_vec()),
        Ok(stored) => match topic.wait_durable(stored).await {
            Ok(()) => Reply::Text(b"OK".to_vec()),
            Err(_) => Reply::Err(500, "INTERNAL_ERROR"),
        },
        Err(PutError::Exiting) => Reply::Err(503, "EXITING"),
        // A full disk or an I/O error (nsqd answers 503 EXITING for any
        // put error; the disk case is a server error, so 500).
        Err(PutError::Disk(_)) => Reply::Err(500, "INTERNAL_ERROR"),
    }
}

/// POST /pub?topic=T[&defer=ms]
pub async fn pub_(shard: &Rc<Shard>, req: &Request) -> Reply {
    let opts = shard.opts();
    if req.body.len() as u64 > opts.max_msg_size {
        return Reply::Err(413, "MSG_TOO_BIG");
    }
    if req.body.is_empty() {
        return Reply::Err(400, "MSG_EMPTY");
    }
    let topic = match topic_from_query(shard, req) {
        Ok(t) => t,
        Err(reply) => return reply,
    };
    let mut deliver_at = None;
    if let Some(defer) = req.query_get("defer") {
        let Ok(ms) = defer.parse::<i64>() else {
            return Reply::Err(400, "INVALID_DEFER");
        };
        if ms < 0 || ms as u128 > opts.max_req_timeout.as_millis() {
            return Reply::Err(400, "INVALID_DEFER");
        }
        if ms > 0 {
            deliver_at = Some(Instant::now() + Duration::from_millis(ms as u64));
        }
    }
    let msg = Message::new(shard.ids.next_id(), req.body.clone(), deliver_at);
    let result = topic.put(msg);
    stored(&topic, result).await
}

/// POST /mpub?topic=T[&binary=true]
pub async fn mpub(shard: &Rc<Shard>, req: &Request) -> Reply {
    let opts = shard.opts();
    if req.body.len() as u64 > opts.max_body_size {
        return Reply::Err(413, "BODY_TOO_BIG");
    }
    let topic = match topic_from_query(shard, req) {
        Ok(t) => t,
        Err(reply) => return reply,
    };
    // nsqd: "true"/"1" binary, "false"/"0" text, anything else binary.
    let binary = req
        .query_get("binary")
        .is_some_and(|v| !matches!(v, "false" | "0"));
    let bodies = if binary {
        match split_binary(&req.body, opts.max_msg_size, opts.max_body_size) {
            Ok(b) => b,
            Err(code) => return Reply::Err(413, code),
        }
    } else {
        let mut bodies = Vec::new();
        for line in req.body.split(|b| *b == b'\n') {
            // nsqd silently skips empty lines.
            if line.is_empty() {
                continue;
            }
            if line.len() as u64 > opts.max_msg_size {
                return Reply::Err(413, "MSG_TOO_BIG");
            }
            bodies.push(req.body.slice_ref(line));
        }
        bodies
    };
    let now = crate::message::now_ns();
    let msgs: Vec<Message> = bodies
        .into_iter()
        .map(|body| Message::published_at(shard.ids.next_id(), body, None, now))
        .collect();
    let result = topic.put_batch(msgs);
    stored(&topic, result).await
}

/// Binary MPUB body: `[4B count]{[4B size][bytes]}`. Errors are nsqd's
/// codes without `E_` (what nsqd answers over HTTP).
fn split_binary(body: &Bytes, max_msg: u64, max_body: u64) -> Result<Vec<Bytes>, &'static str> {
    let read_u32 = |at: usize| -> Option<i32> {
        body.get(at..at + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let count = read_u32(0).ok_or("BAD_BODY")?;
    let max_messages = (max_body as i64 - 4) / 5;
    if count <= 0 || i64::from(count) > max_messages {
        return Err("BAD_BODY");
    }
    let mut at = 4;
    let mut bodies = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let size = read_u32(at).ok_or("BAD_MESSAGE")?;
        if size <= 0 || size as u64 > max_msg {
            return Err("BAD_MESSAGE");
        }
        let start = at + 4;
        let end = start + size as usize;
        if end > body.len() {
            return Err("BAD_MESSAGE");
        }
        bodies.push(body.slice(start..end));
        at = end;
    }
    Ok(bodies)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(msgs: &[&[u8]]) -> Bytes {
        let mut v = (msgs.len() as u32).to_be_bytes().to_vec();
        for m in msgs {
            v.extend_from_slice(&(m.len() as u32).to_be_bytes());
            v.extend_from_slice(m);
        }
        Bytes::from(v)
    }

    #[test]
    fn binary_mpub_split_and_errors() {
        let ok = split_binary(&frame(&[b"a", b"bc"]), 10, 100).unwrap();
        assert_eq!(ok, vec![Bytes::from("a"), Bytes::from("bc")]);
        assert_eq!(split_binary(&frame(&[]), 10, 100), Err("BAD_BODY"));
        assert_eq!(split_binary(&frame(&[b""]), 10, 100), Err("BAD_MESSAGE"));
        assert_eq!(
            split_binary(&frame(&[b"0123456789x"]), 10, 100),
            Err("BAD_MESSAGE")
        );
        let mut short = frame(&[b"abc"]).to_vec();
        short.pop();
        assert_eq!(
            split_binary(&Bytes::from(short), 10, 100),
            Err("BAD_MESSAGE")
        );
        assert_eq!(
            split_binary(&Bytes::from_static(b"\0\0"), 10, 100),
            Err("BAD_BODY")
        );
    }
}
