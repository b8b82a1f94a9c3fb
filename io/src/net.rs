//! Socket helpers: binding one port on every shard, and moving a connected
//! socket between shards.
//!
//! glommio's `TcpStream` has `FromRawFd` but no `IntoRawFd`, so a stream is
//! moved by `dup(2)`-ing its descriptor: the new descriptor travels to the
//! other shard as an `OwnedFd` and the old stream is dropped (closing only its
//! own descriptor, not the connection). The two `unsafe` calls live here.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use glommio::net::{TcpListener, TcpStream};

/// Listen backlog of every listener; the kernel caps it at
/// `net.core.somaxconn` (4096 on current kernels), as Go's listeners do.
const LISTEN_BACKLOG: i32 = 4096;

fn dup_raw(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: dup on a descriptor we own; F_DUPFD_CLOEXEC returns a fresh
    // descriptor (or -1), which we then own exclusively.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a valid descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Turn a descriptor received from another shard into a stream on this one.
pub fn stream_from_fd(fd: OwnedFd) -> TcpStream {
    // SAFETY: the OwnedFd is a connected TCP socket we own; ownership passes
    // to the stream, which closes it on drop.
    unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) }
}

/// A listener on `addr` that every shard can share (SO_REUSEPORT) and that
/// binds again at once after a restart (SO_REUSEADDR): without it, the
/// TIME_WAIT sockets of connections the previous process closed make the
/// bind fail for a minute. That another process is still *listening* on the
/// port is caught earlier, by [`reserve_port`]'s plain bind. Also returns
/// the descriptor, for [`stop_listening`] at shutdown (glommio's listener
/// does not expose it).
pub fn listen_shared(addr: SocketAddr) -> io::Result<(TcpListener, RawFd)> {
    let socket = socket2::Socket::new(domain_of(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    let fd = socket.into_raw_fd();
    // SAFETY: a bound, listening TCP socket we own; ownership passes to the
    // listener, which closes it on drop.
    Ok((unsafe { TcpListener::from_raw_fd(fd) }, fd))
}

fn domain_of(addr: SocketAddr) -> socket2::Domain {
    if addr.is_ipv6() {
        socket2::Domain::IPV6
    } else {
        socket2::Domain::IPV4
    }
}

/// Stop a listening socket now: pending and later accepts fail (EINVAL)
/// and new connections are refused, while the descriptor stays valid for
/// its owner to drop. Closing alone is not enough at exit: an accept still
/// queued in io_uring keeps the socket listening until the ring's deferred
/// teardown, so a restart right after exit could find the port in use.
pub fn stop_listening(fd: RawFd) {
    // SAFETY: shutdown(2) on a descriptor; an invalid one only returns an
    // error, which there is nothing to do about.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

/// Resolve `host:port` without blocking the shard: an IP literal is parsed
/// in place; a name goes to the blocking pool (getaddrinfo can take seconds).
pub async fn resolve(addr: &str) -> io::Result<SocketAddr> {
    if let Ok(sock) = addr.parse::<SocketAddr>() {
        return Ok(sock);
    }
    let name = addr.to_string();
    glommio::executor()
        .spawn_blocking(move || {
            use std::net::ToSocketAddrs;
            name.to_socket_addrs()?.next().ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("{name}: no address"))
            })
        })
        .await
}

/// A port held by [`reserve_port`] until it is dropped.
pub type Reservation = socket2::Socket;

/// Reserve `addr` (resolving port 0 to a real port) with SO_REUSEPORT but
/// without listening, so every shard can then bind the same port. The
/// returned socket must be kept until the shards listen, then dropped; a
/// bound socket that does not listen never receives connections. Another
/// process cannot reserve or listen on the port meanwhile.
pub fn reserve_port(addr: SocketAddr) -> io::Result<(Reservation, SocketAddr)> {
    let domain = domain_of(addr);
    // SO_REUSEPORT would let us share a port with another running nsqd; a
    // plain bind first fails with EADDRINUSE if anyone listens there.
    if addr.port() != 0 {
        let probe = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
        probe.set_reuse_address(true)?;
        probe.bind(&addr.into())?;
    }
    // SO_REUSEPORT only, not SO_REUSEADDR: while the reservation is held,
    // another process's probe above (SO_REUSEADDR) fails on it, even though
    // nothing listens yet. With SO_REUSEADDR here, two nsqd started at the
    // same instant both passed the probe and both listened. TIME_WAIT
    // sockets a previous nsqd left do not block it: they carry that
    // process's SO_REUSEPORT.
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    let local = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an inet address"))?;
    Ok((socket, local))
}

