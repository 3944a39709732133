//! Background merging of the pending list.
//!
//! Without `shared_preload_libraries`, a backend whose insert started the
//! list or a new page of it starts a dynamic merge worker for that index,
//! unless one runs already or another backend asked for one in the last
//! seconds (the request is recorded in the metapage, see
//! `pending::claim_request`, and withdrawn by the worker as it ends). With
//! vdb preloaded, it queues the request in shared memory instead and a
//! long-lived launcher starts the workers. Temporary indexes get no
//! worker (no other process can open them): their inserts merge
//! themselves at the hard limit, and VACUUM or `vhnsw_merge` merge them.
//!
//! A merge worker waits `vhnsw.merge_naptime` (so a trickle of inserts is
//! merged in one batch), then merges batches until the list is empty,
//! pausing between batches while the list is below the limit. It gives up
//! at once if another merger holds the index's graph lock.

use super::merge::{merge_batch, LockMode};
use super::options::{
    merge_batch_size, merge_naptime, merge_worker_nice, pending_limit, WORKER_BATCH_MAX,
};
use crate::storage::meta::read_meta;
use crate::storage::{pending, Index};
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime};
use pgrx::lwlock::PgLwLock;
use pgrx::pg_guard;
use pgrx::pg_sys;
use pgrx::shmem::PGRXSharedMemory;
use std::sync::atomic::{AtomicBool, Ordering};

const QUEUE_SLOTS: usize = 64;

/// Merge requests waiting for the launcher: (database, index) oids.
#[derive(Clone, Copy)]
pub struct MergeQueue {
    len: usize,
    items: [(u32, u32); QUEUE_SLOTS],
}

impl Default for MergeQueue {
    fn default() -> Self {
        MergeQueue {
            len: 0,
            items: [(0, 0); QUEUE_SLOTS],
        }
    }
}

// SAFETY: plain data, no pointers: valid to share between processes.
unsafe impl PGRXSharedMemory for MergeQueue {}

// SAFETY: the name is unique to vdb.
static QUEUE: PgLwLock<MergeQueue> = unsafe { PgLwLock::new(c"vdb_merge_queue") };

/// Set in the postmaster when vdb is in `shared_preload_libraries`;
/// backends inherit it.
static PRELOADED: AtomicBool = AtomicBool::new(false);

/// Called from `_PG_init`: with preloading, the queue and the launcher.
pub fn init() {
    // SAFETY: a plain global flag of the postmaster.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    PRELOADED.store(true, Ordering::Relaxed);
    pgrx::pg_shmem_init!(QUEUE);
    BackgroundWorkerBuilder::new("vdb merge launcher")
        .set_type("vdb merge launcher")
        .set_library("vdb")
        .set_function("vdb_merge_launcher_main")
        .enable_shmem_access(None)
        // Connected to no database (as the logical replication launcher),
        // so that it shows in pg_stat_activity.
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(std::time::Duration::from_secs(5)))
        .load();
}

/// `locktag_field4` of vdb's merge-worker locks, apart from the values
/// `pg_advisory_lock` uses (1 and 2).
const MERGE_LOCK_KIND: u16 = 0x7664;

/// The session lock a merge worker holds on its index for as long as it
/// runs: one worker per index, and backends can tell whether one runs.
/// It shows in `pg_locks` as an advisory lock whose `classid` is the
/// index's oid and `objsubid` is [`MERGE_LOCK_KIND`].
fn worker_lock(db: u32, index: u32) -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        locktag_field1: db,
        locktag_field2: index,
        locktag_field3: 0,
        locktag_field4: MERGE_LOCK_KIND,
        locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    }
}

/// Takes `tag` without waiting; `session` locks outlive transactions.
fn try_lock(tag: &pg_sys::LOCKTAG, session: bool) -> bool {
    // SAFETY: a lock tag of vdb's own kind; user locks held by a session
    // are released at process exit if not before.
    let got = unsafe { pg_sys::LockAcquire(tag, pg_sys::ExclusiveLock as i32, session, true) };
    got != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
}

fn unlock(tag: &pg_sys::LOCKTAG, session: bool) {
    // SAFETY: releases a lock this process took with try_lock.
    unsafe { pg_sys::LockRelease(tag, pg_sys::ExclusiveLock as i32, session) };
}

