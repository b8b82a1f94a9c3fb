//! The per-peer TCP loop: magic, then one command line at a time through
//! [`Session`], answers written as they are produced.
//!
//! Lives on: the lookupd executor, one task per nsqd connection.
//! When the loop ends for any reason (EOF, I/O error, fatal protocol error)
//! the peer is removed from every registration, as nsqlookupd does, so a
//! crashed nsqd stops being handed out by `/lookup` at once. No read
//! deadline is set: nsqd PINGs every 15s, and an idle peer only ages out of
//! `/lookup` through `--inactive-producer-timeout`, exactly as in Go.

use std::io;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use nsq_proto::lookup::{self, LookupError};

use crate::protocol::{Session, Step};
use crate::{log_error, log_info, now_ns, Lookupd};

/// Bytes asked of the socket per read; lines and IDENTIFY bodies are small.
const READ_CHUNK: usize = 4096;
/// Initial capacity of a connection's output buffer: answers are "OK",
/// errors and the IDENTIFY JSON.
const OUT_CAPACITY: usize = 256;

/// Serve one peer until it goes away.
pub async fn serve(lookupd: Rc<Lookupd>, stream: TcpStream) {
    let remote = match stream.peer_addr() {
        Ok(addr) => addr.to_string(),
        Err(e) => {
            log_error!("TCP: cannot read peer address - {e}");
            return;
        }
    };
    log_info!("TCP: new client({remote})");
    let mut conn = Conn {
        stream,
        buf: BytesMut::with_capacity(READ_CHUNK),
        out: BytesMut::with_capacity(OUT_CAPACITY),
    };
    let magic = match conn.read_exact(4).await {
        Ok(Some(magic)) => magic,
        Ok(None) => {
            log_error!("failed to read protocol version - EOF");
            return;
        }
        Err(e) => {
            log_error!("failed to read protocol version - {e}");
            return;
        }
    };
    let shown = String::from_utf8_lossy(&magic).into_owned();
    log_info!("CLIENT({remote}): desired protocol magic '{shown}'");
    if magic[..] != lookup::MAGIC_V1[..] {
        let _ = conn.send(lookup::BAD_PROTOCOL).await;
        log_error!("client({remote}) bad protocol magic '{shown}'");
        return;
    }

    let mut session = Session::new(remote.clone());
    let exit = io_loop(&lookupd, &mut conn, &mut session).await;
    log_info!("PROTOCOL(V1): [{remote}] exiting ioloop");
    if session.is_identified() {
        let removed = lookupd.db.borrow_mut().remove_peer(session.id());
        for r in removed {
            log_info!(
                "DB: client({remote}) UNREGISTER category:{} key:{} subkey:{}",
                r.category.as_str(),
                r.key,
                r.subkey
            );
        }
    }
    log_error!("client({remote}) - {exit}");
}

/// Read lines and execute them until the peer closes or an error ends the
/// connection. Returns why it ended (Go logs it as the IOLoop error).
async fn io_loop(lookupd: &Lookupd, conn: &mut Conn, session: &mut Session) -> String {
    loop {
        let used = match lookup::split_line(&conn.buf) {
            Ok(Some((_, used))) => used,
            Ok(None) => match conn.fill().await {
                Ok(true) => continue,
                Ok(false) => return "EOF".to_string(),
                Err(e) => return e.to_string(),
            },
            Err(e) => return finish(conn, session, e.into()).await.unwrap_or_default(),
        };
        let line = conn.buf.split_to(used);
        let line = &line[..line.len() - 1];
        let step = session.exec(&mut lookupd.db.borrow_mut(), line, now_ns());
        let step = match step {
            Step::ReadIdentifyBody => match read_identify_body(conn).await {
                Ok(body) => session.identify(
                    &mut lookupd.db.borrow_mut(),
                    &body,
                    &lookupd.identify_response,
                    now_ns(),
                ),
                Err(step) => step,
            },
            other => other,
        };
        if let Some(exit) = finish(conn, session, step).await {
            return exit;
        }
    }
}

/// Write a step's answer. `Some(reason)` ends the connection.
async fn finish(conn: &mut Conn, session: &Session, step: Step) -> Option<String> {
    match step {
        Step::Reply(data) => conn.send(&data).await.err().map(|e| e.to_string()),
        Step::Fatal(data) => {
            let text = String::from_utf8_lossy(&data).into_owned();
            log_error!("[{}] - {text}", session.id());
            let _ = conn.send(&data).await;
            Some(text)
        }
        // exec never asks twice; treat it as a protocol bug, not a panic.
        Step::ReadIdentifyBody => Some("internal error: unexpected IDENTIFY step".to_string()),
    }
}

/// IDENTIFY's `[4B BE size][body]` (`lookup::decode_identify_body`: a bad
/// size is refused as soon as it is read). A peer closing (or an I/O error)
/// before the end gets nsqlookupd's error for the part it cut short.
async fn read_identify_body(conn: &mut Conn) -> Result<Bytes, Step> {
    loop {
        match lookup::decode_identify_body(&conn.buf) {
            Ok(Some((body, used))) => {
                let start = used - body.len();
                return Ok(conn.buf.split_to(used).freeze().slice(start..));
            }
            Ok(None) => {
                if !matches!(conn.fill().await, Ok(true)) {
                    return Err(LookupError::identify_cut_short(&conn.buf).into());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A socket with its read buffer (bytes not yet consumed) and write buffer.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    out: BytesMut,
}

impl Conn {
    /// Read once more into `buf`. `Ok(false)` on EOF.
    async fn fill(&mut self) -> io::Result<bool> {
        let len = self.buf.len();
        self.buf.resize(len + READ_CHUNK, 0);
        let read = self.stream.read(&mut self.buf[len..]).await;
        let n = *read.as_ref().unwrap_or(&0);
        self.buf.truncate(len + n);
        read.map(|n| n > 0)
    }

    /// The next `n` bytes, or `None` if the peer closed first.
    async fn read_exact(&mut self, n: usize) -> io::Result<Option<Bytes>> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Ok(None);
            }
        }
        Ok(Some(self.buf.split_to(n).freeze()))
    }

    /// Send one size-prefixed answer.
    async fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.clear();
        lookup::encode_response(&mut self.out, data);
        self.stream.write_all(&self.out).await
    }
}
