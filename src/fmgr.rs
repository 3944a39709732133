//! The boundary with Postgres's function manager (the "V1" calling
//! convention): argument unboxing, result boxing, and turning a
//! [`SqlError`] into an `ERROR`.
//!
//! vdb declares its SQL surface by hand in `sql/vdb.sql`, exactly as pgvector
//! does, and implements each C symbol with [`pg_fn!`]. This keeps the SQL
//! under our control (pgvector-compatible names, typmods, casts, operator
//! classes) and keeps every `unsafe` datum access in this one module: the
//! bodies work on plain slices and return `SqlResult`.

use crate::error::{SqlError, SqlResult, SqlState};
use crate::vector::{HEADER_SIZE, MAX_DIM};
use pgrx::pg_sys::{self, Datum, FunctionCallInfo};
use pgrx::PgSqlErrorCode;
use std::ffi::CStr;
use std::marker::PhantomData;

/// Defines a C function `$name` callable from SQL with the V1 convention.
///
/// The body is evaluated with `$args` bound to [`Args`] and must produce a
/// `SqlResult<Datum>`; an `Err` becomes an `ERROR` with its SQLSTATE.
/// The SQL declaration in `sql/vdb.sql` is the contract for the argument
/// types the body reads.
macro_rules! pg_fn {
    ($(#[$meta:meta])* fn $name:ident($args:ident) $body:block) => {
        ::paste::paste! {
            #[unsafe(no_mangle)]
            #[doc(hidden)]
            pub extern "C" fn [<pg_finfo_ $name>]() -> &'static ::pgrx::pg_sys::Pg_finfo_record {
                const V1: ::pgrx::pg_sys::Pg_finfo_record =
                    ::pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
                &V1
            }
        }

        $(#[$meta])*
        ///
        /// # Safety
        /// Only Postgres's fmgr calls this, with the arguments `sql/vdb.sql` declares.
        #[::pgrx::pg_guard]
        #[unsafe(no_mangle)]
        pub unsafe extern "C-unwind" fn $name(
            fcinfo: ::pgrx::pg_sys::FunctionCallInfo,
        ) -> ::pgrx::pg_sys::Datum {
            fn body($args: $crate::fmgr::Args<'_>) -> $crate::error::SqlResult<::pgrx::pg_sys::Datum> $body
            // SAFETY: Postgres calls this symbol through fmgr with a valid
            // fcinfo whose arguments have the types sql/vdb.sql declares.
            let args = unsafe { $crate::fmgr::Args::new(fcinfo) };
            $crate::fmgr::finish(body(args))
        }
    };
}
pub(crate) use pg_fn;

/// Returns the datum, or raises the error as a Postgres `ERROR`.
pub fn finish(result: SqlResult<Datum>) -> Datum {
    match result {
        Ok(datum) => datum,
        Err(err) => raise(err),
    }
}

/// Raises `err` as a Postgres `ERROR`; does not return.
pub fn raise(err: SqlError) -> ! {
    let mut report = pgrx::pg_sys::panic::ErrorReport::new(errcode(err.state), err.message, "vdb");
    if let Some(detail) = err.detail {
        report = report.set_detail(detail);
    }
    if let Some(hint) = err.hint {
        report = report.set_hint(hint);
    }
    report.report(pgrx::PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

fn errcode(state: SqlState) -> PgSqlErrorCode {
    match state {
        SqlState::DataException => PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
        SqlState::InvalidTextRepresentation => PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
        SqlState::InvalidBinaryRepresentation => {
            PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION
        }
        SqlState::NumericValueOutOfRange => PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
        SqlState::NullValueNotAllowed => PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
        SqlState::InvalidParameterValue => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        SqlState::ProgramLimitExceeded => PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        SqlState::FeatureNotSupported => PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        SqlState::InsufficientPrivilege => PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        SqlState::WrongObjectType => PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
        SqlState::ReadOnlySqlTransaction => PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
        SqlState::ObjectNotInPrerequisiteState => {
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
        }
        SqlState::OutOfMemory => PgSqlErrorCode::ERRCODE_OUT_OF_MEMORY,
        SqlState::IndexCorrupted => PgSqlErrorCode::ERRCODE_INDEX_CORRUPTED,
        SqlState::Internal => PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
    }
}

/// The arguments of one function call.
pub struct Args<'fcx> {
    fcinfo: FunctionCallInfo,
    _call: PhantomData<&'fcx ()>,
}

impl<'fcx> Args<'fcx> {
    /// # Safety
    /// `fcinfo` must be the valid call info of the current call, and the
    /// accessors used must match the argument types declared in SQL.
    pub unsafe fn new(fcinfo: FunctionCallInfo) -> Self {
        Args {
            fcinfo,
            _call: PhantomData,
        }
    }

    fn arg(&self, i: usize) -> pg_sys::NullableDatum {
        // SAFETY: fcinfo is valid for the call (see `new`); nargs bounds the slice.
        unsafe {
            let fc = &*self.fcinfo;
            let args = fc.args.as_slice(fc.nargs as usize);
            match args.get(i) {
                Some(arg) => *arg,
                None => raise(SqlError::internal(format!(
                    "function called without argument {i}"
                ))),
            }
        }
    }

    pub fn datum(&self, i: usize) -> Datum {
        self.arg(i).value
    }

    pub fn is_null(&self, i: usize) -> bool {
        self.arg(i).isnull
    }

    pub fn int32(&self, i: usize) -> i32 {
        self.datum(i).value() as i32
    }

    pub fn float8(&self, i: usize) -> f64 {
        f64::from_bits(self.datum(i).value() as u64)
    }

    /// A `cstring` argument.
    pub fn cstring(&self, i: usize) -> &'fcx CStr {
        // SAFETY: the SQL declaration says this argument is a non-null cstring.
        unsafe { CStr::from_ptr(self.datum(i).cast_mut_ptr::<std::ffi::c_char>()) }
    }

    /// A `vector` argument, detoasted, as its elements.
    pub fn vector(&self, i: usize) -> SqlResult<&'fcx [f32]> {
        Ok(self.detoasted_vector(i)?.1)
    }

    /// A `vector` argument as its detoasted datum and its elements.
    pub fn detoasted_vector(&self, i: usize) -> SqlResult<(Datum, &'fcx [f32])> {
        let datum = self.datum(i);
        // SAFETY: the argument is a non-null `vector` (every vdb function
        // taking one is STRICT); detoasting yields a 4-byte-header copy or
        // the original in-line value, valid for the rest of the call.
        unsafe {
            let ptr = pg_sys::pg_detoast_datum(datum.cast_mut_ptr());
            Ok((Datum::from(ptr), vector_elements(ptr)?))
        }
    }

    /// An `internal` argument that is a `StringInfo` (binary receive).
    pub fn string_info(&self, i: usize) -> &'fcx mut pg_sys::StringInfoData {
        // SAFETY: receive functions get a valid StringInfo as argument 0.
        unsafe { &mut *self.datum(i).cast_mut_ptr::<pg_sys::StringInfoData>() }
    }

    /// An array argument, detoasted.
    pub fn array(&self, i: usize) -> *mut pg_sys::ArrayType {
        // SAFETY: the argument is a non-null array (STRICT function).
        unsafe { pg_sys::pg_detoast_datum(self.datum(i).cast_mut_ptr()).cast() }
    }

    /// A typmod list (`cstring[]`), as a type's `typmod_in` gets it.
    pub fn integer_typmods(&self, i: usize) -> Vec<i32> {
        let mut n: std::ffi::c_int = 0;
        // SAFETY: the argument is a detoasted cstring[]; ArrayGetIntegerTypmods
        // returns a palloc'd array of `n` int32 (raising ERROR on non-integers).
        unsafe {
            let ptr = pg_sys::ArrayGetIntegerTypmods(self.array(i), &mut n);
            match usize::try_from(n) {
                Ok(n) if n > 0 => std::slice::from_raw_parts(ptr, n).to_vec(),
                _ => Vec::new(),
            }
        }
    }

    /// Whether the call comes from an aggregate, which lets a transition
    /// function update its state in place.
    pub fn in_aggregate(&self) -> bool {
        // SAFETY: fcinfo is valid; a null out-pointer is allowed.
        unsafe { pg_sys::AggCheckCallContext(self.fcinfo, std::ptr::null_mut()) != 0 }
    }

    /// Marks the result SQL NULL.
    pub fn return_null(&self) -> Datum {
        // SAFETY: fcinfo is valid for the call.
        unsafe { (*self.fcinfo).isnull = true };
        Datum::null()
    }
}

