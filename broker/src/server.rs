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
use crate::shard::msg::ShardMsg;
use crate::shard::{run_mesh_receiver, Listen, Shard};

/// Capacity of each shard-to-shard queue, in messages (a `Deliver` carries
/// up to 1024 messages). Bounded so a slow core pushes back on its peers
/// instead of buffering without limit.
const MESH_CAPACITY: usize = 1024;

/// The OS host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::from("localhost");
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

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
    let restored = crate::metadata::load(&data_path)
        .context("failed to load metadata")?
        .map(|m| m.valid_topics())
        .unwrap_or_default();
    let restored: Arc<Vec<TopicMeta>> = Arc::new(restored);

    nsq_io::runtime::probe()?;
    let shards = match opts.shards {
        0 => nsq_io::runtime::usable_cpus().len().max(1),
        n => n,
    };
    nsq_io::runtime::check_memlock(shards)?;
    crate::backend::adopt_orphan_parts(&data_path, shards, &opts)
        .context("failed to adopt the disk queues of a larger --shards")?;
    let restored = Arc::new(
        crate::upgrade::import_go_queues(&data_path, &opts, &restored)
            .context("failed to import the disk queues of the original nsqd")?,
    );

    // Reserve the ports (resolving :0) before the shards bind them.
    let (tcp_guard, tcp) = nsq_io::net::reserve_port(resolve("tcp-address", &opts.tcp_address)?)
        .with_context(|| format!("listen ({}) failed", opts.tcp_address))?;
    let (http_guard, http) = if opts.http_address.is_empty() {
        (None, None)
    } else {
        let (g, a) = nsq_io::net::reserve_port(resolve("http-address", &opts.http_address)?)
            .with_context(|| format!("listen ({}) failed", opts.http_address))?;
        (Some(g), Some(a))
    };
    let listen = Listen { tcp, http };
    crate::log_info!("{}", Options::version_string());
    crate::log_info!("ID: {}", opts.node_id);
    crate::log_info!("TCP: listening on {tcp} ({shards} shards)");
    if let Some(http) = http {
        crate::log_info!("HTTP: listening on {http}");
    }

    let opts = Arc::new(opts);
    let start_time = crate::message::now_secs();
    let parts: Vec<MeshPart<ShardMsg>> = mesh::build(shards, MESH_CAPACITY);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    // Shutdown: one "stop" per shard, each answers on `done` when saved.
    let (stop_tx, stop_rx) = flume::bounded::<()>(shards);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let mut parts = parts.into_iter();
    let handles = nsq_io::runtime::spawn_shards(shards, |id| {
        let part = parts.next();
        let opts = opts.clone();
        let ready = ready_tx.clone();
        let restored = restored.clone();
        let data_path = data_path.clone();
        let stop = stop_rx.clone();
        let done = done_tx.clone();
        move || async move {
            let Some(part) = part else { return };
            let boot = Boot {
                listen,
                start_time,
                data_path,
                restored,
                stop,
                done,
            };
            if let Err(e) = run_shard(id, part, opts, boot, ready.clone()).await {
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
    drop(tcp_guard);
    drop(http_guard);
    crate::log_info!("ready");
    wait_for_signal();
    crate::log_info!("exiting");
    // Two phases, each finished by every shard before the next starts:
    // 1. stop handing messages between cores (no batch left in flight),
    // 2. write memory, in-flight and deferred messages to disk, and nsqd.dat.
    'phases: for _phase in 0..2 {
        for _ in 0..shards {
            let _ = stop_tx.send(());
        }
        for _ in 0..shards {
            if done_rx.recv_timeout(SHUTDOWN_TIMEOUT).is_err() {
                crate::log_error!("a shard did not finish shutting down in {SHUTDOWN_TIMEOUT:?}");
                break 'phases;
            }
        }
    }
    drop(handles);
    Ok(())
}

/// Block SIGINT/SIGTERM in every thread (call before spawning) and wait for one.
fn wait_for_signal() {
    // SAFETY: plain signal-mask calls on a zeroed sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
    }
}

/// Block SIGINT and SIGTERM so only `wait_for_signal` sees them; threads
/// created afterwards inherit the mask.
pub fn block_signals() {
    // SAFETY: plain signal-mask calls on a zeroed sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// What every shard starts from.
struct Boot {
    listen: Listen,
    start_time: i64,
    data_path: PathBuf,
    restored: Arc<Vec<TopicMeta>>,
    stop: flume::Receiver<()>,
    done: std::sync::mpsc::Sender<()>,
}

/// How long the main thread waits for every shard to be up.
const STARTUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long the main thread waits for the shards to save their state.
const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

async fn run_shard(
    id: usize,
    part: MeshPart<ShardMsg>,
    opts: Arc<Options>,
    boot: Boot,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) -> anyhow::Result<()> {
    let listen = boot.listen;
    let tcp = nsq_io::net::listen_shared(listen.tcp)
        .map_err(|e| anyhow!("listen ({}) failed - {e}", listen.tcp))?;
    let http = match listen.http {
        Some(addr) => Some(
            nsq_io::net::listen_shared(addr)
                .map_err(|e| anyhow!("listen ({addr}) failed - {e}"))?,
        ),
        None => None,
    };
    let (mesh, receivers) = part.connect().await;
    let shard = Shard::new(id, opts, mesh, listen, boot.start_time, boot.data_path);
    shard.restore(&boot.restored);
    shard.start_tasks();
    let stopping = shard.clone();
    let (stop, done) = (boot.stop, boot.done);
    glommio::spawn_local(async move {
        if stop.recv_async().await.is_ok() {
            stopping.quiesce().await;
        }
        let _ = done.send(());
        if stop.recv_async().await.is_ok() {
            stopping.shutdown().await;
        }
        let _ = done.send(());
    })
    .detach();
    for (_from, rx) in receivers {
        glommio::spawn_local(run_mesh_receiver(shard.clone(), rx)).detach();
    }
    if let Some(http) = http {
        glommio::spawn_local(accept_http(shard.clone(), http)).detach();
    }
    let _ = ready.send(Ok(()));
    accept_tcp(shard, tcp).await;
    Ok(())
}

async fn accept_tcp(shard: Rc<Shard>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                glommio::spawn_local(crate::client::conn::serve(shard.clone(), stream)).detach();
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                crate::log_error!("TCP: accept error - {e}");
                glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn accept_http(shard: Rc<Shard>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                glommio::spawn_local(crate::http::serve(shard.clone(), stream)).detach();
            }
            Err(e) => {
                crate::log_error!("HTTP: accept error - {e}");
                glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
