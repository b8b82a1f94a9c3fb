//! nsqlookupd's TCP protocol V1, without I/O: what each command does to the
//! registration DB and what goes back on the wire.
//! (`nsqlookupd/lookup_protocol_v1.go` is the oracle.)
//!
//! The wire format (magic, command lines, IDENTIFY's body, size-prefixed
//! answers) and its syntax errors are `nsq_proto::lookup`, which nsqd's side
//! encodes with. Every error is fatal: the text `E_CODE description` is
//! sent, then the connection is closed, and the peer's registrations go with
//! it. The connection loop (`tcp.rs`) owns the socket; [`Session`] owns the
//! rest.

use nsq_proto::lookup::{self, LookupError, Params, Request};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use crate::registration_db::{Category, PeerInfo, Registration, RegistrationDb};
use crate::{log_info, log_warn};

/// What the connection loop does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this answer and read the next line.
    Reply(Vec<u8>),
    /// Send this error, then close the connection.
    Fatal(Vec<u8>),
    /// IDENTIFY: read `[4B BE size][body]`, then call [`Session::identify`].
    ReadIdentifyBody,
}

/// A fatal error answer: `E_CODE description`.
pub fn fatal(code: &str, desc: &[u8]) -> Step {
    Step::Fatal([code.as_bytes(), b" ", desc].concat())
}

impl From<LookupError> for Step {
    /// A wire-level error: fatal, with the peer's bytes echoed as sent.
    fn from(e: LookupError) -> Step {
        Step::Fatal(e.to_wire())
    }
}

/// One peer connection's protocol state.
///
/// Lives on: the lookupd executor, owned by its connection task.
#[derive(Debug)]
pub struct Session {
    /// The peer id: its remote `ip:port`.
    id: String,
    identified: bool,
}

impl Session {
    /// A fresh connection from `remote` (`ip:port`).
    pub fn new(remote: String) -> Session {
        Session {
            id: remote,
            identified: false,
        }
    }

    /// The peer id (remote address).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether IDENTIFY succeeded (so the DB holds registrations to drop on close).
    pub fn is_identified(&self) -> bool {
        self.identified
    }

    /// Execute one command line (without its `\n`). `now` is Unix ns.
    pub fn exec(&mut self, db: &mut RegistrationDb, line: &[u8], now: i64) -> Step {
        match lookup::decode_request(line) {
            Ok(Request::Ping) => self.ping(db, now),
            Ok(Request::Identify) if self.identified => {
                fatal("E_INVALID", b"cannot IDENTIFY again")
            }
            Ok(Request::Identify) => Step::ReadIdentifyBody,
            Ok(Request::Register(params)) => self.register(db, params),
            Ok(Request::Unregister(params)) => self.unregister(db, params),
            Err(e) => e.into(),
        }
    }

    /// Finish IDENTIFY with its body. `response` is the JSON we answer with
    /// (the same for every peer, built once at startup).
    pub fn identify(
        &mut self,
        db: &mut RegistrationDb,
        body: &[u8],
        response: &[u8],
        now: i64,
    ) -> Step {
        if self.identified {
            return fatal("E_INVALID", b"cannot IDENTIFY again");
        }
        let mut info = match parse_peer_info(body) {
            Ok(info) => info,
            Err(e) => {
                log_info!("CLIENT({}): IDENTIFY body rejected - {e}", self.id);
                return fatal("E_BAD_BODY", b"IDENTIFY failed to decode JSON body");
            }
        };
        info.remote_address = self.id.clone();
        if info.broadcast_address.is_empty()
            || info.tcp_port == 0
            || info.http_port == 0
            || info.version.is_empty()
        {
            return fatal("E_BAD_BODY", b"IDENTIFY missing fields");
        }
        log_info!(
            "CLIENT({}): IDENTIFY Address:{} TCP:{} HTTP:{} Version:{}",
            self.id,
            info.broadcast_address,
            info.tcp_port,
            info.http_port,
            info.version
        );
        self.identified = true;
        if db.add_peer(&self.id, info, now) {
            log_info!(
                "DB: client({}) REGISTER category:client key: subkey:",
                self.id
            );
        }
        Step::Reply(response.to_vec())
    }

