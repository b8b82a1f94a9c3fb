//! The HTTPS listener's stream: a TCP stream with a finished rustls session
//! on it, as `AsyncRead + AsyncWrite` for the HTTP request reader.
//!
//! The handshake itself runs first, bounded, in
//! `protocol::wire::handshake` (the same one the TCP protocol uses); this
//! type only moves application data.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use rustls::ServerConnection;

/// Ciphertext asked of the socket per read.
const RAW_CHUNK: usize = 16 * 1024;

/// A server-side TLS stream. Lives on: the shard serving the connection.
pub struct TlsStream {
    tcp: TcpStream,
    tls: Box<ServerConnection>,
    /// Ciphertext received, not yet taken by rustls.
    raw_in: BytesMut,
    /// Ciphertext to send, not yet written.
    raw_out: Vec<u8>,
}

impl TlsStream {
    /// Wrap a stream whose handshake finished; `raw_in`: bytes received
    /// after it.
    pub fn new(tcp: TcpStream, tls: Box<ServerConnection>, raw_in: BytesMut) -> TlsStream {
        TlsStream {
            tcp,
            tls,
            raw_in,
            raw_out: Vec::new(),
        }
    }

    /// Write out what rustls has queued, until done or the socket is full.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.tls.wants_write() {
            self.tls.write_tls(&mut self.raw_out)?;
        }
        while !self.raw_out.is_empty() {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.raw_out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.raw_out.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            match this.tls.reader().read(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            if !this.raw_in.is_empty() {
                let mut raw = &this.raw_in[..];
                let taken = this.tls.read_tls(&mut raw)?;
                this.raw_in.advance(taken);
                let processed = this.tls.process_new_packets();
                // Alerts or key-update answers rustls wants to send.
                let _ = this.poll_send(cx);
                processed.map_err(invalid)?;
                continue;
            }
            let len = this.raw_in.len();
            this.raw_in.resize(len + RAW_CHUNK, 0);
            let read = Pin::new(&mut this.tcp).poll_read(cx, &mut this.raw_in[len..]);
            let n = match read {
                Poll::Ready(Ok(n)) => n,
                other => {
                    this.raw_in.truncate(len);
                    return other;
                }
            };
            this.raw_in.truncate(len + n);
            if n == 0 {
                return Poll::Ready(Ok(0));
            }
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Bound what is queued: finish the previous write first.
        ready!(this.poll_send(cx))?;
        let n = this.tls.writer().write(data)?;
        // Start sending; the rest goes out on the next write or flush.
        let _ = this.poll_send(cx)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.tls.send_close_notify();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_close(cx)
    }
}
