//! IDENTIFY request and response bodies, and the AUTH response (JSON).
//!
//! The request mirrors nsqd v1.3.0 `identifyDataV2` (`client_v2.go`):
//! unknown fields are ignored (go-nsq still sends `short_id` and `long_id`,
//! which nsqd stopped reading in 1.0, so we ignore them too), missing fields
//! and `null` take the zero value, as Go's `encoding/json` does. Range checks
//! on the values (heartbeat interval, output buffer, sample rate, msg
//! timeout) depend on the broker's options and live in the broker.
//!
//! Known differences from Go's decoder, all for inputs no client sends: Go
//! matches keys case-insensitively and lets a repeated key overwrite the
//! earlier one; serde matches exactly and rejects repeats.
//!
//! Responses are written with Go's string escaping (`<`, `>`, `&`, U+2028
//! and U+2029 as `\uXXXX`) and field order, so they are byte-identical to
//! nsqd's `json.Marshal` output.

use std::io;

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ProtoError;

/// The IDENTIFY body a client sends. Durations are milliseconds; for the
/// interval, buffer and timeout fields -1 disables and 0 means "server
/// default", as in nsqd.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct IdentifyRequest {
    /// Free-form client identifier, shown in `/stats`.
    #[serde(deserialize_with = "null_as_default")]
    pub client_id: String,
    /// Client host name, shown in `/stats`.
    #[serde(deserialize_with = "null_as_default")]
    pub hostname: String,
    /// ms between heartbeats; -1 disables, 0 is the server default.
    #[serde(deserialize_with = "null_as_default")]
    pub heartbeat_interval: i64,
    /// Output buffer bytes; -1 disables buffering, 0 is the server default.
    #[serde(deserialize_with = "null_as_default")]
    pub output_buffer_size: i64,
    /// ms before buffered output is flushed; -1 disables, 0 is the default.
    #[serde(deserialize_with = "null_as_default")]
    pub output_buffer_timeout: i64,
    /// Whether the client wants the JSON response instead of `OK`.
    #[serde(deserialize_with = "null_as_default")]
    pub feature_negotiation: bool,
    /// Upgrade to TLS after the response.
    #[serde(deserialize_with = "null_as_default")]
    pub tls_v1: bool,
    /// Upgrade to raw DEFLATE after the response.
    #[serde(deserialize_with = "null_as_default")]
    pub deflate: bool,
    /// DEFLATE level, 1..=max; 0 means the server's choice (6).
    #[serde(deserialize_with = "null_as_default")]
    pub deflate_level: i64,
    /// Upgrade to snappy framing after the response.
    #[serde(deserialize_with = "null_as_default")]
    pub snappy: bool,
    /// Percentage of messages to deliver, 0..=99 (0 = all). nsqd decodes
    /// it as an int32, so a value outside i32 is a JSON error here too.
    #[serde(deserialize_with = "int32_as_i64")]
    pub sample_rate: i64,
    /// Client library name and version, shown in `/stats`.
    #[serde(deserialize_with = "null_as_default")]
    pub user_agent: String,
    /// ms before an in-flight message times out for this client; 0 is the
    /// server default.
    #[serde(deserialize_with = "null_as_default")]
    pub msg_timeout: i64,
    /// Topology-aware delivery (nsqd master only; v1.3.0 ignores it).
    #[serde(deserialize_with = "null_as_default")]
    pub topology_region: String,
    /// Topology-aware delivery (nsqd master only; v1.3.0 ignores it).
    #[serde(deserialize_with = "null_as_default")]
    pub topology_zone: String,
}

impl IdentifyRequest {
    /// Parses an IDENTIFY body. A top-level `null` gives all defaults, as
    /// in Go. Errors are `E_BAD_BODY IDENTIFY failed to decode JSON body`.
    pub fn from_json(body: &[u8]) -> Result<IdentifyRequest, ProtoError> {
        // serde's derived struct impl also accepts a JSON array (fields by
        // position); Go accepts only an object.
        let first = body
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        if first == Some(&b'[') {
            return Err(ProtoError::IdentifyJson(serde::de::Error::invalid_type(
                serde::de::Unexpected::Seq,
                &"a JSON object",
            )));
        }
        serde_json::from_slice::<Option<IdentifyRequest>>(body)
            .map(Option::unwrap_or_default)
            .map_err(ProtoError::IdentifyJson)
    }
}

/// Go's `encoding/json` leaves a field at its zero value for `null`.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// `null_as_default` for nsqd's `int32` field, widened for the broker.
fn int32_as_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    null_as_default::<D, i32>(d).map(i64::from)
}

/// The IDENTIFY response sent when the client set `feature_negotiation`.
/// Field order is nsqd v1.3.0's, which clients may not rely on but tests
/// comparing bytes do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IdentifyResponse {
    /// `--max-rdy-count`.
    pub max_rdy_count: i64,
    /// Server version; clients compare it against "1.0" and the like.
    pub version: String,
    /// `--max-msg-timeout`, ms.
    pub max_msg_timeout: i64,
    /// This client's message timeout, ms.
    pub msg_timeout: i64,
    /// TLS will be negotiated.
    pub tls_v1: bool,
    /// DEFLATE will be negotiated.
    pub deflate: bool,
    /// Level in use (6 when DEFLATE is off, as nsqd sends).
    pub deflate_level: i64,
    /// `--max-deflate-level`.
    pub max_deflate_level: i64,
    /// Snappy will be negotiated.
    pub snappy: bool,
    /// This client's sample rate.
    pub sample_rate: i32,
    /// Whether AUTH is required before SUB/PUB.
    pub auth_required: bool,
    /// This client's output buffer, bytes.
    pub output_buffer_size: i64,
    /// This client's output buffer timeout, ms.
    pub output_buffer_timeout: i64,
}

