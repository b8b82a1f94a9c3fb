//! Client authorization against an external auth server: nsqd's
//! `internal/auth` (`--auth-http-address`).
//!
//! A client sends `AUTH <secret>`; nsqd asks one of the configured auth
//! servers (`GET /auth?common_name=&remote_ip=&secret=&tls=`, or a `POST`
//! with `--auth-http-request-method=post`) and caches the answer for its
//! `ttl` seconds:
//!
//! ```json
//! {"ttl": 3600, "identity": "user", "identity_url": "https://…",
//!  "authorizations": [{"topic": "^events$", "channels": [".*"],
//!                      "permissions": ["subscribe", "publish"]}]}
//! ```
//!
//! Topic and channel patterns are regular expressions matched unanchored,
//! as Go's `regexp.MatchString` does. A publish is checked like a subscribe
//! to the empty channel name, so an authorization needs at least one channel
//! pattern matching `""` (such as `.*`) to allow publishing: nsqd behaves so.
//!
//! [`parse_response`] and [`AuthState`] are plain logic; [`query`] is the
//! one async step and runs on a shard without blocking it (the HTTP client
//! resolves names on the blocking pool and bounds connect and exchange).

use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::{Map, Value};

/// Longest TTL honoured (an auth server's absurd `ttl` must not overflow
/// `Instant`): 100 years.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How the auth server is asked: `--auth-http-request-method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET <endpoint>?<query>` (nsqd's default).
    Get,
    /// `POST <endpoint>` with the values as a JSON body (nsqd master).
    Post,
}

impl Method {
    /// The flag's value: nsqd posts only for exactly `post`, anything else
    /// is a `GET` (the config layer rejects other values earlier).
    pub fn from_flag(value: &str) -> Method {
        if value == "post" {
            Method::Post
        } else {
            Method::Get
        }
    }
}

/// Where and how to query.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// `--auth-http-address` values: `host:port` or a full URL.
    pub addresses: Vec<String>,
    /// `--auth-http-request-method`.
    pub method: Method,
    /// `--http-client-connect-timeout`.
    pub connect_timeout: Duration,
    /// `--http-client-request-timeout`.
    pub request_timeout: Duration,
}

/// One entry of `authorizations`: a topic pattern, channel patterns and
/// the permissions granted on them.
#[derive(Clone, Debug)]
pub struct Authorization {
    topic: Regex,
    channels: Vec<Regex>,
    subscribe: bool,
    publish: bool,
}

impl Authorization {
    /// nsqd's `Authorization.IsAllowed`: a non-empty `channel` needs the
    /// `subscribe` permission, an empty one (a publish) `publish`; then the
    /// topic pattern and at least one channel pattern must match.
    fn is_allowed(&self, topic: &str, channel: &str) -> bool {
        let permitted = if channel.is_empty() {
            self.publish
        } else {
            self.subscribe
        };
        permitted && self.topic.is_match(topic) && self.channels.iter().any(|c| c.is_match(channel))
    }
}

/// A client's cached authorization: the auth server's answer and when it
/// expires.
#[derive(Clone, Debug)]
pub struct AuthState {
    pub identity: String,
    pub identity_url: String,
    pub authorizations: Vec<Authorization>,
    pub ttl: Duration,
    pub expires: Instant,
}

impl AuthState {
    /// nsqd's `State.IsAllowed`: `channel` None (or empty) asks for publish
    /// permission on `topic`, `Some(channel)` for subscribe permission.
    pub fn is_allowed(&self, topic: &str, channel: Option<&str>) -> bool {
        let channel = channel.unwrap_or("");
        self.authorizations
            .iter()
            .any(|a| a.is_allowed(topic, channel))
    }

    /// nsqd's `IsExpired`: `expires` is before `now`.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires < now
    }

    /// Number of authorizations: the `permission_count` of nsqd's AUTH
    /// answer. Zero means "no authorizations found" (nsqd's
    /// `HasAuthorizations` is false).
    pub fn permission_count(&self) -> usize {
        self.authorizations.len()
    }
}

