//! A one-slot, shard-local wake-up: "something changed, look again".
//!
//! Lives on: one shard (it is `!Send`). It carries no data, so many `notify`
//! calls before the waiter runs collapse into one wake-up, which is what the
//! delivery and flush loops want (they re-read the state they care about).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A shared handle; clone it to give the notifier and the waiter each a copy.
#[derive(Clone, Default, Debug)]
pub struct Signal {
    inner: Rc<SignalInner>,
}

#[derive(Default, Debug)]
struct SignalInner {
    set: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Signal {
    /// A new, unset signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the signal and wake the waiter, if any.
    pub fn notify(&self) {
        self.inner.set.set(true);
        let waker = self.inner.waker.borrow_mut().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Wait until the signal is set, then clear it.
    pub fn wait(&self) -> SignalWait<'_> {
        SignalWait { signal: self }
    }

    /// True if set and not yet consumed by a waiter.
    pub fn is_set(&self) -> bool {
        self.inner.set.get()
    }
}

/// Future returned by [`Signal::wait`].
#[derive(Debug)]
pub struct SignalWait<'a> {
    signal: &'a Signal,
}

impl Future for SignalWait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let inner = &self.signal.inner;
        if inner.set.replace(false) {
            return Poll::Ready(());
        }
        *inner.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// A shard-local "generation changed" broadcast: any number of tasks wait
/// for the next `notify_all` (e.g. publishers waiting for a group fsync).
#[derive(Clone, Default, Debug)]
pub struct Broadcast {
    inner: Rc<BroadcastInner>,
}

#[derive(Default, Debug)]
struct BroadcastInner {
    generation: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Broadcast {
    /// A new broadcast at generation 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current generation; pass it to [`Broadcast::changed`].
    pub fn generation(&self) -> u64 {
        self.inner.generation.get()
    }

    /// Bump the generation and wake every waiter.
    pub fn notify_all(&self) {
        self.inner
            .generation
            .set(self.inner.generation.get().wrapping_add(1));
        let wakers = std::mem::take(&mut *self.inner.wakers.borrow_mut());
        for waker in wakers {
            waker.wake();
        }
    }

    /// Wait until the generation differs from `seen`.
    pub fn changed(&self, seen: u64) -> BroadcastWait<'_> {
        BroadcastWait { bc: self, seen }
    }
}

/// Future returned by [`Broadcast::changed`].
#[derive(Debug)]
pub struct BroadcastWait<'a> {
    bc: &'a Broadcast,
    seen: u64,
}

impl Future for BroadcastWait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.bc.inner.generation.get() != self.seen {
            return Poll::Ready(());
        }
        self.bc.inner.wakers.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}
