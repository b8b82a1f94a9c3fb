//! TLS and compression between a connection's frames and its socket, in
//! the order nsqd stacks them: frames, then snappy or deflate, then TLS,
//! then TCP.
//!
//! Reading is push-based: one socket read's bytes are fed through every
//! layer at once, and everything they can decode lands in the frame buffer.
//! What stays behind is only ever an incomplete TLS record or compressed
//! chunk, which needs more bytes from the socket; so polling the socket
//! still tells whether there is anything to read, and a read timeout in the
//! middle of a record loses nothing (unlike `read_exact` in a decoder
//! stacked on a socket with a timeout).
//!
//! Writing compresses one batch, flushes the compressor (a snappy chunk, or
//! a deflate sync flush) and encrypts it, so each `write_all` reaches nsqd
//! whole, as the plaintext path's does.

use std::fmt;
use std::io::{self, Read, Write};

use bytes::{Buf, BytesMut};
use flate2::{Decompress, FlushDecompress, Status};
use rustls::ClientConnection;

use crate::args::Compression;
use crate::net::READ_SIZE;

/// Longest snappy chunk buffered before handing it to the decoder: the
/// format's largest (a 64 KiB block that did not compress) is ~76 KiB.
const MAX_SNAPPY_CHUNK: usize = 1 << 17;

/// The layers of one connection (any of TLS and one compression).
pub struct Layers {
    tls: Option<ClientConnection>,
    codec: Codec,
    /// One socket read of ciphertext, fed to rustls from here.
    raw: Vec<u8>,
    /// Bytes decoded into the frame buffer and not yet reported by `read`.
    ready: usize,
    /// The stream ended (socket EOF or TLS close_notify).
    eof: bool,
}

impl fmt::Debug for Layers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layers")
            .field("tls", &self.tls.is_some())
            .field("codec", &self.codec.compression())
            .field("ready", &self.ready)
            .field("eof", &self.eof)
            .finish()
    }
}

impl Layers {
    /// TLS over an established handshake; no compression yet.
    pub fn with_tls(mut tls: ClientConnection) -> Layers {
        // Our writes are bounded by one batch: let rustls take each whole.
        tls.set_buffer_limit(None);
        Layers {
            tls: Some(tls),
            codec: Codec::Identity,
            raw: Vec::new(),
            ready: 0,
            eof: false,
        }
    }

    /// No TLS, no compression yet (see [`Layers::compress`]).
    pub fn plain() -> Layers {
        Layers {
            tls: None,
            codec: Codec::Identity,
            raw: Vec::new(),
            ready: 0,
            eof: false,
        }
    }

    /// Starts compressing. `leftover`: bytes read past the last plaintext
    /// frame, already compressed by nsqd (it sends its compressed `OK`
    /// right after the IDENTIFY response or TLS `OK`).
    pub fn compress(&mut self, compression: Compression, deflate_level: u32, leftover: &[u8]) {
        self.codec = Codec::new(compression, deflate_level);
        match self.codec.input() {
            Some(input) => input.extend_from_slice(leftover),
            None => debug_assert!(leftover.is_empty()),
        }
    }

    /// Whether decoded bytes wait in the frame buffer that `read` has not
    /// reported yet (after [`Layers::pump`] without a socket read).
    pub fn has_ready(&self) -> bool {
        self.ready > 0
    }