/// Validate an auth server's answer as nsqd does: every permission is
/// `subscribe` or `publish`, every pattern compiles, and `ttl > 0`.
/// The state expires `ttl` seconds after `now`.
pub fn parse_response(body: &[u8], now: Instant) -> Result<AuthState, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let empty = Map::new();
    let obj = match &value {
        Value::Object(obj) => obj,
        // Go decodes `null` into the zero State (then fails on the TTL).
        Value::Null => &empty,
        other => {
            return Err(format!(
                "json: cannot unmarshal {} into Go value of type auth.State",
                json_kind(other)
            ))
        }
    };
    let ttl = match field(obj, "ttl") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| type_error(v, "State.ttl", "int"))?,
    };
    let identity = string_field(obj, "identity", "State.identity")?;
    let identity_url = string_field(obj, "identity_url", "State.identity_url")?;
    let raw_auths = match field(obj, "authorizations") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(v) => {
            return Err(type_error(
                v,
                "State.authorizations",
                "[]auth.Authorization",
            ))
        }
    };

    let mut authorizations = Vec::with_capacity(raw_auths.len());
    for raw in &raw_auths {
        let a = match raw {
            Value::Object(a) => a,
            Value::Null => &empty,
            other => {
                return Err(type_error(
                    other,
                    "State.authorizations",
                    "auth.Authorization",
                ))
            }
        };
        let topic = string_field(a, "topic", "State.authorizations.topic")?;
        let channels = string_list(a, "channels", "State.authorizations.channels")?;
        let permissions = string_list(a, "permissions", "State.authorizations.permissions")?;
        let (mut subscribe, mut publish) = (false, false);
        for p in &permissions {
            match p.as_str() {
                "subscribe" => subscribe = true,
                "publish" => publish = true,
                _ => return Err(format!("unknown permission {p}")),
            }
        }
        let topic = Regex::new(&topic)
            .map_err(|e| format!("unable to compile topic {topic:?} {}", regex_error(&e)))?;
        let channels = channels
            .iter()
            .map(|c| {
                Regex::new(c)
                    .map_err(|e| format!("unable to compile channel {c:?} {}", regex_error(&e)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        authorizations.push(Authorization {
            topic,
            channels,
            subscribe,
            publish,
        });
    }

    if ttl <= 0 {
        return Err(format!("invalid TTL {ttl} (must be >0)"));
    }
    let ttl = Duration::from_secs(ttl.unsigned_abs()).min(MAX_TTL);
    let expires = now.checked_add(ttl).unwrap_or(now);
    Ok(AuthState {
        identity,
        identity_url,
        authorizations,
        ttl,
        expires,
    })
}

/// Ask the auth servers about `secret`, as nsqd's `QueryAnyAuthd`: start at
/// a random address, try the next one on any failure, and report every
/// failure (`failed to auth against <addr> - <why>`, joined by `; `).
pub async fn query(
    cfg: &AuthConfig,
    remote_ip: &str,
    tls: bool,
    secret: &str,
    common_name: &str,
) -> Result<AuthState, String> {
    let n = cfg.addresses.len();
    if n == 0 {
        return Err("no auth servers configured".to_string());
    }
    let start = random_index(n);
    let values = QueryValues {
        remote_ip,
        tls,
        secret,
        common_name,
    };
    let mut errors: Vec<String> = Vec::new();
    for i in 0..n {
        let addr = &cfg.addresses[(start + i) % n];
        match query_one(cfg, addr, &values).await {
            Ok(state) => return Ok(state),
            Err(e) => errors.push(format!("failed to auth against {addr} - {e}")),
        }
    }
    Err(errors.join("; "))
}

/// The values sent to the auth server.
struct QueryValues<'a> {
    remote_ip: &'a str,
    tls: bool,
    secret: &'a str,
    common_name: &'a str,
}

impl QueryValues<'_> {
    /// `(name, value)` sorted by name, as Go's `url.Values.Encode` orders them.
    fn pairs(&self) -> [(&'static str, &str); 4] {
        [
            ("common_name", self.common_name),
            ("remote_ip", self.remote_ip),
            ("secret", self.secret),
            ("tls", if self.tls { "true" } else { "false" }),
        ]
    }

    /// `url.Values.Encode()`: `common_name=…&remote_ip=…&secret=…&tls=…`.
    fn encode(&self) -> String {
        let mut out = String::new();
        for (i, (name, value)) in self.pairs().iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(name);
            out.push('=');
            out.push_str(&query_escape(value));
        }
        out
    }

    /// nsqd master's POST body: `json.Marshal(url.Values)`, an object of
    /// one-element string arrays, keys sorted.
    fn json_body(&self) -> Vec<u8> {
        let map: Map<String, Value> = self
            .pairs()
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::Array(vec![Value::from(*v)])))
            .collect();
        Value::Object(map).to_string().into_bytes()
    }
}

