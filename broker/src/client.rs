//! One client connection's state, shared by its reader loop
//! (`protocol::conn`), its writer (`protocol::pump`) and, once subscribed,
//! its channel. Plain state (nsqd's `clientV2`): it knows nothing of shards,
//! topics or the wire loop, so channels can hold consumers without
//! depending on the protocol layer.
//!
//! Lives on: the shard that runs the connection. A consumer is moved to its
//! channel's owner shard at SUB (`protocol::conn::Conn::move_to_owner`), so a
//! `Client` in a channel's consumer list is always on the same shard as the
//! channel.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use nsq_io::signal::Signal;

use crate::message::Message;
use crate::stats::snapshot::{ClientStats, PubCount};

/// nsqd's client states, as shown in `/stats` `state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientState {
    /// Connected, not subscribed.
    Init = 0,
    /// Subscribed to a channel.
    Subscribed = 3,
    /// Sent CLS: draining in-flight messages.
    Closing = 4,
}

/// What IDENTIFY negotiated (or the defaults). Plain data: it travels with
/// the connection when a consumer moves to another shard.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    /// `client_id` from IDENTIFY.
    pub client_id: String,
    /// `hostname` from IDENTIFY.
    pub hostname: String,
    /// `user_agent` from IDENTIFY.
    pub user_agent: String,
    /// None: heartbeats disabled (`heartbeat_interval: -1`).
    pub heartbeat_interval: Option<Duration>,
    /// Flush when this many bytes are pending (1 = no buffering).
    pub output_buffer_size: usize,
    /// Flush pending messages this long after the first one; None = only
    /// when full or not ready.
    pub output_buffer_timeout: Option<Duration>,
    /// In-flight timeout for messages sent to this client.
    pub msg_timeout: Duration,
    /// 0 = all messages; 1..99 = percentage sampled.
    pub sample_rate: i32,
    /// The TLS session, once upgraded (stats `tls*`).
    pub tls: Option<crate::tls::TlsStats>,
    /// Snappy negotiated (stats `snappy`).
    pub snappy: bool,
    /// Deflate negotiated (stats `deflate`).
    pub deflate: bool,
    /// The secret sent with AUTH (kept to query again when the
    /// authorizations expire).
    pub auth_secret: Option<String>,
    /// What the auth server granted (stats `authed`, `auth_identity*`).
    pub auth: Option<crate::auth::AuthState>,
}

impl ClientInfo {
    /// nsqd's `HasAuthorizations`.
    pub fn has_authorizations(&self) -> bool {
        self.auth.as_ref().is_some_and(|a| a.permission_count() > 0)
    }
}

/// One connection. Lives on: the shard running it.
#[derive(Debug)]
pub struct Client {
    /// Unique per node (the shard index is in the high bits).
    pub id: u64,
    /// Peer address as `ip:port`.
    pub remote_address: String,
    /// Connect time, Unix seconds.
    pub connect_ts: i64,
    /// Negotiated settings.
    pub info: RefCell<ClientInfo>,
    state: Cell<ClientState>,
    ready_count: Cell<i64>,
    in_flight: Cell<i64>,
    message_count: Cell<u64>,
    finish_count: Cell<u64>,
    requeue_count: Cell<u64>,
    /// Topics this connection published to, with counts (stats `pub_counts`).
    pub_counts: RefCell<Vec<PubCount>>,
    /// Frames waiting for the writer.
    out: RefCell<BytesMut>,
    /// A non-message frame is pending: nsqd flushes those at once.
    urgent: Cell<bool>,
    /// When the oldest unflushed message frame was buffered.
    first_unflushed: Cell<Option<Instant>>,
    /// Wakes the writer task.
    wake: Signal,
    closed: Cell<bool>,
    /// Set when the connection is about to move shards: the writer flushes
    /// and exits without closing the socket.
    detaching: Cell<bool>,
    /// The subscribed channel is paused (checked in readiness).
    channel_paused: Cell<bool>,
}

impl Client {
    /// Bytes of frames waiting for the writer.
    pub fn pending_output(&self) -> usize {
        self.out.borrow().len()
    }

    /// A response, error or heartbeat is pending (flushed at once).
    pub fn has_urgent_output(&self) -> bool {
        self.urgent.get()
    }

