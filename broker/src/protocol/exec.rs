//! One function per NSQ command, as nsqd's protocol_v2.go has.
//!
//! Every check happens in nsqd's order with nsqd's error texts. Decoding
//! (parameters, names, body sizes) was already done by `nsq_proto`; what is
//! left here is what needs the connection's state or the broker.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nsq_proto::{Command, ErrorCode, MessageId};

use super::conn::Conn;
use super::identify;
use crate::client::ClientState;
use crate::message::Message;
use crate::topic::{Stored, Topic};

/// An error for the client: `code` and the text after it.
#[derive(Debug)]
pub struct ClientErr {
    /// NSQ error code (fatal or not, see `ErrorCode::is_fatal`).
    pub code: ErrorCode,
    /// Description after the code.
    pub desc: String,
}

impl ClientErr {
    /// A fatal error: the connection is closed after it is sent.
    pub fn fatal(code: ErrorCode, desc: impl Into<String>) -> ClientErr {
        ClientErr {
            code,
            desc: desc.into(),
        }
    }

    fn invalid(desc: impl Into<String>) -> ClientErr {
        ClientErr::fatal(ErrorCode::Invalid, desc)
    }
}

/// What the connection loop does after a command.
#[derive(Debug)]
pub enum Next {
    /// Read the next command.
    Continue,
    /// Close the connection (after flushing what is queued).
    Close,
    /// Answer `OK` once the publish is stored as promised
    /// (`Topic::wait_durable`): with `--ack-after-fsync` once the topic's
    /// disk queue is durable up to it; a publish held while the disk queue
    /// opens, once written. The loop waits, keeping responses in order.
    AwaitDurable {
        /// The topic part written to.
        topic: Rc<Topic>,
        /// Where the command's messages went.
        pos: Stored,
        /// Error code if the sync fails.
        code: ErrorCode,
    },
    /// IDENTIFY granted TLS and/or compression: once the response is out,
    /// upgrade the connection.
    Upgrade(super::identify::Upgrades),
    /// AUTH: ask the auth server (off the command path: the loop awaits
    /// it, other connections keep running), then answer.
    Auth(String),
    /// The authorizations expired: query the auth server again with the
    /// stored secret, then run this command.
    Reauth(Box<Command>),
    /// Move to the channel's owner shard and subscribe there.
    Subscribe {
        /// Topic name.
        topic: String,
        /// Channel name.
        channel: String,
    },
}

type Exec = Result<Next, ClientErr>;

/// Bodies are zero-copy slices of the connection's read buffer (up to 64 KiB
/// per read), and a slice keeps the whole buffer alive. Worth it for big bodies;
/// for anything smaller than a read it would pin 64 KiB per queued command
/// (measured: ~4 GiB RSS for 80k unbatched PUBs; and an MPUB of 200 x 200 B
/// pinned ~1.6x its size), so those are copied once into an exact-size
/// buffer (one allocation per command, ~10 ns per 200 B message).
/// One read's size: anything smaller shares its read buffer with others.
const PIN_LIMIT: usize = super::conn::READ_MAX;

fn unpin(body: Bytes) -> Bytes {
    if body.len() < PIN_LIMIT {
        Bytes::copy_from_slice(&body)
    } else {
        body
    }
}

/// As [`unpin`] for an MPUB: one allocation for all of its small bodies.
fn unpin_all(bodies: Vec<Bytes>) -> Vec<Bytes> {
    let total: usize = bodies.iter().map(Bytes::len).sum();
    if total >= PIN_LIMIT {
        return bodies;
    }
    let mut buf = bytes::BytesMut::with_capacity(total);
    for body in &bodies {
        buf.extend_from_slice(body);
    }
    let mut all = buf.freeze();
    bodies.iter().map(|b| all.split_to(b.len())).collect()
}

impl Conn {
    /// Dispatch one decoded command.
    pub(crate) fn exec(&mut self, cmd: Command) -> Exec {
        if self.auth_enabled() {
            let target = match &cmd {
                Command::Pub { topic, .. } => Some(("PUB", topic.as_str(), "")),
                Command::Mpub { topic, .. } => Some(("MPUB", topic.as_str(), "")),
                Command::Dpub { topic, .. } => Some(("DPUB", topic.as_str(), "")),
                Command::Sub { topic, channel } => {
                    self.sub_allowed()?;
                    Some(("SUB", topic.as_str(), channel.as_str()))
                }
                _ => None,
            };
            if let Some((verb, topic, channel)) = target {
                if !self.check_auth(verb, topic, channel)? {
                    return Ok(Next::Reauth(Box::new(cmd)));
                }
            }
        }
        match cmd {
            // The hot publisher path first.
            Command::Pub { topic, body } => self.exec_pub(&topic, body),
            Command::Mpub { topic, bodies } => self.exec_mpub(&topic, bodies),
            Command::Fin { id } => self.exec_fin(&id),
            Command::Rdy { count } => self.exec_rdy(count),
            Command::Req { id, timeout_ms } => self.exec_req(&id, timeout_ms),
            Command::Touch { id } => self.exec_touch(&id),
            Command::Dpub {
                topic,
                defer_ms,
                body,
            } => self.exec_dpub(&topic, defer_ms, body),
            Command::Nop => Ok(Next::Continue),
            Command::Identify { body } => self.exec_identify(&body),
            Command::Auth { body } => self.exec_auth(&body),
            Command::Sub { topic, channel } => self.exec_sub(topic, channel),
            Command::Cls => self.exec_cls(),
        }
    }

