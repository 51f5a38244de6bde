//! A persistent thread pool for data-parallel ops: one job at a time, split into one part per
//! thread, each part taking its share by index. Workers spin briefly between jobs (a forward
//! pass issues hundreds of ops per token, microseconds apart) and park when the pool goes quiet,
//! so an idle server costs no CPU. Nothing is allocated per job.
//!
//! Parts are claimed, not assigned: whichever thread is running takes the next unclaimed part,
//! so when another process holds a core and a worker is descheduled, the threads that do run
//! take its parts instead of waiting a whole scheduler slice for it (with static parts, a
//! second busy process cut decoding by 10x). A part's index still decides its share, so
//! results do not depend on which thread ran it.

use std::cell::UnsafeCell;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The job every thread runs: `job(thread_idx, n_threads)`.
type Job<'a> = dyn Fn(usize, usize) + Sync + 'a;

/// How long a worker spins on the epoch counter before it parks. Long enough to bridge the gap
/// between two ops of a forward pass, short enough that a paused engine sleeps.
const SPIN_TIME: Duration = Duration::from_micros(2000);

/// Bits of `Shared::claim` that count claimed parts; the rest is the job's epoch.
const PART_BITS: u32 = 16;

struct Shared {
    /// The current job, valid while `pending > 0`. Written only by the thread holding
    /// `caller`, before it publishes a new epoch in `claim`.
    job: UnsafeCell<Option<*const Job<'static>>>,
    /// The current job's epoch (bumped once per job) and how many of its parts have been
    /// claimed, in one word, so that a part is only ever claimed for the job it belongs to.
    claim: AtomicU64,
    /// Parts of the current job not yet finished.
    pending: AtomicUsize,
    /// The first panic of the current job's parts, re-raised by the caller.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    shutdown: AtomicBool,
    n_parked: AtomicUsize,
    /// Workers that have entered their loop.
    n_started: AtomicUsize,
    park_lock: Mutex<()>,
    wake: Condvar,
    /// Serialises callers: one job at a time.
    caller: Mutex<()>,
}

// SAFETY: `job` is only written by the caller holding `caller` while no thread reads it
// (pending == 0), and read only by a thread that has claimed a part of the current epoch and
// not yet finished it (so pending > 0); the pointee is `Sync`.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    n_threads: usize,
}

impl ThreadPool {
    /// A pool of `n_threads` threads in all: the calling thread plus `n_threads - 1` workers.
    pub fn new(n_threads: usize) -> ThreadPool {
        let n_threads = n_threads.clamp(1, (1 << PART_BITS) - 1);
        let shared = Arc::new(Shared {
            job: UnsafeCell::new(None),
            claim: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            panic: Mutex::new(None),
            shutdown: AtomicBool::new(false),
            n_parked: AtomicUsize::new(0),
            n_started: AtomicUsize::new(0),
            park_lock: Mutex::new(()),
            wake: Condvar::new(),
            caller: Mutex::new(()),
        });
        let workers = (1..n_threads)
            .map(|idx| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("herd-worker-{idx}"))
                    .spawn(move || worker_loop(&shared, n_threads))
                    .expect("spawning a worker thread")
            })
            .collect();
        // Returns once every worker runs, so that their start-up (which allocates) is over
        // before the pool's first job.
        while shared.n_started.load(Ordering::Acquire) < n_threads - 1 {
            std::thread::yield_now();
        }
        ThreadPool { shared, workers, n_threads }
    }

    /// A pool with one thread per available core.
    pub fn with_all_cores() -> ThreadPool {
        ThreadPool::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Runs `job(part, n_threads)` for every part `0..n_threads`, each once, on whichever
    /// threads of the pool get to it first (the caller included), and returns when all have
    /// finished. A panic in any part is re-raised here.
    pub fn run(&self, job: &(dyn Fn(usize, usize) + Sync)) {
        if self.n_threads == 1 {
            job(0, 1);
            return;
        }
        let _guard = self.shared.caller.lock().unwrap_or_else(|e| e.into_inner());
        let shared = &*self.shared;
        // SAFETY: the lifetime is erased only for the duration of this call: we wait below
        // until every part has finished with the pointer, and clear it before returning.
        let ptr: *const Job<'static> = unsafe { std::mem::transmute(job as *const Job<'_>) };
        unsafe { *shared.job.get() = Some(ptr) };
        shared.pending.store(self.n_threads, Ordering::Relaxed);
        let epoch = (shared.claim.load(Ordering::Relaxed) >> PART_BITS) + 1;
        shared.claim.store(epoch << PART_BITS, Ordering::Release);
        if shared.n_parked.load(Ordering::SeqCst) > 0 {
            let _lock = shared.park_lock.lock().unwrap_or_else(|e| e.into_inner());
            shared.wake.notify_all();
        }
        run_parts(shared, epoch, self.n_threads);
        // Parts claimed by threads that were then descheduled: give them the core.
        let mut spins = 0u32;
        while shared.pending.load(Ordering::Acquire) != 0 {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        unsafe { *shared.job.get() = None };
        if let Some(payload) = shared.panic.lock().unwrap_or_else(|e| e.into_inner()).take() {
            std::panic::resume_unwind(payload);
        }
    }
}