async fn query_one(
    cfg: &AuthConfig,
    addr: &str,
    values: &QueryValues<'_>,
) -> Result<AuthState, String> {
    let base = endpoint(addr);
    let (method, url, body, content_type) = match cfg.method {
        Method::Get => (
            "GET",
            format!("{base}?{}", values.encode()),
            Vec::new(),
            None,
        ),
        Method::Post => ("POST", base, values.json_body(), Some("application/json")),
    };
    let target = Target::parse(&url)?;
    let user_agent = format!("nsqd/{}", crate::config::NSQD_VERSION);
    let mut headers = vec![
        ("Accept", "application/vnd.nsq; version=1.0"),
        ("User-Agent", user_agent.as_str()),
    ];
    if let Some(ct) = content_type {
        headers.push(("Content-Type", ct));
    }
    let resp = nsq_io::http::client::request(
        method,
        &target.authority,
        &target.request_uri,
        &headers,
        &body,
        cfg.connect_timeout,
        cfg.request_timeout,
    )
    .await
    .map_err(|e| e.to_string())?;
    if resp.status != 200 {
        // Go's client retries a 403 over https when the body names an
        // `https_port`; we have no TLS client.
        if resp.status == 403 {
            if let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(&resp.body) {
                if o.contains_key("https_port") {
                    return Err(
                        "403 asks for https: https auth servers are not supported".to_string()
                    );
                }
            }
        }
        return Err(format!(
            "got response {} {} {:?}",
            resp.status,
            nsq_io::http::reason_phrase(resp.status),
            String::from_utf8_lossy(&resp.body)
        ));
    }
    parse_response(&resp.body, Instant::now())
}

/// nsqd's endpoint: a value containing `://` is used as is, otherwise
/// `http://<addr>/auth`. (For a GET, `?<query>` is appended to it
/// verbatim, even if it already has a query.)
fn endpoint(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}/auth")
    }
}

/// An `http://` URL split into what the client needs.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// `host:port` to connect to (port 80 when the URL has none).
    authority: String,
    /// Path (at least `/`) plus `?query` if any; the fragment dropped.
    request_uri: String,
}

impl Target {
    /// Parse like Go's `url.Parse` for the parts a request uses: the
    /// fragment is cut first (so a GET query appended after a `#` is lost,
    /// as in nsqd), then scheme, authority, path and query.
    fn parse(url: &str) -> Result<Target, String> {
        let url = url.split_once('#').map_or(url, |(u, _)| u);
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("invalid auth URL {url:?}"))?;
        match scheme.to_ascii_lowercase().as_str() {
            "http" => {}
            "https" => return Err("https auth servers are not supported".to_string()),
            _ => return Err(format!("unsupported protocol scheme {scheme:?}")),
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split);
        if authority.contains('@') {
            return Err("user info in auth URLs is not supported".to_string());
        }
        if authority.is_empty() {
            return Err(format!("no host in auth URL {url:?}"));
        }
        // A port is present unless the authority is a bare name, IPv4
        // address or bracketed IPv6 address.
        let has_port = match authority.rfind(':') {
            Some(i) => !authority[i..].contains(']'),
            None => false,
        };
        let authority = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let request_uri = if tail.starts_with('/') {
            tail.to_string()
        } else {
            format!("/{tail}")
        };
        Ok(Target {
            authority,
            request_uri,
        })
    }
}

