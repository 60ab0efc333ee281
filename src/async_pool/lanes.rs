//! The threads that run [`AsyncPool`](super::AsyncPool)'s calls: as many as the pool
//! has connections, all taking calls from one queue in the order they came, and a
//! watchdog that answers a call still queued when the pool's connection timeout is up.
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
//!
//! Every queued call is also in the watchdog's list, in the same order (the timeout is
//! the same for all, so that is the order of their deadlines). Whoever claims a call
//! first answers it: a connection thread that takes it in time, or the watchdog with
//! [`Error::PoolTimeout`] when its deadline passes first, however long the calls ahead
//! of it run.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use tokio::sync::oneshot;

use crate::error::{Detail, Error, Result};

/// A call, ready to run on a connection thread.
type Job = Box<dyn FnOnce() + Send>;

/// What a call resolves to: its result, or the panic of its closure.
type Outcome<T> = std::thread::Result<Result<T>>;

/// The queue, the threads taking from it, the watchdog, and their counters.
pub(super) struct Lanes {
    queue: Sender<Job>,
    taken: Receiver<Job>,
    /// The most threads there may be: the pool's size.
    max_threads: u32,
    /// The pool's connection timeout: the longest a call may wait for its connection,
    /// in the queue and at checkout.
    timeout: Duration,
    deadlines: Arc<Deadlines>,
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
    /// Connection threads running.
    pub(super) threads: AtomicU32,
    /// Calls a thread took (run, or skipped because abandoned).
    pub(super) trips: AtomicU64,
    /// Calls that waited 1 ms or more in the queue.
    pub(super) queue_waits: AtomicU64,
    pub(super) queue_wait_nanos: AtomicU64,
    pub(super) max_queue_wait_nanos: AtomicU64,
    /// Calls skipped because their future was dropped before they started.
    pub(super) abandoned: AtomicU64,
    /// Calls answered with a pool timeout without running.
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
    /// `timeout`: starts its connection threads and its watchdog.
    pub(super) fn new(max_threads: u32, timeout: Duration) -> Self {
        let (queue, taken) = crossbeam_channel::unbounded();
        let lanes = Lanes {
            queue,
            taken,
            timeout,
            max_threads: max_threads.max(1),
            deadlines: Arc::default(),
            counters: Arc::default(),
        };
        // A thread that cannot start now is started by a later call (`submit`).
        let _ = lanes.start_missing_threads();
        let deadlines = Arc::clone(&lanes.deadlines);
        let _ = std::thread::Builder::new()
            .name("todo-store-watchdog".into())
            .spawn(move || deadlines.watch());
        lanes
    }

    /// Starts connection threads up to the pool's size; fails only when none runs.
    fn start_missing_threads(&self) -> Result<()> {
        let threads = &self.counters.threads;
        let mut running = threads.load(Ordering::Acquire);
        while running < self.max_threads {
            if let Err(now) =
                threads.compare_exchange(running, running + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                running = now;
                continue;
            }
            if let Err(err) = self.start_thread() {
                let left = threads.fetch_sub(1, Ordering::AcqRel) - 1;
                if left == 0 {
                    return Err(Error::Config(Detail::from(format!(
                        "AsyncPool could not start a connection thread: {err}"
                    ))));
                }
                // The running threads will take the calls.
                return Ok(());
            }
            running += 1;
        }
        Ok(())
    }

    fn start_thread(&self) -> std::io::Result<()> {
        let taken = self.taken.clone();
        let counters = Arc::clone(&self.counters);
        std::thread::Builder::new()
            .name("todo-store-conn".into())
            .spawn(move || {
                // Counted down however the thread ends, so that a later call starts
                // another in its place.
                let _running = Running(counters);
                // Ends when every AsyncPool handle is gone and the queue is empty.
                for call in taken.iter() {
                    // A call's closure runs under its own catch_unwind; this one
                    // keeps the thread alive through a panicking Drop of what the
                    // call carried.
                    let _ = catch_unwind(AssertUnwindSafe(call));
                }
            })
            .map(drop)
    }

