//! nsqd's HTTP API: one route table (`route`), handlers grouped by file.
//!
//! Lives on: every shard (each runs an HTTP listener on the shared port).
//! Publishes store on the shard that received the request, like TCP PUB.
//! Admin actions on topics go to every shard; on channels, to the owner.
//! Response conventions follow nsqd's "V1" decorator: 200 with a raw text or
//! JSON body, errors as `{"message":"<TEXT>"}`.

mod admin;
mod publish;
pub mod tls_stream;

use std::rc::Rc;

use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use nsq_daemon::http::RequestReader;
use nsq_io::http::{self as codec, HttpError, Request};

use crate::shard::Shard;

/// A handler's answer.
pub enum Reply {
    /// 200 with a plain body (nsqd's V1 for string/[]byte results).
    Text(Vec<u8>),
    /// 200 with a JSON body.
    Json(Vec<u8>),
    /// An error status with `{"message": ...}`.
    Err(u16, &'static str),
    /// A non-V1 plain response (for /ping).
    Plain(u16, String),
    /// 200 with a body of the given content type (for /metrics).
    Typed(&'static str, Vec<u8>),
}

impl Reply {
    fn json<T: serde::Serialize>(value: &T) -> Reply {
        match serde_json::to_vec(value) {
            Ok(body) => Reply::Json(body),
            Err(_) => Reply::Err(500, "INTERNAL_ERROR"),
        }
    }
}

/// Bytes asked of the kernel per read, and the read buffer's first size.
const READ_CHUNK: usize = 16 * 1024;
/// The response buffer's first size (most answers are small JSON).
const WRITE_BUFFER: usize = 4 * 1024;

/// Serve one plain HTTP connection.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream) {
    serve_on(shard, stream, false).await
}

/// Serve one HTTPS connection: a bounded TLS handshake, then the API.
pub async fn serve_tls(shard: Rc<Shard>, mut stream: TcpStream) {
    let Some(config) = shard.tls.clone() else {
        return;
    };
    let (tls, raw_in) = match crate::tls::handshake(&mut stream, config, BytesMut::new()).await {
        Ok(session) => session,
        Err(e) => {
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            crate::log_error!("HTTPS: TLS handshake with {peer} failed - {e}");
            return;
        }
    };
    let stream = tls_stream::TlsStream::new(stream, tls, raw_in);
    serve_on(shard, stream, true).await
}

/// Serve one HTTP connection (keep-alive) until the peer closes or errs.
async fn serve_on<S: AsyncRead + AsyncWrite + Unpin>(shard: Rc<Shard>, mut stream: S, tls: bool) {
    let opts = shard.opts();
    // nsqd: with --tls-required=true (not tcp-https), plain HTTP answers
    // every request with where to find HTTPS.
    let tls_required = !tls && opts.tls_required == crate::config::TlsRequired::Required;
    let max_body = opts.max_body_size.max(opts.max_msg_size) as usize;
    let mut requests = RequestReader::new(READ_CHUNK);
    let mut out = BytesMut::with_capacity(WRITE_BUFFER);
    loop {
        match requests.next(&mut stream, max_body).await {
            Ok(Some(req)) => {
                let keep_alive = req.keep_alive;
                if tls_required {
                    let port = shard.listen.https.map(|a| a.port()).unwrap_or(0);
                    let body = format!(r#"{{"message": "TLS_REQUIRED", "https_port": {port}}}"#);
                    codec::encode_response(
                        &mut out,
                        403,
                        Some("application/json; charset=utf-8"),
                        body.as_bytes(),
                        keep_alive,
                    );
                } else {
                    let reply = route(&shard, &req).await;
                    write_reply(&mut out, reply, keep_alive);
                }
                if stream.write_all(&out).await.is_err()
                    || stream.flush().await.is_err()
                    || !keep_alive
                {
                    let _ = stream.close().await;
                    return;
                }
                out.clear();
            }
            Ok(None) => return,
            Err(err) => {
                match &err {
                    HttpError::BodyTooLarge { path, .. } => {
                        let text = if path == "/mpub" {
                            "BODY_TOO_BIG"
                        } else {
                            "MSG_TOO_BIG"
                        };
                        write_reply(&mut out, Reply::Err(413, text), false);
                    }
                    _ => codec::encode_error(&mut out, &err),
                }
                let _ = stream.write_all(&out).await;
                let _ = stream.close().await;
                return;
            }
        }
    }
}

fn write_reply(out: &mut BytesMut, reply: Reply, keep_alive: bool) {
    match reply {
        Reply::Text(body) => codec::encode_response(out, 200, None, &body, keep_alive),
        Reply::Json(body) => codec::encode_response(
            out,
            200,
            Some("application/json; charset=utf-8"),
            &body,
            keep_alive,
        ),
        Reply::Err(status, message) => {
            let body = serde_json::json!({ "message": message }).to_string();
            codec::encode_response(
                out,
                status,
                Some("application/json; charset=utf-8"),
                body.as_bytes(),
                keep_alive,
            );
        }
        Reply::Plain(status, body) => codec::encode_response(
            out,
            status,
            Some("text/plain; charset=utf-8"),
            body.as_bytes(),
            keep_alive,
        ),
        Reply::Typed(content_type, body) => {
            codec::encode_response(out, 200, Some(content_type), &body, keep_alive)
        }
    }
}

/// The route table (nsqd's `newHTTPServer`).
async fn route(shard: &Rc<Shard>, req: &Request) -> Reply {
    let path = req.path.as_str();
    let method = req.method.as_str();
    let allowed: &[&str] = match path {
        "/ping" | "/info" | "/stats" | "/metrics" => &["GET"],
        "/pub" | "/mpub" => &["POST"],
        p if p.starts_with("/topic/") || p.starts_with("/channel/") => &["POST"],
        p if p.starts_with("/config/") => &["GET", "PUT"],
        _ => return Reply::Err(404, "NOT_FOUND"),
    };
    let known = matches!(
        path,
        "/ping"
            | "/info"
            | "/stats"
            | "/metrics"
            | "/pub"
            | "/mpub"
            | "/topic/create"
            | "/topic/delete"
            | "/topic/empty"
            | "/topic/pause"
            | "/topic/unpause"
            | "/channel/create"
            | "/channel/delete"
            | "/channel/empty"
            | "/channel/pause"
            | "/channel/unpause"
    ) || path
        .strip_prefix("/config/")
        .is_some_and(|opt| !opt.is_empty() && !opt.contains('/'));
    if !known {
        return Reply::Err(404, "NOT_FOUND");
    }
    if !allowed.contains(&method) {
        return Reply::Err(405, "METHOD_NOT_ALLOWED");
    }
    if req.query_error {
        return Reply::Err(400, "INVALID_REQUEST");
    }
    match path {
        "/ping" => match admin::health(shard).await {
            None => Reply::Plain(200, "OK".to_string()),
            // nsqd: 500 with "NOK - <error>" while a disk write is failing.
            Some(err) => Reply::Plain(500, format!("NOK - {err}")),
        },
        "/info" => admin::info(shard),
        "/stats" => admin::stats(shard, req).await,
        "/metrics" => admin::metrics(shard).await,
        "/pub" => publish::pub_(shard, req).await,
        "/mpub" => publish::mpub(shard, req).await,
        "/topic/create" => admin::topic_create(shard, req).await,
        "/topic/delete" => admin::topic_delete(shard, req).await,
        "/topic/empty" => admin::topic_empty(shard, req).await,
        "/topic/pause" => admin::topic_pause(shard, req, true).await,
        "/topic/unpause" => admin::topic_pause(shard, req, false).await,
        "/channel/create" => admin::channel_create(shard, req).await,
        "/channel/delete" => admin::channel_delete(shard, req).await,
        "/channel/empty" => admin::channel_empty(shard, req).await,
        "/channel/pause" => admin::channel_pause(shard, req, true).await,
        "/channel/unpause" => admin::channel_pause(shard, req, false).await,
        _ => admin::config(shard, req).await,
    }
}
