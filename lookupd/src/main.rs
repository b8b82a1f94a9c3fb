//! `nsqlookupd`: NSQ's discovery daemon, a drop-in for nsqlookupd v1.3.
//!
//! nsqd peers connect over TCP (protocol V1) and announce their topics and
//! channels; consumers and nsqadmin ask over HTTP who has what. State is in
//! memory only. One glommio executor runs everything: the work per request is
//! a few map lookups, so a second core would only add cross-core traffic.
//!
//! # Layout
//! * [`config`]: flags, config file, defaults (nsqlookupd's names).
//! * [`registration_db`]: the registry, pure and unit-tested.
//! * [`protocol`]: the V1 commands without I/O; [`tcp`]: the socket loop.
//! * [`http`]: the HTTP API.
//!
//! Logging, flag syntax, signals and the accept loop are nsqd's too:
//! `nsq_daemon`. The V1 wire format is `nsq_proto::lookup`.
//!
//! Startup binds both listeners before the executor starts, so a port in use
//! is reported (and the process exits 1) before anything else happens.

mod config;
mod http;
mod protocol;
mod registration_db;
mod tcp;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context};
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use nsq_daemon::accept::accept_loop;
use nsq_daemon::signals::{block_signals, wait_for_signal};
use nsq_daemon::{log_error, log_fatal, log_info, log_warn};
use serde::Serialize;

use config::{Options, Parsed};
use registration_db::RegistrationDb;

/// Process-wide state.
///
/// Lives on: the one executor; shared by its tasks through `Rc`. The DB's
/// `RefCell` is never borrowed across an `.await`.
pub struct Lookupd {
    /// The resolved options.
    pub opts: Options,
    /// Who has which topic and channel.
    pub db: RefCell<RegistrationDb>,
    /// The IDENTIFY answer, the same for every peer, built once.
    pub identify_response: Vec<u8>,
}

impl Lookupd {
    #[cfg(test)]
    fn for_tests() -> Lookupd {
        Lookupd {
            opts: Options::defaults("test-host"),
            db: RefCell::new(RegistrationDb::new()),
            identify_response: b"{}".to_vec(),
        }
    }
}

/// The IDENTIFY answer. nsqlookupd builds it as a Go map, so keys are sorted.
#[derive(Serialize)]
struct IdentifyResponse<'a> {
    broadcast_address: &'a str,
    hostname: &'a str,
    http_port: u16,
    tcp_port: u16,
    version: &'a str,
}

/// Wall-clock Unix nanoseconds: nsqlookupd stores `last_update` and tombstone
/// times this way and shows them in `/debug`.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn main() {
    let hostname = nsq_daemon::host::hostname();
    let opts = match Options::parse_args(std::env::args().skip(1), &hostname) {
        Ok(Parsed::Run(opts)) => opts,
        Ok(Parsed::Version) => {
            println!("{}", Options::version_string());
            return;
        }
        Ok(Parsed::Help(usage)) => {
            eprint!("{usage}");
            return;
        }
        Err(e) => {
            if e.is_usage_error() {
                eprintln!("{e}");
                eprint!("{}", config::usage(&Options::defaults(&hostname)));
            } else {
                eprintln!("[nsqlookupd] FATAL: {e}");
            }
            std::process::exit(e.exit_code());
        }
    };
    nsq_daemon::log::init(opts.log_level, &opts.log_prefix);
    block_signals();
    if let Err(e) = run(opts, &hostname) {
        log_fatal!("{e:#}");
        std::process::exit(1);
    }
}

/// Bind, start the executor, and wait for SIGINT/SIGTERM.
fn run(opts: Options, hostname: &str) -> anyhow::Result<()> {
    log_info!("{}", Options::version_string());
    nsq_io::runtime::probe()?;
    // std's bind sets SO_REUSEADDR (as Go's net.Listen does), so a restart
    // binds at once despite the TIME_WAIT sockets of closed connections;
    // tests/tests/restart.rs holds it to that.
    let bind = |addr: &str| {
        std::net::TcpListener::bind(addr)
            .with_context(|| format!("failed to instantiate nsqlookupd - listen ({addr}) failed"))
    };
    let tcp = bind(&opts.tcp_address)?;
    let http = bind(&opts.http_address)?;
    let tcp_addr: SocketAddr = tcp.local_addr()?;
    let http_addr: SocketAddr = http.local_addr()?;
    let identify_response = serde_json::to_vec(&IdentifyResponse {
        broadcast_address: &opts.broadcast_address,
        hostname,
        http_port: http_addr.port(),
        tcp_port: tcp_addr.port(),
        version: config::VERSION,
    })?;
    log_info!("TCP: listening on {tcp_addr}");
    log_info!("HTTP: listening on {http_addr}");
    // Kept to stop the listeners at exit (see below).
    let listener_fds = [tcp.as_raw_fd(), http.as_raw_fd()];

    let executor = LocalExecutorBuilder::new(Placement::Unbound)
        .name("nsqlookupd")
        .io_memory(nsq_io::runtime::IO_MEMORY)
        .ring_depth(nsq_io::runtime::RING_DEPTH)
        .spawn(move || async move {
            let lookupd = Rc::new(Lookupd {
                opts,
                db: RefCell::new(RegistrationDb::new()),
                identify_response,
            });
            // SAFETY: `into_raw_fd` hands over sole ownership of a bound,
            // listening socket; glommio's listener closes it on drop.
            let (tcp, http) = unsafe {
                (
                    TcpListener::from_raw_fd(tcp.into_raw_fd()),
                    TcpListener::from_raw_fd(http.into_raw_fd()),
                )
            };
            let http_lookupd = lookupd.clone();
            let serve_http = move |stream| {
                glommio::spawn_local(http::serve(http_lookupd.clone(), stream)).detach();
            };
            glommio::spawn_local(accept_loop(http, "HTTP", serve_http)).detach();
            accept_loop(tcp, "TCP", |stream| {
                glommio::spawn_local(tcp::serve(lookupd.clone(), stream)).detach();
            })
            .await;
            // The listeners were stopped at exit: stay up until the process
            // ends (an executor that stops is a fatal error below).
            futures_lite::future::pending::<()>().await;
        })
        .map_err(|e| anyhow!("cannot start executor: {e}"))?;
    // Everything runs on the executor; if it ever stops, so does the process.
    std::thread::spawn(move || {
        let _ = executor.join();
        log_fatal!("executor stopped");
        std::process::exit(1);
    });

    wait_for_signal();
    log_info!("TCP: closing {tcp_addr}");
    log_info!("HTTP: closing {http_addr}");
    // An accept queued in io_uring would keep the sockets listening past
    // the process's end (the ring is torn down later): a restart right away
    // would find the ports in use.
    for fd in listener_fds {
        nsq_io::net::stop_listening(fd);
    }
    Ok(())
}