/// As [`reserve_port`], but while the port is in use, try again for up to
/// `within` before failing. A predecessor killed with SIGKILL is reaped
/// before its listening sockets close: an accept still queued in its
/// io_uring keeps them listening until the kernel's deferred ring teardown
/// (measured: about 10 ms after `wait` returns, longer under load), so a
/// restart at once would otherwise fail with "address already in use".
/// Runs on the main thread before any shard starts; a port that another
/// live process holds still fails, `within` later.
pub fn reserve_port_within(
    addr: SocketAddr,
    within: std::time::Duration,
) -> io::Result<(Reservation, SocketAddr)> {
    let give_up = std::time::Instant::now() + within;
    loop {
        match reserve_port(addr) {
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse && std::time::Instant::now() < give_up =>
            {
                std::thread::sleep(RESERVE_RETRY);
            }
            done => return done,
        }
    }
}

/// How often [`reserve_port_within`] tries again.
const RESERVE_RETRY: std::time::Duration = std::time::Duration::from_millis(20);

/// One connection's socket, shared by its reader and writer tasks on one
/// shard: each task holds a clone, and the `RefCell` is borrowed only inside
/// a single `poll_*` call, never across an await. Reading and writing keep
/// separate wake-up sources and timers in glommio, so the two tasks do not
/// disturb each other. This saves the second descriptor (and its reactor
/// source) that a `dup` per connection would cost.
#[derive(Debug, Clone)]
pub struct SharedStream(std::rc::Rc<std::cell::RefCell<TcpStream>>);

impl SharedStream {
    /// Share `stream`.
    pub fn new(stream: TcpStream) -> SharedStream {
        SharedStream(std::rc::Rc::new(std::cell::RefCell::new(stream)))
    }

    /// Bound the next reads (None: no bound).
    pub fn set_read_timeout(&self, dur: Option<std::time::Duration>) -> io::Result<()> {
        self.0
            .borrow()
            .set_read_timeout(dur)
            .map_err(io::Error::from)
    }

    /// Bound the next writes (None: no bound).
    pub fn set_write_timeout(&self, dur: Option<std::time::Duration>) -> io::Result<()> {
        self.0
            .borrow()
            .set_write_timeout(dur)
            .map_err(io::Error::from)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.borrow().peer_addr().map_err(io::Error::from)
    }

    /// A descriptor of its own for the same connection (moving it to
    /// another shard).
    pub fn dup_fd(&self) -> io::Result<OwnedFd> {
        dup_raw(self.0.borrow().as_raw_fd())
    }

    /// Shut the connection down both ways: a read pending in the other task
    /// returns 0. shutdown(2) on a socket does not block.
    pub fn shutdown(&self) {
        // SAFETY: shutdown(2) on a descriptor the stream owns; an error only
        // means the connection is already gone.
        unsafe {
            libc::shutdown(self.0.borrow().as_raw_fd(), libc::SHUT_RDWR);
        }
    }
}

/// Setting read and write deadlines on a stream (glommio's streams and
/// [`SharedStream`]), for code that runs over either.
pub trait Deadlines {
    /// Bound the next reads (None: no bound).
    fn read_deadline(&self, dur: Option<std::time::Duration>) -> io::Result<()>;
    /// Bound the next writes (None: no bound).
    fn write_deadline(&self, dur: Option<std::time::Duration>) -> io::Result<()>;
}