    /// Runs `f` on a connection thread, where it gets `abandoned` (whether the
    /// awaiting future is gone) and the time it waited in the queue; resolves to
    /// its result. A call still queued when the pool's timeout is up is not run: it
    /// resolves to [`Error::PoolTimeout`]. A panic of `f` resumes in the awaiting task.
    pub(super) async fn call<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&dyn Fn() -> bool, Duration) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (done, result) = oneshot::channel::<Outcome<T>>();
        let queued = Instant::now();
        let slot = Arc::new(Slot {
            claimed: AtomicBool::new(false),
            done: Mutex::new(Some(done)),
            deadline: queued + self.timeout,
            timeout: self.timeout,
            max_size: self.max_threads,
            counters: Arc::clone(&self.counters),
        });
        let counters = Arc::clone(&self.counters);
        let job = {
            let slot = Arc::clone(&slot);
            Box::new(move || {
                if slot.claimed.swap(true, Ordering::AcqRel) {
                    return; // The watchdog answered it.
                }
                let Some(done) = slot.take_sender() else {
                    return;
                };
                let waited = queued.elapsed();
                counters.note_wait(waited);
                if done.is_closed() {
                    counters.abandoned.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let abandoned = || done.is_closed();
                let outcome = catch_unwind(AssertUnwindSafe(|| f(&abandoned, waited)));
                // The receiver is gone when the future was dropped: nothing to deliver.
                let _ = done.send(outcome);
            })
        };
        self.deadlines.push(slot);
        if self.queue.send(job).is_err() {
            // The receiver lives in `self`: the queue cannot be closed.
            return Err(Error::Config("AsyncPool's queue is closed".into()));
        }
        if self.counters.threads.load(Ordering::Acquire) < self.max_threads {
            self.start_missing_threads()?;
        }
        match result.await {
            Ok(Ok(value)) => value,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            // Dropped unanswered: only if a thread died with the call.
            Err(_) => Err(Error::Config(
                "AsyncPool's connection thread ended before the call could run".into(),
            )),
        }
    }
}

impl Drop for Lanes {
    fn drop(&mut self) {
        self.deadlines.close();
    }
}

/// Counts a connection thread down when it ends.
struct Running(Arc<Counters>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.threads.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A queued call as the watchdog sees it: claimed by a thread, or answered with a
/// pool timeout at its deadline.
struct Slot<T> {
    claimed: AtomicBool,
    done: Mutex<Option<oneshot::Sender<Outcome<T>>>>,
    deadline: Instant,
    timeout: Duration,
    max_size: u32,
    counters: Arc<Counters>,
}

impl<T> Slot<T> {
    fn take_sender(&self) -> Option<oneshot::Sender<Outcome<T>>> {
        self.done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// A [`Slot`] of any result type.
trait Expire: Send + Sync {
    fn deadline(&self) -> Instant;
    fn is_claimed(&self) -> bool;
    /// Answers the call with a pool timeout, unless a thread claimed it first.
    fn expire(&self);
}

impl<T: Send> Expire for Slot<T> {
    fn deadline(&self) -> Instant {
        self.deadline
    }

    fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }

    fn expire(&self) {
        if self.claimed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.counters.queue_timeouts.fetch_add(1, Ordering::Relaxed);
        if let Some(done) = self.take_sender() {
            let _ = done.send(Ok(Err(Error::PoolTimeout {
                max_size: self.max_size,
                timeout: self.timeout,
                last_error: None,
            })));
        }
    }
}

/// The watchdog's list: every queued call, in the order of their deadlines.
#[derive(Default)]
struct Deadlines {
    state: Mutex<DeadlineList>,
    changed: Condvar,
}

#[derive(Default)]
struct DeadlineList {
    calls: VecDeque<Arc<dyn Expire>>,
    closed: bool,
}

impl Deadlines {
    fn lock(&self) -> std::sync::MutexGuard<'_, DeadlineList> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a call; drops the claimed ones at the front, so the list holds about as
    /// many calls as are queued.
    fn push<T: Send + 'static>(&self, slot: Arc<Slot<T>>) {
        let mut list = self.lock();
        while list.calls.front().is_some_and(|call| call.is_claimed()) {
            list.calls.pop_front();
        }
        let was_empty = list.calls.is_empty();
        list.calls.push_back(slot);
        drop(list);
        if was_empty {
            self.changed.notify_one();
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_one();
    }

    /// The watchdog's loop: answers each call whose deadline passed unclaimed; ends
    /// when the lanes are dropped.
    fn watch(&self) {
        let mut list = self.lock();
        loop {
            if list.closed {
                return;
            }
            let Some(front) = list.calls.front() else {
                list = self
                    .changed
                    .wait(list)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            if front.is_claimed() {
                list.calls.pop_front();
                continue;
            }
            let now = Instant::now();
            let deadline = front.deadline();
            if deadline <= now {
                if let Some(expired) = list.calls.pop_front() {
                    drop(list);
                    let _ = catch_unwind(AssertUnwindSafe(|| expired.expire()));
                    list = self.lock();
                }
            } else {
                list = self
                    .changed
                    .wait_timeout(list, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
    }
}
