//! THE per-connection loop: read, decode, execute, repeat.
//!
//! Each connection has two tasks on its shard: this reader, and the writer in
//! `pump` (fed through `Client::out`). A connection that sends SUB is moved to
//! the shard owning the channel (`move_to_owner`): the socket is dup'ed and
//! handed over with any bytes already read, and the owner runs this same loop
//! for it. From then on RDY/FIN/REQ/TOUCH and delivery are local to the owner.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use futures_lite::AsyncReadExt;
use glommio::net::TcpStream;
use nsq_io::net::SharedStream;
use nsq_proto::{decode_command, ErrorCode, Limits, Verb, MAGIC_V2};

use super::exec::{ClientErr, Next};
use super::identify::Upgrades;
use super::{identify, pump};
use crate::channel::Channel;
use crate::client::{Client, ClientState};
use crate::message::now_secs;
use crate::peers::msg::{Handoff, ShardMsg};
use crate::peers::routing;
use crate::shard::Shard;
use crate::wire::Wire;

/// The most we ask the kernel for per read: an MPUB batch of 200 x 200 B
/// bodies in one go.
pub(super) const READ_MAX: usize = 64 * 1024;

/// The least: what an idle connection or a consumer sending FINs needs. The
/// read size adapts between the two (see [`Conn::read_more`]): a fixed 64 KiB
/// cost 64 KiB of RSS per idle connection and a 64 KiB memset per small read.
const READ_MIN: usize = 512;

/// nsqd's client timeout: how long a new connection may take to send the magic.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// One connection's reader side. Lives on: the shard running the connection.
pub struct Conn {
    pub(crate) shard: Rc<Shard>,
    pub(crate) client: Rc<Client>,
    pub(crate) channel: Option<Rc<Channel>>,
    pub(crate) limits: Limits,
    /// Shared with the writer task (one descriptor per connection).
    stream: SharedStream,
    /// Decoded bytes not yet parsed into commands.
    buf: BytesMut,
    /// How much the next read asks for (READ_MIN..=READ_MAX).
    read_size: usize,
    /// TLS and compression, once IDENTIFY upgraded the connection.
    wire: Option<Rc<RefCell<Wire>>>,
    /// Raw bytes read for `wire` (allocated at the first layered read).
    raw: Vec<u8>,
    /// `--tls-required` and not upgraded yet: only IDENTIFY is accepted.
    tls_pending: bool,
    /// A command to run again before reading more (after re-authorizing).
    retry: Option<nsq_proto::Command>,
}

/// The verb of the first buffered line, if that line is complete.
fn peek_verb(buf: &[u8]) -> Option<Verb> {
    let line_end = buf.iter().position(|b| *b == b'\n')?;
    let line = &buf[..line_end];
    let word_end = line.iter().position(|b| *b == b' ').unwrap_or(line.len());
    let word = line[..word_end]
        .strip_suffix(b"\r")
        .unwrap_or(&line[..word_end]);
    Verb::from_bytes(word)
}

/// Serve a freshly accepted connection.
pub async fn serve(shard: Rc<Shard>, mut stream: TcpStream) {
    let remote = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
    let mut magic = [0u8; 4];
    if stream.read_exact(&mut magic).await.is_err() {
        return; // nsqd closes silently when the client sends nothing
    }
    if &magic != MAGIC_V2 {
        crate::log_error!(
            "client({remote}) bad protocol magic '{}'",
            String::from_utf8_lossy(&magic)
        );
        let mut out = BytesMut::new();
        nsq_proto::frame::encode_error(&mut out, ErrorCode::BadProtocol, "");
        let _ = futures_lite::AsyncWriteExt::write_all(&mut stream, &out).await;
        return;
    }
    crate::log_info!("TCP: new client({remote})");
    let info = identify::default_info(shard.opts());
    let client = Rc::new(Client::new(shard.new_client_id(), remote, now_secs(), info));
    let conn = Conn::new(
        shard,
        client,
        SharedStream::new(stream),
        BytesMut::new(),
        None,
    );
    conn.run(None).await;
}

