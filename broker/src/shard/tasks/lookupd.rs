//! nsqd's side of discovery: keep a connection to every nsqlookupd, announce
//! every topic and channel, PING every 15 s, reconnect with backoff.
//!
//! Lives on: shard 0 only. The shard pushes REGISTER/UNREGISTER events into
//! [`Lookup`] as topics and channels come and go (`Shard::notify_lookup`);
//! one task per lookupd peer drains its own copy of the events. A peer that
//! (re)connects sends IDENTIFY and then REGISTERs everything that exists, so
//! a restarted lookupd is healed, as nsqd's `connectCallback` does.
//!
//! Wire (protocol V1): magic `"  V1"`, commands as text lines (IDENTIFY has
//! a 4-byte size and a JSON body), each answered by `[4B BE size][data]`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::rc::{Rc, Weak};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use nsq_io::signal::Signal;

use crate::shard::Shard;

/// nsqd pings every lookupd this often.
const PING_INTERVAL: Duration = Duration::from_secs(15);
/// Connect and per-command timeouts (nsqd: 1 s dial, client timeout reads).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(15);
/// Largest response we accept from a lookupd (IDENTIFY JSON, "OK", errors).
const MAX_RESPONSE: usize = 1 << 20;

/// A registration change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `REGISTER topic [channel]`
    Register(String, Option<String>),
    /// `UNREGISTER topic [channel]`
    Unregister(String, Option<String>),
}

impl Event {
    fn line(&self) -> String {
        let (verb, topic, channel) = match self {
            Event::Register(t, c) => ("REGISTER", t, c),
            Event::Unregister(t, c) => ("UNREGISTER", t, c),
        };
        match channel {
            Some(c) => format!("{verb} {topic} {c}\n"),
            None => format!("{verb} {topic}\n"),
        }
    }
}

/// One lookupd peer's pending events.
#[derive(Debug)]
struct Peer {
    addr: String,
    events: RefCell<VecDeque<Event>>,
    wake: Signal,
    stopped: Cell<bool>,
}

/// The set of lookupd peers. Lives on: shard 0.
#[derive(Debug, Default)]
pub struct Lookup {
    peers: RefCell<Vec<Rc<Peer>>>,
}

impl Lookup {
    /// Queue an event for every peer.
    pub fn notify(&self, event: Event) {
        for peer in self.peers.borrow().iter() {
            peer.events.borrow_mut().push_back(event.clone());
            peer.wake.notify();
        }
    }

    /// Make the peer set match `addrs`: start new peers, stop removed ones.
    pub fn reconcile(&self, shard: &Rc<Shard>, addrs: &[String]) {
        let mut peers = self.peers.borrow_mut();
        peers.retain(|p| {
            let keep = addrs.contains(&p.addr);
            if !keep {
                crate::log_info!("LOOKUP({}): removing peer", p.addr);
                p.stopped.set(true);
                p.wake.notify();
            }
            keep
        });
        for addr in addrs {
            if peers.iter().any(|p| &p.addr == addr) {
                continue;
            }
            crate::log_info!("LOOKUP({addr}): adding peer");
            let peer = Rc::new(Peer {
                addr: addr.clone(),
                events: RefCell::new(VecDeque::new()),
                wake: Signal::new(),
                stopped: Cell::new(false),
            });
            glommio::spawn_local(run_peer(Rc::downgrade(shard), peer.clone())).detach();
            peers.push(peer);
        }
    }
}