    fn exec_pub(&mut self, topic: &str, body: Bytes) -> Exec {
        let part = self.shard.get_or_create_topic(topic);
        let msg = Message::new(self.shard.ids.next_id(), unpin(body), None);
        let stored = part
            .put(msg)
            .map_err(|e| ClientErr::fatal(ErrorCode::PubFailed, format!("PUB failed {e}")))?;
        self.client.count_pub(topic, 1);
        Ok(self.acknowledge(part, stored, ErrorCode::PubFailed))
    }

    /// OK now, or after the fdatasync with `--ack-after-fsync`.
    fn acknowledge(&self, part: Rc<Topic>, stored: Stored, code: ErrorCode) -> Next {
        match stored {
            Stored::Disk(_) if part.durable_acks() => Next::AwaitDurable {
                topic: part,
                pos: stored,
                code,
            },
            Stored::Pending(_) => Next::AwaitDurable {
                topic: part,
                pos: stored,
                code,
            },
            _ => {
                self.client.send_response(nsq_proto::frame::OK);
                Next::Continue
            }
        }
    }

    fn exec_mpub(&mut self, topic: &str, bodies: Vec<Bytes>) -> Exec {
        let bodies = unpin_all(bodies);
        let part = self.shard.get_or_create_topic(topic);
        let n = bodies.len() as u64;
        let now = crate::message::now_ns();
        let msgs: Vec<Message> = bodies
            .into_iter()
            .map(|body| Message::published_at(self.shard.ids.next_id(), body, None, now))
            .collect();
        let stored = part
            .put_batch(msgs)
            .map_err(|e| ClientErr::fatal(ErrorCode::MpubFailed, format!("MPUB failed {e}")))?;
        self.client.count_pub(topic, n);
        Ok(self.acknowledge(part, stored, ErrorCode::MpubFailed))
    }

    fn exec_dpub(&mut self, topic: &str, defer_ms: i64, body: Bytes) -> Exec {
        let part = self.shard.get_or_create_topic(topic);
        let deliver_at =
            (defer_ms > 0).then(|| Instant::now() + Duration::from_millis(defer_ms as u64));
        let msg = Message::new(self.shard.ids.next_id(), unpin(body), deliver_at);
        let stored = part
            .put(msg)
            .map_err(|e| ClientErr::fatal(ErrorCode::DpubFailed, format!("DPUB failed {e}")))?;
        self.client.count_pub(topic, 1);
        Ok(self.acknowledge(part, stored, ErrorCode::DpubFailed))
    }

    fn exec_identify(&mut self, body: &[u8]) -> Exec {
        // nsqd allows IDENTIFY again until SUB; only the state matters.
        if self.client.state() != ClientState::Init {
            return Err(ClientErr::invalid("cannot IDENTIFY in current state"));
        }
        let req: nsq_proto::identify::IdentifyRequest =
            serde_json::from_slice(body).map_err(|_| {
                ClientErr::fatal(ErrorCode::BadBody, "IDENTIFY failed to decode JSON body")
            })?;
        let opts = self.shard.opts().clone();
        let feature_negotiation = req.feature_negotiation;
        {
            let mut info = self.client.info.borrow_mut();
            identify::apply(&mut info, &req, &opts)
                .map_err(|e| ClientErr::fatal(ErrorCode::BadBody, format!("IDENTIFY {e}")))?;
        }
        if !feature_negotiation {
            self.client.send_response(nsq_proto::frame::OK);
            return Ok(Next::Continue);
        }
        let (granted, deflate_level) =
            identify::negotiate(&req, &opts, self.shard.tls.is_some())
                .map_err(|e| ClientErr::fatal(ErrorCode::IdentifyFailed, e))?;
        let resp = identify::response(
            &self.client.info.borrow(),
            &opts,
            granted,
            deflate_level,
            self.auth_enabled(),
        );
        let json = serde_json::to_vec(&resp).map_err(|_| {
            ClientErr::fatal(
                ErrorCode::IdentifyFailed,
                "IDENTIFY failed marshaling response",
            )
        })?;
        self.client.send_response(&json);
        if granted.is_empty() {
            Ok(Next::Continue)
        } else {
            Ok(Next::Upgrade(granted))
        }
    }

    /// `--auth-http-address` is set (IDENTIFY's `auth_required`).
    pub(crate) fn auth_enabled(&self) -> bool {
        !self.shard.opts().auth_http_addresses.is_empty()
    }