/// Take over a connection moved here by SUB (we own its channel).
pub async fn adopt(shard: Rc<Shard>, h: Handoff) {
    let stream = SharedStream::new(nsq_io::net::stream_from_fd(h.fd));
    let client = Rc::new(Client::new(
        h.client_id,
        h.remote_address,
        h.connect_ts,
        h.info,
    ));
    client.restore_counters(h.counters, h.pub_counts);
    let channel = shard.get_or_create_channel(&h.topic, &h.channel).await;
    let wire = h.wire.map(|w| Rc::new(RefCell::new(*w)));
    let conn = Conn::new(shard, client, stream, h.leftover, wire);
    conn.run(Some(channel)).await;
}

impl Conn {
    fn new(
        shard: Rc<Shard>,
        client: Rc<Client>,
        stream: SharedStream,
        buf: BytesMut,
        wire: Option<Rc<RefCell<Wire>>>,
    ) -> Conn {
        let opts = shard.opts();
        let limits = Limits {
            max_msg_size: opts.max_msg_size as usize,
            max_body_size: opts.max_body_size as usize,
            max_req_timeout_ms: opts.max_req_timeout.as_millis() as i64,
            max_rdy_count: opts.max_rdy_count as i64,
        };
        let tls_pending = opts.tls_required != crate::config::TlsRequired::NotRequired
            && !wire.as_ref().is_some_and(|w| w.borrow().is_tls());
        shard.register_client(&client);
        Conn {
            shard,
            client,
            channel: None,
            limits,
            stream,
            buf,
            read_size: READ_MIN,
            tls_pending,
            wire,
            raw: Vec::new(),
            retry: None,
        }
    }

    /// Start the writer task on the shared socket.
    fn spawn_writer(&self) -> glommio::Task<io::Result<()>> {
        glommio::spawn_local(pump::run_writer(
            self.client.clone(),
            self.stream.clone(),
            self.wire.clone(),
        ))
    }