/// Asks for the pending list of `index` to be merged in the background,
/// unless a merge worker already runs for it.
pub fn request_merge(index: Index) {
    // SAFETY: the index is open; MyDatabaseId is set in a backend.
    let (db, oid, persistence) = unsafe {
        let rel = &*index.raw();
        (
            pg_sys::MyDatabaseId.to_u32(),
            rel.rd_id.to_u32(),
            (*rel.rd_rel).relpersistence,
        )
    };
    if persistence == pg_sys::RELPERSISTENCE_TEMP as std::ffi::c_char {
        return;
    }
    let tag = worker_lock(db, oid);
    if !try_lock(&tag, false) {
        return; // a worker runs and will see this entry (it re-checks on exit)
    }
    unlock(&tag, false);
    if PRELOADED.load(Ordering::Relaxed) {
        let mut queue = QUEUE.exclusive();
        let len = queue.len;
        if queue.items[..len].contains(&(db, oid)) {
            return;
        }
        if len < QUEUE_SLOTS {
            queue.items[len] = (db, oid);
            queue.len += 1;
            return;
        }
    }
    launch(db, oid);
}

/// Starts a dynamic merge worker; without a free worker slot nothing
/// happens (inserts then merge themselves at the hard limit).
fn launch(db: u32, index: u32) {
    let _ = BackgroundWorkerBuilder::new(&format!("vdb merge {index}"))
        .set_type("vdb merge")
        .set_library("vdb")
        .set_function("vdb_merge_worker_main")
        .set_argument(Some(pg_sys::Datum::from(index)))
        .set_extra(&db.to_string())
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(None)
        .load_dynamic();
}

/// What one batch in a worker found.
enum Step {
    /// More to merge; the estimate of what is left, in bytes.
    More(usize),
    /// The list is empty.
    Empty,
    /// Another merger (a backend under back-pressure, VACUUM, a check)
    /// holds the graph lock.
    Busy,
    /// The index is gone (or not visible yet).
    Gone,
}

/// Runs `f` on the index if it still exists.
fn with_open_index(index_oid: pg_sys::Oid, f: impl FnOnce(Index) -> Step) -> Step {
    // SAFETY: try_relation_open returns null for a dropped relation; we
    // check it is a vhnsw index before touching its pages, and close it.
    unsafe {
        let rel = pg_sys::try_relation_open(index_oid, pg_sys::RowExclusiveLock as i32);
        if rel.is_null() {
            return Step::Gone;
        }
        let step = if super::utils::is_vhnsw(rel) {
            f(Index::new(rel))
        } else {
            Step::Gone
        };
        pg_sys::relation_close(rel, pg_sys::RowExclusiveLock as i32);
        step
    }
}

fn merge_step(index_oid: pg_sys::Oid) -> Step {
    with_open_index(index_oid, |index| {
        match merge_batch(
            index,
            merge_batch_size().min(WORKER_BATCH_MAX),
            LockMode::Skip,
        ) {
            Ok(m) if m.busy => Step::Busy,
            Ok(m) if m.entries == 0 || m.remaining == 0 => Step::Empty,
            Ok(m) => Step::More(m.remaining_bytes),
            Err(e) => crate::fmgr::raise(e),
        }
    })
}

fn withdraw_request(index_oid: pg_sys::Oid) -> Step {
    with_open_index(index_oid, |index| {
        pending::withdraw_request(index);
        Step::Empty
    })
}

fn pending_now(index_oid: pg_sys::Oid) -> Step {
    with_open_index(index_oid, |index| {
        let live = read_meta(index).and_then(|meta| {
            let shape = crate::storage::layout::EntryShape::of(&meta);
            Ok(pending::live_count(index, shape)? * shape.size())
        });
        match live {
            Ok(0) => Step::Empty,
            Ok(n) => Step::More(n),
            Err(e) => crate::fmgr::raise(e),
        }
    })
}

unsafe extern "C-unwind" {
    // Postgres's signal handlers, by their C symbols (pg_sys wraps them
    // in Rust functions, which cannot be installed as handlers).
    fn die(signal: std::ffi::c_int);
    fn SignalHandlerForConfigReload(signal: std::ffi::c_int);
}

/// Postgres's own handlers: SIGTERM sets the interrupt flags that
/// `CHECK_FOR_INTERRUPTS` (called every few inserts of a merge) turns
/// into a clean exit, so shutdown never waits for a batch to finish.
fn attach_signal_handlers() {
    // SAFETY: installs Postgres's standard handlers before unblocking
    // signals, as a background worker's main function must.
    unsafe {
        pg_sys::pqsignal(pg_sys::SIGTERM as i32, Some(die));
        pg_sys::pqsignal(pg_sys::SIGHUP as i32, Some(SignalHandlerForConfigReload));
        pg_sys::BackgroundWorkerUnblockSignals();
    }
}