impl IdentifyResponse {
    /// Appends the JSON, byte-identical to nsqd's.
    pub fn write_json(&self, buf: &mut BytesMut) {
        write_go_json(self, buf);
    }
}

/// The AUTH response: who the auth server says the client is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuthResponse {
    /// Identity from the auth server.
    pub identity: String,
    /// URL describing the identity, from the auth server.
    pub identity_url: String,
    /// Number of authorizations granted.
    pub permission_count: i64,
}

impl AuthResponse {
    /// Appends the JSON, byte-identical to nsqd's.
    pub fn write_json(&self, buf: &mut BytesMut) {
        write_go_json(self, buf);
    }
}

fn write_go_json<T: Serialize>(value: &T, buf: &mut BytesMut) {
    let mut ser = serde_json::Serializer::with_formatter(buf.writer(), GoFormatter);
    // These structs hold only strings, integers and bools, and the writer
    // is in memory, so serialization cannot fail.
    let _ = value.serialize(&mut ser);
}

/// serde_json's compact output plus the extra escapes Go's `json.Marshal`
/// applies to strings (HTML-safe `<`, `>`, `&`, and the JavaScript line
/// separators U+2028 and U+2029).
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escape = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escape.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_nsq_identify_body() {
        // What go-nsq 1.1 sends (conn.go identify()).
        let body = br#"{"client_id":"host","deflate":false,"deflate_level":6,
            "feature_negotiation":true,"heartbeat_interval":30000,"hostname":"host.local",
            "long_id":"host.local","msg_timeout":0,"output_buffer_size":16384,
            "output_buffer_timeout":250,"sample_rate":0,"short_id":"host","snappy":false,
            "tls_v1":false,"user_agent":"go-nsq/1.1.0"}"#;
        let req = IdentifyRequest::from_json(body).unwrap();
        assert_eq!(req.client_id, "host");
        assert_eq!(req.hostname, "host.local");
        assert!(req.feature_negotiation);
        assert_eq!(req.heartbeat_interval, 30000);
        assert_eq!(req.output_buffer_size, 16384);
        assert_eq!(req.output_buffer_timeout, 250);
        assert_eq!(req.deflate_level, 6);
        assert_eq!(req.user_agent, "go-nsq/1.1.0");
        assert_eq!(req.msg_timeout, 0);
    }

    #[test]
    fn missing_and_null_fields_are_zero() {
        assert_eq!(
            IdentifyRequest::from_json(b"{}").unwrap(),
            IdentifyRequest::default()
        );
        assert_eq!(
            IdentifyRequest::from_json(b"null").unwrap(),
            IdentifyRequest::default()
        );
        let req = IdentifyRequest::from_json(
            br#"{"client_id":null,"heartbeat_interval":null,"snappy":null,"sample_rate":null}"#,
        )
        .unwrap();
        assert_eq!(req, IdentifyRequest::default());
    }

    #[test]
    fn bad_json_is_bad_body() {
        for body in [
            &b"{"[..],
            b"not json",
            br#"{"heartbeat_interval":"30000"}"#,
            br#"{"heartbeat_interval":1.5}"#,
            br#"{"snappy":1}"#,
            br#"{"sample_rate":2147483648}"#,
            b"{} x",
            b"[]",
            b" [0]",
        ] {
            let err = IdentifyRequest::from_json(body).unwrap_err();
            assert_eq!(err.code(), crate::ErrorCode::BadBody);
            assert_eq!(err.description(), "IDENTIFY failed to decode JSON body");
        }
        let req = IdentifyRequest::from_json(br#"{"sample_rate":-2147483648}"#).unwrap();
        assert_eq!(req.sample_rate, -2147483648);
    }

    #[test]
    fn response_matches_nsqd_bytes() {
        let resp = IdentifyResponse {
            max_rdy_count: 2500,
            version: "1.3.0".into(),
            max_msg_timeout: 900000,
            msg_timeout: 60000,
            tls_v1: false,
            deflate: false,
            deflate_level: 6,
            max_deflate_level: 6,
            snappy: false,
            sample_rate: 0,
            auth_required: false,
            output_buffer_size: 16384,
            output_buffer_timeout: 250,
        };
        let mut buf = BytesMut::new();
        resp.write_json(&mut buf);
        assert_eq!(
            std::str::from_utf8(&buf).unwrap(),
            r#"{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":60000,"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":false,"sample_rate":0,"auth_required":false,"output_buffer_size":16384,"output_buffer_timeout":250}"#
        );
    }

    #[test]
    fn auth_response_escapes_like_go() {
        let resp = AuthResponse {
            identity: "a<b>\"c\"\u{2028}".into(),
            identity_url: "http://x/?a=1&b=2".into(),
            permission_count: 2,
        };
        let mut buf = BytesMut::new();
        resp.write_json(&mut buf);
        assert_eq!(
            std::str::from_utf8(&buf).unwrap(),
            r#"{"identity":"a\u003cb\u003e\"c\"\u2028","identity_url":"http://x/?a=1\u0026b=2","permission_count":2}"#
        );
    }
}
