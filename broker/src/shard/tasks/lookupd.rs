//! nsqd's side of discovery: keep a connection to every nsqlookupd, announce
//! every topic and channel, PING every 15 s, reconnect with backoff.
//!
//! Lives on: shard 0 only. The shard pushes REGISTER/UNREGISTER events into
//! [`Lookup`] as topics and channels come and go (`Shard::notify_lookup`),
//! in one direction: nothing here calls back into the shard. `Lookup` keeps
//! what is registered (its [`Registry`], built from the same events) and one
//! task per lookupd peer drains its own copy of the events. A peer that
//! (re)connects sends IDENTIFY and then REGISTERs everything in the
//! registry, so a restarted lookupd is healed, as nsqd's `connectCallback`
//! does.
//!
//! Wire (protocol V1): magic `"  V1"`, commands as text lines (IDENTIFY has
//! a 4-byte size and a JSON body), each answered by `[4B BE size][data]`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use nsq_io::signal::Signal;

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
    /// The command line as sent (`nsq_proto::lookup`, nsqlookupd's codec).
    fn line(&self) -> String {
        use nsq_proto::lookup::Command;
        let command = match self {
            Event::Register(topic, channel) => Command::Register {
                topic,
                channel: channel.as_deref(),
            },
            Event::Unregister(topic, channel) => Command::Unregister {
                topic,
                channel: channel.as_deref(),
            },
        };
        let mut line = BytesMut::new();
        command.encode(&mut line);
        String::from_utf8_lossy(&line).into_owned()
    }
}

/// nsqd's timeouts for HTTP calls to nsqlookupd (`--http-client-connect-timeout`
/// and `--http-client-request-timeout` defaults).
const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One lookupd peer's pending events.
#[derive(Debug)]
struct Peer {
    addr: String,
    /// `broadcast_address:http_port` from the peer's IDENTIFY answer (kept
    /// after a disconnect, as nsqd keeps `lookupPeer.Info`).
    http_addr: RefCell<Option<String>>,
    events: RefCell<VecDeque<Event>>,
    wake: Signal,
    stopped: Cell<bool>,
}

/// What nsqd tells every nsqlookupd about itself in IDENTIFY.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `--broadcast-address`.
    pub broadcast_address: String,
    /// `--broadcast-tcp-port`, or the TCP port listened on.
    pub tcp_port: u16,
    /// `--broadcast-http-port`, or the HTTP port listened on (0: none).
    pub http_port: u16,
    /// The OS host name.
    pub hostname: String,
}

impl Identity {
    /// The IDENTIFY body.
    fn body(&self) -> String {
        serde_json::json!({
            "version": crate::config::NSQD_VERSION,
            "tcp_port": self.tcp_port,
            "http_port": self.http_port,
            "hostname": self.hostname,
            "broadcast_address": self.broadcast_address,
        })
        .to_string()
    }
}

/// Every topic and channel registered now, kept from the events.
#[derive(Debug, Default)]
struct Registry {
    topics: BTreeMap<String, BTreeSet<String>>,
}

impl Registry {
    fn apply(&mut self, event: &Event) {
        match event {
            Event::Register(topic, None) => {
                self.topics.entry(topic.clone()).or_default();
            }
            Event::Register(topic, Some(channel)) => {
                self.topics
                    .entry(topic.clone())
                    .or_default()
                    .insert(channel.clone());
            }
            Event::Unregister(topic, None) => {
                self.topics.remove(topic);
            }
            Event::Unregister(topic, Some(channel)) => {
                if let Some(channels) = self.topics.get_mut(topic) {
                    channels.remove(channel);
                }
            }
        }
    }

    /// Everything to REGISTER on a fresh connection: each channel, or the
    /// bare topic when it has none (nsqd's connectCallback).
    fn events(&self) -> Vec<Event> {
        let mut events = Vec::new();
        for (topic, channels) in &self.topics {
            if channels.is_empty() {
                events.push(Event::Register(topic.clone(), None));
            }
            for channel in channels {
                events.push(Event::Register(topic.clone(), Some(channel.clone())));
            }
        }
        events
    }
}

