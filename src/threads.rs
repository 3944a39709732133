//! Threads that never run Postgres code.
//!
//! Rayon threads are spawned with every signal blocked, so Postgres's
//! signal handlers only ever run on the backend's own thread; the threads
//! compute on copied-out data and never call a Postgres function.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use rayon::prelude::*;
use std::cell::OnceCell;
use vdb_core::hnsw::insert::Reselect;
use vdb_core::hnsw::{Metric, NodeId};

/// Blocks every signal in this thread until dropped, so that threads
/// spawned meanwhile inherit a fully blocked mask and never run the
/// backend's signal handlers.
pub struct SignalsBlocked {
    old: libc::sigset_t,
}

impl SignalsBlocked {
    pub fn block() -> SignalsBlocked {
        // SAFETY: sigfillset/pthread_sigmask only write the sets passed.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
            SignalsBlocked { old }
        }
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in new().
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// Cores this machine has.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `vhnsw.merge_threads`: threads the distance work of a merge batch runs
/// on. Merges run beside queries (the merge worker, inserting backends at
/// the hard limit), so by default on the merging process's own thread
/// only, leaving the other cores to queries.
static MERGE_THREADS: GucSetting<i32> = GucSetting::<i32>::new(1);

/// Registers `vhnsw.merge_threads`; called from `_PG_init`.
pub fn init() {
    GucRegistry::define_int_guc(
        c"vhnsw.merge_threads",
        c"Sets how many threads the distance work of a merge batch runs on.",
        c"1 (the default): the merging process's own thread only, leaving other cores to queries. At most the machine's cores are used.",
        &MERGE_THREADS,
        1,
        1024,
        GucContext::Suset,
        GucFlags::default(),
    );
}

/// Threads of a merge batch.
pub fn merge_threads() -> usize {
    usize::try_from(MERGE_THREADS.get())
        .unwrap_or(1)
        .clamp(1, cores())
}

/// Threads of an index build or a VACUUM's repair: the backend and
/// `max_parallel_maintenance_workers` more, as PostgreSQL sizes its own
/// parallel maintenance, at most the machine's cores.
pub fn maintenance_threads() -> usize {
    // SAFETY: reads a GUC variable of the backend's own thread.
    let workers = unsafe { pg_sys::max_parallel_maintenance_workers };
    (1 + usize::try_from(workers).unwrap_or(0)).clamp(1, cores())
}

/// Fewer full lists than this are re-selected on the calling thread: the
/// hand-off would cost more than it saves.
const PARALLEL_MIN_JOBS: usize = 8;

/// Threads for the distance work of one write operation (a merge batch, a
/// VACUUM), started on first use and ended when the operation drops it:
/// a backend keeps no threads between operations.
pub struct WorkPool {
    threads: usize,
    pool: OnceCell<Option<rayon::ThreadPool>>,
}

impl WorkPool {
    /// A pool of `threads` threads (1: the work runs on the caller's).
    pub fn with_threads(threads: usize) -> WorkPool {
        WorkPool {
            threads: threads.max(1),
            pool: OnceCell::new(),
        }
    }
}

impl WorkPool {
    /// The pool (`None` if its threads could not be started: the work
    /// then runs serially).
    fn get(&self) -> Option<&rayon::ThreadPool> {
        self.pool
            .get_or_init(|| {
                let _blocked = SignalsBlocked::block();
                rayon::ThreadPoolBuilder::new()
                    .num_threads(self.threads)
                    .thread_name(|i| format!("vhnsw-merge-{i}"))
                    .build()
                    .ok()
            })
            .as_ref()
    }

    /// `f(0) .. f(n − 1)`, in order, on the pool's threads (serially if
    /// it has one, or its threads could not start). `f` must not call
    /// Postgres.
    pub fn map<T: Send>(&self, n: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
        if n >= PARALLEL_MIN_JOBS && self.threads > 1 {
            if let Some(pool) = self.get() {
                return pool.install(|| (0..n).into_par_iter().map(&f).collect());
            }
        }
        (0..n).map(f).collect()
    }

    /// Re-selects full neighbour lists, on the pool's threads when there
    /// are enough. A panic in a job reaches the caller's thread (and
    /// becomes an ERROR).
    pub fn reselect(&self, work: &[Reselect], metric: Metric) -> Vec<Vec<NodeId>> {
        if work.len() >= PARALLEL_MIN_JOBS && self.threads > 1 {
            if let Some(pool) = self.get() {
                return pool.install(|| work.par_iter().map(|w| w.run(metric)).collect());
            }
        }
        work.iter().map(|w| w.run(metric)).collect()
    }
}