    fn ping(&self, db: &mut RegistrationDb, now: i64) -> Step {
        // A PING may come before IDENTIFY; it is answered all the same.
        if self.identified {
            if let Some(last) = db.touch_peer(&self.id, now) {
                let since = u64::try_from(now.saturating_sub(last)).unwrap_or(0);
                let since = std::time::Duration::from_nanos(since);
                log_info!("CLIENT({}): pinged (last ping {since:?})", self.id);
            }
        }
        Step::Reply(lookup::OK.to_vec())
    }

    fn register(&self, db: &mut RegistrationDb, params: Params<'_>) -> Step {
        if !self.identified {
            return fatal("E_INVALID", b"client must IDENTIFY");
        }
        let (topic, channel) = match params.names() {
            Ok(names) => names,
            Err(e) => return e.into(),
        };
        if let Some(channel) = channel {
            self.add(db, Registration::channel(topic, channel));
        }
        self.add(db, Registration::topic(topic));
        Step::Reply(lookup::OK.to_vec())
    }

    fn add(&self, db: &mut RegistrationDb, registration: Registration) {
        let (category, key, subkey) = (
            registration.category.as_str(),
            registration.key.clone(),
            registration.subkey.clone(),
        );
        if db.add_producer(registration, &self.id) {
            log_info!(
                "DB: client({}) REGISTER category:{category} key:{key} subkey:{subkey}",
                self.id
            );
        }
    }

    fn unregister(&self, db: &mut RegistrationDb, params: Params<'_>) -> Step {
        if !self.identified {
            return fatal("E_INVALID", b"client must IDENTIFY");
        }
        let (topic, channel) = match params.names() {
            Ok(names) => names,
            Err(e) => return e.into(),
        };
        let id = self.id.as_str();
        match channel {
            Some(channel) => {
                let key = Registration::channel(topic, channel);
                let (removed, left) = db.remove_producer(&key, id);
                if removed {
                    log_info!(
                        "DB: client({id}) UNREGISTER category:channel key:{topic} subkey:{channel}"
                    );
                }
                // An ephemeral channel goes away with its last producer.
                if left == 0 && nsq_proto::names::is_ephemeral(channel) {
                    db.remove_registration(&key);
                }
            }
            None => {
                // A topic unregistration also drops this peer from the
                // topic's channels (nsqd normally unregisters those first).
                for key in db.find_registrations(Category::Channel, topic, "*") {
                    if db.remove_producer(&key, id).0 {
                        log_warn!(
                            "client({id}) unexpected UNREGISTER category:channel key:{topic} subkey:{}",
                            key.subkey
                        );
                    }
                }
                let key = Registration::topic(topic);
                let (removed, left) = db.remove_producer(&key, id);
                if removed {
                    log_info!("DB: client({id}) UNREGISTER category:topic key:{topic} subkey:");
                }
                if left == 0 && nsq_proto::names::is_ephemeral(topic) {
                    db.remove_registration(&key);
                }
            }
        }
        Step::Reply(lookup::OK.to_vec())
    }
}

/// Decode an IDENTIFY body as Go's `json.Unmarshal` into `PeerInfo` would:
/// unknown keys are ignored, key names match case-insensitively, `null`
/// leaves a field unset, a wrong type is an error, and a `null` body is an
/// empty object. `remote_address` is decoded (so its type is checked) but
/// the caller overwrites it.
pub fn parse_peer_info(body: &[u8]) -> Result<PeerInfo, serde_json::Error> {
    let parsed: Option<IdentifyBody> = serde_json::from_slice(body)?;
    Ok(parsed.map(|body| body.0).unwrap_or_default())
}

struct IdentifyBody(PeerInfo);

impl<'de> Deserialize<'de> for IdentifyBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(IdentifyVisitor)
    }
}

