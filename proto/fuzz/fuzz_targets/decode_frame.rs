//! Client-side frame decoding never panics, splitting the input never
//! changes the result, and decoded frames re-encode to the same bytes.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use nsq_proto::frame::{self, decode_frame, Frame};

const MAX_FRAME: usize = 1 << 16;

fn run(chunks: &[&[u8]]) -> (Vec<Frame>, Option<String>) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match decode_frame(&mut buf, MAX_FRAME) {
                Ok(Some(f)) => out.push(f),
                Ok(None) => break,
                Err(err) => return (out, Some(err.to_string())),
            }
        }
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut) % (stream.len() + 1);
    let whole = run(&[stream]);
    assert_eq!(run(&[&stream[..cut], &stream[cut..]]), whole);

    // Re-encoding the decoded frames reproduces the consumed prefix.
    let mut again = BytesMut::new();
    for f in &whole.0 {
        match f {
            Frame::Response(data) => frame::encode_response(&mut again, data),
            Frame::Error(data) => {
                again.extend_from_slice(&(data.len() as u32 + 4).to_be_bytes());
                again.extend_from_slice(&1i32.to_be_bytes());
                again.extend_from_slice(data);
            }
            Frame::Message(m) => {
                frame::encode_message_frame(&mut again, m.timestamp_ns, m.attempts, &m.id, &m.body)
            }
        }
    }
    assert_eq!(&again[..], &stream[..again.len()]);
});
