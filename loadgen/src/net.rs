//! Blocking sockets, one OS thread per connection: with a handful of
//! connections this costs less than an event loop and keeps each
//! connection's loop straight-line code.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::BytesMut;
use nsq_proto::command::encode;
use nsq_proto::frame::{decode_frame, Frame};

use crate::args::{Compression, Security};
use crate::layers::Layers;
use crate::tls;

/// Bytes asked for per read: large reads amortise the syscall over
/// hundreds of messages.
pub const READ_SIZE: usize = 64 * 1024;

/// Largest frame accepted: far above any message loadgen sends, and bounds
/// what a corrupt size field can make us buffer.
const MAX_FRAME: usize = 64 << 20;

/// Nanoseconds per second: [`now_ns`] and every deadline count in ns.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Nanoseconds on CLOCK_MONOTONIC: comparable between the producer and
/// consumer threads, and between loadgen processes on one machine.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * NANOS_PER_SEC + ts.tv_nsec as u64
}

/// How long each step of the connection setup may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection to nsqd with its read buffer.
///
/// Plaintext connections read and write the socket directly (the hot path
/// is one branch away from a bare `TcpStream`); with TLS or compression
/// every read and write goes through [`Layers`].
#[derive(Debug)]
pub struct Conn {
    /// The socket (blocking).
    stream: TcpStream,
    rbuf: BytesMut,
    layers: Option<Box<Layers>>,
}

/// The fields of nsqd's IDENTIFY response that loadgen acts on.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct Granted {
    tls_v1: bool,
    snappy: bool,
    deflate: bool,
    auth_required: bool,
}

