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

/// Duplicate the descriptor of `stream`.
pub fn dup_fd(stream: &TcpStream) -> io::Result<OwnedFd> {
    dup_raw(stream.as_raw_fd())
}

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

/// A second handle to the same connection, so one task can read while another
/// writes without sharing a `RefCell` across awaits.
pub fn dup_stream(stream: &TcpStream) -> io::Result<TcpStream> {
    Ok(stream_from_fd(dup_fd(stream)?))
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
/// returned socket must be kept until the shards have bound, then dropped; a
/// bound socket that does not listen never receives connections.
pub fn reserve_port(addr: SocketAddr) -> io::Result<(Reservation, SocketAddr)> {
    let domain = domain_of(addr);
    // SO_REUSEPORT would let us share a port with another running nsqd; a
    // plain bind first fails with EADDRINUSE if anyone listens there.
    if addr.port() != 0 {
        let probe = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
        probe.set_reuse_address(true)?;
        probe.bind(&addr.into())?;
    }
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    let local = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an inet address"))?;
    Ok((socket, local))
}
