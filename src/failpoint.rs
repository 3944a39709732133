//! Test-only failpoints: named places in the write paths where a test can
//! make vdb raise an `ERROR` or `PANIC`, so that crash-safety claims are
//! tested at the exact point between two WAL records instead of by luck.
//!
//! `SET vhnsw.failpoint = 'name'` raises an `ERROR` the first time `name`
//! is reached; `'name@3'` the third time; `'name:panic'` (or
//! `'name@3:panic'`) raises a `PANIC` instead, which makes the postmaster
//! restart every process and replay the WAL: a crash at that point;
//! `'name:sleep'` waits three seconds there, so that another session can act
//! in exactly that window. The counter restarts whenever the setting
//! changes.
//!
//! Only compiled with the `pg_test` feature (as `cargo pgrx test` builds
//! vdb); otherwise [`hit`] is an empty function and there is no setting.

#[cfg(feature = "pg_test")]
mod enabled {
    use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
    use std::cell::RefCell;
    use std::ffi::CString;

    static FAILPOINT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

    thread_local! {
        /// The setting the counter belongs to, and the hits counted.
        static HITS: RefCell<(String, u32)> = const { RefCell::new((String::new(), 0)) };
    }

    pub fn init() {
        GucRegistry::define_string_guc(
            c"vhnsw.failpoint",
            c"Test builds only: where to inject an ERROR or PANIC.",
            c"name[@n][:panic|:sleep]",
            &FAILPOINT,
            GucContext::Suset,
            GucFlags::default(),
        );
    }

    pub fn hit(name: &str) {
        let Some(setting) = FAILPOINT.get() else {
            return;
        };
        let setting = setting.to_string_lossy().into_owned();
        let (spec, action) = match setting.rsplit_once(':') {
            Some((spec, action)) => (spec, action),
            None => (setting.as_str(), "error"),
        };
        let (point, nth) = match spec.split_once('@') {
            Some((point, n)) => (point, n.parse::<u32>().unwrap_or(1)),
            None => (spec, 1),
        };
        if point != name {
            return;
        }
        let fire = HITS.with(|h| {
            let mut h = h.borrow_mut();
            if h.0 != setting {
                *h = (setting.clone(), 0);
            }
            h.1 += 1;
            h.1 == nth
        });
        if !fire {
            return;
        }
        if action == "sleep" {
            for _ in 0..300 {
                std::thread::sleep(std::time::Duration::from_millis(10));
                pgrx::check_for_interrupts!();
            }
            return;
        }
        if action == "panic" {
            // Every record written so far reaches the disk, as when power
            // fails right after the last one: recovery replays them all.
            // SAFETY: flushes WAL up to the current insert position.
            unsafe { pgrx::pg_sys::XLogFlush(pgrx::pg_sys::GetXLogInsertRecPtr()) };
            pgrx::pg_sys::panic::ErrorReport::new(
                pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("vhnsw failpoint {name}: crash"),
                "vdb",
            )
            .report(pgrx::PgLogLevel::PANIC);
        }
        pgrx::error!("vhnsw failpoint {name}");
    }
}

/// Registers `vhnsw.failpoint` (test builds only).
pub fn init() {
    #[cfg(feature = "pg_test")]
    enabled::init();
}

/// A failpoint: does nothing unless a test build's `vhnsw.failpoint`
/// names it.
#[inline]
pub fn hit(_name: &str) {
    #[cfg(feature = "pg_test")]
    enabled::hit(_name);
}
