//! Startup: resolve listeners, lock the data path, start one shard per core.
//!
//! Every shard binds the same TCP and HTTP ports with SO_REUSEPORT, so the
//! kernel spreads new connections over the cores and no core accepts on
//! behalf of another.

use std::fs::File;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use glommio::net::TcpListener;
use nsq_io::mesh::{self, MeshPart};

use crate::config::Options;
use crate::metadata::TopicMeta;
use crate::peers::msg::ShardMsg;
use crate::peers::Peers;
use crate::shard::{Listen, Shard};

/// Capacity of each shard-to-shard queue, in messages (a `Deliver` carries
/// up to 1024 messages). Bounded so a slow core pushes back on its peers
/// instead of buffering without limit.
const MESH_CAPACITY: usize = 1024;

fn resolve(flag: &str, addr: &str) -> anyhow::Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("--{flag}={addr}: cannot resolve"))?
        .next()
        .ok_or_else(|| anyhow!("--{flag}={addr}: no address"))
}

/// An exclusive lock on the data directory (nsqd's dirlock): two nsqd on
/// one --data-path would corrupt each other's files.
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Lock `path`, failing at once if another process holds it.
    pub fn acquire(path: &Path) -> anyhow::Result<DirLock> {
        let file = File::open(path)
            .with_context(|| format!("--data-path={}: cannot open", path.display()))?;
        // SAFETY: flock on a descriptor we own.
        let rc = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        };
        if rc != 0 {
            bail!(
                "--data-path={} in use (possibly by another instance of nsqd)",
                path.display()
            );
        }
        Ok(DirLock { _file: file })
    }
}

/// Refuse settings whose feature is not built yet where running without it
/// would weaken security (a user asking for TLS or AUTH must not silently get
/// plain, open connections); warn for the harmless ones.
fn check_unbuilt_features(opts: &Options) -> anyhow::Result<()> {
    use crate::config::TlsRequired;
    if opts.tls_required != TlsRequired::NotRequired
        || !opts.tls_cert.as_os_str().is_empty()
        || !opts.tls_key.as_os_str().is_empty()
    {
        bail!("TLS (--tls-cert, --tls-key, --tls-required) is not supported by this build yet");
    }
    if !opts.auth_http_addresses.is_empty() {
        bail!("AUTH (--auth-http-address) is not supported by this build yet");
    }
    if !opts.statsd_address.is_empty() {
        crate::log_warn!("--statsd-address is not supported yet: no statsd metrics will be sent");
    }
    if !opts.e2e_processing_latency_percentiles.is_empty() {
        crate::log_warn!(
            "--e2e-processing-latency-percentile is not supported yet: percentiles stay empty"
        );
    }
    Ok(())
}

/// Run nsqd until the process is signalled. Returns only on startup errors.
pub fn run(opts: Options) -> anyhow::Result<()> {
    check_unbuilt_features(&opts)?;
    let data_path: PathBuf = if opts.data_path.as_os_str().is_empty() {
        std::env::current_dir().context("cannot read the working directory")?
    } else {
        opts.data_path.clone()
    };
    let _lock = DirLock::acquire(&data_path)?;
    nsq_io::runtime::probe()?;
    let shards = match opts.shards {
        0 => nsq_io::runtime::usable_cpus().len().max(1),
        n => n,
    };
    nsq_io::runtime::check_memlock(shards)?;
    let restored = prepare_data(&data_path, shards, &opts)?;
    let (listen, guards) = reserve_listeners(&opts)?;
    crate::log_info!("{}", Options::version_string());
    crate::log_info!("ID: {}", opts.node_id);
    crate::log_info!("TCP: listening on {} ({shards} shards)", listen.tcp);
    if let Some(http) = listen.http {
        crate::log_info!("HTTP: listening on {http}");
    }

    let running = start_shards(shards, Arc::new(opts), listen, data_path, restored)?;
    drop(guards);
    crate::log_info!("ready");
    wait_for_signal();
    crate::log_info!("exiting");
    running.shut_down();
    Ok(())
}

