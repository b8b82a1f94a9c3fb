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

use crate::protocol::{self, Session, Step};
use crate::{log_error, log_info, now_ns, Lookupd};

/// Bytes asked of the socket per read; lines and IDENTIFY bodies are small.
const READ_CHUNK: usize = 4096;

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
        out: BytesMut::with_capacity(256),
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
    if magic[..] != protocol::MAGIC_V1[..] {
        let _ = conn.send(protocol::BAD_PROTOCOL).await;
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
    let mut scanned = 0;
    loop {
        let Some(newline) = conn.buf[scanned..].iter().position(|&b| b == b'\n') else {
            scanned = conn.buf.len();
            if scanned > protocol::MAX_LINE {
                let step = protocol::fatal("E_INVALID", b"command line too long");
                return finish(conn, session, step).await.unwrap_or_default();
            }
            match conn.fill().await {
                Ok(true) => continue,
                Ok(false) => return "EOF".to_string(),
                Err(e) => return e.to_string(),
            }
        };
        let line = conn.buf.split_to(scanned + newline + 1);
        scanned = 0;
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

/// IDENTIFY's `[4B BE size][body]`, with nsqlookupd's error texts. The size
/// is a signed 32-bit integer in Go; a negative one (which crashes
/// nsqlookupd) or one above [`protocol::MAX_IDENTIFY_BODY`] is refused.
async fn read_identify_body(conn: &mut Conn) -> Result<Bytes, Step> {
    let size = match conn.read_exact(4).await {
        Ok(Some(size)) => i32::from_be_bytes([size[0], size[1], size[2], size[3]]),
        _ => {
            return Err(protocol::fatal(
                "E_BAD_BODY",
                b"IDENTIFY failed to read body size",
            ))
        }
    };
    let size = usize::try_from(size)
        .map_err(|_| protocol::fatal("E_BAD_BODY", b"IDENTIFY invalid body size"))?;
    if size > protocol::MAX_IDENTIFY_BODY {
        return Err(protocol::fatal("E_BAD_BODY", b"IDENTIFY body too big"));
    }
    match conn.read_exact(size).await {
        Ok(Some(body)) => Ok(body),
        _ => Err(protocol::fatal(
            "E_BAD_BODY",
            b"IDENTIFY failed to read body",
        )),
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
        protocol::encode_response(&mut self.out, data);
        self.stream.write_all(&self.out).await
    }
}