    /// One read: decodes what the layers already hold, else reads the
    /// socket once and decodes that. `Ok(n)`: n decoded bytes appended to
    /// `rbuf`; `Ok(0)`: end of stream; `WouldBlock`: the read brought only
    /// part of a record or chunk (or the socket timed out).
    pub fn read<S: Read + Write>(
        &mut self,
        sock: &mut S,
        rbuf: &mut BytesMut,
    ) -> io::Result<usize> {
        self.pump(sock, rbuf)?;
        if self.ready == 0 && !self.eof {
            let n = if self.tls.is_some() {
                self.raw.resize(READ_SIZE, 0);
                let n = sock.read(&mut self.raw)?;
                let raw = std::mem::take(&mut self.raw);
                let fed = self.feed(sock, &raw[..n], rbuf);
                self.raw = raw;
                fed?;
                n
            } else {
                let n = match self.codec.input() {
                    Some(input) => read_into(input, READ_SIZE, |b| sock.read(b))?,
                    None => {
                        let n = read_into(rbuf, READ_SIZE, |b| sock.read(b))?;
                        self.ready += n;
                        n
                    }
                };
                self.pump(sock, rbuf)?;
                n
            };
            if n == 0 {
                self.eof = true;
            }
        }
        match std::mem::take(&mut self.ready) {
            0 if self.eof => Ok(0),
            0 => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "part of a TLS record or compressed chunk",
            )),
            n => Ok(n),
        }
    }

    /// Decodes whatever the layers hold into `rbuf` without reading the
    /// socket (the socket is only written: TLS alerts or key updates).
    pub fn pump<S: Write>(&mut self, sock: &mut S, rbuf: &mut BytesMut) -> io::Result<()> {
        self.feed(sock, &[], rbuf)
    }

    /// Feeds `ciphertext` (TLS only) through every layer into `rbuf`.
    fn feed<S: Write>(
        &mut self,
        sock: &mut S,
        ciphertext: &[u8],
        rbuf: &mut BytesMut,
    ) -> io::Result<()> {
        let start = rbuf.len();
        let Layers {
            tls, codec, eof, ..
        } = self;
        if let Some(tls) = tls {
            let mut rest = ciphertext;
            loop {
                // rustls takes at most a few KiB per call, and its plaintext
                // buffer must be emptied between calls.
                if !rest.is_empty() && tls.read_tls(&mut rest)? == 0 {
                    rest = &[];
                }
                tls.process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                let dest = match codec.input() {
                    Some(input) => input,
                    None => &mut *rbuf,
                };
                loop {
                    match read_into(dest, READ_SIZE, |b| tls.reader().read(b)) {
                        Ok(0) => {
                            *eof = true;
                            break;
                        }
                        Ok(_) => {}
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                        Err(err) => return Err(err),
                    }
                }
                if rest.is_empty() {
                    break;
                }
            }
            while tls.wants_write() {
                if tls.write_tls(sock)? == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
            }
        }
        codec.decode(rbuf)?;
        self.ready += rbuf.len() - start;
        Ok(())
    }

    /// Compresses, flushes and encrypts `data`, and writes it all.
    pub fn write_all<S: Write>(&mut self, sock: &mut S, data: &[u8]) -> io::Result<()> {
        let bytes = self.codec.encode(data)?;
        match &mut self.tls {
            Some(tls) => {
                tls.writer().write_all(bytes)?;
                while tls.wants_write() {
                    if tls.write_tls(sock)? == 0 {
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                }
            }
            None => sock.write_all(bytes)?,
        }
        self.codec.clear_output();
        Ok(())
    }
}

/// Appends up to `max` bytes to `buf` from one call of `read`.
fn read_into(
    buf: &mut BytesMut,
    max: usize,
    read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
) -> io::Result<usize> {
    let start = buf.len();
    buf.resize(start + max, 0);
    let result = read(&mut buf[start..]);
    buf.truncate(start + *result.as_ref().unwrap_or(&0));
    result
}

/// The compression layer.
enum Codec {
    Identity,
    /// Boxed: the snappy coder state is a few KiB.
    Snappy {
        dec: Box<snap::read::FrameDecoder<Chunks>>,
        enc: Box<snap::write::FrameEncoder<Vec<u8>>>,
    },
    Deflate {
        /// Compressed bytes not yet inflated.
        input: BytesMut,
        dec: Decompress,
        enc: flate2::write::DeflateEncoder<Vec<u8>>,
    },
}