/// The elements of a (possibly toasted) `vector` datum; a detoasted copy
/// lives in the current memory context.
///
/// # Safety
/// `datum` must be a non-null `vector` value valid for `'a`.
pub unsafe fn detoast_vector<'a>(datum: Datum) -> SqlResult<&'a [f32]> {
    // SAFETY: (caller) datum is a vector; detoasting yields a valid varlena.
    unsafe { vector_elements(pg_sys::pg_detoast_datum(datum.cast_mut_ptr())) }
}

/// Reads a detoasted `vector` varlena as a slice of its elements.
///
/// # Safety
/// `ptr` must point to a detoasted varlena that stays valid for `'a`.
pub(crate) unsafe fn vector_elements<'a>(ptr: *const pg_sys::varlena) -> SqlResult<&'a [f32]> {
    // SAFETY: (caller) ptr is a detoasted varlena, so it has a 4-byte header.
    let total = unsafe { pgrx::varlena::varsize_4b(ptr) };
    let dim = unsafe { ptr.cast::<u8>().add(4).cast::<i16>().read_unaligned() };
    let dim = usize::try_from(dim).unwrap_or(0);
    let aligned = (ptr as usize).is_multiple_of(std::mem::align_of::<f32>());
    if dim == 0 || dim > MAX_DIM || total != HEADER_SIZE + 4 * dim || !aligned {
        return Err(SqlError::internal(format!(
            "corrupt vector value: {total} bytes for {dim} dimensions"
        )));
    }
    // SAFETY: the size check above proves the elements lie inside the value,
    // and the pointer is 4-byte aligned.
    Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>().add(HEADER_SIZE).cast(), dim) })
}