impl Conn {
    /// Connects, disables Nagle (we batch ourselves) and sends the V2 magic.
    pub fn connect(addr: SocketAddr) -> Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            stream,
            rbuf: BytesMut::with_capacity(2 * READ_SIZE),
            layers: None,
        };
        conn.stream.write_all(nsq_proto::MAGIC_V2)?;
        Ok(conn)
    }

    /// Sends IDENTIFY (`identify` plus the features `sec` asks for), then
    /// upgrades as go-nsq does: TLS handshake and an `OK` over TLS, then
    /// snappy or deflate and an `OK` through it, then AUTH. Fails if nsqd
    /// refuses a feature that was asked for. `server_name`: the name (or
    /// IP) nsqd's certificate must carry.
    pub fn identify(
        &mut self,
        sec: &Security,
        server_name: &str,
        mut identify: serde_json::Value,
    ) -> Result<()> {
        let negotiate = sec.negotiates();
        identify["feature_negotiation"] = negotiate.into();
        if sec.tls {
            identify["tls_v1"] = true.into();
        }
        match sec.compression {
            Compression::None => {}
            Compression::Snappy => identify["snappy"] = true.into(),
            Compression::Deflate => {
                identify["deflate"] = true.into();
                identify["deflate_level"] = sec.deflate_level.into();
            }
        }
        let mut buf = BytesMut::new();
        encode::identify(&mut buf, identify.to_string().as_bytes());
        self.write_all(&buf)?;
        let response = self.expect_response(SETUP_TIMEOUT).context("IDENTIFY")?;
        if !negotiate {
            return Ok(());
        }
        let granted: Granted = serde_json::from_slice(&response).with_context(|| {
            format!(
                "IDENTIFY: nsqd answered {:?}, not the JSON of feature negotiation",
                String::from_utf8_lossy(&response)
            )
        })?;
        if sec.tls && !granted.tls_v1 {
            bail!("--tls: nsqd refused TLS (tls_v1 false: is it started with --tls-cert and --tls-key?)");
        }
        if sec.compression == Compression::Snappy && !granted.snappy {
            bail!("--snappy: nsqd refused snappy compression");
        }
        if sec.compression == Compression::Deflate && !granted.deflate {
            bail!("--deflate: nsqd refused deflate compression");
        }
        if granted.auth_required && sec.auth_secret.is_none() {
            bail!("nsqd requires AUTH: give --auth-secret");
        }
        if sec.tls {
            let config = sec
                .tls_config
                .clone()
                .ok_or_else(|| anyhow!("--tls without a TLS configuration"))?;
            self.start_tls(config, server_name)
                .with_context(|| format!("TLS with {server_name:?}"))?;
            self.expect_ok().context("TLS upgrade")?;
        }
        if sec.compression != Compression::None {
            let leftover = self.rbuf.split();
            self.layers
                .get_or_insert_with(|| Box::new(Layers::plain()))
                .compress(sec.compression, sec.deflate_level, &leftover);
            self.expect_ok().context("compression upgrade")?;
        }
        if let Some(secret) = &sec.auth_secret {
            buf.clear();
            encode::auth(&mut buf, secret.as_bytes());
            self.write_all(&buf)?;
            self.expect_response(SETUP_TIMEOUT)
                .context("AUTH refused")?;
        }
        Ok(())
    }

    /// The TLS handshake, right after nsqd's IDENTIFY response.
    fn start_tls(&mut self, config: Arc<rustls::ClientConfig>, server_name: &str) -> Result<()> {
        if !self.rbuf.is_empty() {
            bail!("nsqd sent data before the TLS handshake");
        }
        let mut tls = rustls::ClientConnection::new(config, tls::server_name(server_name)?)?;
        self.stream.set_read_timeout(Some(SETUP_TIMEOUT))?;
        while tls.is_handshaking() {
            tls.complete_io(&mut self.stream).context("handshake")?;
        }
        self.layers = Some(Box::new(Layers::with_tls(tls)));
        Ok(())
    }

    /// Reads the `OK` nsqd sends after each upgrade.
    fn expect_ok(&mut self) -> Result<()> {
        let response = self.expect_response(SETUP_TIMEOUT)?;
        if response[..] != *nsq_proto::frame::OK {
            bail!("expected OK, got {:?}", String::from_utf8_lossy(&response));
        }
        Ok(())
    }

    /// Sets the socket's read timeout (None: block).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)
    }

    /// Sets the socket's write timeout (None: block).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_write_timeout(timeout)
    }

    /// Writes `data` whole: one batch of commands (compressed, flushed and
    /// encrypted first when those are on).
    pub fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.layers {
            None => self.stream.write_all(data),
            Some(layers) => layers.write_all(&mut self.stream, data),
        }
    }

    /// One read of up to [`READ_SIZE`] bytes into the buffer. `Ok(0)` is
    /// end of stream; a read timeout comes back as `WouldBlock`/`TimedOut`,
    /// and so does (with TLS or compression) a read that brought only part
    /// of a record or chunk, nothing decodable yet.
    pub fn read_some(&mut self) -> io::Result<usize> {
        if let Some(layers) = &mut self.layers {
            return layers.read(&mut self.stream, &mut self.rbuf);
        }
        let start = self.rbuf.len();
        self.rbuf.resize(start + READ_SIZE, 0);
        let result = self.stream.read(&mut self.rbuf[start..]);
        self.rbuf.truncate(start + *result.as_ref().unwrap_or(&0));
        result
    }

    /// The next complete frame in the buffer, if any.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        Ok(decode_frame(&mut self.rbuf, MAX_FRAME)?)
    }

    /// Reads until a frame arrives (heartbeats answered), failing on an
    /// error frame, end of stream or `timeout`.
    pub fn expect_response(&mut self, timeout: Duration) -> Result<bytes::Bytes> {
        let deadline = Instant::now() + timeout;
        self.stream.set_read_timeout(Some(timeout))?;
        loop {
            match self.next_frame()? {
                Some(Frame::Response(data)) if data[..] == *nsq_proto::frame::HEARTBEAT => {
                    let mut nop = BytesMut::new();
                    encode::nop(&mut nop);
                    self.write_all(&nop)?;
                }
                Some(Frame::Response(data)) => return Ok(data),
                Some(Frame::Error(data)) => bail!("{}", String::from_utf8_lossy(&data)),
                Some(Frame::Message(_)) => bail!("unexpected message before subscribing"),
                None => match self.read_some() {
                    Ok(0) => bail!("connection closed by nsqd"),
                    Ok(_) => {}
                    // Part of a TLS record or compressed chunk: read on.
                    Err(err) if is_timeout(&err) && Instant::now() < deadline => {}
                    Err(err) => return Err(anyhow!(err).context("waiting for a response")),
                },
            }
        }
    }

    /// Waits up to `timeout_ns` for something to read: bytes already
    /// decoded by the TLS/compression layers count, else the socket is
    /// polled.
    pub fn wait_readable(&mut self, timeout_ns: u64) -> io::Result<bool> {
        if let Some(layers) = &mut self.layers {
            layers.pump(&mut self.stream, &mut self.rbuf)?;
            if layers.has_ready() {
                return Ok(true);
            }
        }
        let mut fds = libc::pollfd {
            fd: self.stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = libc::timespec {
            tv_sec: (timeout_ns / NANOS_PER_SEC) as libc::time_t,
            tv_nsec: (timeout_ns % NANOS_PER_SEC) as libc::c_long,
        };
        // SAFETY: one valid pollfd, a valid timespec, and a null signal mask.
        let n = unsafe { libc::ppoll(&mut fds, 1, &ts, std::ptr::null()) };
        match n {
            n if n < 0 => {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
            0 => Ok(false),
            _ => Ok(true),
        }
    }
}

/// The IDENTIFY body loadgen sends; [`Conn::identify`] adds the features.
pub fn identify_body(client_id: String) -> serde_json::Value {
    serde_json::json!({
        "client_id": client_id,
        "hostname": "loadgen",
        "user_agent": concat!("nsq-loadgen/", env!("CARGO_PKG_VERSION")),
    })
}

/// True for the errors a read timeout produces.
pub fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}