    /// The loop. `subscribe`: the channel this (moved) connection subscribes to.
    async fn run(mut self, subscribe: Option<Rc<Channel>>) {
        let mut writer = self.spawn_writer();
        if let Some(channel) = subscribe {
            if let Err(err) = self.subscribed(channel) {
                self.client.send_error(err.code, &err.desc);
                return Box::pin(self.finish(Some(writer))).await;
            }
        }
        loop {
            match self.exec_buffered() {
                Next::Continue => {}
                Next::Close => break,
                Next::AwaitDurable { topic, pos, code } => {
                    match Box::pin(topic.wait_durable(pos)).await {
                        Ok(()) => self.client.send_response(nsq_proto::frame::OK),
                        Err(e) => {
                            let verb = match code {
                                ErrorCode::MpubFailed => "MPUB",
                                ErrorCode::DpubFailed => "DPUB",
                                _ => "PUB",
                            };
                            self.client.send_error(code, &format!("{verb} failed {e}"));
                            break;
                        }
                    }
                    // More commands may already be buffered.
                    continue;
                }
                Next::Auth(secret) => {
                    if !Box::pin(self.authenticate(secret)).await {
                        break;
                    }
                    continue;
                }
                Next::Reauth(cmd) => {
                    if !Box::pin(self.reauthorize()).await {
                        break;
                    }
                    self.retry = Some(*cmd);
                    continue;
                }
                Next::Upgrade(up) => match Box::pin(self.upgrade(writer, up)).await {
                    Some(w) => {
                        writer = w;
                        continue;
                    }
                    None => return Box::pin(self.finish(None)).await,
                },
                Next::Subscribe { topic, channel } => {
                    return Box::pin(self.move_to_owner(writer, topic, channel)).await;
                }
            }
            match self.read_more().await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        Box::pin(self.finish(Some(writer))).await;
    }

    /// Execute every complete command in the buffer (clients pipeline).
    fn exec_buffered(&mut self) -> Next {
        loop {
            if self.client.is_closed() {
                return Next::Close;
            }
            if let Some(cmd) = self.retry.take() {
                match self.exec(cmd) {
                    Ok(Next::Continue) => continue,
                    Ok(next) => return next,
                    Err(ClientErr { code, desc }) => {
                        self.client.send_error(code, &desc);
                        if code.is_fatal() {
                            return Next::Close;
                        }
                        continue;
                    }
                }
            }
            // nsqd checks the state before reading a body: IDENTIFY or AUTH
            // after SUB fails at once instead of waiting for the body.
            if let Some(verb) = peek_verb(&self.buf) {
                if self.tls_pending && verb != Verb::Identify
                    || matches!(verb, Verb::Identify | Verb::Auth)
                {
                    if let Err(err) = self.state_allows(verb) {
                        self.client.send_error(err.code, &err.desc);
                        return Next::Close;
                    }
                }
            }
            let cmd = match decode_command(&mut self.buf, &self.limits) {
                Ok(Some(cmd)) => cmd,
                Ok(None) => return Next::Continue,
                Err(e) => {
                    if let Some(verb) = e.verb() {
                        if verb == Verb::Rdy && self.client.state() == ClientState::Closing {
                            continue; // nsqd ignores RDY while closing
                        }
                        if let Err(err) = self.state_allows(verb) {
                            self.client.send_error(err.code, &err.desc);
                            return Next::Close;
                        }
                    }
                    self.client.send_error(e.code(), &e.description());
                    return Next::Close;
                }
            };
            match self.exec(cmd) {
                Ok(Next::Continue) => {}
                Ok(next) => return next,
                Err(ClientErr { code, desc }) => {
                    self.client.send_error(code, &desc);
                    if code.is_fatal() {
                        return Next::Close;
                    }
                }
            }
        }
    }

    /// nsqd's per-command state rules (checked before parameters).
    fn state_allows(&self, verb: Verb) -> Result<(), ClientErr> {
        // nsqd: with --tls-required (true or tcp-https), nothing but
        // IDENTIFY before the connection is TLS.
        if verb != Verb::Identify && self.tls_pending {
            return Err(ClientErr::fatal(
                ErrorCode::Invalid,
                format!("cannot {} in current state (TLS required)", verb.as_str()),
            ));
        }
        let state = self.client.state();
        let allowed = match verb {
            Verb::Identify | Verb::Auth | Verb::Sub => state == ClientState::Init,
            Verb::Rdy | Verb::Fin | Verb::Req | Verb::Touch => {
                matches!(state, ClientState::Subscribed | ClientState::Closing)
            }
            Verb::Cls => state == ClientState::Subscribed,
            _ => true,
        };
        if allowed {
            Ok(())
        } else {
            Err(ClientErr::fatal(
                ErrorCode::Invalid,
                format!("cannot {} in current state", verb.as_str()),
            ))
        }
    }

    async fn read_more(&mut self) -> io::Result<usize> {
        // nsqd: the read deadline is twice the heartbeat interval.
        let timeout = self
            .client
            .info
            .borrow()
            .heartbeat_interval
            .map(|hb| hb * 2);
        let _ = self.stream.set_read_timeout(timeout);
        if let Some(wire) = self.wire.clone() {
            return self.read_layered(&wire).await;
        }
        let len = self.buf.len();
        let want = self.read_size;
        self.buf.resize(len + want, 0);
        let res = self.stream.read(&mut self.buf[len..]).await;
        let n = *res.as_ref().unwrap_or(&0);
        self.buf.truncate(len + n);
        // A full read means more is waiting (a burst, MPUBs): ask for more
        // next time. Small reads (FINs, RDY, an idle client) shrink it back.
        if n == want {
            self.read_size = (want * 2).min(READ_MAX);
        } else if n < want / 4 {
            self.read_size = (want / 2).max(READ_MIN);
        }
        res
    }

    /// Read through TLS and/or compression: decode what the layers hold
    /// first (a burst may decode to more than one read's worth), then read
    /// the socket.
    async fn read_layered(&mut self, wire: &RefCell<Wire>) -> io::Result<usize> {
        loop {
            let n = wire.borrow_mut().decode(&mut self.buf, READ_MAX)?;
            if n > 0 {
                return Ok(n);
            }
            if wire.borrow().wants_write() {
                self.client.wake_writer(); // an alert or key update to send
            }
            if wire.borrow().is_closed() {
                return Ok(0);
            }
            if self.raw.is_empty() {
                self.raw.resize(READ_MAX, 0);
            }
            let n = self.stream.read(&mut self.raw).await?;
            if n == 0 {
                return Ok(0);
            }
            wire.borrow_mut().absorb(&self.raw[..n]);
        }
    }

    /// Ask the auth servers about `secret` (or the stored secret), bounded by
    /// the HTTP client timeouts; nsqd's `QueryAuthd`.
    async fn query_auth(&self, secret: &str) -> Result<crate::auth::AuthState, String> {
        let opts = self.shard.opts();
        let cfg = crate::auth::AuthConfig {
            addresses: opts.auth_http_addresses.clone(),
            method: crate::auth::Method::from_flag(&opts.auth_http_request_method),
            connect_timeout: opts.http_client_connect_timeout,
            request_timeout: opts.http_client_request_timeout,
        };
        let remote = &self.client.remote_address;
        let remote_ip = remote
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let (tls, common_name) = {
            let info = self.client.info.borrow();
            (
                info.tls.is_some(),
                info.tls
                    .as_ref()
                    .map(|t| t.common_name.clone())
                    .unwrap_or_default(),
            )
        };
        crate::auth::query(&cfg, &remote_ip, tls, secret, &common_name).await
    }

    /// AUTH: query, store, answer (nsqd's `AUTH`). False: close.
    async fn authenticate(&mut self, secret: String) -> bool {
        let result = self.query_auth(&secret).await;
        self.client.info.borrow_mut().auth_secret = Some(secret);
        let remote = self.client.remote_address.clone();
        let state = match result {
            Ok(state) => state,
            Err(e) => {
                crate::log_warn!("PROTOCOL(V2): [{remote}] AUTH failed {e}");
                self.client.send_error(ErrorCode::AuthFailed, "AUTH failed");
                return false;
            }
        };
        if state.permission_count() == 0 {
            self.client
                .send_error(ErrorCode::Unauthorized, "AUTH no authorizations found");
            return false;
        }
        let mut json = BytesMut::new();
        nsq_proto::identify::AuthResponse {
            identity: state.identity.clone(),
            identity_url: state.identity_url.clone(),
            permission_count: state.permission_count() as i64,
        }
        .write_json(&mut json);
        crate::log_info!(
            "PROTOCOL(V2): [{remote}] AUTH identity {} ({} authorizations)",
            state.identity,
            state.permission_count()
        );
        self.client.info.borrow_mut().auth = Some(state);
        self.client.send_response(&json);
        true
    }

    /// The authorizations expired: query again with the stored secret
    /// (nsqd's `IsAuthorized`). On failure the old state stays and the
    /// client gets `E_AUTH_FAILED`. False: close.
    async fn reauthorize(&mut self) -> bool {
        let secret = self
            .client
            .info
            .borrow()
            .auth_secret
            .clone()
            .unwrap_or_default();
        match self.query_auth(&secret).await {
            Ok(state) => {
                self.client.info.borrow_mut().auth = Some(state);
                true
            }
            Err(e) => {
                crate::log_warn!(
                    "PROTOCOL(V2): [{}] AUTH failed {e}",
                    self.client.remote_address
                );
                self.client.send_error(ErrorCode::AuthFailed, "AUTH failed");
                false
            }
        }
    }

    /// Upgrade the connection as IDENTIFY granted (nsqd's order: TLS, then
    /// compression), with the writer stopped meanwhile so the plaintext
    /// response goes out first and nothing else interleaves. Returns the new
    /// writer, or None when the connection must close.
    async fn upgrade(
        &mut self,
        writer: glommio::Task<io::Result<()>>,
        up: Upgrades,
    ) -> Option<glommio::Task<io::Result<()>>> {
        use futures_lite::AsyncWriteExt;
        self.client.detach();
        if writer.await.is_err() || self.client.is_closed() {
            return None;
        }
        self.client.reattach();
        let remote = self.client.remote_address.clone();
        // Bytes after IDENTIFY already belong to the new layers.
        let pending = self.buf.split();
        let mut ok = BytesMut::new();
        nsq_proto::frame::encode_response(&mut ok, nsq_proto::frame::OK);
        let mut out = Vec::new();
        let mut wire = if up.tls {
            crate::log_info!("PROTOCOL(V2): [{remote}] upgrading connection to TLS");
            let config = self.shard.tls.clone()?;
            match crate::tls::handshake(&mut self.stream, config, pending).await {
                Ok((tls, raw_in)) => {
                    self.client.info.borrow_mut().tls = Some(crate::tls::session_stats(&tls));
                    Wire::new(Some(tls), raw_in)
                }
                Err(e) => {
                    // nsqd answers in plaintext: the TLS layer never started.
                    crate::log_error!(
                        "PROTOCOL(V2): [{remote}] IDENTIFY failed - TLS handshake: {e}"
                    );
                    let mut frame = BytesMut::new();
                    nsq_proto::frame::encode_error(
                        &mut frame,
                        ErrorCode::IdentifyFailed,
                        &format!("IDENTIFY failed {e}"),
                    );
                    let _ = self.stream.set_write_timeout(Some(Duration::from_secs(1)));
                    let _ = self.stream.write_all(&frame).await;
                    return None;
                }
            }
        } else {
            Wire::new(None, pending)
        };
        if up.tls && wire.encode(&ok, &mut out).is_err() {
            return None;
        }
        if let Some(codec) = up.compression {
            let name = match codec {
                crate::wire::compress::Codec::Snappy => "snappy",
                crate::wire::compress::Codec::Deflate { .. } => "deflate",
            };
            crate::log_info!("PROTOCOL(V2): [{remote}] upgrading connection to {name}");
            wire.compress(codec);
            {
                let mut info = self.client.info.borrow_mut();
                info.snappy = name == "snappy";
                info.deflate = name == "deflate";
            }
            if wire.encode(&ok, &mut out).is_err() {
                return None;
            }
        }
        if let Some(hb) = self.client.info.borrow().heartbeat_interval {
            let _ = self.stream.set_write_timeout(Some(hb));
        }
        if let Err(e) = self.stream.write_all(&out).await {
            crate::log_error!("PROTOCOL(V2): [{remote}] IDENTIFY failed - {e}");
            return None;
        }
        self.tls_pending = self.tls_pending && !wire.is_tls();
        self.wire = Some(Rc::new(RefCell::new(wire)));
        Some(self.spawn_writer())
    }

    /// Register as a consumer of `channel` (on its owner shard) and answer SUB.
    fn subscribed(&mut self, channel: Rc<Channel>) -> Result<(), ClientErr> {
        channel
            .add_consumer(self.client.clone())
            .map_err(|e| ClientErr::fatal(ErrorCode::SubFailed, format!("SUB failed {e}")))?;
        self.client.set_channel_paused(channel.is_paused());
        self.client.set_state(ClientState::Subscribed);
        self.client.send_response(nsq_proto::frame::OK);
        self.channel = Some(channel);
        Ok(())
    }

    /// Hand the connection to the shard that owns `topic/channel`.
    async fn move_to_owner(
        self,
        writer: glommio::Task<io::Result<()>>,
        topic: String,
        channel: String,
    ) {
        self.client.detach();
        let _ = writer.await;
        let client = &self.client;
        let fd = match self.stream.dup_fd() {
            Ok(fd) => fd,
            Err(e) => {
                crate::log_error!("client({}): cannot move socket: {e}", client.remote_address);
                self.shard.unregister_client(client.id);
                return;
            }
        };
        // The writer has ended: this is the last reference to the layers.
        let wire = match self.wire.map(Rc::try_unwrap) {
            None => None,
            Some(Ok(wire)) => Some(Box::new(wire.into_inner())),
            Some(Err(_)) => {
                crate::log_error!(
                    "client({}): TLS/compression state still shared, connection dropped",
                    client.remote_address
                );
                self.shard.unregister_client(client.id);
                return;
            }
        };
        let handoff = Handoff {
            fd,
            wire,
            leftover: self.buf,
            client_id: client.id,
            remote_address: client.remote_address.clone(),
            connect_ts: client.connect_ts,
            info: client.info.borrow().clone(),
            counters: client.counters(),
            pub_counts: client.pub_counts(),
            topic,
            channel,
        };
        self.shard.unregister_client(client.id);
        drop(self.stream);
        let owner = routing::owner_of(&handoff.topic, &handoff.channel, self.shard.shards());
        if owner == self.shard.id() {
            glommio::spawn_local(adopt(self.shard.clone(), handoff)).detach();
        } else if self
            .shard
            .peers
            .send(owner, ShardMsg::Adopt(Box::new(handoff)))
            .await
            .is_err()
        {
            crate::log_error!("client: shard {owner} is gone, connection dropped");
        }
    }

    /// Tear down: stop the writer, leave the channel, forget the client.
    async fn finish(self, writer: Option<glommio::Task<io::Result<()>>>) {
        self.client.close();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        self.shard.unregister_client(self.client.id);
        crate::log_info!(
            "PROTOCOL(V2): [{}] exiting ioloop",
            self.client.remote_address
        );
        if let Some(channel) = self.channel {
            if channel.remove_consumer(self.client.id) {
                let shard = self.shard.clone();
                shard
                    .delete_owned_channel(&channel.topic, &channel.name)
                    .await;
            } else {
                channel.dispatch();
            }
        }
    }
}