/// Go's `url.QueryEscape`: unreserved bytes as they are, space as `+`,
/// every other byte `%XX` (upper-case hex).
pub fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else if b == b' ' {
            out.push('+');
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A random index below `n` (std's per-process random hash keys; no RNG
/// crate needed for picking a start address).
fn random_index(n: usize) -> usize {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    (h.finish() % n as u64) as usize
}

/// A field by name: the exact key, else (like Go's `encoding/json`) a
/// case-insensitive match.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn string_field(obj: &Map<String, Value>, name: &str, go_field: &str) -> Result<String, String> {
    match field(obj, name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(type_error(v, go_field, "string")),
    }
}

fn string_list(
    obj: &Map<String, Value>,
    name: &str,
    go_field: &str,
) -> Result<Vec<String>, String> {
    match field(obj, name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Null => Ok(String::new()),
                other => Err(type_error(other, go_field, "string")),
            })
            .collect(),
        Some(v) => Err(type_error(v, go_field, "[]string")),
    }
}

/// Go's `UnmarshalTypeError` text.
fn type_error(v: &Value, go_field: &str, go_type: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go struct field {go_field} of type {go_type}",
        json_kind(v)
    )
}

fn json_kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(n) => format!("number {n}"),
        Value::String(_) => "string".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
    }
}