impl Codec {
    fn new(compression: Compression, deflate_level: u32) -> Codec {
        match compression {
            Compression::None => Codec::Identity,
            Compression::Snappy => Codec::Snappy {
                dec: Box::new(snap::read::FrameDecoder::new(Chunks::default())),
                enc: Box::new(snap::write::FrameEncoder::new(Vec::new())),
            },
            Compression::Deflate => Codec::Deflate {
                input: BytesMut::new(),
                // Raw deflate: no zlib header, as nsqd (Go's compress/flate).
                dec: Decompress::new(false),
                enc: flate2::write::DeflateEncoder::new(
                    Vec::new(),
                    flate2::Compression::new(deflate_level),
                ),
            },
        }
    }

    fn compression(&self) -> Compression {
        match self {
            Codec::Identity => Compression::None,
            Codec::Snappy { .. } => Compression::Snappy,
            Codec::Deflate { .. } => Compression::Deflate,
        }
    }

    /// Where compressed bytes go; None without compression.
    fn input(&mut self) -> Option<&mut BytesMut> {
        match self {
            Codec::Identity => None,
            Codec::Snappy { dec, .. } => Some(&mut dec.get_mut().buf),
            Codec::Deflate { input, .. } => Some(input),
        }
    }

    /// Decompresses everything complete in the input into `out`.
    fn decode(&mut self, out: &mut BytesMut) -> io::Result<()> {
        match self {
            Codec::Identity => {}
            Codec::Snappy { dec, .. } => while read_into(out, READ_SIZE, |b| dec.read(b))? > 0 {},
            Codec::Deflate { input, dec, .. } => loop {
                let (in_before, out_before) = (dec.total_in(), dec.total_out());
                let start = out.len();
                out.resize(start + READ_SIZE, 0);
                let status = dec.decompress(input, &mut out[start..], FlushDecompress::None);
                let consumed = (dec.total_in() - in_before) as usize;
                let produced = (dec.total_out() - out_before) as usize;
                out.truncate(start + produced);
                input.advance(consumed);
                match status {
                    Err(err) => return Err(io::Error::new(io::ErrorKind::InvalidData, err)),
                    Ok(Status::StreamEnd) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "nsqd ended the deflate stream",
                        ))
                    }
                    Ok(_) if consumed == 0 && produced == 0 => break,
                    Ok(_) => {}
                }
            },
        }
        Ok(())
    }

    /// `data` compressed and flushed (a complete snappy chunk, or a deflate
    /// sync flush), or `data` itself without compression. Call
    /// [`Codec::clear_output`] once it is written.
    fn encode<'a>(&'a mut self, data: &'a [u8]) -> io::Result<&'a [u8]> {
        match self {
            Codec::Identity => Ok(data),
            Codec::Snappy { enc, .. } => {
                enc.write_all(data)?;
                enc.flush()?;
                Ok(enc.get_ref())
            }
            Codec::Deflate { enc, .. } => {
                enc.write_all(data)?;
                enc.flush()?;
                Ok(enc.get_ref())
            }
        }
    }

    fn clear_output(&mut self) {
        match self {
            Codec::Identity => {}
            Codec::Snappy { enc, .. } => enc.get_mut().clear(),
            Codec::Deflate { enc, .. } => enc.get_mut().clear(),
        }
    }
}

/// Snappy-framed bytes, of which the decoder only ever sees whole chunks:
/// `FrameDecoder` reads a chunk with `read_exact`, which must not run dry
/// half-way. Reading past the complete chunks returns `Ok(0)`, which the
/// decoder passes on as "nothing more for now".
#[derive(Default)]
struct Chunks {
    buf: BytesMut,
    /// Length of the prefix of `buf` made of whole chunks.
    complete: usize,
}

impl Chunks {
    /// Extends `complete` over every whole chunk now in `buf`.
    fn scan(&mut self) -> io::Result<()> {
        while let Some(header) = self.buf.get(self.complete..self.complete + 4) {
            let len = u32::from_le_bytes([header[1], header[2], header[3], 0]) as usize;
            if len > MAX_SNAPPY_CHUNK {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("snappy chunk of {len} bytes"),
                ));
            }
            if self.buf.len() < self.complete + 4 + len {
                break;
            }
            self.complete += 4 + len;
        }
        Ok(())
    }
}

