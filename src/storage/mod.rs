//! How a `vhnsw` index is stored: the page layout ([`layout`]), guarded
//! buffer access with WAL ([`buffer`]), the metapage ([`meta`]), the graph
//! over pages ([`graph`], read side), its one writer ([`writer`], with the
//! crash-ordering rules) and allocation ([`alloc`]), and the pending list
//! ([`pending`]), the rows the graph cannot hold ([`unindexed`]), and the
//! reset of an index VACUUM left empty ([`reset`]).

mod alloc;
pub mod buffer;
pub mod filter;
pub mod graph;
pub mod layout;
pub mod meta;
pub mod pending;
pub mod reset;
pub mod unindexed;
pub mod values;
pub mod writer;

use pgrx::pg_sys;

/// An open index relation. Made once at the access-method boundary, where
/// Postgres guarantees the relation stays open for the whole call; every
/// storage function takes this instead of a raw pointer.
#[derive(Debug, Clone, Copy)]
pub struct Index(pg_sys::Relation);

impl Index {
    /// # Safety
    /// `rel` must be an open index relation that stays open for as long as
    /// the returned value (and copies of it) are used.
    pub unsafe fn new(rel: pg_sys::Relation) -> Index {
        Index(rel)
    }

    pub fn raw(self) -> pg_sys::Relation {
        self.0
    }

    /// The index's name, for messages.
    pub fn name(self) -> String {
        // SAFETY: an open relation has its pg_class row in rd_rel; relname
        // is a NUL-terminated NameData.
        unsafe {
            std::ffi::CStr::from_ptr((*(*self.0).rd_rel).relname.data.as_ptr())
                .to_string_lossy()
                .into_owned()
        }
    }
}
