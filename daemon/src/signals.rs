//! Shutdown signals: SIGINT and SIGTERM are blocked in every thread and
//! taken synchronously by the main thread, so no executor thread is ever
//! interrupted and no handler runs in an async-signal context.

fn shutdown_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Block SIGINT and SIGTERM in this thread and every thread started after
/// it (they inherit the mask), so only [`wait_for_signal`] sees them. Call
/// it first thing in `main`.
pub fn block_signals() {
    let set = shutdown_signals();
    // SAFETY: plain signal-mask call with a valid set.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Wait until SIGINT or SIGTERM arrives (after [`block_signals`]).
pub fn wait_for_signal() {
    let set = shutdown_signals();
    let mut sig = 0;
    // SAFETY: sigwait with a valid set and out-pointer.
    unsafe {
        libc::sigwait(&set, &mut sig);
    }
}