/// A regex error on one line (the crate's syntax errors span several).
fn regex_error(e: &regex::Error) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(json: &str) -> AuthState {
        parse_response(json.as_bytes(), Instant::now()).unwrap()
    }

    #[test]
    fn parses_a_full_answer() {
        let now = Instant::now();
        let s = parse_response(
            br#"{"ttl":3600,"identity":"alice","identity_url":"http://x/alice",
                 "authorizations":[{"topic":"^t$","channels":[".*"],"permissions":["subscribe","publish"]},
                                   {"topic":"x","channels":[],"permissions":[]}]}"#,
            now,
        )
        .unwrap();
        assert_eq!(s.identity, "alice");
        assert_eq!(s.identity_url, "http://x/alice");
        assert_eq!(s.permission_count(), 2);
        assert_eq!(s.ttl, Duration::from_secs(3600));
        assert_eq!(s.expires, now + Duration::from_secs(3600));
    }

    #[test]
    fn validation_errors_match_nsqd() {
        let now = Instant::now();
        let err = |body: &str| parse_response(body.as_bytes(), now).unwrap_err();
        assert_eq!(err(r#"{"ttl":0}"#), "invalid TTL 0 (must be >0)");
        assert_eq!(err(r#"{"ttl":-5}"#), "invalid TTL -5 (must be >0)");
        assert_eq!(err(r#"{}"#), "invalid TTL 0 (must be >0)");
        assert_eq!(err("null"), "invalid TTL 0 (must be >0)");
        assert_eq!(
            err(
                r#"{"ttl":1,"authorizations":[{"topic":".*","channels":[".*"],"permissions":["*"]}]}"#
            ),
            "unknown permission *"
        );
        assert_eq!(
            err(r#"{"ttl":1,"authorizations":[{"topic":"a","permissions":["publish","read"]}]}"#),
            "unknown permission read"
        );
        assert!(
            err(r#"{"ttl":1,"authorizations":[{"topic":"(","channels":[".*"],"permissions":["publish"]}]}"#)
                .starts_with("unable to compile topic \"(\" "),
        );
        assert!(
            err(r#"{"ttl":1,"authorizations":[{"topic":"a","channels":["ok","[z-a]"],"permissions":["publish"]}]}"#)
                .starts_with("unable to compile channel \"[z-a]\" "),
        );
        // Permissions and patterns are checked before the TTL, as in nsqd.
        assert_eq!(
            err(r#"{"ttl":0,"authorizations":[{"topic":"a","permissions":["x"]}]}"#),
            "unknown permission x"
        );
        // Type errors and non-JSON are errors too.
        assert!(err(r#"{"ttl":"10"}"#).contains("State.ttl"));
        assert!(err(r#"{"ttl":1.5}"#).contains("State.ttl"));
        assert!(err(r#"{"ttl":1,"authorizations":{}}"#).contains("authorizations"));
        assert!(err(r#"{"ttl":1,"authorizations":[{"channels":"x"}]}"#).contains("channels"));
        assert!(!err("not json").is_empty());
        assert!(err("[1]").contains("cannot unmarshal array"));
    }

    #[test]
    fn go_json_leniency() {
        // Keys match case-insensitively; null is the zero value; unknown
        // keys are ignored.
        let s = state(
            r#"{"TTL":5,"Identity":"bob","identity_url":null,"extra":1,
                         "authorizations":[{"Topic":"t","Channels":[".*"],"Permissions":["publish"]}, null]}"#,
        );
        assert_eq!(s.ttl, Duration::from_secs(5));
        assert_eq!(s.identity, "bob");
        assert_eq!(s.identity_url, "");
        assert_eq!(s.permission_count(), 2);
        assert!(s.is_allowed("t", None));
    }

    #[test]
    fn no_authorizations_is_valid_but_empty() {
        let s = state(r#"{"ttl":10,"identity":"nobody"}"#);
        assert_eq!(s.permission_count(), 0);
        assert!(!s.is_allowed("t", None));
    }

    #[test]
    fn huge_ttl_does_not_overflow() {
        let s = state(&format!(r#"{{"ttl":{}}}"#, i64::MAX));
        assert!(!s.is_expired(Instant::now() + Duration::from_secs(3600 * 24 * 365)));
    }

    #[test]
    fn is_allowed_semantics() {
        let s = state(
            r#"{"ttl":60,"authorizations":[
                {"topic":"^pub_only$","channels":[".*"],"permissions":["publish"]},
                {"topic":"sub","channels":["^ch1$","archive"],"permissions":["subscribe"]},
                {"topic":"nochan","channels":[],"permissions":["publish","subscribe"]},
                {"topic":"strict","channels":["^x$"],"permissions":["publish"]}]}"#,
        );
        // Publish needs "publish" and a channel pattern matching "".
        assert!(s.is_allowed("pub_only", None));
        assert!(s.is_allowed("pub_only", Some("")));
        assert!(!s.is_allowed("pub_only", Some("ch")));
        assert!(!s.is_allowed("pub_only_not", None));
        assert!(!s.is_allowed("nochan", None));
        assert!(!s.is_allowed("strict", None));
        // Subscribe needs "subscribe"; patterns are unanchored.
        assert!(s.is_allowed("sub", Some("ch1")));
        assert!(s.is_allowed("a_sub_b", Some("ch1")));
        assert!(!s.is_allowed("sub", Some("ch10")));
        assert!(s.is_allowed("sub", Some("old_archive_2")));
        assert!(!s.is_allowed("sub", None));
        assert!(!s.is_allowed("nochan", Some("c")));
        // An empty pattern matches everything.
        let s = state(
            r#"{"ttl":1,"authorizations":[{"topic":"","channels":[""],"permissions":["publish","subscribe"]}]}"#,
        );
        assert!(s.is_allowed("anything", None));
        assert!(s.is_allowed("anything", Some("any")));
    }

    #[test]
    fn expiry() {
        let now = Instant::now();
        let s = parse_response(br#"{"ttl":2}"#, now).unwrap();
        assert!(!s.is_expired(now));
        assert!(!s.is_expired(now + Duration::from_secs(2)));
        assert!(s.is_expired(now + Duration::from_millis(2001)));
    }

    #[test]
    fn percent_encoding_like_go() {
        assert_eq!(query_escape("aZ09-_.~"), "aZ09-_.~");
        assert_eq!(query_escape("a b"), "a+b");
        assert_eq!(
            query_escape("a+b&c=d/e?f#g%"),
            "a%2Bb%26c%3Dd%2Fe%3Ff%23g%25"
        );
        assert_eq!(query_escape("é\n"), "%C3%A9%0A");
        assert_eq!(query_escape(""), "");
    }

    #[test]
    fn query_values_encode_sorted() {
        let v = QueryValues {
            remote_ip: "127.0.0.1",
            tls: false,
            secret: "s e&cret",
            common_name: "",
        };
        assert_eq!(
            v.encode(),
            "common_name=&remote_ip=127.0.0.1&secret=s+e%26cret&tls=false"
        );
        let v = QueryValues { tls: true, ..v };
        assert!(v.encode().ends_with("&tls=true"));
        assert_eq!(
            String::from_utf8(v.json_body()).unwrap(),
            r#"{"common_name":[""],"remote_ip":["127.0.0.1"],"secret":["s e&cret"],"tls":["true"]}"#
        );
    }

    #[test]
    fn endpoints_like_nsqd() {
        assert_eq!(endpoint("127.0.0.1:4181"), "http://127.0.0.1:4181/auth");
        assert_eq!(endpoint("auth.local:80"), "http://auth.local:80/auth");
        assert_eq!(endpoint("http://a:1/custom"), "http://a:1/custom");
        let t = |url: &str| Target::parse(url);
        assert_eq!(
            t("http://127.0.0.1:4181/auth?common_name=&tls=false"),
            Ok(Target {
                authority: "127.0.0.1:4181".into(),
                request_uri: "/auth?common_name=&tls=false".into()
            })
        );
        assert_eq!(
            t("http://auth.example/?x=1"),
            Ok(Target {
                authority: "auth.example:80".into(),
                request_uri: "/?x=1".into()
            })
        );
        assert_eq!(
            t("HTTP://[::1]?a=b"),
            Ok(Target {
                authority: "[::1]:80".into(),
                request_uri: "/?a=b".into()
            })
        );
        assert_eq!(
            t("http://[::1]:9/p"),
            Ok(Target {
                authority: "[::1]:9".into(),
                request_uri: "/p".into()
            })
        );
        // A URL that already has a query gets `?<values>` appended verbatim.
        assert_eq!(
            t(&format!("{}?{}", endpoint("http://h:1/a?k=v"), "tls=false"))
                .unwrap()
                .request_uri,
            "/a?k=v?tls=false"
        );
        // After a fragment, Go's url.Parse drops everything.
        assert_eq!(t("http://h:1/a#f?tls=false").unwrap().request_uri, "/a");
        assert_eq!(
            t("https://h/auth?x").unwrap_err(),
            "https auth servers are not supported"
        );
        assert!(t("ftp://h/auth")
            .unwrap_err()
            .contains("unsupported protocol scheme"));
        assert!(t("http:///auth").is_err());
        assert!(t("http://u:p@h/auth").is_err());
    }

    #[test]
    fn method_flag() {
        assert_eq!(Method::from_flag("post"), Method::Post);
        assert_eq!(Method::from_flag("get"), Method::Get);
        assert_eq!(Method::from_flag(""), Method::Get);
    }

    #[test]
    fn random_index_in_range() {
        for n in 1..10 {
            assert!(random_index(n) < n);
        }
    }

    // -- query() against loopback servers on a real glommio executor --------

    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    /// Runs `make()`'s future on a fresh executor thread; None when no
    /// executor can be built here (no io_uring).
    fn on_executor<F, Fut, T>(make: F) -> Option<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T> + 'static,
        T: Send + 'static,
    {
        let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(nsq_io::runtime::IO_MEMORY)
            .ring_depth(nsq_io::runtime::RING_DEPTH)
            .spawn(make);
        match handle {
            Ok(h) => Some(h.join().expect("executor thread")),
            Err(e) => {
                eprintln!("skipping: no glommio executor here: {e}");
                None
            }
        }
    }

    /// A loopback server answering each connection with the next of
    /// `replies` (None: read the request, then say nothing for 5 s). The
    /// receiver yields each raw request.
    fn server(replies: Vec<Option<String>>) -> (String, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for reply in replies {
                let (mut conn, _) = listener.accept().unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut data = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let text = String::from_utf8_lossy(&data).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                        if data.len() >= end + 4 + len {
                            break;
                        }
                    }
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => data.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = tx.send(String::from_utf8_lossy(&data).to_string());
                match reply {
                    Some(r) => {
                        let _ = conn.write_all(r.as_bytes());
                    }
                    None => std::thread::sleep(Duration::from_secs(5)),
                }
            }
        });
        (addr, rx)
    }

    fn ok_reply(body: &str) -> Option<String> {
        Some(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    fn cfg(addresses: Vec<String>, method: Method, request_ms: u64) -> AuthConfig {
        AuthConfig {
            addresses,
            method,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_millis(request_ms),
        }
    }

    const GRANT: &str = r#"{"ttl":30,"identity":"id","identity_url":"u",
        "authorizations":[{"topic":"t","channels":[".*"],"permissions":["publish"]}]}"#;

    #[test]
    fn query_get() {
        let (addr, rx) = server(vec![ok_reply(GRANT)]);
        let c = cfg(vec![addr.clone()], Method::Get, 5000);
        let Some(res) =
            on_executor(move || async move { query(&c, "10.1.2.3", false, "my secret", "").await })
        else {
            return;
        };
        let state = res.unwrap();
        assert_eq!(state.identity, "id");
        assert!(state.is_allowed("t", None));
        let req = rx.recv().unwrap();
        assert!(
            req.starts_with(
                "GET /auth?common_name=&remote_ip=10.1.2.3&secret=my+secret&tls=false HTTP/1.1\r\n"
            ),
            "{req}"
        );
        assert!(req.contains(&format!("Host: {addr}\r\n")), "{req}");
        assert!(
            req.contains("Accept: application/vnd.nsq; version=1.0\r\n"),
            "{req}"
        );
    }

    #[test]
    fn query_post_full_url() {
        let (addr, rx) = server(vec![ok_reply(GRANT)]);
        let c = cfg(vec![format!("http://{addr}/v1/check")], Method::Post, 5000);
        let Some(res) =
            on_executor(move || async move { query(&c, "127.0.0.1", true, "s", "cn").await })
        else {
            return;
        };
        assert_eq!(res.unwrap().permission_count(), 1);
        let req = rx.recv().unwrap();
        assert!(req.starts_with("POST /v1/check HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("Content-Type: application/json\r\n"), "{req}");
        assert!(req.ends_with(
            r#"{"common_name":["cn"],"remote_ip":["127.0.0.1"],"secret":["s"],"tls":["true"]}"#
        ));
    }

    #[test]
    fn query_fails_over_and_reports_every_failure() {
        // A port nobody listens on.
        let dead = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let (addr, _rx) = server(vec![ok_reply(GRANT), ok_reply(GRANT)]);
        let c = cfg(vec![dead.clone(), addr.clone()], Method::Get, 5000);
        let Some(res) = on_executor(move || async move {
            // Whatever the random start, the live server answers.
            let first = query(&c, "127.0.0.1", false, "s", "").await;
            let second = query(&c, "127.0.0.1", false, "s", "").await;
            (first, second)
        }) else {
            return;
        };
        assert!(res.0.is_ok() && res.1.is_ok(), "{:?}", res.0.err());

        let (addr, _rx) = server(vec![Some(
            "HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\nnot ok".to_string(),
        )]);
        let c = cfg(vec![dead.clone(), addr.clone()], Method::Get, 5000);
        let Some(err) = on_executor(move || async move {
            query(&c, "127.0.0.1", false, "s", "").await.unwrap_err()
        }) else {
            return;
        };
        assert!(
            err.contains(&format!("failed to auth against {dead} - ")),
            "{err}"
        );
        assert!(
            err.contains(&format!(
                "failed to auth against {addr} - got response 403 Forbidden \"not ok\""
            )),
            "{err}"
        );
        assert_eq!(err.matches("; ").count(), 1, "{err}");
    }

    #[test]
    fn query_bad_answers() {
        let (addr, _rx) = server(vec![
            ok_reply(r#"{"ttl":0}"#),
            Some(
                "HTTP/1.1 403 Forbidden\r\nContent-Length: 18\r\n\r\n{\"https_port\":443}"
                    .to_string(),
            ),
        ]);
        let c = cfg(vec![addr.clone()], Method::Get, 5000);
        let https = cfg(vec!["https://127.0.0.1:1/auth".into()], Method::Get, 5000);
        let Some((a, b, h)) = on_executor(move || async move {
            (
                query(&c, "127.0.0.1", false, "s", "").await.unwrap_err(),
                query(&c, "127.0.0.1", false, "s", "").await.unwrap_err(),
                query(&https, "127.0.0.1", false, "s", "")
                    .await
                    .unwrap_err(),
            )
        }) else {
            return;
        };
        assert_eq!(
            a,
            format!("failed to auth against {addr} - invalid TTL 0 (must be >0)")
        );
        assert!(b.contains("https auth servers are not supported"), "{b}");
        assert!(h.ends_with("https auth servers are not supported"), "{h}");
    }

    #[test]
    fn query_times_out_on_a_silent_server() {
        let (addr, _rx) = server(vec![None]);
        let c = cfg(vec![addr], Method::Get, 300);
        let start = Instant::now();
        let Some(err) = on_executor(move || async move {
            query(&c, "127.0.0.1", false, "s", "").await.unwrap_err()
        }) else {
            return;
        };
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "{:?}",
            start.elapsed()
        );
        assert!(err.contains("no complete response within"), "{err}");
    }
}