struct IdentifyVisitor;

impl<'de> Visitor<'de> for IdentifyVisitor {
    type Value = IdentifyBody;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IdentifyBody, A::Error> {
        let mut info = PeerInfo::default();
        while let Some(key) = map.next_key::<String>()? {
            let text = |map: &mut A, field: &mut String| -> Result<(), A::Error> {
                if let Some(value) = map.next_value::<Option<String>>()? {
                    *field = value;
                }
                Ok(())
            };
            let number = |map: &mut A, field: &mut i64| -> Result<(), A::Error> {
                if let Some(value) = map.next_value::<Option<i64>>()? {
                    *field = value;
                }
                Ok(())
            };
            let is = |name: &str| go_fold_eq(&key, name);
            if is("remote_address") {
                text(&mut map, &mut info.remote_address)?;
            } else if is("hostname") {
                text(&mut map, &mut info.hostname)?;
            } else if is("broadcast_address") {
                text(&mut map, &mut info.broadcast_address)?;
            } else if is("tcp_port") {
                number(&mut map, &mut info.tcp_port)?;
            } else if is("http_port") {
                number(&mut map, &mut info.http_port)?;
            } else if is("version") {
                text(&mut map, &mut info.version)?;
            } else if is("topology_zone") {
                text(&mut map, &mut info.topology_zone)?;
            } else if is("topology_region") {
                text(&mut map, &mut info.topology_region)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(IdentifyBody(info))
    }
}

/// encoding/json's key match against a lower-case ASCII field name: case
/// folding, including the two non-ASCII letters that fold to ASCII
/// (U+017F long s and U+212A Kelvin sign).
fn go_fold_eq(key: &str, name: &str) -> bool {
    let fold = |c: char| match c {
        '\u{17F}' => 's',
        '\u{212A}' => 'k',
        c => c.to_ascii_lowercase(),
    };
    key.chars().map(fold).eq(name.chars())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000_000;
    const RESPONSE: &[u8] = b"{\"identify\":\"response\"}";
    const BODY: &[u8] = br#"{"tcp_port":4150,"http_port":4151,"broadcast_address":"ip.address","hostname":"h","version":"1.3.0"}"#;

    fn text(step: Step) -> String {
        match step {
            Step::Reply(data) => format!("reply {}", String::from_utf8_lossy(&data)),
            Step::Fatal(data) => format!("fatal {}", String::from_utf8_lossy(&data)),
            Step::ReadIdentifyBody => "read body".to_string(),
        }
    }

    fn identified(db: &mut RegistrationDb) -> Session {
        let mut session = Session::new("127.0.0.1:5000".into());
        assert_eq!(session.exec(db, b"IDENTIFY", NOW), Step::ReadIdentifyBody);
        assert_eq!(
            session.identify(db, BODY, RESPONSE, NOW),
            Step::Reply(RESPONSE.to_vec())
        );
        session
    }

    #[test]
    fn commands_before_identify() {
        let mut db = RegistrationDb::new();
        let mut s = Session::new("1.2.3.4:5".into());
        assert_eq!(text(s.exec(&mut db, b"PING", NOW)), "reply OK");
        assert_eq!(text(s.exec(&mut db, b"  PING \r", NOW)), "reply OK");
        assert_eq!(
            text(s.exec(&mut db, b"REGISTER t c", NOW)),
            "fatal E_INVALID client must IDENTIFY"
        );
        assert_eq!(
            text(s.exec(&mut db, b"UNREGISTER t", NOW)),
            "fatal E_INVALID client must IDENTIFY"
        );
        assert_eq!(
            text(s.exec(&mut db, b"INVALID_COMMAND", NOW)),
            "fatal E_INVALID invalid command INVALID_COMMAND"
        );
        assert_eq!(
            text(s.exec(&mut db, b"", NOW)),
            "fatal E_INVALID invalid command "
        );
        assert_eq!(
            text(s.exec(&mut db, b"ping", NOW)),
            "fatal E_INVALID invalid command ping"
        );
        assert!(!s.is_identified());
    }

    #[test]
    fn identify_rules() {
        let mut db = RegistrationDb::new();
        let mut s = identified(&mut db);
        assert!(s.is_identified());
        assert_eq!(
            text(s.exec(&mut db, b"IDENTIFY", NOW)),
            "fatal E_INVALID cannot IDENTIFY again"
        );
        let clients = db.find_producers(Category::Client, "", "");
        assert_eq!(clients.len(), 1);
        assert_eq!(clients[0].info.remote_address, "127.0.0.1:5000");
        assert_eq!(clients[0].info.broadcast_address, "ip.address");

        for (body, want) in [
            (
                &br#"{"tcp_port":1,"http_port":2,"version":"v"}"#[..],
                "fatal E_BAD_BODY IDENTIFY missing fields",
            ),
            (
                br#"{"broadcast_address":"b","tcp_port":0,"http_port":2,"version":"v"}"#,
                "fatal E_BAD_BODY IDENTIFY missing fields",
            ),
            (b"null", "fatal E_BAD_BODY IDENTIFY missing fields"),
            (b"", "fatal E_BAD_BODY IDENTIFY failed to decode JSON body"),
            (
                b"[1]",
                "fatal E_BAD_BODY IDENTIFY failed to decode JSON body",
            ),
            (
                br#"{"tcp_port":"1"}"#,
                "fatal E_BAD_BODY IDENTIFY failed to decode JSON body",
            ),
            (
                br#"{"tcp_port":1.5}"#,
                "fatal E_BAD_BODY IDENTIFY failed to decode JSON body",
            ),
            (
                br#"{"version":1}"#,
                "fatal E_BAD_BODY IDENTIFY failed to decode JSON body",
            ),
            (
                br#"{"remote_address":1}"#,
                "fatal E_BAD_BODY IDENTIFY failed to decode JSON body",
            ),
            (
                b"{} x",
                "fatal E_BAD_BODY IDENTIFY failed to decode JSON body",
            ),
        ] {
            let mut db = RegistrationDb::new();
            let mut s = Session::new("1.1.1.1:1".into());
            assert_eq!(
                text(s.identify(&mut db, body, RESPONSE, NOW)),
                want,
                "{}",
                String::from_utf8_lossy(body)
            );
            assert!(!s.is_identified());
            assert!(db.find_producers(Category::Client, "", "").is_empty());
        }
    }

    #[test]
    fn identify_json_is_decoded_like_go() {
        let info = parse_peer_info(
            r#"{"TCP_Port":1,"HTTP_PORT":2,"Version":"v","broadcast_address":null,
                "BROADCAST_ADDRESS":"b","hoſtname":"h","extra":{"a":[1,2]},"topology_zone":"z",
                "remote_address":"ignored","http_port":null}"#
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(info.tcp_port, 1);
        assert_eq!(info.http_port, 2);
        assert_eq!(info.version, "v");
        assert_eq!(info.broadcast_address, "b");
        assert_eq!(info.hostname, "h");
        assert_eq!(info.topology_zone, "z");
        // Later duplicates win, as in Go.
        assert_eq!(
            parse_peer_info(br#"{"tcp_port":1,"tcp_port":3}"#)
                .unwrap()
                .tcp_port,
            3
        );
        assert_eq!(parse_peer_info(br#"{"tcp_port":-7}"#).unwrap().tcp_port, -7);
        assert!(parse_peer_info(br#"{"tcp_port":99999999999999999999}"#).is_err());
    }

    #[test]
    fn register_and_unregister() {
        let mut db = RegistrationDb::new();
        let s = &mut identified(&mut db);
        assert_eq!(text(s.exec(&mut db, b"REGISTER t c", NOW)), "reply OK");
        assert_eq!(db.find_registrations(Category::Topic, "t", "").len(), 1);
        assert_eq!(db.find_producers(Category::Channel, "t", "c").len(), 1);
        // Extra words are ignored; an empty channel word means no channel.
        assert_eq!(text(s.exec(&mut db, b"REGISTER u  x", NOW)), "reply OK");
        assert!(db
            .find_registrations(Category::Channel, "u", "*")
            .is_empty());
        assert_eq!(
            text(s.exec(&mut db, b"REGISTER t c2 extra", NOW)),
            "reply OK"
        );

        assert_eq!(text(s.exec(&mut db, b"UNREGISTER t c", NOW)), "reply OK");
        assert!(db.find_producers(Category::Channel, "t", "c").is_empty());
        assert_eq!(
            db.find_registrations(Category::Channel, "t", "c").len(),
            1,
            "key stays"
        );
        assert_eq!(
            db.find_producers(Category::Topic, "t", "").len(),
            1,
            "topic untouched"
        );

        // Topic unregister drops the peer from the topic's channels too.
        assert_eq!(text(s.exec(&mut db, b"UNREGISTER t", NOW)), "reply OK");
        assert!(db.find_producers(Category::Channel, "t", "c2").is_empty());
        assert!(db.find_producers(Category::Topic, "t", "").is_empty());
        assert_eq!(db.find_registrations(Category::Topic, "t", "").len(), 1);
        // Unregistering what was never registered is fine.
        assert_eq!(text(s.exec(&mut db, b"UNREGISTER nope x", NOW)), "reply OK");
    }

    #[test]
    fn ephemeral_keys_go_with_their_last_producer() {
        let mut db = RegistrationDb::new();
        let s = &mut identified(&mut db);
        s.exec(&mut db, b"REGISTER t#ephemeral c#ephemeral", NOW);
        s.exec(&mut db, b"REGISTER t#ephemeral d", NOW);
        s.exec(&mut db, b"UNREGISTER t#ephemeral c#ephemeral", NOW);
        assert!(db
            .find_registrations(Category::Channel, "t#ephemeral", "c#ephemeral")
            .is_empty());
        s.exec(&mut db, b"UNREGISTER t#ephemeral", NOW);
        assert!(db
            .find_registrations(Category::Topic, "t#ephemeral", "")
            .is_empty());
        // A non-ephemeral channel key of an ephemeral topic stays (as in Go).
        assert_eq!(
            db.find_registrations(Category::Channel, "t#ephemeral", "d")
                .len(),
            1
        );
    }

    #[test]
    fn name_errors() {
        let mut db = RegistrationDb::new();
        let s = &mut identified(&mut db);
        let cases: [(&[u8], &str); 6] = [
            (
                b"REGISTER",
                "fatal E_INVALID REGISTER insufficient number of params",
            ),
            (
                b"UNREGISTER ",
                "fatal E_INVALID UNREGISTER insufficient number of params",
            ),
            (
                b"REGISTER bad!topic",
                "fatal E_BAD_TOPIC REGISTER topic name 'bad!topic' is not valid",
            ),
            (
                b"REGISTER  t",
                "fatal E_BAD_TOPIC REGISTER topic name '' is not valid",
            ),
            (
                b"UNREGISTER t bad/ch",
                "fatal E_BAD_CHANNEL UNREGISTER channel name 'bad/ch' is not valid",
            ),
            (
                b"REGISTER \xff",
                "fatal E_BAD_TOPIC REGISTER topic name '\u{FFFD}' is not valid",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(text(s.exec(&mut db, line, NOW)), want);
        }
        // Raw bytes are echoed as sent.
        assert_eq!(
            s.exec(&mut db, b"REGISTER \xff", NOW),
            Step::Fatal(b"E_BAD_TOPIC REGISTER topic name '\xff' is not valid".to_vec())
        );
    }

    #[test]
    fn ping_refreshes_last_update() {
        let mut db = RegistrationDb::new();
        let s = &mut identified(&mut db);
        s.exec(&mut db, b"PING", NOW + 5);
        assert_eq!(
            db.find_producers(Category::Client, "", "")[0].last_update,
            NOW + 5
        );
    }
}
