//! The layers IDENTIFY can put between the socket and the protocol: TLS,
//! then snappy or deflate on top (nsqd's order), as one push-based state.
//!
//! Push-based on purpose: a connection's reader and writer are two tasks on
//! two dup'ed descriptors, so neither can own a layered stream. They share
//! one `Wire` (`Rc<RefCell<_>>`, borrowed only between awaits): the reader
//! pushes raw bytes in and takes decoded bytes out, the writer pushes frames
//! in and takes bytes for the socket out. Everything a connection has
//! received but not yet parsed lives either in the reader's buffer or in
//! here (rustls' buffers, the decoder's pending input, `raw_in`), so moving a
//! consumer to another core at SUB moves this value and the buffer, intact
//! (`Wire` is `Send`).
//!
//! A plaintext connection has no `Wire` at all: its path is unchanged.

use std::io::{self, Read, Write};

use bytes::{Buf, BytesMut};
use rustls::ServerConnection;

pub mod compress;

use compress::{Codec, Decoder, Encoder};

/// Plaintext pulled out of rustls per step.
const TLS_PLAIN_CHUNK: usize = 16 * 1024;

/// The connection's layers. Lives on: the shard running the connection.
#[derive(Default)]
pub struct Wire {
    tls: Option<Box<ServerConnection>>,
    decoder: Option<Decoder>,
    encoder: Option<Encoder>,
    /// Raw bytes read from the socket not yet accepted by rustls.
    raw_in: BytesMut,
    /// Compressed output before encryption (reused).
    scratch: BytesMut,
    /// The peer ended the TLS session (close_notify).
    tls_closed: bool,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire")
            .field("tls", &self.tls.is_some())
            .field("decoder", &self.decoder.is_some())
            .field("encoder", &self.encoder.is_some())
            .field("raw_in", &self.raw_in.len())
            .finish()
    }
}

const _: () = {
    const fn is_send<T: Send>() {}
    is_send::<Wire>();
};

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl Wire {
    /// Layers: TLS (a finished handshake) and/or compression. `pending`: raw
    /// bytes already received after the upgrade point.
    pub fn new(tls: Option<Box<ServerConnection>>, pending: BytesMut) -> Wire {
        Wire {
            tls,
            raw_in: pending,
            ..Wire::default()
        }
    }

    /// Start compressing both ways from here on. Bytes received so far
    /// that were not decoded yet belong to the compressed stream.
    pub fn compress(&mut self, codec: Codec) {
        let mut decoder = Decoder::new(codec);
        if self.tls.is_none() {
            decoder.feed(&self.raw_in);
            self.raw_in.clear();
        }
        self.decoder = Some(decoder);
        self.encoder = Some(Encoder::new(codec));
    }

    /// True when TLS is on.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The TLS session, for stats.
    pub fn tls(&self) -> Option<&ServerConnection> {
        self.tls.as_deref()
    }

    /// Raw bytes from the socket.
    pub fn absorb(&mut self, raw: &[u8]) {
        match (&self.tls, &mut self.decoder) {
            (None, Some(decoder)) => decoder.feed(raw),
            _ => self.raw_in.extend_from_slice(raw),
        }
    }

    /// Decode what was received into `out`, appending about `max` bytes at
    /// most. Ok(0): more raw input is needed (or, with TLS, the peer closed
    /// the session: see [`Wire::is_closed`]).
    pub fn decode(&mut self, out: &mut BytesMut, max: usize) -> io::Result<usize> {
        loop {
            if let Some(decoder) = &mut self.decoder {
                let n = decoder.decode(out, max).map_err(invalid)?;
                if n > 0 {
                    return Ok(n);
                }
            }
            let Some(tls) = &mut self.tls else {
                // Compression only: the decoder was fed directly.
                return Ok(0);
            };
            // Plaintext rustls already decrypted.
            let start = out.len();
            let chunk = if self.decoder.is_some() {
                TLS_PLAIN_CHUNK
            } else {
                max.clamp(1, TLS_PLAIN_CHUNK)
            };
            out.resize(start + chunk, 0);
            let n = match tls.reader().read(&mut out[start..]) {
                Ok(0) => {
                    // close_notify: the peer ended the session.
                    self.tls_closed = true;
                    0
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => {
                    out.truncate(start);
                    return Err(e);
                }
            };
            if n > 0 {
                match &mut self.decoder {
                    Some(decoder) => {
                        decoder.feed(&out[start..start + n]);
                        out.truncate(start);
                        continue;
                    }
                    None => {
                        out.truncate(start + n);
                        return Ok(n);
                    }
                }
            }
            out.truncate(start);
            if self.tls_closed || self.raw_in.is_empty() {
                return Ok(0);
            }
            // Hand rustls more ciphertext, then look for plaintext again.
            let mut raw = &self.raw_in[..];
            let taken = tls.read_tls(&mut raw)?;
            self.raw_in.advance(taken);
            tls.process_new_packets().map_err(invalid)?;
        }
    }

    /// The peer ended the TLS session cleanly.
    pub fn is_closed(&self) -> bool {
        self.tls_closed
    }

    /// rustls has bytes for the peer of its own (an alert, a key update).
    pub fn wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Frames for the peer: compress, encrypt, append to `raw_out`.
    pub fn encode(&mut self, plain: &[u8], raw_out: &mut Vec<u8>) -> io::Result<()> {
        let data: &[u8] = match &mut self.encoder {
            Some(encoder) if !plain.is_empty() => {
                self.scratch.clear();
                encoder.encode(plain, &mut self.scratch).map_err(invalid)?;
                &self.scratch
            }
            _ => plain,
        };
        match &mut self.tls {
            Some(tls) => {
                if !data.is_empty() {
                    tls.writer().write_all(data)?;
                }
                while tls.wants_write() {
                    tls.write_tls(raw_out)?;
                }
            }
            None => raw_out.extend_from_slice(data),
        }
        Ok(())
    }
}