impl Deadlines for TcpStream {
    fn read_deadline(&self, dur: Option<std::time::Duration>) -> io::Result<()> {
        self.set_read_timeout(dur).map_err(io::Error::from)
    }
    fn write_deadline(&self, dur: Option<std::time::Duration>) -> io::Result<()> {
        self.set_write_timeout(dur).map_err(io::Error::from)
    }
}

impl Deadlines for SharedStream {
    fn read_deadline(&self, dur: Option<std::time::Duration>) -> io::Result<()> {
        self.set_read_timeout(dur)
    }
    fn write_deadline(&self, dur: Option<std::time::Duration>) -> io::Result<()> {
        self.set_write_timeout(dur)
    }
}

impl futures_lite::AsyncRead for SharedStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut *self.0.borrow_mut()).poll_read(cx, buf)
    }
}

impl futures_lite::AsyncWrite for SharedStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut *self.0.borrow_mut()).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut *self.0.borrow_mut()).poll_flush(cx)
    }

    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut *self.0.borrow_mut()).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two brokers started at the same instant on one port: the second
    /// reservation fails while the first is held, before anyone listens.
    #[test]
    fn a_held_reservation_excludes_another() -> io::Result<()> {
        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
        let (held, addr) = reserve_port(any)?;
        let second = reserve_port(addr);
        assert_eq!(
            second.as_ref().map_err(io::Error::kind).err(),
            Some(io::ErrorKind::AddrInUse),
            "second reservation of {addr}: {second:?}"
        );
        // The holder's own shards can still share the port.
        let shard = socket2::Socket::new(domain_of(addr), socket2::Type::STREAM, None)?;
        shard.set_reuse_address(true)?;
        shard.set_reuse_port(true)?;
        shard.bind(&addr.into())?;
        shard.listen(16)?;
        drop(held);
        // Once it listens, nobody else gets the port either.
        assert!(reserve_port(addr).is_err());
        drop(shard);
        // Released: free again.
        let (_again, same) = reserve_port(addr)?;
        assert_eq!(same, addr);
        Ok(())
    }

    /// A restart right after a SIGKILL: the predecessor's listener
    /// outlives it briefly; the reservation waits for it instead of failing.
    #[test]
    fn reservation_waits_for_a_lingering_listener() -> io::Result<()> {
        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
        let lingering = std::net::TcpListener::bind(any)?;
        let addr = lingering.local_addr()?;
        let closer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(lingering);
        });
        let reserved = reserve_port_within(addr, std::time::Duration::from_secs(30));
        let _ = closer.join();
        assert_eq!(reserved?.1, addr);
        Ok(())
    }

    /// A port another live process listens on still fails, once the wait
    /// is over.
    #[test]
    fn reservation_gives_up_on_a_live_listener() -> io::Result<()> {
        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
        let live = std::net::TcpListener::bind(any)?;
        let addr = live.local_addr()?;
        let reserved = reserve_port_within(addr, std::time::Duration::from_millis(100));
        assert_eq!(
            reserved.map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::AddrInUse)
        );
        drop(live);
        Ok(())
    }

    /// A restart right after traffic: connections the previous listener
    /// accepted and closed first sit in TIME_WAIT on the port; the port is
    /// still reservable at once.
    #[test]
    fn time_wait_of_a_previous_listener_does_not_block() -> io::Result<()> {
        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
        let (held, addr) = reserve_port(any)?;
        let listener = socket2::Socket::new(domain_of(addr), socket2::Type::STREAM, None)?;
        listener.set_reuse_address(true)?;
        listener.set_reuse_port(true)?;
        listener.bind(&addr.into())?;
        listener.listen(16)?;
        drop(held);
        let std_listener: std::net::TcpListener = listener.into();
        for _ in 0..3 {
            let client = std::net::TcpStream::connect(addr)?;
            let (server_side, _) = std_listener.accept()?;
            // The server closes first: its side goes to TIME_WAIT.
            drop(server_side);
            let mut buf = [0u8; 1];
            let _ = std::io::Read::read(&mut &client, &mut buf);
            drop(client);
        }
        drop(std_listener);
        let (_again, same) = reserve_port(addr)?;
        assert_eq!(same, addr);
        Ok(())
    }
}