impl Read for Chunks {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.scan()?;
        let n = out.len().min(self.complete);
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf.advance(n);
        self.complete -= n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use bytes::BytesMut;
    use nsq_proto::command::encode;
    use nsq_proto::frame::{decode_frame, encode_message_frame, encode_response, Frame};
    use nsq_proto::message::id_from_u64;
    use nsq_proto::{decode_command, Command, Limits};
    use rustls::{ClientConnection, ServerConnection};

    use super::*;
    use crate::args::Security;

    /// A socket that hands out `input` `piece` bytes per read, then
    /// `WouldBlock` (a read timeout) or, once `eof`, end of stream; and
    /// keeps what is written.
    struct Trickle {
        input: Vec<u8>,
        pos: usize,
        piece: usize,
        eof: bool,
        written: Vec<u8>,
    }

    impl Trickle {
        fn new(input: Vec<u8>, piece: usize) -> Trickle {
            Trickle {
                input,
                pos: 0,
                piece,
                eof: false,
                written: Vec::new(),
            }
        }
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let left = self.input.len() - self.pos;
            if left == 0 {
                return if self.eof {
                    Ok(0)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            let n = left.min(self.piece).min(buf.len());
            buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Batches of message frames, as nsqd writes them (one flush each).
    fn batches(count: u64) -> Vec<Vec<u8>> {
        (0..count)
            .collect::<Vec<_>>()
            .chunks(17)
            .map(|ids| {
                let mut buf = BytesMut::new();
                for &i in ids {
                    let body = format!("message {i} {}", "x".repeat((i % 300) as usize));
                    encode_message_frame(&mut buf, 1, 1, &id_from_u64(i), body.as_bytes());
                }
                buf.to_vec()
            })
            .collect()
    }

    fn ok_frame() -> Vec<u8> {
        let mut buf = BytesMut::new();
        encode_response(&mut buf, b"OK");
        buf.to_vec()
    }

    /// nsqd's side of a compressed stream: `OK`, then the batches, each
    /// flushed.
    fn server_compress(compression: Compression, batches: &[Vec<u8>]) -> Vec<u8> {
        let ok = ok_frame();
        let all = std::iter::once(&ok).chain(batches);
        match compression {
            Compression::None => all.flatten().copied().collect(),
            Compression::Snappy => {
                let mut enc = snap::write::FrameEncoder::new(Vec::new());
                for b in all {
                    enc.write_all(b).unwrap();
                    enc.flush().unwrap();
                }
                enc.get_ref().clone()
            }
            Compression::Deflate => {
                let mut enc =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
                for b in all {
                    enc.write_all(b).unwrap();
                    enc.flush().unwrap();
                }
                enc.get_ref().clone()
            }
        }
    }

    /// nsqd's side of what the client wrote: `len` plaintext bytes.
    fn server_decompress(compression: Compression, data: &[u8], len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        match compression {
            Compression::None => out.copy_from_slice(data),
            Compression::Snappy => snap::read::FrameDecoder::new(data)
                .read_exact(&mut out)
                .unwrap(),
            Compression::Deflate => flate2::read::DeflateDecoder::new(data)
                .read_exact(&mut out)
                .unwrap(),
        }
        out
    }

    /// Reads through `layers` until an `OK` response arrives; returns the
    /// reads that came back with part of a record or chunk only.
    fn read_ok(layers: &mut Layers, sock: &mut Trickle, rbuf: &mut BytesMut) -> usize {
        let mut partial = 0;
        let ok = loop {
            if let Some(frame) = decode_frame(rbuf, 1 << 20).unwrap() {
                break frame;
            }
            match layers.read(sock, rbuf) {
                Ok(n) => assert!(n > 0),
                Err(err) => {
                    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
                    partial += 1;
                }
            }
        };
        assert_eq!(ok, Frame::Response(bytes::Bytes::from_static(b"OK")));
        partial
    }

    /// Reads through `layers` until `count` messages have arrived, checking
    /// ids and bodies; returns the reads that came back with part of a
    /// record or chunk only.
    fn read_messages(
        layers: &mut Layers,
        sock: &mut Trickle,
        rbuf: &mut BytesMut,
        count: u64,
    ) -> usize {
        let mut partial = 0;
        let mut next = 0;
        while next < count {
            while let Some(frame) = decode_frame(rbuf, 1 << 20).unwrap() {
                let Frame::Message(msg) = frame else {
                    panic!("unexpected frame {frame:?}");
                };
                assert_eq!(msg.id, id_from_u64(next));
                let body = format!("message {next} {}", "x".repeat((next % 300) as usize));
                assert_eq!(msg.body, body.as_bytes());
                next += 1;
            }
            if next == count {
                break;
            }
            match layers.read(sock, rbuf) {
                Ok(0) => panic!("end of stream after {next} messages"),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    assert!(sock.pos < sock.input.len(), "stalled after {next} messages");
                    partial += 1;
                }
                Err(err) => panic!("read: {err}"),
            }
        }
        assert!(rbuf.is_empty());
        partial
    }

    /// Writes FINs for `count` messages in a few batches; returns the
    /// plaintext written.
    fn write_fins(layers: &mut Layers, sock: &mut Trickle, count: u64) -> Vec<u8> {
        let mut plain = Vec::new();
        for ids in (0..count).collect::<Vec<_>>().chunks(40) {
            let mut buf = BytesMut::new();
            for &i in ids {
                encode::fin(&mut buf, &id_from_u64(i));
            }
            layers.write_all(sock, &buf).unwrap();
            plain.extend_from_slice(&buf);
        }
        plain
    }

    fn assert_fins(mut plain: BytesMut, count: u64) {
        for i in 0..count {
            match decode_command(&mut plain, &Limits::default()) {
                Ok(Some(Command::Fin { id })) => assert_eq!(id, id_from_u64(i)),
                other => panic!("FIN {i}: {other:?}"),
            }
        }
        assert!(plain.is_empty());
    }

    #[test]
    fn compression_survives_any_fragmentation() {
        const COUNT: u64 = 300;
        let batches = batches(COUNT);
        for compression in [Compression::Snappy, Compression::Deflate] {
            let stream = server_compress(compression, &batches);
            for piece in [1, 2, 3, 7, 100, 4096, 1 << 20] {
                // The first bytes arrive with the IDENTIFY response, before
                // the compression layer exists.
                let (leftover, rest) = stream.split_at(5.min(stream.len()));
                let mut sock = Trickle::new(rest.to_vec(), piece);
                let mut layers = Layers::plain();
                layers.compress(compression, 6, leftover);
                let mut rbuf = BytesMut::new();
                let mut partial = read_ok(&mut layers, &mut sock, &mut rbuf);
                partial += read_messages(&mut layers, &mut sock, &mut rbuf, COUNT);
                if piece <= 3 {
                    assert!(
                        partial > 0,
                        "{compression:?} piece {piece}: no partial read"
                    );
                }
                // What is left (a deflate sync-flush marker) decodes to
                // nothing; then the end of stream.
                sock.eof = true;
                loop {
                    match layers.read(&mut sock, &mut rbuf) {
                        Ok(0) => break,
                        Ok(n) => panic!("{n} bytes after the last message"),
                        Err(err) => assert_eq!(err.kind(), io::ErrorKind::WouldBlock),
                    }
                }

                let plain = write_fins(&mut layers, &mut sock, COUNT);
                let got = server_decompress(compression, &sock.written, plain.len());
                assert_eq!(got, plain);
                assert_fins(BytesMut::from(&got[..]), COUNT);
            }
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("loadgen-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A CA, a server certificate for `localhost` and a client
    /// certificate; the client's configuration from PEM files as the
    /// `--tls-*` options give them, and a server requiring the client's.
    fn tls_pair() -> (Arc<rustls::ClientConfig>, Arc<rustls::ServerConfig>) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&server_key, &ca, &ca_key)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let client = CertificateParams::new(vec!["loadgen".to_string()])
            .unwrap()
            .signed_by(&client_key, &ca, &ca_key)
            .unwrap();

        let dir = temp_dir("tls");
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            Some(path)
        };
        let sec = Security {
            tls: true,
            tls_ca: write("ca.pem", ca.pem()),
            tls_cert: write("client.pem", client.pem()),
            tls_key: write("client.key", client_key.serialize_pem()),
            ..Security::default()
        };
        let client_config = crate::tls::client_config(&sec).unwrap();
        let _ = std::fs::remove_dir_all(&dir);

        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap();
        let server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![server.der().clone()],
                rustls_pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
            )
            .unwrap();
        (client_config, Arc::new(server_config))
    }

