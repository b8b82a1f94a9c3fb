//! The writer half of a connection: output buffering, flushing, heartbeats.
//!
//! Message frames are encoded into `Client::out` by the channel's dispatch and
//! are NOT flushed right away; this task decides when, following nsqd's
//! messagePump rules:
//! 1. a non-message frame (response, error, heartbeat) is flushed at once;
//! 2. pending messages are flushed when the client is no longer ready for more
//!    (in-flight reached RDY): nothing else will arrive to fill the buffer, so
//!    waiting would only add latency;
//! 3. otherwise when `output_buffer_size` bytes are pending, or
//!    `output_buffer_timeout` after the first pending message;
//! 4. ours: when the channel has nothing more to send right now
//!    (`Client::flush_now`): the timeout then only bounds the delay under a
//!    steady trickle, it no longer adds up to 250 ms to an idle channel.
//!
//! The buffer is double-buffered: frames keep accumulating in `out` while the
//! previous batch is being written, so one `write` carries many frames.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::{future, AsyncWriteExt};
use nsq_io::net::SharedStream;

use crate::client::Client;
use crate::wire::Wire;

/// Far enough in the future to mean "never" without overflowing `Instant`.
const NEVER: Duration = Duration::from_secs(86_400 * 365);

/// Run until the client is closed (then flush and shut the socket down), a
/// write fails, or the connection is detached for a move to another shard
/// (then flush and return, leaving the socket open). With `wire`, frames go
/// through TLS and/or compression on their way out.
pub async fn run_writer(
    client: Rc<Client>,
    stream: SharedStream,
    wire: Option<Rc<RefCell<Wire>>>,
) -> io::Result<()> {
    let mut stream = stream;
    // Swapped with `Client::out` at each flush: both grow to what the
    // client's traffic needs (an idle connection holds neither).
    let mut spare = BytesMut::new();
    // Encoded bytes for a layered connection (reused).
    let mut raw: Vec<u8> = Vec::new();
    // Heartbeats go to every V2 connection, producers included (nsqd's
    // messagePump). The next one is due one interval after the last one (or
    // after the start), with the interval read afresh each turn: an IDENTIFY
    // that shortens it takes effect at once, not after the old interval.
    let mut last_heartbeat = Instant::now();
    let result = loop {
        let (heartbeat, buffer_size, buffer_timeout) = {
            let info = client.info.borrow();
            (
                info.heartbeat_interval,
                info.output_buffer_size,
                info.output_buffer_timeout,
            )
        };
        let now = Instant::now();
        let mut next_heartbeat = heartbeat.map(|hb| last_heartbeat + hb);
        if let (Some(hb), Some(at)) = (heartbeat, next_heartbeat) {
            if now >= at {
                client.send_response(nsq_proto::frame::HEARTBEAT);
                last_heartbeat = now;
                next_heartbeat = Some(now + hb);
            }
        }
        let pending = client.pending_output();
        let closed = client.is_closed();
        let detaching = client.is_detaching();
        let flush_at = client
            .first_unflushed()
            .map(|first| first + buffer_timeout.unwrap_or(NEVER));
        let layers_want_write = wire.as_ref().is_some_and(|w| w.borrow().wants_write());
        let flush = layers_want_write
            || pending > 0
                && (client.has_urgent_output()
                    || closed
                    || detaching
                    || pending >= buffer_size
                    || !client.is_ready_for_messages()
                    || flush_at.is_some_and(|at| now >= at));
        if flush {
            client.take_output(&mut spare);
            if let Some(hb) = heartbeat {
                // nsqd's write deadline is one heartbeat interval.
                let _ = stream.set_write_timeout(Some(hb));
            }
            let written = match &wire {
                None => stream.write_all(&spare).await,
                Some(wire) => {
                    raw.clear();
                    let encoded = wire.borrow_mut().encode(&spare, &mut raw);
                    match encoded {
                        Ok(()) => stream.write_all(&raw).await,
                        Err(e) => Err(e),
                    }
                }
            };
            if let Err(e) = written {
                break Err(e);
            }
            spare.clear();
            continue;
        }
        if detaching && !closed {
            // The connection moves to another shard: leave the socket open.
            return Ok(());
        }
        if closed {
            break Ok(());
        }
        let wake_at = match (next_heartbeat, flush_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match wake_at {
            Some(at) => {
                let wait = at.saturating_duration_since(Instant::now());
                future::or(client.writer_wait(), glommio::timer::sleep(wait)).await;
            }
            None => client.writer_wait().await,
        }
    };
    client.close();
    // Wake the reader blocked in read(): shutting the socket down makes it
    // return 0 so the connection task ends.
    stream.shutdown();
    result
}