/// The set of lookupd peers. Lives on: shard 0.
#[derive(Debug)]
pub struct Lookup {
    /// The IDENTIFY body every peer sends.
    identify: Rc<str>,
    registry: Rc<RefCell<Registry>>,
    peers: RefCell<Vec<Rc<Peer>>>,
}

impl Lookup {
    /// No peers yet; `reconcile` adds them.
    pub fn new(identity: &Identity) -> Lookup {
        Lookup {
            identify: Rc::from(identity.body()),
            registry: Rc::default(),
            peers: RefCell::new(Vec::new()),
        }
    }

    /// Record an event and queue it for every peer.
    pub fn notify(&self, event: Event) {
        self.registry.borrow_mut().apply(&event);
        for peer in self.peers.borrow().iter() {
            peer.events.borrow_mut().push_back(event.clone());
            peer.wake.notify();
        }
    }

    /// The HTTP addresses of the peers that identified themselves.
    pub fn http_addrs(&self) -> Vec<String> {
        self.peers
            .borrow()
            .iter()
            .filter_map(|p| p.http_addr.borrow().clone())
            .collect()
    }

    /// nsqd's `GetLookupdTopicChannels`: the union of `/channels?topic=`
    /// over every nsqlookupd, asked concurrently; a failing one is logged
    /// and skipped. `configured`: nsqlookupd addresses are set (none having
    /// answered yet is then worth an error line, as in nsqd).
    pub async fn topic_channels(&self, topic: &str, configured: bool) -> Vec<String> {
        let addrs = self.http_addrs();
        if addrs.is_empty() {
            if configured {
                crate::log_error!(
                    "no available nsqlookupd to query for channels to pre-create for topic {topic}"
                );
            }
            return Vec::new();
        }
        let target = format!("/channels?topic={}", query_escape(topic));
        let tasks: Vec<_> = addrs
            .into_iter()
            .map(|addr| {
                let target = target.clone();
                glommio::spawn_local(async move {
                    let result = lookupd_channels(&addr, &target).await;
                    (addr, result)
                })
            })
            .collect();
        let mut names: Vec<String> = Vec::new();
        for task in tasks {
            match task.await {
                (_, Ok(found)) => names.extend(found),
                (addr, Err(e)) => crate::log_warn!(
                    "failed to query nsqlookupd ({addr}) for channels to pre-create for topic {topic} - {e}"
                ),
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// Make the peer set match `addrs`: start new peers, stop removed ones.
    pub fn reconcile(&self, addrs: &[String]) {
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
                http_addr: RefCell::new(None),
                events: RefCell::new(VecDeque::new()),
                wake: Signal::new(),
                stopped: Cell::new(false),
            });
            let (identify, registry) = (self.identify.clone(), self.registry.clone());
            glommio::spawn_local(run_peer(peer.clone(), identify, registry)).detach();
            peers.push(peer);
        }
    }
}

/// `GET /channels?topic=` on one nsqlookupd: `{"channels":[...]}`.
async fn lookupd_channels(addr: &str, target: &str) -> io::Result<Vec<String>> {
    let user_agent = format!("nsqd/{}", crate::config::NSQD_VERSION);
    let headers = [
        ("Accept", "application/vnd.nsq; version=1.0"),
        ("User-Agent", user_agent.as_str()),
    ];
    let resp = nsq_io::http::client::get(
        addr,
        target,
        &headers,
        HTTP_CONNECT_TIMEOUT,
        HTTP_REQUEST_TIMEOUT,
    )
    .await?;
    if resp.status != 200 {
        return Err(io::Error::other(format!(
            "got response {} {}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
        )));
    }
    #[derive(serde::Deserialize)]
    struct Channels {
        channels: Vec<String>,
    }
    serde_json::from_slice::<Channels>(&resp.body)
        .map(|c| c.channels)
        .map_err(|e| io::Error::other(format!("bad /channels answer: {e}")))
}