    /// Everything `conn` wants to send.
    fn drain_tls(conn: &mut rustls::ConnectionCommon<impl Sized>) -> Vec<u8> {
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).unwrap();
        }
        out
    }

    /// Feeds `data` to `conn` and returns the plaintext it yields.
    fn feed_tls(conn: &mut rustls::ConnectionCommon<impl Sized>, mut data: &[u8]) -> Vec<u8> {
        let mut plain = Vec::new();
        while !data.is_empty() {
            conn.read_tls(&mut data).unwrap();
            conn.process_new_packets().unwrap();
            let _ = conn.reader().read_to_end(&mut plain);
        }
        plain
    }

    #[test]
    fn tls_with_and_without_compression() {
        const COUNT: u64 = 200;
        let (client_config, server_config) = tls_pair();
        let batches = batches(COUNT);
        for compression in [Compression::None, Compression::Snappy, Compression::Deflate] {
            for piece in [1, 5, 1000, 1 << 20] {
                let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
                let mut client = ClientConnection::new(client_config.clone(), name).unwrap();
                let mut server = ServerConnection::new(server_config.clone()).unwrap();
                for _ in 0..10 {
                    if !client.is_handshaking() && !server.is_handshaking() {
                        break;
                    }
                    let to_server = drain_tls(&mut client);
                    feed_tls(&mut server, &to_server);
                    let to_client = drain_tls(&mut server);
                    feed_tls(&mut client, &to_client);
                }
                assert!(!client.is_handshaking() && !server.is_handshaking());

                // nsqd: OK over TLS, then (maybe) the compressed stream.
                server.writer().write_all(&ok_frame()).unwrap();
                let compressed = server_compress(compression, &batches);
                let ok_len = ok_frame().len();
                let body = match compression {
                    Compression::None => &compressed[ok_len..],
                    _ => &compressed[..],
                };
                for chunk in body.chunks(3000) {
                    server.writer().write_all(chunk).unwrap();
                }
                let mut sock = Trickle::new(drain_tls(&mut server), piece);

                let mut layers = Layers::with_tls(client);
                let mut rbuf = BytesMut::new();
                let mut partial = read_ok(&mut layers, &mut sock, &mut rbuf);
                if compression != Compression::None {
                    let leftover = rbuf.split();
                    layers.compress(compression, 6, &leftover);
                    partial += read_ok(&mut layers, &mut sock, &mut rbuf);
                }
                partial += read_messages(&mut layers, &mut sock, &mut rbuf, COUNT);
                if piece <= 5 {
                    assert!(
                        partial > 0,
                        "{compression:?} piece {piece}: no partial read"
                    );
                }

                let plain = write_fins(&mut layers, &mut sock, COUNT);
                let decrypted = feed_tls(&mut server, &sock.written);
                let got = server_decompress(compression, &decrypted, plain.len());
                assert_eq!(got, plain);
                assert_fins(BytesMut::from(&got[..]), COUNT);
            }
        }
    }
}
