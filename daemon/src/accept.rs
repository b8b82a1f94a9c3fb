//! The accept loop both daemons run on each listener.

use std::time::Duration;

use glommio::net::{TcpListener, TcpStream};

/// How long to wait after a failed accept (EMFILE and friends) before
/// trying again, instead of spinning on the error.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accept connections until the listener is shut down
/// (`nsq_io::net::stop_listening`: accept then fails with EINVAL); each goes
/// to `on_conn` with Nagle off (it usually spawns the connection's task).
/// Any other failed accept is logged as `<name>: accept error - <error>` and
/// retried after [`ACCEPT_BACKOFF`].
pub async fn accept_loop(listener: TcpListener, name: &str, on_conn: impl Fn(TcpStream)) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                on_conn(stream);
            }
            Err(e) => {
                let e = std::io::Error::from(e);
                if e.raw_os_error() == Some(libc::EINVAL) {
                    return;
                }
                crate::log_error!("{name}: accept error - {e}");
                glommio::timer::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}
