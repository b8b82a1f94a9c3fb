//! IDENTIFY: validate what the client asks for against nsqd's limits and
//! build the negotiation response.
//!
//! With `feature_negotiation`, the client may also ask for TLS, snappy or
//! deflate: [`negotiate`] decides what is granted (nsqd's rules) and the
//! connection loop performs the upgrades after the response is sent.

use std::time::Duration;

use nsq_proto::identify::{IdentifyRequest, IdentifyResponse};

use crate::client::ClientInfo;
use crate::config::Options;

/// nsqd's default `output_buffer_size` for a client that does not ask.
const DEFAULT_OUTPUT_BUFFER_SIZE: usize = 16 * 1024;

/// Default settings for a connection that has not sent IDENTIFY.
pub fn default_info(opts: &Options) -> ClientInfo {
    ClientInfo {
        client_id: String::new(),
        hostname: String::new(),
        user_agent: String::new(),
        // nsqd: heartbeat = client timeout (60s) / 2.
        heartbeat_interval: Some(Duration::from_secs(30)),
        output_buffer_size: DEFAULT_OUTPUT_BUFFER_SIZE,
        output_buffer_timeout: non_zero(opts.output_buffer_timeout),
        msg_timeout: opts.msg_timeout,
        sample_rate: 0,
        tls: None,
        snappy: false,
        deflate: false,
        auth_secret: None,
        auth: None,
    }
}

fn non_zero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

fn millis(d: Duration) -> i64 {
    d.as_millis() as i64
}

/// Apply an IDENTIFY to `info`. The error text follows "IDENTIFY " in the
/// E_BAD_BODY frame, as nsqd's `client.Identify` errors do.
pub fn apply(info: &mut ClientInfo, req: &IdentifyRequest, opts: &Options) -> Result<(), String> {
    info.client_id = req.client_id.clone();
    info.hostname = req.hostname.clone();
    info.user_agent = req.user_agent.clone();

    let hb = req.heartbeat_interval;
    match hb {
        -1 => info.heartbeat_interval = None,
        0 => {}
        ms if ms >= 1000 && ms <= millis(opts.max_heartbeat_interval) => {
            info.heartbeat_interval = Some(Duration::from_millis(ms as u64));
        }
        _ => return Err(format!("heartbeat interval ({hb}) is invalid")),
    }

    let timeout = req.output_buffer_timeout;
    match timeout {
        -1 => info.output_buffer_timeout = None,
        0 => {}
        ms if ms >= millis(opts.min_output_buffer_timeout)
            && ms <= millis(opts.max_output_buffer_timeout) =>
        {
            info.output_buffer_timeout = Some(Duration::from_millis(ms as u64));
        }
        _ => return Err(format!("output buffer timeout ({timeout}) is invalid")),
    }
    let size = req.output_buffer_size;
    match size {
        -1 => {
            // No buffering: every frame goes straight to the socket.
            info.output_buffer_size = 1;
            info.output_buffer_timeout = None;
        }
        0 => {}
        n if n >= 64 && n <= opts.max_output_buffer_size as i64 => {
            info.output_buffer_size = n as usize;
        }
        _ => return Err(format!("output buffer size ({size}) is invalid")),
    }

    let rate = req.sample_rate;
    if !(0..=99).contains(&rate) {
        return Err(format!("sample rate ({rate}) is invalid"));
    }
    info.sample_rate = rate as i32;

    let mt = req.msg_timeout;
    match mt {
        0 => {}
        ms if ms >= 1000 && ms <= millis(opts.max_msg_timeout) => {
            info.msg_timeout = Duration::from_millis(ms as u64);
        }
        _ => return Err(format!("msg timeout ({mt}) is invalid")),
    }
    Ok(())
}

/// The connection upgrades an IDENTIFY was granted, in the order they run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Upgrades {
    /// TLS (a certificate is configured and the client asked).
    pub tls: bool,
    /// Snappy or deflate (with its level).
    pub compression: Option<crate::wire::compress::Codec>,
}

impl Upgrades {
    /// Nothing to upgrade.
    pub fn is_empty(&self) -> bool {
        !self.tls && self.compression.is_none()
    }
}

/// nsqd's grant rules: TLS when a certificate is configured, each
/// compression when enabled; deflate's level defaults to 6 and is capped at
/// `--max-deflate-level`. Asking for both compressions is an error.
pub fn negotiate(
    req: &IdentifyRequest,
    opts: &Options,
    tls_available: bool,
) -> Result<(Upgrades, i64), String> {
    let deflate = opts.deflate && req.deflate;
    let mut level: i64 = 6;
    if deflate && req.deflate_level > 0 {
        level = req.deflate_level;
    }
    level = level.min(i64::from(opts.max_deflate_level));
    let snappy = opts.snappy && req.snappy;
    if deflate && snappy {
        return Err("cannot enable both deflate and snappy compression".to_string());
    }
    let compression = if snappy {
        Some(crate::wire::compress::Codec::Snappy)
    } else if deflate {
        Some(crate::wire::compress::Codec::Deflate {
            level: level.clamp(1, 9) as u32,
        })
    } else {
        None
    };
    Ok((
        Upgrades {
            tls: tls_available && req.tls_v1,
            compression,
        },
        level,
    ))
}

/// The JSON answer to a negotiating IDENTIFY.
pub fn response(
    info: &ClientInfo,
    opts: &Options,
    granted: Upgrades,
    deflate_level: i64,
    auth_required: bool,
) -> IdentifyResponse {
    IdentifyResponse {
        max_rdy_count: opts.max_rdy_count as i64,
        version: crate::config::NSQD_VERSION.to_string(),
        max_msg_timeout: millis(opts.max_msg_timeout),
        msg_timeout: millis(info.msg_timeout),
        tls_v1: granted.tls,
        deflate: matches!(
            granted.compression,
            Some(crate::wire::compress::Codec::Deflate { .. })
        ),
        deflate_level,
        max_deflate_level: opts.max_deflate_level as i64,
        snappy: granted.compression == Some(crate::wire::compress::Codec::Snappy),
        sample_rate: info.sample_rate,
        auth_required,
        output_buffer_size: info.output_buffer_size as i64,
        output_buffer_timeout: info.output_buffer_timeout.map(millis).unwrap_or(0),
    }
}