    /// When the oldest unflushed message frame was buffered.
    pub fn first_unflushed(&self) -> Option<Instant> {
        self.first_unflushed.get()
    }

    /// The connection is moving to another shard.
    pub fn is_detaching(&self) -> bool {
        self.detaching.get()
    }

    /// Swap the pending frames into `spare` (empty, reused across writes:
    /// double buffering) for the writer to send.
    pub fn take_output(&self, spare: &mut BytesMut) {
        std::mem::swap(&mut *self.out.borrow_mut(), spare);
        self.urgent.set(false);
        self.first_unflushed.set(None);
    }

    /// Wait until something for the writer happens (a frame, a close).
    pub async fn writer_wait(&self) {
        self.wake.wait().await
    }

    /// A new connection in state Init.
    pub fn new(id: u64, remote_address: String, connect_ts: i64, info: ClientInfo) -> Client {
        Client {
            id,
            remote_address,
            connect_ts,
            info: RefCell::new(info),
            state: Cell::new(ClientState::Init),
            ready_count: Cell::new(0),
            in_flight: Cell::new(0),
            message_count: Cell::new(0),
            finish_count: Cell::new(0),
            requeue_count: Cell::new(0),
            pub_counts: RefCell::new(Vec::new()),
            // Grows with the traffic (double-buffered with the writer's spare):
            // an idle connection holds no output buffer.
            out: RefCell::new(BytesMut::new()),
            urgent: Cell::new(false),
            first_unflushed: Cell::new(None),
            wake: Signal::new(),
            closed: Cell::new(false),
            detaching: Cell::new(false),
            channel_paused: Cell::new(false),
        }
    }

    /// Current state.
    pub fn state(&self) -> ClientState {
        self.state.get()
    }

    /// Change state.
    pub fn set_state(&self, state: ClientState) {
        self.state.set(state);
    }

    /// RDY window.
    pub fn ready_count(&self) -> i64 {
        self.ready_count.get()
    }

    /// Set the RDY window.
    pub fn set_ready_count(&self, n: i64) {
        self.ready_count.set(n);
        self.wake.notify();
    }

    /// nsqd's `IsReadyForMessages`: RDY is a window over in-flight messages.
    pub fn is_ready_for_messages(&self) -> bool {
        self.state.get() == ClientState::Subscribed
            && !self.closed.get()
            && !self.channel_paused.get()
            && self.ready_count.get() > 0
            && self.in_flight.get() < self.ready_count.get()
    }

    /// Mirror of the channel's pause flag.
    pub fn set_channel_paused(&self, paused: bool) {
        self.channel_paused.set(paused);
    }

    /// Sample rate from IDENTIFY.
    pub fn sample_rate(&self) -> i32 {
        self.info.borrow().sample_rate
    }

    /// In-flight timeout for this client.
    pub fn msg_timeout(&self) -> Duration {
        self.info.borrow().msg_timeout
    }

