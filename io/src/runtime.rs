//! Start one glommio executor per shard, pinned to its own CPU.
//!
//! Before spawning anything we build a throw-away executor on the calling
//! thread: that is where io_uring or a too-low memlock limit fails, and failing
//! there lets us print what to change instead of a panic from a worker thread.

use std::future::Future;
use std::time::Duration;

use glommio::{
    CpuSet, ExecutorJoinHandle, GlommioError, LocalExecutorBuilder, Placement, ReactorErrorKind,
};

/// Memory each executor registers with io_uring for fixed buffers. glommio's
/// default (10 MiB) exceeds the common 8 MiB memlock limit; we do not use fixed
/// buffers on the message path, so keep it small and within default limits.
pub const IO_MEMORY: usize = 512 << 10;

/// Submission ring depth per executor.
pub const RING_DEPTH: usize = 256;

/// Why the runtime could not start, worded for the operator.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// io_uring is missing or forbidden (old kernel, seccomp, sysctl).
    #[error("io_uring is not available ({0}). nsqd needs Linux >= 5.8 with io_uring enabled: check `sysctl kernel.io_uring_disabled` (must be 0) and, in containers, a seccomp profile that allows io_uring_setup/io_uring_enter/io_uring_register")]
    Unavailable(String),
    /// RLIMIT_MEMLOCK is below what each executor needs.
    #[error("the locked-memory limit is too low: {have} bytes allowed, {need} bytes needed (512 KiB per core; fewer cores with --shards also works). Raise it with `ulimit -l unlimited` (or LimitMEMLOCK=infinity in a systemd unit, --ulimit memlock=-1 in docker)")]
    MemLock {
        /// current limit in bytes
        have: u64,
        /// what glommio asked for in bytes
        need: u64,
    },
    /// Anything else glommio reported while building an executor.
    #[error("cannot start executor: {0}")]
    Other(String),
}

fn classify(err: GlommioError<()>) -> RuntimeError {
    match err {
        GlommioError::ReactorError(ReactorErrorKind::MemLockLimit(have, need)) => {
            RuntimeError::MemLock { have, need }
        }
        // glommio 0.9 reports the memlock shortfall as an I/O error whose
        // text is `MemLockLimit(<have>/<need>)`.
        GlommioError::IoError(e) => match parse_memlock(&e.to_string()) {
            Some((have, need)) => RuntimeError::MemLock { have, need },
            None => RuntimeError::Unavailable(e.to_string()),
        },
        other => RuntimeError::Other(other.to_string()),
    }
}

fn parse_memlock(text: &str) -> Option<(u64, u64)> {
    let inner = text.split("MemLockLimit(").nth(1)?.split(')').next()?;
    let (have, need) = inner.split_once('/')?;
    Some((have.trim().parse().ok()?, need.trim().parse().ok()?))
}

/// Check that RLIMIT_MEMLOCK covers `shards` executors (the limit is per
/// process, each executor locks [`IO_MEMORY`]). Checked up front because an
/// executor that fails later would leave its peers waiting for it.
pub fn check_memlock(shards: usize) -> Result<(), RuntimeError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return Ok(()); // cannot tell; glommio will say
    }
    let need = (shards as u64).saturating_mul(IO_MEMORY as u64);
    if lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < need {
        return Err(RuntimeError::MemLock {
            have: lim.rlim_cur,
            need,
        });
    }
    Ok(())
}

/// Check that an executor can be built on this host at all.
pub fn probe() -> Result<(), RuntimeError> {
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(IO_MEMORY)
        .ring_depth(RING_DEPTH)
        .make()
        .map(drop)
        .map_err(classify)
}

/// CPUs this process may run on, in order.
pub fn usable_cpus() -> Vec<usize> {
    match CpuSet::online() {
        Ok(set) => {
            let mut cpus: Vec<usize> = set.into_iter().map(|loc| loc.cpu).collect();
            cpus.sort_unstable();
            cpus.dedup();
            let allowed = allowed_cpus();
            if !allowed.is_empty() {
                cpus.retain(|cpu| allowed.contains(cpu));
            }
            cpus
        }
        Err(_) => allowed_cpus(),
    }
}

/// The affinity mask of the process (what `taskset`/cgroups allow).
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it and we only
    // read it with CPU_ISSET within CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|cpu| libc::CPU_ISSET(*cpu, &set))
            .collect()
    }
}

/// Spawn `shards` executors. Shard `i` is pinned to the i-th usable CPU when
/// there are enough CPUs, and unpinned otherwise (e.g. `--shards` above the
/// core count, which is only useful for testing cross-core paths).
pub fn spawn_shards<G, F>(
    shards: usize,
    mut make: impl FnMut(usize) -> G,
) -> Result<Vec<ExecutorJoinHandle<()>>, RuntimeError>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = ()> + 'static,
{
    let cpus = usable_cpus();
    let pin = cpus.len() >= shards;
    let mut handles = Vec::with_capacity(shards);
    for shard in 0..shards {
        let placement = match cpus.get(shard) {
            Some(cpu) if pin => Placement::Fixed(*cpu),
            _ => Placement::Unbound,
        };
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("nsqd-shard{shard}"))
            .io_memory(IO_MEMORY)
            .ring_depth(RING_DEPTH)
            .preempt_timer(Duration::from_millis(10))
            .spawn(make(shard))
            .map_err(classify)?;
        handles.push(handle);
    }
    Ok(handles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memlock_text_is_recognised() {
        assert_eq!(
            parse_memlock("MemLockLimit(65536/524288)"),
            Some((65536, 524288))
        );
        assert_eq!(parse_memlock("Operation not permitted"), None);
    }
}