/// A fresh `vector` value in the current memory context.
pub struct NewVector {
    ptr: *mut u8,
    dim: usize,
}

impl NewVector {
    /// A zero-filled vector of `dim` elements; `dim` must already be checked.
    pub fn zeroed(dim: usize) -> Self {
        debug_assert!((1..=MAX_DIM).contains(&dim));
        let size = HEADER_SIZE + 4 * dim;
        // SAFETY: palloc0 returns MAXALIGNed zeroed memory or raises ERROR;
        // the header writes stay inside the `size` bytes allocated.
        unsafe {
            let ptr = pg_sys::palloc0(size).cast::<u8>();
            pgrx::varlena::set_varsize_4b(ptr.cast(), size as i32);
            ptr.add(4).cast::<i16>().write(dim as i16);
            NewVector { ptr, dim }
        }
    }

    pub fn from_slice(values: &[f32]) -> Self {
        let mut v = Self::zeroed(values.len());
        v.values_mut().copy_from_slice(values);
        v
    }

    pub fn values_mut(&mut self) -> &mut [f32] {
        // SAFETY: the allocation holds `dim` aligned f32 after the header.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(HEADER_SIZE).cast(), self.dim) }
    }

    pub fn into_datum(self) -> Datum {
        Datum::from(self.ptr)
    }
}

/// A `float8` result.
pub fn float8_datum(x: f64) -> Datum {
    Datum::from(x.to_bits())
}

/// A `bytea` result holding `bytes`.
pub fn bytea_datum(bytes: &[u8]) -> Datum {
    let size = pg_sys::VARHDRSZ + bytes.len();
    // SAFETY: palloc returns `size` writable bytes or raises ERROR.
    unsafe {
        let ptr = pg_sys::palloc(size).cast::<u8>();
        pgrx::varlena::set_varsize_4b(ptr.cast(), size as i32);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.add(pg_sys::VARHDRSZ), bytes.len());
        Datum::from(ptr)
    }
}

/// A `cstring` result, palloc'd.
pub fn cstring_datum(s: &str) -> Datum {
    // SAFETY: palloc returns len + 1 writable bytes or raises ERROR.
    unsafe {
        let ptr = pg_sys::palloc(s.len() + 1).cast::<u8>();
        std::ptr::copy_nonoverlapping(s.as_ptr(), ptr, s.len());
        ptr.add(s.len()).write(0);
        Datum::from(ptr)
    }
}

/// A `bit(n)` result: `bits` packed most significant bit first, `len` bits.
pub fn bit_datum(bits: &[u8], len: usize) -> Datum {
    let size = pg_sys::VARHDRSZ + 4 + bits.len();
    // SAFETY: palloc0 returns `size` writable bytes or raises ERROR; VarBit
    // is a varlena header, an int32 bit count, then the bytes.
    unsafe {
        let ptr = pg_sys::palloc0(size).cast::<u8>();
        pgrx::varlena::set_varsize_4b(ptr.cast(), size as i32);
        ptr.add(pg_sys::VARHDRSZ).cast::<i32>().write(len as i32);
        std::ptr::copy_nonoverlapping(bits.as_ptr(), ptr.add(pg_sys::VARHDRSZ + 4), bits.len());
        Datum::from(ptr)
    }
}

unsafe extern "C" {
    /// PostgreSQL's Ryu-based `float4` output (`src/common/f2s.c`), which the
    /// server exports; writes at most `FLOAT_SHORTEST_DECIMAL_LEN - 1` bytes
    /// without a terminator and returns their count.
    fn float_to_shortest_decimal_bufn(f: f32, result: *mut std::ffi::c_char) -> std::ffi::c_int;
}

/// Appends `x` exactly as PostgreSQL prints a `real`: the shortest decimal
/// that reads back to the same value, `1e-05`/`1.234567e+06` style.
pub fn push_real(out: &mut Vec<u8>, x: f32) {
    const FLOAT_SHORTEST_DECIMAL_LEN: usize = 16;
    let mut buf = [0u8; FLOAT_SHORTEST_DECIMAL_LEN];
    // SAFETY: the function writes at most FLOAT_SHORTEST_DECIMAL_LEN - 1
    // bytes into buf and has no other effect.
    let n = unsafe { float_to_shortest_decimal_bufn(x, buf.as_mut_ptr().cast()) };
    out.extend_from_slice(&buf[..usize::try_from(n).unwrap_or(0).min(buf.len())]);
}

/// A `text` result.
pub fn text_datum(s: &str) -> Datum {
    bytea_datum(s.as_bytes())
}