/// Whether the worker's database is being dropped (or renamed, or moved):
/// DROP DATABASE holds an exclusive lock on it while it waits for the
/// database's other sessions to end, which a merge worker must then do.
fn database_going_away() -> bool {
    // SAFETY: MyDatabaseId is set in a connected worker; a conditional
    // lock of the kind every backend takes to connect, released at once.
    unsafe {
        if pg_sys::MyDatabaseId == pg_sys::InvalidOid {
            return false;
        }
        let tag = pg_sys::LOCKTAG {
            locktag_field1: 0, // a shared object: no database
            locktag_field2: pg_sys::DatabaseRelationId.to_u32(),
            locktag_field3: pg_sys::MyDatabaseId.to_u32(),
            locktag_field4: 0,
            locktag_type: pg_sys::LockTagType::LOCKTAG_OBJECT as u8,
            locktag_lockmethodid: pg_sys::DEFAULT_LOCKMETHOD as u8,
        };
        let mode = pg_sys::RowExclusiveLock as i32;
        // A session lock: the worker naps outside any transaction.
        let got = pg_sys::LockAcquire(&tag, mode, true, true);
        if got == pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL {
            return true;
        }
        pg_sys::LockRelease(&tag, mode, true);
        false
    }
}

/// Sleeps `naptime`, handling interrupts whenever the latch wakes it (a
/// latch set for another reason does not cut the nap short): a SIGTERM
/// ends the process here; a SIGHUP reloads settings. Wakes at least once
/// a second to see whether its database is going away; returns false if
/// it is (the worker then ends).
fn nap(naptime: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + naptime;
    loop {
        if database_going_away() {
            return false;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return true;
        }
        let slice = left.min(std::time::Duration::from_secs(1));
        // SAFETY: MyLatch is this process's latch; WL_EXIT_ON_PM_DEATH ends
        // the worker if the postmaster dies.
        unsafe {
            pg_sys::WaitLatch(
                pg_sys::MyLatch,
                (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
                slice.as_millis().clamp(1, i64::MAX as u128) as std::ffi::c_long,
                pg_sys::PG_WAIT_EXTENSION,
            );
            pg_sys::ResetLatch(pg_sys::MyLatch);
            if pg_sys::ConfigReloadPending != 0 {
                pg_sys::ConfigReloadPending = 0;
                pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP);
            }
        }
        pgrx::check_for_interrupts!();
    }
}

/// Entry point of a merge worker: argument = index oid, extra = database oid.
#[pgrx::pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn vdb_merge_worker_main(arg: pg_sys::Datum) {
    attach_signal_handlers();
    let Ok(db) = BackgroundWorker::get_extra().parse::<u32>() else {
        return;
    };
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(db)), None);
    let index_oid = pg_sys::Oid::from(arg.value() as u32);
    // Background work yields to queries: the scheduler runs this process
    // when backends at the normal priority leave a core idle. An insert
    // that finds the list at the hard limit merges a batch itself, at its
    // own priority, once this worker's short batch lets go of the lock.
    // SAFETY: setpriority changes only this process's priority; a failure
    // (not permitted) leaves it as it was.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, merge_worker_nice());
    }
    let tag = worker_lock(db, index_oid.to_u32());
    if !BackgroundWorker::transaction(|| try_lock(&tag, true)) {
        return; // another worker has this index
    }
    // A trickle of inserts is merged in one batch.
    let mut awake = nap(merge_naptime());
    while awake {
        pgrx::check_for_interrupts!();
        match BackgroundWorker::transaction(|| merge_step(index_oid)) {
            Step::Gone => break,
            Step::Busy => awake = nap(merge_naptime()),
            Step::More(left) if left < pending_limit() => awake = nap(merge_naptime()),
            Step::More(_) => awake = !database_going_away(),
            Step::Empty => {
                // A backend that appended while we held the lock or the
                // request stood did not start a worker: withdraw the
                // request, let go, then look again.
                BackgroundWorker::transaction(|| withdraw_request(index_oid));
                unlock(&tag, true);
                let more = matches!(
                    BackgroundWorker::transaction(|| pending_now(index_oid)),
                    Step::More(_)
                );
                if !(more && BackgroundWorker::transaction(|| try_lock(&tag, true))) {
                    return;
                }
            }
        }
    }
    unlock(&tag, true);
}

/// Entry point of the launcher (vdb preloaded): starts a merge worker for
/// each queued request.
#[pgrx::pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn vdb_merge_launcher_main(_arg: pg_sys::Datum) {
    attach_signal_handlers();
    BackgroundWorker::connect_worker_to_spi(None, None);
    loop {
        let _ = nap(merge_naptime());
        let requests: Vec<(u32, u32)> = {
            let mut queue = QUEUE.exclusive();
            let taken = queue.items[..queue.len].to_vec();
            queue.len = 0;
            taken
        };
        for (db, index) in requests {
            launch(db, index);
        }
    }
}