/// Percent-encode a query value (topic names are `[.a-zA-Z0-9_-]` plus
/// `#ephemeral`: only `#` needs it, but be exact for any byte).
fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a peer's IDENTIFY answer says its HTTP address is.
fn peer_http_addr(identify: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Info {
        broadcast_address: String,
        http_port: u16,
    }
    let info: Info = serde_json::from_slice(identify).ok()?;
    if info.broadcast_address.is_empty() {
        return None;
    }
    Some(match info.broadcast_address.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{}]:{}", info.broadcast_address, info.http_port),
        Err(_) => format!("{}:{}", info.broadcast_address, info.http_port),
    })
}

/// Connect, identify, register everything, then forward events and ping,
/// reconnecting with backoff, until the peer is removed.
async fn run_peer(peer: Rc<Peer>, identify: Rc<str>, registry: Rc<RefCell<Registry>>) {
    let mut backoff = BACKOFF_MIN;
    while !peer.stopped.get() {
        let mut identified = false;
        match session(&peer, &identify, &registry, &mut identified).await {
            Ok(()) => return, // stopped
            Err(e) => {
                crate::log_error!("LOOKUPD({}): {e}", peer.addr);
            }
        }
        if identified {
            // It was up: the next outage starts from a short delay again.
            backoff = BACKOFF_MIN;
        }
        future::or(peer.wake.wait(), glommio::timer::sleep(backoff)).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection's life. Returns Ok only when the peer was stopped.
async fn session(
    peer: &Peer,
    identify: &str,
    registry: &RefCell<Registry>,
    identified: &mut bool,
) -> io::Result<()> {
    let sock = nsq_io::net::resolve(&peer.addr).await?;
    let mut conn = TcpStream::connect_timeout(sock, CONNECT_TIMEOUT)
        .await
        .map_err(|e| io::Error::other(e.to_string()))?;
    conn.set_read_timeout(Some(COMMAND_TIMEOUT))?;
    conn.set_write_timeout(Some(COMMAND_TIMEOUT))?;
    conn.write_all(nsq_proto::lookup::MAGIC_V1).await?;

    let mut cmd = BytesMut::new();
    nsq_proto::lookup::Command::Identify(identify.as_bytes()).encode(&mut cmd);
    let resp = command(&mut conn, &cmd).await?;
    if resp.starts_with(b"E_") {
        return Err(io::Error::other(format!(
            "IDENTIFY refused: {}",
            String::from_utf8_lossy(&resp)
        )));
    }
    *identified = true;
    if let Some(http) = peer_http_addr(&resp) {
        *peer.http_addr.borrow_mut() = Some(http);
    }
    crate::log_info!(
        "LOOKUPD({}): peer info {}",
        peer.addr,
        String::from_utf8_lossy(&resp)
    );

    // Everything that exists now; events queued before this point are
    // covered by it, so drop them.
    peer.events.borrow_mut().clear();
    let everything = registry.borrow().events();
    for event in everything {
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
            let mut ping = BytesMut::new();
            nsq_proto::lookup::Command::Ping.encode(&mut ping);
            command(&mut conn, &ping).await?;
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
    let mut header = [0u8; 4];
    conn.read_exact(&mut header).await?;
    let size = nsq_proto::lookup::response_size(header, MAX_RESPONSE).map_err(io::Error::other)?;
    let mut data = vec![0u8; size];
    conn.read_exact(&mut data).await?;
    Ok(data)
}

/// nsqd: a broadcast port of 0 means the port actually listened on.
pub fn broadcast_port(configured: u16, listening: u16) -> u16 {
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

    #[test]
    fn peer_http_address_and_query_escaping() {
        let info = br#"{"tcp_port":4160,"http_port":4161,"version":"1.3.0","broadcast_address":"lookupd1","hostname":"h"}"#;
        assert_eq!(peer_http_addr(info).as_deref(), Some("lookupd1:4161"));
        let v6 = br#"{"http_port":4161,"broadcast_address":"::1"}"#;
        assert_eq!(peer_http_addr(v6).as_deref(), Some("[::1]:4161"));
        assert_eq!(
            peer_http_addr(br#"{"http_port":1,"broadcast_address":""}"#),
            None
        );
        assert_eq!(peer_http_addr(b"OK"), None);
        assert_eq!(query_escape("a.b_c-d"), "a.b_c-d");
        assert_eq!(query_escape("t#ephemeral"), "t%23ephemeral");
    }
}
