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