    /// nsqd's `CheckAuth`: Ok(true) allowed, Ok(false) the authorizations
    /// expired (query again, then retry), Err refused.
    fn check_auth(&self, verb: &str, topic: &str, channel: &str) -> Result<bool, ClientErr> {
        let info = self.client.info.borrow();
        // Stored only with authorizations; a re-query may since have
        // granted fewer (even none: then nothing is allowed).
        let Some(auth) = info.auth.as_ref() else {
            return Err(ClientErr::fatal(
                ErrorCode::AuthFirst,
                format!("AUTH required before {verb}"),
            ));
        };
        if auth.is_expired(Instant::now()) {
            return Ok(false);
        }
        let channel_arg = (!channel.is_empty()).then_some(channel);
        if auth.is_allowed(topic, channel_arg) {
            Ok(true)
        } else {
            Err(ClientErr::fatal(
                ErrorCode::Unauthorized,
                format!("AUTH failed for {verb} on {topic:?} {channel:?}"),
            ))
        }
    }

    fn exec_auth(&mut self, body: &[u8]) -> Exec {
        if self.client.state() != ClientState::Init {
            return Err(ClientErr::invalid("cannot AUTH in current state"));
        }
        if self.client.info.borrow().has_authorizations() {
            return Err(ClientErr::invalid("AUTH already set"));
        }
        if !self.auth_enabled() {
            return Err(ClientErr::fatal(ErrorCode::AuthDisabled, "AUTH disabled"));
        }
        Ok(Next::Auth(String::from_utf8_lossy(body).into_owned()))
    }

    /// SUB's state checks (nsqd runs them before the auth check).
    fn sub_allowed(&self) -> Result<(), ClientErr> {
        if self.client.state() != ClientState::Init {
            return Err(ClientErr::invalid("cannot SUB in current state"));
        }
        if self.client.info.borrow().heartbeat_interval.is_none() {
            return Err(ClientErr::invalid("cannot SUB with heartbeats disabled"));
        }
        Ok(())
    }

    fn exec_sub(&mut self, topic: String, channel: String) -> Exec {
        self.sub_allowed()?;
        Ok(Next::Subscribe { topic, channel })
    }

    fn exec_rdy(&mut self, count: i64) -> Exec {
        match self.client.state() {
            // nsqd ignores RDY from a closing client.
            ClientState::Closing => return Ok(Next::Continue),
            ClientState::Subscribed => {}
            _ => return Err(ClientErr::invalid("cannot RDY in current state")),
        }
        let max = self.shard.opts().max_rdy_count as i64;
        if count < 0 || count > max {
            return Err(ClientErr::invalid(format!(
                "RDY count {count} out of range 0-{max}"
            )));
        }
        self.client.set_ready_count(count);
        if let Some(ch) = &self.channel {
            ch.consumer_ready_changed();
        }
        Ok(Next::Continue)
    }

    fn consumer_state(
        &self,
        verb: &str,
    ) -> Result<&std::rc::Rc<crate::channel::Channel>, ClientErr> {
        match (self.client.state(), &self.channel) {
            (ClientState::Subscribed | ClientState::Closing, Some(ch)) => Ok(ch),
            _ => Err(ClientErr::invalid(format!(
                "cannot {verb} in current state"
            ))),
        }
    }

    fn exec_fin(&mut self, id: &MessageId) -> Exec {
        let ch = self.consumer_state("FIN")?;
        ch.finish(&self.client, id).map_err(|e| ClientErr {
            code: ErrorCode::FinFailed,
            desc: format!("FIN {id} failed {e}"),
        })?;
        Ok(Next::Continue)
    }

    fn exec_req(&mut self, id: &MessageId, timeout_ms: i64) -> Exec {
        let ch = self.consumer_state("REQ")?;
        // nsqd clamps out-of-range REQ timeouts instead of failing (#868).
        let max = self.shard.opts().max_req_timeout;
        let delay = if timeout_ms <= 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(timeout_ms as u64).min(max)
        };
        ch.requeue(&self.client, id, delay).map_err(|e| ClientErr {
            code: ErrorCode::ReqFailed,
            desc: format!("REQ {id} failed {e}"),
        })?;
        Ok(Next::Continue)
    }

    fn exec_touch(&mut self, id: &MessageId) -> Exec {
        let ch = self.consumer_state("TOUCH")?;
        ch.touch(&self.client, id).map_err(|e| ClientErr {
            code: ErrorCode::TouchFailed,
            desc: format!("TOUCH {id} failed {e}"),
        })?;
        Ok(Next::Continue)
    }

    fn exec_cls(&mut self) -> Exec {
        if self.client.state() != ClientState::Subscribed {
            return Err(ClientErr::invalid("cannot CLS in current state"));
        }
        self.client.set_ready_count(0);
        self.client.set_state(ClientState::Closing);
        self.client.send_response(nsq_proto::frame::CLOSE_WAIT);
        Ok(Next::Continue)
    }
}