/// Everything on disk before the shards start (blocking I/O is fine here:
/// no shard runs yet): nsqd.dat, disk queues of shards that no longer run
/// (`--shards` lowered), the original nsqd's queues (upgrade in place).
/// Returns the topics and channels every shard recreates.
fn prepare_data(
    data_path: &Path,
    shards: usize,
    opts: &Options,
) -> anyhow::Result<Arc<Vec<TopicMeta>>> {
    let restored = crate::metadata::load(data_path)
        .context("failed to load metadata")?
        .map(|m| m.valid_topics())
        .unwrap_or_default();
    crate::backend::adopt_orphan_parts(data_path, shards, opts)
        .context("failed to adopt the disk queues of a larger --shards")?;
    let restored = crate::upgrade::import_go_queues(data_path, opts, &restored)
        .context("failed to import the disk queues of the original nsqd")?;
    Ok(Arc::new(restored))
}

/// Sockets holding the ports until every shard has bound them.
type PortGuards = (nsq_io::net::Reservation, Option<nsq_io::net::Reservation>);

/// Reserve the ports (resolving :0) before the shards bind them.
fn reserve_listeners(opts: &Options) -> anyhow::Result<(Listen, PortGuards)> {
    let (tcp_guard, tcp) = nsq_io::net::reserve_port(resolve("tcp-address", &opts.tcp_address)?)
        .with_context(|| format!("listen ({}) failed", opts.tcp_address))?;
    let (http_guard, http) = if opts.http_address.is_empty() {
        (None, None)
    } else {
        let (g, a) = nsq_io::net::reserve_port(resolve("http-address", &opts.http_address)?)
            .with_context(|| format!("listen ({}) failed", opts.http_address))?;
        (Some(g), Some(a))
    };
    Ok((Listen { tcp, http }, (tcp_guard, http_guard)))
}

/// The running shards, as the main thread sees them.
struct Running {
    shards: usize,
    /// Each shard's own stop queue: one "stop" per phase. (One queue shared
    /// by all would let a fast shard take two phases' stops.)
    stop: Vec<flume::Sender<()>>,
    /// Each shard answers here when it finished a phase.
    done: std::sync::mpsc::Receiver<()>,
    _handles: Vec<glommio::ExecutorJoinHandle<()>>,
}

/// Start one shard per core and wait (bounded) until every one is up.
fn start_shards(
    shards: usize,
    opts: Arc<Options>,
    listen: Listen,
    data_path: PathBuf,
    restored: Arc<Vec<TopicMeta>>,
) -> anyhow::Result<Running> {
    let start_time = crate::message::now_secs();
    let parts: Vec<MeshPart<ShardMsg>> = mesh::build(shards, MESH_CAPACITY);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let (stop_tx, stop_rx): (Vec<_>, Vec<_>) = (0..shards).map(|_| flume::bounded::<()>(2)).unzip();
    let mut stop_rx = stop_rx.into_iter();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let mut parts = parts.into_iter();
    let handles = nsq_io::runtime::spawn_shards(shards, |_shard| {
        let part = parts.next();
        let opts = opts.clone();
        let ready = ready_tx.clone();
        let boot = Boot {
            listen,
            start_time,
            data_path: data_path.clone(),
            restored: restored.clone(),
            stop: stop_rx.next(),
            done: done_tx.clone(),
        };
        move || async move {
            let Some(part) = part else { return };
            if let Err(e) = run_shard(part, opts, boot, ready.clone()).await {
                let _ = ready.send(Err(e.to_string()));
            }
        }
    })?;
    drop(ready_tx);
    for _ in 0..shards {
        // Bounded: a shard that never comes up must fail the start, not
        // leave a half-started broker answering some connections.
        match ready_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("{e}"),
            Err(_) => bail!("a shard did not start within {STARTUP_TIMEOUT:?}"),
        }
    }
    Ok(Running {
        shards,
        stop: stop_tx,
        done: done_rx,
        _handles: handles,
    })
}

