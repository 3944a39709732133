//! Index options (`WITH (m = 16, ef_construction = 64)`) and the GUCs that
//! tune searches at run time.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};
use pgrx::pg_sys;
use std::sync::atomic::{AtomicU32, Ordering};

pub const M_DEFAULT: i32 = 16;
pub const M_MIN: i32 = 2;
pub const M_MAX: i32 = 100;
pub const EF_CONSTRUCTION_DEFAULT: i32 = 64;
pub const EF_CONSTRUCTION_MIN: i32 = 4;
pub const EF_CONSTRUCTION_MAX: i32 = 1000;
/// One bit per coded coordinate: at equal recall, 4–8× fewer page reads
/// than plain lists (see the README's Tuning section).
pub const CODE_BITS_DEFAULT: i32 = 1;
/// `max_nnz` of a sparsevec index: 0 means as many non-zeros as fit a
/// node in one page (999 at `m` = 16).
pub const MAX_NNZ_DEFAULT: i32 = 0;

/// `vhnsw.ef_search`: candidates kept by a search; more is slower and more
/// accurate.
pub static EF_SEARCH: GucSetting<i32> = GucSetting::<i32>::new(40);

/// `vhnsw.max_scan_tuples`: most index entries one scan examines when it
/// has to keep going (filters, large LIMITs).
pub static MAX_SCAN_TUPLES: GucSetting<i32> = GucSetting::<i32>::new(20_000);

/// `vhnsw.iterative_scan`, pgvector's `hnsw.iterative_scan` under vdb's
/// name, so that a ported application keeps its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PostgresGucEnum)]
pub enum IterativeScan {
    /// A scan stops after its first search: at most `ef_search` rows.
    #[name = c"off"]
    Off,
    /// A scan asked for more keeps searching, rows in exact distance
    /// order (vdb's default).
    #[name = c"strict_order"]
    StrictOrder,
    /// pgvector's rows-slightly-out-of-order mode; vdb's continued scans
    /// stay in exact order, so it behaves as `strict_order`.
    #[name = c"relaxed_order"]
    RelaxedOrder,
}

pub static ITERATIVE_SCAN: GucSetting<IterativeScan> =
    GucSetting::<IterativeScan>::new(IterativeScan::StrictOrder);

/// `vhnsw.pending_list_limit` (kB): a pending list larger than this keeps
/// the merge worker merging batch after batch instead of napping between
/// them.
///
/// This and the three settings below shape work every session shares (the
/// merge worker, back-pressure on inserts), so only a superuser (or
/// `ALTER SYSTEM`, `ALTER DATABASE`) may change them.
pub static PENDING_LIST_LIMIT: GucSetting<i32> = GucSetting::<i32>::new(512);

/// `vhnsw.pending_list_hard_limit` (kB): the pending-list size at which
/// inserting backends merge a batch themselves before returning. Every
/// query reads the whole list at exact distances, so this bounds what
/// pending rows add to each query (2 MB: about 1,300 384-d rows) and the
/// pages the list holds.
pub static PENDING_LIST_HARD_LIMIT: GucSetting<i32> = GucSetting::<i32>::new(2_048);

/// `vhnsw.merge_batch_size`: entries one merge batch moves into the graph.
pub static MERGE_BATCH_SIZE: GucSetting<i32> = GucSetting::<i32>::new(2_000);

/// `vhnsw.merge_worker_nice`: the scheduling priority (as `nice`) merge
/// workers run at, so that on a busy server queries go first; an insert
/// that finds the list at the hard limit merges at its own priority.
pub static MERGE_WORKER_NICE: GucSetting<i32> = GucSetting::<i32>::new(10);

/// Most entries one batch of a merge worker takes: a worker running at a
/// low priority holds the graph lock for a batch, and an insert under
/// back-pressure waits for that lock.
pub const WORKER_BATCH_MAX: usize = 256;

/// `vhnsw.merge_naptime` (ms): how long a merge worker waits before its
/// first batch, and between batches while the list is below the limit.
pub static MERGE_NAPTIME: GucSetting<i32> = GucSetting::<i32>::new(500);

static RELOPT_KIND: AtomicU32 = AtomicU32::new(0);

/// Parsed reloptions, laid out as `build_reloptions` fills them.
#[repr(C)]
struct RawOptions {
    vl_len_: i32,
    m: i32,
    ef_construction: i32,
    code_bits: i32,
    max_nnz: i32,
    ef_search: i32,
}

