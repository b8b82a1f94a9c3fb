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
pub const MESH_CAPACITY: usize = 1024;

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

/// Say so when a flag of nsqd's master branch is set that this broker
/// accepts (config files carry it) but does not act on.
fn warn_unbuilt(opts: &Options) {
    if !opts.topology_zone.is_empty() || !opts.topology_region.is_empty() {
        crate::log_warn!(
            "--topology-zone/--topology-region (nsqd master only) have no effect here: topology is not reported or used for delivery"
        );
    }
    for experiment in &opts.enable_experiment {
        crate::log_warn!("--enable-experiment={experiment} (nsqd master only) has no effect here");
    }
}

/// Run nsqd until the process is signalled. Returns only on startup errors.
pub fn run(opts: Options) -> anyhow::Result<()> {
    warn_unbuilt(&opts);
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
    let tls = crate::tls::server_config(&opts)?;
    let (listen, guards) = reserve_listeners(&opts, tls.is_some())?;
    crate::log_info!("{}", Options::version_string());
    crate::log_info!("ID: {}", opts.node_id);
    crate::log_info!("TCP: listening on {} ({shards} shards)", listen.tcp);
    if let Some(http) = listen.http {
        crate::log_info!("HTTP: listening on {http}");
    }
    if let Some(https) = listen.https {
        crate::log_info!("HTTPS: listening on {https}");
    }

    let running = start_shards(shards, Arc::new(opts), listen, tls, data_path, restored)?;
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

/// How long startup waits for a port still held by a predecessor killed
/// a moment ago (see `reserve_port_within`) before it fails.
const PORT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Sockets holding the ports until every shard has bound them.
type PortGuards = Vec<nsq_io::net::Reservation>;

/// Reserve the ports (resolving :0) before the shards bind them. HTTPS
/// listens only with a certificate, as in nsqd.
fn reserve_listeners(opts: &Options, tls: bool) -> anyhow::Result<(Listen, PortGuards)> {
    let mut guards = Vec::new();
    let mut reserve = |flag: &str, addr: &str| -> anyhow::Result<Option<SocketAddr>> {
        if addr.is_empty() {
            return Ok(None);
        }
        let (guard, bound) = nsq_io::net::reserve_port_within(resolve(flag, addr)?, PORT_WAIT)
            .with_context(|| format!("listen ({addr}) failed"))?;
        guards.push(guard);
        Ok(Some(bound))
    };
    let tcp = reserve("tcp-address", &opts.tcp_address)?
        .ok_or_else(|| anyhow!("--tcp-address must not be empty"))?;
    let http = reserve("http-address", &opts.http_address)?;
    let https = if tls {
        reserve("https-address", &opts.https_address)?
    } else {
        None
    };
    Ok((Listen { tcp, http, https }, guards))
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
    tls: Option<Arc<rustls::ServerConfig>>,
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
            tls: tls.clone(),
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
    tls: Option<Arc<rustls::ServerConfig>>,
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
    let mut listen_opt = |addr: Option<SocketAddr>| -> anyhow::Result<Option<TcpListener>> {
        let Some(addr) = addr else { return Ok(None) };
        let (listener, fd) = nsq_io::net::listen_shared(addr)
            .map_err(|e| anyhow!("listen ({addr}) failed - {e}"))?;
        listener_fds.push(fd);
        Ok(Some(listener))
    };
    let http = listen_opt(listen.http)?;
    let https = listen_opt(listen.https)?;
    let (mesh, receivers) = part.connect().await;
    let shard = Shard::new(
        opts,
        Peers::new(mesh),
        listen,
        boot.tls,
        boot.start_time,
        boot.data_path,
    );
    shard.restore(&boot.restored);
    shard.start_tasks();
    for (from, rx) in receivers {
        glommio::spawn_local(crate::inbox::run(shard.clone(), from, rx)).detach();
    }
    if let Some(http) = http {
        glommio::spawn_local(accept_http(shard.clone(), http, false)).detach();
    }
    if let Some(https) = https {
        glommio::spawn_local(accept_http(shard.clone(), https, true)).detach();
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

/// The HTTP API listener, or the HTTPS one (`tls`: each connection starts
/// with a TLS handshake).
async fn accept_http(shard: Rc<Shard>, listener: TcpListener, tls: bool) {
    let name = if tls { "HTTPS" } else { "HTTP" };
    nsq_daemon::accept::accept_loop(listener, name, |stream| {
        let task = if tls {
            glommio::spawn_local(crate::http::serve_tls(shard.clone(), stream))
        } else {
            glommio::spawn_local(crate::http::serve(shard.clone(), stream))
        };
        task.detach();
    })
    .await;
}