impl Running {
    /// Two phases, each finished by every shard before the next starts:
    /// 1. stop handing messages between cores (no batch left in flight),
    /// 2. write memory, in-flight and deferred messages to disk, and nsqd.dat.
    fn shut_down(self) {
        for _phase in 0..2 {
            for stop in &self.stop {
                let _ = stop.send(());
            }
            for _ in 0..self.shards {
                if self.done.recv_timeout(SHUTDOWN_TIMEOUT).is_err() {
                    crate::log_error!(
                        "a shard did not finish shutting down in {SHUTDOWN_TIMEOUT:?}"
                    );
                    return;
                }
            }
        }
    }
}

// SIGINT/SIGTERM are blocked in every thread by `main`
// (`nsq_daemon::signals::block_signals`) and awaited here.
use nsq_daemon::signals::wait_for_signal;

/// What every shard starts from.
struct Boot {
    listen: Listen,
    start_time: i64,
    data_path: PathBuf,
    restored: Arc<Vec<TopicMeta>>,
    stop: Option<flume::Receiver<()>>,
    done: std::sync::mpsc::Sender<()>,
}

/// How long the main thread waits for every shard to be up.
const STARTUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long the main thread waits for the shards to save their state.
const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

async fn run_shard(
    part: MeshPart<ShardMsg>,
    opts: Arc<Options>,
    boot: Boot,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) -> anyhow::Result<()> {
    let listen = boot.listen;
    let (tcp, tcp_fd) = nsq_io::net::listen_shared(listen.tcp)
        .map_err(|e| anyhow!("listen ({}) failed - {e}", listen.tcp))?;
    let mut listener_fds = vec![tcp_fd];
    let http = match listen.http {
        Some(addr) => {
            let (http, fd) = nsq_io::net::listen_shared(addr)
                .map_err(|e| anyhow!("listen ({addr}) failed - {e}"))?;
            listener_fds.push(fd);
            Some(http)
        }
        None => None,
    };
    let (mesh, receivers) = part.connect().await;
    let shard = Shard::new(
        opts,
        Peers::new(mesh),
        listen,
        boot.start_time,
        boot.data_path,
    );
    shard.restore(&boot.restored);
    shard.start_tasks();
    for (_from, rx) in receivers {
        glommio::spawn_local(crate::inbox::run(shard.clone(), rx)).detach();
    }
    if let Some(http) = http {
        glommio::spawn_local(accept_http(shard.clone(), http)).detach();
    }
    glommio::spawn_local(accept_tcp(shard.clone(), tcp)).detach();
    let _ = ready.send(Ok(()));

    // Shutdown, phase by phase as the main thread says (see `Running`). The
    // listeners stop first, as nsqd's Exit closes them: no new connection
    // during the flush, and the ports are free the moment the process ends.
    let done = boot.done;
    let Some(stop) = boot.stop else {
        return Err(anyhow!("shard started without its stop queue"));
    };
    if stop.recv_async().await.is_ok() {
        for fd in listener_fds {
            nsq_io::net::stop_listening(fd);
        }
        shard.quiesce().await;
    }
    let _ = done.send(());
    if stop.recv_async().await.is_ok() {
        shard.shutdown().await;
    }
    let _ = done.send(());
    // Keep serving the other shards (shard 0 gathers nsqd.dat from every
    // shard during its own phase 2) until the process exits.
    futures_lite::future::pending::<()>().await;
    Ok(())
}

async fn accept_tcp(shard: Rc<Shard>, listener: TcpListener) {
    nsq_daemon::accept::accept_loop(listener, "TCP", |stream| {
        glommio::spawn_local(crate::protocol::conn::serve(shard.clone(), stream)).detach();
    })
    .await;
}

async fn accept_http(shard: Rc<Shard>, listener: TcpListener) {
    nsq_daemon::accept::accept_loop(listener, "HTTP", |stream| {
        glommio::spawn_local(crate::http::serve(shard.clone(), stream)).detach();
    })
    .await;
}