    /// In-flight count.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.get()
    }

    /// Encode a message frame into the output buffer; the writer decides when
    /// to flush (see `pump`).
    pub fn send_message(&self, msg: &Message) {
        nsq_proto::frame::encode_message_frame(
            &mut self.out.borrow_mut(),
            msg.timestamp,
            msg.attempts(),
            &msg.id,
            &msg.body,
        );
        self.in_flight.set(self.in_flight.get() + 1);
        self.message_count.set(self.message_count.get() + 1);
        if self.first_unflushed.get().is_none() {
            self.first_unflushed.set(Some(Instant::now()));
        }
        self.wake.notify();
    }

    /// Flush buffered message frames without waiting for the buffer to fill
    /// or for output_buffer_timeout (the channel has nothing more for now).
    pub fn flush_now(&self) {
        if !self.out.borrow().is_empty() {
            self.urgent.set(true);
            self.wake.notify();
        }
    }

    /// Queue a response frame, flushed at once.
    pub fn send_response(&self, data: &[u8]) {
        nsq_proto::frame::encode_response(&mut self.out.borrow_mut(), data);
        self.urgent.set(true);
        self.wake.notify();
    }

    /// Queue an error frame, flushed at once.
    pub fn send_error(&self, code: nsq_proto::ErrorCode, desc: &str) {
        nsq_proto::frame::encode_error(&mut self.out.borrow_mut(), code, desc);
        self.urgent.set(true);
        self.wake.notify();
    }

    /// FIN accounting.
    pub fn on_finished(&self) {
        self.finish_count.set(self.finish_count.get() + 1);
        self.dec_in_flight();
    }

    /// REQ accounting.
    pub fn on_requeued(&self) {
        self.requeue_count.set(self.requeue_count.get() + 1);
        self.dec_in_flight();
    }

    /// Timeout accounting.
    pub fn on_timed_out(&self) {
        self.dec_in_flight();
    }

    fn dec_in_flight(&self) {
        self.in_flight.set((self.in_flight.get() - 1).max(0));
        self.wake.notify();
    }

    /// The channel was emptied: nothing of ours is in flight any more.
    pub fn reset_in_flight(&self) {
        self.in_flight.set(0);
        self.wake.notify();
    }

    /// Count a publish for `/stats` producers.
    pub fn count_pub(&self, topic: &str, n: u64) {
        let mut counts = self.pub_counts.borrow_mut();
        match counts.iter_mut().find(|c| c.topic == topic) {
            Some(c) => c.count += n,
            None => counts.push(PubCount {
                topic: topic.to_string(),
                count: n,
            }),
        }
    }

    /// Has this connection published anything?
    pub fn has_published(&self) -> bool {
        !self.pub_counts.borrow().is_empty()
    }

    /// Ask the writer to flush what is pending and close the connection.
    pub fn close(&self) {
        self.closed.set(true);
        self.wake.notify();
    }

    /// Stop the writer without closing the socket (before a shard move).
    pub fn detach(&self) {
        self.detaching.set(true);
        self.wake.notify();
    }

    /// Start a writer again after [`Client::detach`] (a connection upgrade
    /// stops the writer while the layers change).
    pub fn reattach(&self) {
        self.detaching.set(false);
    }

    /// Closing or closed?
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Wake the writer (readiness may have changed).
    pub fn wake_writer(&self) {
        self.wake.notify();
    }

    /// Snapshot for /stats.
    pub fn stats(&self) -> ClientStats {
        let info = self.info.borrow();
        let tls = info.tls.as_ref();
        let pub_counts = self.pub_counts.borrow().clone();
        ClientStats {
            client_id: info.client_id.clone(),
            hostname: info.hostname.clone(),
            version: "V2".to_string(),
            remote_address: self.remote_address.clone(),
            state: self.state.get() as i32,
            ready_count: self.ready_count.get(),
            in_flight_count: self.in_flight.get(),
            message_count: self.message_count.get(),
            finish_count: self.finish_count.get(),
            requeue_count: self.requeue_count.get(),
            connect_ts: self.connect_ts,
            sample_rate: info.sample_rate,
            deflate: info.deflate,
            snappy: info.snappy,
            user_agent: info.user_agent.clone(),
            authed: info.has_authorizations(),
            auth_identity: info
                .auth
                .as_ref()
                .map(|a| a.identity.clone())
                .unwrap_or_default(),
            auth_identity_url: info
                .auth
                .as_ref()
                .map(|a| a.identity_url.clone())
                .unwrap_or_default(),
            tls: info.tls.is_some(),
            tls_cipher_suite: tls.map(|t| t.cipher_suite.clone()).unwrap_or_default(),
            tls_version: tls.map(|t| t.version.clone()).unwrap_or_default(),
            tls_negotiated_protocol: tls
                .map(|t| t.negotiated_protocol.clone())
                .unwrap_or_default(),
            tls_negotiated_protocol_is_mutual: tls.is_some_and(|t| t.negotiated_protocol_is_mutual),
            pub_counts,
        }
    }

    /// Counters that travel with a consumer moving shards.
    pub fn counters(&self) -> (u64, u64, u64) {
        (
            self.message_count.get(),
            self.finish_count.get(),
            self.requeue_count.get(),
        )
    }

    /// Restore counters after a move.
    pub fn restore_counters(&self, counters: (u64, u64, u64), pub_counts: Vec<PubCount>) {
        self.message_count.set(counters.0);
        self.finish_count.set(counters.1);
        self.requeue_count.set(counters.2);
        *self.pub_counts.borrow_mut() = pub_counts;
    }

    /// Pub counts (to carry across a move).
    pub fn pub_counts(&self) -> Vec<PubCount> {
        self.pub_counts.borrow().clone()
    }
}