/// Connect, identify, register everything, then forward events and ping,
/// reconnecting with backoff, until the peer is removed.
async fn run_peer(shard: Weak<Shard>, peer: Rc<Peer>) {
    let mut backoff = BACKOFF_MIN;
    while !peer.stopped.get() {
        let Some(s) = shard.upgrade() else { return };
        let mut identified = false;
        match session(&s, &peer, &mut identified).await {
            Ok(()) => return, // stopped
            Err(e) => {
                crate::log_error!("LOOKUPD({}): {e}", peer.addr);
            }
        }
        if identified {
            // It was up: the next outage starts from a short delay again.
            backoff = BACKOFF_MIN;
        }
        drop(s);
        future::or(peer.wake.wait(), glommio::timer::sleep(backoff)).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection's life. Returns Ok only when the peer was stopped.
async fn session(shard: &Rc<Shard>, peer: &Peer, identified: &mut bool) -> io::Result<()> {
    let mut conn = TcpStream::connect_timeout(peer.addr.as_str(), CONNECT_TIMEOUT)
        .await
        .map_err(|e| io::Error::other(e.to_string()))?;
    conn.set_read_timeout(Some(COMMAND_TIMEOUT))?;
    conn.set_write_timeout(Some(COMMAND_TIMEOUT))?;
    conn.write_all(b"  V1").await?;

    let identify = serde_json::json!({
        "version": crate::client::identify::VERSION,
        "tcp_port": broadcast_port(shard.opts.broadcast_tcp_port, shard.listen.tcp.port()),
        "http_port": broadcast_port(
            shard.opts.broadcast_http_port,
            shard.listen.http.map(|a| a.port()).unwrap_or(0),
        ),
        "hostname": crate::server::hostname(),
        "broadcast_address": shard.opts.broadcast_address,
    });
    let body = identify.to_string();
    let mut cmd = BytesMut::new();
    cmd.put_slice(b"IDENTIFY\n");
    cmd.put_u32(body.len() as u32);
    cmd.put_slice(body.as_bytes());
    let resp = command(&mut conn, &cmd).await?;
    if resp.starts_with(b"E_") {
        return Err(io::Error::other(format!(
            "IDENTIFY refused: {}",
            String::from_utf8_lossy(&resp)
        )));
    }
    *identified = true;
    crate::log_info!(
        "LOOKUPD({}): peer info {}",
        peer.addr,
        String::from_utf8_lossy(&resp)
    );

    // Everything that exists now; events queued before this point are
    // covered by it, so drop them.
    peer.events.borrow_mut().clear();
    for event in shard.registrations() {
        send_event(&mut conn, peer, &event).await?;
    }

    let mut next_ping = std::time::Instant::now() + PING_INTERVAL;
    loop {
        if peer.stopped.get() {
            return Ok(());
        }
        let event = peer.events.borrow_mut().pop_front();
        if let Some(event) = event {
            send_event(&mut conn, peer, &event).await?;
            continue;
        }
        let now = std::time::Instant::now();
        if now >= next_ping {
            command(&mut conn, b"PING\n").await?;
            next_ping = now + PING_INTERVAL;
            continue;
        }
        future::or(peer.wake.wait(), glommio::timer::sleep(next_ping - now)).await;
    }
}

async fn send_event(conn: &mut TcpStream, peer: &Peer, event: &Event) -> io::Result<()> {
    let line = event.line();
    crate::log_info!("LOOKUPD({}): {}", peer.addr, line.trim_end());
    let resp = command(conn, line.as_bytes()).await?;
    if resp.starts_with(b"E_") {
        // lookupd refused this one (e.g. a bad name); others still go.
        crate::log_error!(
            "LOOKUPD({}): {} - {}",
            peer.addr,
            line.trim_end(),
            String::from_utf8_lossy(&resp)
        );
    }
    Ok(())
}

/// Write a command and read its `[4B size][data]` response.
async fn command(conn: &mut TcpStream, cmd: &[u8]) -> io::Result<Vec<u8>> {
    conn.write_all(cmd).await?;
    let mut size = [0u8; 4];
    conn.read_exact(&mut size).await?;
    let size = u32::from_be_bytes(size) as usize;
    if size > MAX_RESPONSE {
        return Err(io::Error::other(format!("response too big ({size} bytes)")));
    }
    let mut data = vec![0u8; size];
    conn.read_exact(&mut data).await?;
    Ok(data)
}

/// nsqd: a broadcast port of 0 means the port actually listened on.
fn broadcast_port(configured: u16, listening: u16) -> u16 {
    if configured == 0 {
        listening
    } else {
        configured
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines() {
        assert_eq!(Event::Register("t".into(), None).line(), "REGISTER t\n");
        assert_eq!(
            Event::Unregister("t".into(), Some("c".into())).line(),
            "UNREGISTER t c\n"
        );
        assert_eq!(broadcast_port(0, 4150), 4150);
        assert_eq!(broadcast_port(5000, 4150), 5000);
    }
}