/// Claims and runs parts of the job of `epoch` until none is left. A panicking part is
/// recorded (re-raised by the caller) and still counted as finished.
fn run_parts(shared: &Shared, epoch: u64, n_parts: usize) {
    let mut claim = shared.claim.load(Ordering::Acquire);
    loop {
        let part = (claim & ((1 << PART_BITS) - 1)) as usize;
        if claim >> PART_BITS != epoch || part >= n_parts {
            return;
        }
        match shared.claim.compare_exchange_weak(claim, claim + 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                // SAFETY: the caller set the pointer before publishing the epoch (Release,
                // paired with the Acquire of the claim) and keeps it alive until `pending`,
                // which counts this part, reaches zero.
                let job = unsafe { &*(*shared.job.get()).expect("a job is set for a claimed part") };
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| job(part, n_parts))) {
                    shared.panic.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(payload);
                }
                shared.pending.fetch_sub(1, Ordering::Release);
                claim = shared.claim.load(Ordering::Acquire);
            }
            Err(now) => claim = now,
        }
    }
}

fn worker_loop(shared: &Shared, n_threads: usize) {
    shared.n_started.fetch_add(1, Ordering::Release);
    let mut seen = 0u64;
    loop {
        let epoch = wait_for_job(shared, seen);
        if shared.shutdown.load(Ordering::Acquire) {
            return;
        }
        seen = epoch;
        run_parts(shared, epoch, n_threads);
    }
}

/// Spins, then parks, until a job later than `seen` is published or the pool shuts down.
/// Returns the new job's epoch.
fn wait_for_job(shared: &Shared, seen: u64) -> u64 {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        let epoch = shared.claim.load(Ordering::Acquire) >> PART_BITS;
        if epoch != seen || shared.shutdown.load(Ordering::Acquire) {
            return epoch;
        }
        spins = spins.wrapping_add(1);
        if !spins.is_multiple_of(256) {
            std::hint::spin_loop();
            continue;
        }
        if start.elapsed() < SPIN_TIME {
            // Free: it returns at once unless another thread wants this core, which on a busy
            // machine is the thread our job is waiting for.
            std::thread::yield_now();
            continue;
        }
        let lock = shared.park_lock.lock().unwrap_or_else(|e| e.into_inner());
        shared.n_parked.fetch_add(1, Ordering::SeqCst);
        let lock = if shared.claim.load(Ordering::SeqCst) >> PART_BITS == seen && !shared.shutdown.load(Ordering::SeqCst) {
            shared.wake.wait(lock).unwrap_or_else(|e| e.into_inner())
        } else {
            lock
        };
        shared.n_parked.fetch_sub(1, Ordering::SeqCst);
        drop(lock);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        {
            let _lock = self.shared.park_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// The half-open range of `n_items` that thread `thread_idx` of `n_threads` owns, in contiguous
/// chunks whose starts are multiples of `align` (so threads never share a cache line or block).
pub fn share(n_items: usize, thread_idx: usize, n_threads: usize, align: usize) -> std::ops::Range<usize> {
    let n_units = n_items.div_ceil(align);
    let per = n_units / n_threads;
    let extra = n_units % n_threads;
    let unit_start = thread_idx * per + thread_idx.min(extra);
    let unit_end = unit_start + per + usize::from(thread_idx < extra);
    (unit_start * align).min(n_items)..(unit_end * align).min(n_items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_runs_every_job_once() {
        for n_threads in [1, 2, 3, 8] {
            let pool = ThreadPool::new(n_threads);
            let hits: Vec<AtomicUsize> = (0..n_threads).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..1000 {
                pool.run(&|idx, n| {
                    assert_eq!(n, n_threads);
                    hits[idx].fetch_add(1, Ordering::Relaxed);
                });
            }
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1000));
        }
    }

    /// Many more threads than cores (some always descheduled): every part still runs once.
    #[test]
    fn an_oversubscribed_pool_runs_every_part_once() {
        let pool = ThreadPool::new(16);
        let parts: Vec<AtomicUsize> = (0..16).map(|_| AtomicUsize::new(0)).collect();
        for _ in 0..300 {
            pool.run(&|p, n| {
                assert_eq!(n, 16);
                parts[p].fetch_add(1, Ordering::Relaxed);
            });
        }
        assert!(parts.iter().all(|h| h.load(Ordering::Relaxed) == 300));
    }

    #[test]
    fn parked_workers_wake_up() {
        let pool = ThreadPool::new(3);
        let total = AtomicUsize::new(0);
        for _ in 0..3 {
            std::thread::sleep(SPIN_TIME * 3);
            pool.run(&|_, _| {
                total.fetch_add(1, Ordering::Relaxed);
            });
        }
        assert_eq!(total.load(Ordering::Relaxed), 9);
    }

    #[test]
    fn worker_panic_reaches_the_caller_and_the_pool_survives() {
        let pool = ThreadPool::new(2);
        let r = catch_unwind(AssertUnwindSafe(|| pool.run(&|idx, _| assert!(idx != 1, "boom"))));
        assert!(r.is_err());
        let count = AtomicUsize::new(0);
        pool.run(&|_, _| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn shares_cover_the_range_without_overlap() {
        for (n_items, n_threads, align) in [(0, 2, 1), (10, 3, 1), (100, 7, 16), (5, 8, 4), (1024, 2, 32)] {
            let mut next = 0;
            for t in 0..n_threads {
                let r = share(n_items, t, n_threads, align);
                assert_eq!(r.start, next.min(n_items));
                assert!(r.start.is_multiple_of(align) || r.start == n_items);
                next = r.end;
            }
            assert_eq!(next, n_items);
        }
    }
}