/// An index's options, defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexOptions {
    pub m: usize,
    pub ef_construction: usize,
    /// Bits per coded coordinate in level-0 lists (0: no codes), if set.
    pub code_bits: Option<u8>,
    /// Non-zeros a sparsevec index's node holds (0: a page's worth).
    pub max_nnz: usize,
    /// The index's own `ef_search` (0: none), for searches whose session
    /// did not set `vhnsw.ef_search`.
    pub ef_search: usize,
}

/// Registers the GUCs and the reloptions; called from `_PG_init`.
pub fn init() {
    GucRegistry::define_int_guc(
        c"vhnsw.ef_search",
        c"Sets the size of the candidate list of vhnsw searches.",
        c"Larger values give better recall and slower queries. Valid range is 1..1000.",
        &EF_SEARCH,
        1,
        EF_SEARCH_MAX,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"vhnsw.max_scan_tuples",
        c"Sets the most index entries a vhnsw scan examines when it has to keep going.",
        c"Bounds scans that need more rows than ef_search (filters, large LIMITs).",
        &MAX_SCAN_TUPLES,
        1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"vhnsw.iterative_scan",
        c"Sets whether a vhnsw scan keeps searching when it needs more rows.",
        c"off: at most ef_search rows, as pgvector's default; strict_order (the default) and relaxed_order: keep going, in exact distance order, up to vhnsw.max_scan_tuples.",
        &ITERATIVE_SCAN,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"vhnsw.pending_list_limit",
        c"Sets the pending-list size above which a merge worker merges without napping.",
        c"Scans read the whole pending list, so a longer list makes queries slower.",
        &PENDING_LIST_LIMIT,
        PENDING_LIMIT_MIN_KB,
        PENDING_LIMIT_MAX_KB,
        GucContext::Suset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_int_guc(
        c"vhnsw.pending_list_hard_limit",
        c"Sets the pending-list size at which inserts merge a batch themselves.",
        c"Back-pressure: an insert into a list this large waits for a merge batch instead of growing it.",
        &PENDING_LIST_HARD_LIMIT,
        PENDING_LIMIT_MIN_KB,
        PENDING_LIMIT_MAX_KB,
        GucContext::Suset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_int_guc(
        c"vhnsw.merge_batch_size",
        c"Sets how many pending entries one merge batch moves into the graph.",
        c"",
        &MERGE_BATCH_SIZE,
        1,
        1_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"vhnsw.merge_worker_nice",
        c"Sets the scheduling priority (nice value) of vdb merge workers.",
        c"0 runs them as any backend; higher values leave the CPU to queries first. Applies to workers started after the change.",
        &MERGE_WORKER_NICE,
        0,
        19,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"vhnsw.merge_naptime",
        c"Sets how long a merge worker waits before and between batches.",
        c"",
        &MERGE_NAPTIME,
        1,
        3_600_000,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    // SAFETY: called once per backend from _PG_init, before any index is
    // opened; the reloption strings are static.
    unsafe {
        pg_sys::MarkGUCPrefixReserved(c"vhnsw".as_ptr());
        let kind = pg_sys::add_reloption_kind();
        RELOPT_KIND.store(kind, Ordering::Relaxed);
        pg_sys::add_int_reloption(
            kind,
            c"m".as_ptr(),
            c"Max number of neighbours per node and level (2m on level 0)".as_ptr(),
            M_DEFAULT,
            M_MIN,
            M_MAX,
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        );
        pg_sys::add_int_reloption(
            kind,
            c"ef_construction".as_ptr(),
            c"Size of the candidate list while building the graph".as_ptr(),
            EF_CONSTRUCTION_DEFAULT,
            EF_CONSTRUCTION_MIN,
            EF_CONSTRUCTION_MAX,
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        );
        pg_sys::add_int_reloption(
            kind,
            c"code_bits".as_ptr(),
            c"Bits per coordinate of the neighbour codes in level-0 lists (0, 1, 2, 4 or 8; 0: no codes; default 1, 0 under inner product)".as_ptr(),
            -1,
            -1,
            8,
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        );
        pg_sys::add_int_reloption(
            kind,
            c"max_nnz".as_ptr(),
            c"Non-zero elements a sparsevec index holds per vector (0: as many as fit a page)"
                .as_ptr(),
            MAX_NNZ_DEFAULT,
            0,
            crate::sparsevec::MAX_NNZ as i32,
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        );
        // Read by searches only: ALTER INDEX ... SET need not stop them.
        pg_sys::add_int_reloption(
            kind,
            c"ef_search".as_ptr(),
            c"ef_search of searches whose session did not set vhnsw.ef_search (0: the setting's default)"
                .as_ptr(),
            0,
            0,
            EF_SEARCH_MAX,
            pg_sys::ShareUpdateExclusiveLock as pg_sys::LOCKMODE,
        );
    }
}

/// `amoptions`: parses and validates the reloptions.
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn amoptions(
    reloptions: pg_sys::Datum,
    validate: bool,
) -> *mut pg_sys::bytea {
    let table = [
        pg_sys::relopt_parse_elt {
            optname: c"m".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_INT,
            offset: std::mem::offset_of!(RawOptions, m) as i32,
        },
        pg_sys::relopt_parse_elt {
            optname: c"ef_construction".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_INT,
            offset: std::mem::offset_of!(RawOptions, ef_construction) as i32,
        },
        pg_sys::relopt_parse_elt {
            optname: c"code_bits".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_INT,
            offset: std::mem::offset_of!(RawOptions, code_bits) as i32,
        },
        pg_sys::relopt_parse_elt {
            optname: c"max_nnz".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_INT,
            offset: std::mem::offset_of!(RawOptions, max_nnz) as i32,
        },
        pg_sys::relopt_parse_elt {
            optname: c"ef_search".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_INT,
            offset: std::mem::offset_of!(RawOptions, ef_search) as i32,
        },
    ];
    // SAFETY: build_reloptions fills a palloc'd RawOptions from the table;
    // out-of-range values raise ERROR when validate is true.
    let parsed: *mut RawOptions = unsafe {
        pg_sys::build_reloptions(
            reloptions,
            validate,
            RELOPT_KIND.load(Ordering::Relaxed),
            std::mem::size_of::<RawOptions>(),
            table.as_ptr(),
            table.len() as i32,
        )
        .cast()
    };
    // SAFETY: null or the options just parsed.
    if let Some(o) = unsafe { parsed.as_ref() } {
        if validate && !matches!(o.code_bits, -1 | 0 | 1 | 2 | 4 | 8) {
            crate::fmgr::raise(crate::error::SqlError::invalid_parameter(format!(
                "code_bits must be 0, 1, 2, 4 or 8, not {}",
                o.code_bits
            )));
        }
    }
    parsed.cast()
}

impl IndexOptions {
    /// The code bits an index of `metric` gets: the option if set, else
    /// 1, but none under inner product. There the codes steer the search
    /// badly (measured on unnormalised GloVe-50: a query read 2,940
    /// buffers with codes, 677 without, at the same recall) and cost speed
    /// instead of saving it.
    pub fn code_bits_for(&self, metric: vdb_core::hnsw::Metric) -> u8 {
        self.code_bits.unwrap_or(if metric.is_inner_product() {
            0
        } else {
            CODE_BITS_DEFAULT as u8
        })
    }
}

/// An index's options, defaults filled in.
pub fn index_options(index: crate::storage::Index) -> IndexOptions {
    // SAFETY: rd_options is null or the RawOptions amoptions returned.
    let raw = unsafe { (*index.raw()).rd_options.cast::<RawOptions>().as_ref() };
    let (m, efc, bits, max_nnz, ef_search) = raw.map_or(
        (M_DEFAULT, EF_CONSTRUCTION_DEFAULT, -1, MAX_NNZ_DEFAULT, 0),
        |o| (o.m, o.ef_construction, o.code_bits, o.max_nnz, o.ef_search),
    );
    IndexOptions {
        m: m as usize,
        ef_construction: efc as usize,
        // amoptions refused anything else.
        // amoptions refused anything else; -1 is the default.
        code_bits: matches!(bits, 0 | 1 | 2 | 4 | 8).then_some(bits as u8),
        max_nnz: usize::try_from(max_nnz).unwrap_or(0),
        ef_search: usize::try_from(ef_search).unwrap_or(0),
    }
}

/// The `ef_search` of a search of `index` without a hint: the session's
/// `vhnsw.ef_search` where something set it (SET, SET LOCAL, ALTER ROLE or
/// DATABASE, the configuration file), else the index's own `ef_search`,
/// else the setting's built-in default. An index's option reaches Citus
/// shards (their indexes are made with the same options), where a
/// coordinator's SET does not.
pub fn ef_search_for(index: crate::storage::Index) -> usize {
    let own = index_options(index).ef_search;
    if own > 0 && !ef_search_was_set() {
        own
    } else {
        EF_SEARCH.get().max(1) as usize
    }
}

/// Whether `vhnsw.ef_search` has a value from anywhere but its default.
fn ef_search_was_set() -> bool {
    use std::sync::atomic::AtomicPtr;
    // The setting's record lives as long as the backend once defined.
    static RECORD: AtomicPtr<pg_sys::config_generic> = AtomicPtr::new(std::ptr::null_mut());
    let mut record = RECORD.load(Ordering::Relaxed);
    if record.is_null() {
        // SAFETY: the array holds GetNumConfigOptions() valid records;
        // `name` is a NUL-terminated string of each.
        record = unsafe {
            let all = pg_sys::get_guc_variables();
            let n = usize::try_from(pg_sys::GetNumConfigOptions()).unwrap_or(0);
            (0..n)
                .map(|i| *all.add(i))
                .find(|&r| std::ffi::CStr::from_ptr((*r).name) == c"vhnsw.ef_search")
                .unwrap_or(std::ptr::null_mut())
        };
        RECORD.store(record, Ordering::Relaxed);
    }
    // SAFETY: null or the setting's record, found above.
    unsafe { record.as_ref() }.is_some_and(|r| r.source != pg_sys::GucSource::PGC_S_DEFAULT)
}

/// Whether scans keep searching past their first round.
pub fn iterative() -> bool {
    ITERATIVE_SCAN.get() != IterativeScan::Off
}

pub fn max_scan_tuples() -> usize {
    MAX_SCAN_TUPLES.get().max(1) as usize
}

/// One page: a list is never smaller.
const PENDING_LIMIT_MIN_KB: i32 = 8;
/// As `gin_pending_list_limit`'s largest.
const PENDING_LIMIT_MAX_KB: i32 = i32::MAX / 1024;

/// `vhnsw.pending_list_limit` in bytes.
pub fn pending_limit() -> usize {
    PENDING_LIST_LIMIT.get().max(PENDING_LIMIT_MIN_KB) as usize * 1024
}

/// `vhnsw.pending_list_hard_limit` in bytes.
pub fn pending_hard_limit() -> usize {
    PENDING_LIST_HARD_LIMIT.get().max(PENDING_LIMIT_MIN_KB) as usize * 1024
}

pub fn merge_batch_size() -> usize {
    MERGE_BATCH_SIZE.get().max(1) as usize
}

pub fn merge_worker_nice() -> i32 {
    MERGE_WORKER_NICE.get().clamp(0, 19)
}

pub fn merge_naptime() -> std::time::Duration {
    std::time::Duration::from_millis(MERGE_NAPTIME.get().max(1) as u64)
}

/// The largest `ef_search`, from the GUC or a search hint.
pub const EF_SEARCH_MAX: i32 = 1000;

/// A search hint's `ef_search` (`embedding <^> 200`), checked.
pub fn hinted_ef_search(value: i32) -> crate::error::SqlResult<usize> {
    if (1..=EF_SEARCH_MAX).contains(&value) {
        Ok(value as usize)
    } else {
        Err(crate::error::SqlError::invalid_parameter(format!(
            "ef_search hint {value} is out of range (1 to {EF_SEARCH_MAX})"
        )))
    }
}

crate::fmgr::pg_fn! {
    /// `vhnsw_ef_search_hint(vector, integer) RETURNS boolean`, operator
    /// `<^>`: true for any row; only a vhnsw scan reads its right side.
    fn vdb_vhnsw_ef_search_hint(args) {
        hinted_ef_search(args.int32(1))?;
        Ok(pg_sys::Datum::from(true))
    }
}

crate::fmgr::pg_fn! {
    /// The restriction estimator of `<^>`: the hint filters nothing.
    fn vdb_vhnsw_hint_selectivity(_args) {
        Ok(crate::fmgr::float8_datum(1.0))
    }
}
