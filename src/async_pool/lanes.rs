//! The threads that run [`AsyncPool`](super::AsyncPool)'s calls: at most as many as the
//! pool has connections, all taking calls from one queue in the order they came.
//!
//! A call is one trip: it is queued, a connection thread takes it, checks a connection
//! out, runs it, and hands the result to the awaiting task. Waiting for a free thread is
//! waiting in the queue, never on a runtime worker; a call whose future was dropped
//! before a thread took it is skipped. Under load a thread that finishes a call finds
//! the next one queued and takes it without sleeping, so a trip costs one queue push
//! and one task wake-up. There are never more threads than connections, so the
//! threads never crowd the pool's lock or wait for one another's connections (tokio's
//! blocking pool starts a thread per waiting call, up to 512, all of them contending
//! for the pool).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::error::{Detail, Error, Result};

/// A call, ready to run on a connection thread.
type Job = Box<dyn FnOnce() + Send>;

/// The queue, the threads taking from it, and their counters.
pub(super) struct Lanes {
    queue: Sender<Job>,
    taken: Receiver<Job>,
    /// The most threads there may be: the pool's size.
    max_threads: u32,
    /// The pool's connection timeout: the longest a call may wait for its connection,
    /// in the queue and at checkout.
    timeout: Duration,
    pub(super) counters: Arc<Counters>,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes")
            .field("max_threads", &self.max_threads)
            .field("threads", &self.counters.threads.load(Ordering::Relaxed))
            .field("queued", &self.queue.len())
            .finish()
    }
}

/// What the threads did, since the `AsyncPool` was built.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Threads started and still running.
    pub(super) threads: AtomicU32,
    /// Threads waiting for a call now.
    idle: AtomicU32,
    /// Calls a thread took (run, or skipped because abandoned).
    pub(super) trips: AtomicU64,
    /// Calls that waited 1 ms or more in the queue.
    pub(super) queue_waits: AtomicU64,
    pub(super) queue_wait_nanos: AtomicU64,
    pub(super) max_queue_wait_nanos: AtomicU64,
    /// Calls skipped because their future was dropped before they started.
    pub(super) abandoned: AtomicU64,
    /// Calls that waited the pool's whole timeout in the queue (counted by the caller
    /// of [`Lanes::call`], which decides).
    pub(super) queue_timeouts: AtomicU64,
}

impl Counters {
    fn note_wait(&self, waited: Duration) {
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.trips.fetch_add(1, Ordering::Relaxed);
        self.queue_wait_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.max_queue_wait_nanos
            .fetch_max(nanos, Ordering::Relaxed);
        if waited >= Duration::from_millis(1) {
            self.queue_waits.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Lanes {
    /// Lanes for a pool of `max_threads` connections whose checkouts wait up to
    /// `timeout`; threads start with the first calls.
    pub(super) fn new(max_threads: u32, timeout: Duration) -> Self {
        let (queue, taken) = crossbeam_channel::unbounded();
        Lanes {
            queue,
            taken,
            timeout,
            max_threads: max_threads.max(1),
            counters: Arc::default(),
        }
    }

    /// Queues `call` (made by [`Lanes::call`]); starts a thread when none is waiting
    /// and there are fewer than the pool's size.
    fn submit(&self, call: Job) -> Result<()> {
        if self.queue.send(call).is_err() {
            // The receiver lives in `self`: the queue cannot be closed.
            return Err(Error::Config("AsyncPool's queue is closed".into()));
        }
        let c = &self.counters;
        if c.idle.load(Ordering::Acquire) == 0 {
            let running = c.threads.load(Ordering::Acquire);
            if running < self.max_threads
                && c.threads
                    .compare_exchange(running, running + 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                if let Err(err) = self.start_thread() {
                    c.threads.fetch_sub(1, Ordering::AcqRel);
                    if running == 0 {
                        return Err(Error::Config(Detail::from(format!(
                            "AsyncPool could not start a connection thread: {err}"
                        ))));
                    }
                    // The running threads will take the call.
                }
            }
        }
        Ok(())
    }

    fn start_thread(&self) -> std::io::Result<()> {
        let taken = self.taken.clone();
        let counters = Arc::clone(&self.counters);
        std::thread::Builder::new()
            .name("todo-store-conn".into())
            .spawn(move || {
                loop {
                    // Take what is queued without announcing the thread idle: under
                    // load the next call is already there.
                    let call = match taken.try_recv() {
                        Ok(call) => call,
                        Err(_) => {
                            counters.idle.fetch_add(1, Ordering::AcqRel);
                            let next = taken.recv();
                            counters.idle.fetch_sub(1, Ordering::AcqRel);
                            match next {
                                Ok(call) => call,
                                // Every AsyncPool handle is gone: nothing more will come.
                                Err(_) => break,
                            }
                        }
                    };
                    call();
                }
                counters.threads.fetch_sub(1, Ordering::AcqRel);
            })
            .map(drop)
    }

    /// Runs `f` on a connection thread, where it gets `abandoned` (whether the
    /// awaiting future is gone) and the time it waited in the queue; resolves to
    /// its result. A call that waited the pool's whole timeout in the queue is not run:
    /// it resolves to [`Error::PoolTimeout`]. A panic of `f` resumes in the awaiting task.
    pub(super) async fn call<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&dyn Fn() -> bool, Duration) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel::<std::thread::Result<Result<T>>>();
        let counters = Arc::clone(&self.counters);
        let (timeout, max_size) = (self.timeout, self.max_threads);
        let queued = Instant::now();
        self.submit(Box::new(move || {
            let waited = queued.elapsed();
            counters.note_wait(waited);
            if done.is_closed() {
                counters.abandoned.fetch_add(1, Ordering::Relaxed);
                return;
            }
            if waited >= timeout {
                counters.queue_timeouts.fetch_add(1, Ordering::Relaxed);
                let _ = done.send(Ok(Err(Error::PoolTimeout {
                    max_size,
                    timeout,
                    last_error: None,
                })));
                return;
            }
            let abandoned = || done.is_closed();
            let outcome = catch_unwind(AssertUnwindSafe(|| f(&abandoned, waited)));
            // The receiver is gone when the future was dropped: nothing to deliver.
            let _ = done.send(outcome);
        }))?;
        match result.await {
            Ok(Ok(value)) => value,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            // The call was dropped unrun: only when its thread ended mid-queue.
            Err(_) => Err(Error::Config(
                "AsyncPool's connection thread ended before the call could run".into(),
            )),
        }
    }
}
