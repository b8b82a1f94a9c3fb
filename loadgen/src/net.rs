//! Blocking sockets, one OS thread per connection: with a handful of
//! connections this costs less than an event loop and keeps each
//! connection's loop straight-line code.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::BytesMut;
use nsq_proto::frame::{decode_frame, Frame};

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

/// One connection to nsqd with its read buffer.
#[derive(Debug)]
pub struct Conn {
    /// The socket (blocking).
    pub stream: TcpStream,
    rbuf: BytesMut,
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
        };
        conn.stream.write_all(nsq_proto::MAGIC_V2)?;
        Ok(conn)
    }

    /// One read of up to [`READ_SIZE`] bytes into the buffer. `Ok(0)` is
    /// end of stream; a read timeout comes back as `WouldBlock`/`TimedOut`.
    pub fn read_some(&mut self) -> io::Result<usize> {
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
        self.stream.set_read_timeout(Some(timeout))?;
        loop {
            match self.next_frame()? {
                Some(Frame::Response(data)) if data[..] == *nsq_proto::frame::HEARTBEAT => {
                    let mut nop = BytesMut::new();
                    nsq_proto::command::encode::nop(&mut nop);
                    self.stream.write_all(&nop)?;
                }
                Some(Frame::Response(data)) => return Ok(data),
                Some(Frame::Error(data)) => bail!("{}", String::from_utf8_lossy(&data)),
                Some(Frame::Message(_)) => bail!("unexpected message before subscribing"),
                None => {
                    if self.read_some().context("waiting for a response")? == 0 {
                        bail!("connection closed by nsqd");
                    }
                }
            }
        }
    }

    /// Waits up to `timeout_ns` for the socket to be readable.
    pub fn wait_readable(&self, timeout_ns: u64) -> io::Result<bool> {
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

/// True for the errors a read timeout produces.
pub fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}
