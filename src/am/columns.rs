//! The filter columns of a composite index (`USING vhnsw (embedding
//! vector_cosine_ops, tenant_id, labels)`): what each holds, a row's values
//! as the words stored with its node (`storage::filter`), and a scan's
//! conditions on them as a [`Filter`].

use super::validate::{
    FILTER_CONTAINS, FILTER_EQ, FILTER_GE, FILTER_GT, FILTER_LE, FILTER_LT, FILTER_MEMBER,
    FILTER_OVERLAPS,
};
use crate::error::{SqlError, SqlResult};
use crate::fmgr::pg_fn;
use crate::storage::filter::{hash_bytes, int_bit, text_bit, Condition, Filter, Kind, Test};
use crate::storage::layout::{filter_words, MAX_FILTER_COLS};
use crate::storage::Index;
use pgrx::pg_sys::{self, Datum, Oid};

/// The filter columns of an index, in order.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    kinds: Vec<Kind>,
    types: Vec<Oid>,
}

fn kind_of(typ: Oid) -> Option<Kind> {
    Some(match typ {
        pg_sys::INT2OID | pg_sys::INT4OID | pg_sys::INT8OID => Kind::Int,
        pg_sys::BOOLOID => Kind::Bool,
        pg_sys::TEXTOID | pg_sys::VARCHAROID => Kind::Text,
        pg_sys::UUIDOID => Kind::Uuid,
        pg_sys::INT4ARRAYOID | pg_sys::INT8ARRAYOID => Kind::IntArray,
        pg_sys::TEXTARRAYOID => Kind::TextArray,
        _ => return None,
    })
}

impl Columns {
    /// The filter columns of `index` (its columns after the first), or an
    /// error if the vector is not first or a column is of no filter type.
    pub fn of(index: Index) -> SqlResult<Columns> {
        // SAFETY: an open index has a tuple descriptor of natts attributes.
        let types: Vec<Oid> = unsafe {
            let desc = &*(*index.raw()).rd_att;
            desc.attrs
                .as_slice(desc.natts as usize)
                .iter()
                .map(|a| a.atttypid)
                .collect()
        };
        if types.first().copied().and_then(kind_of).is_some() {
            return Err(SqlError::feature(
                "the first column of a vhnsw index must be the vector column",
            )
            .with_detail("Put the filter columns after it: USING vhnsw (embedding vector_l2_ops, tenant_id)."));
        }
        let filters = types.get(1..).unwrap_or_default();
        if filters.len() > MAX_FILTER_COLS {
            return Err(SqlError::feature(format!(
                "a vhnsw index can have at most {MAX_FILTER_COLS} filter columns"
            )));
        }
        let kinds = filters
            .iter()
            .map(|&t| {
                kind_of(t).ok_or_else(|| {
                    SqlError::feature(
                        "a vhnsw index has one vector column, then filter columns of type int2, int4, int8, bool, text, uuid, int4[], int8[] or text[]",
                    )
                })
            })
            .collect::<SqlResult<Vec<Kind>>>()?;
        Ok(Columns {
            kinds,
            types: filters.to_vec(),
        })
    }

    /// The filter columns recorded in a metapage.
    pub fn codes(&self) -> Vec<u8> {
        self.kinds.iter().map(|&k| k as u8).collect()
    }

    /// Words per node (0 without filter columns).
    pub fn words_len(&self) -> usize {
        filter_words(self.kinds.len())
    }

    /// A row's filter words: NULL flags, then a word per column.
    ///
    /// # Safety
    /// `values` and `isnull` hold one entry per index column, of the
    /// index's column types.
    pub unsafe fn words(&self, values: *const Datum, isnull: *const bool) -> Vec<u64> {
        if self.kinds.is_empty() {
            return Vec::new();
        }
        let mut words = vec![0u64; self.words_len()];
        for (c, (&kind, &typ)) in self.kinds.iter().zip(&self.types).enumerate() {
            // SAFETY: (caller) column c + 1 exists.
            let (value, null) = unsafe { (*values.add(c + 1), *isnull.add(c + 1)) };
            if null {
                words[0] |= 1 << c;
            } else {
                // SAFETY: a non-NULL value of the column's type.
                words[c + 1] = unsafe { encode(kind, typ, value) };
            }
        }
        words
    }

    /// The scan's conditions on filter columns (`sk_attno` ≥ 2), and
    /// whether the executor must recheck them (hashes and signatures can
    /// only rule rows out).
    pub fn filter(&self, keys: &[pg_sys::ScanKeyData]) -> (Filter, bool) {
        let mut filter = Filter::default();
        let mut recheck = false;
        for key in keys {
            let Some(col) = usize::try_from(key.sk_attno - 2).ok() else {
                continue;
            };
            let (Some(&kind), Some(&typ)) = (self.kinds.get(col), self.types.get(col)) else {
                continue;
            };
            recheck |= !kind.exact();
            // SAFETY: the key's argument has the operator's right-hand type.
            let test = unsafe { condition(kind, typ, key) };
            if let Some(test) = test {
                filter.conditions.push(Condition { col, test });
            }
        }
        filter.simplify();
        (filter, recheck)
    }
}

/// A non-NULL value's stored word.
///
/// # Safety
/// `value` is a non-NULL datum of type `typ`.
unsafe fn encode(kind: Kind, typ: Oid, value: Datum) -> u64 {
    // SAFETY: (caller) the datum is of the type named.
    unsafe {
        match kind {
            Kind::Int => int_value(typ, value) as u64,
            Kind::Bool => u64::from(value.value() & 0xff != 0),
            Kind::Text => hash_bytes(text_bytes(value)),
            Kind::Uuid => hash_bytes(std::slice::from_raw_parts(value.cast_mut_ptr::<u8>(), 16)),
            Kind::IntArray => elements(value)
                .iter()
                .fold(0, |sig, &(t, e)| sig | int_bit(int_value(t, e))),
            Kind::TextArray => elements(value)
                .iter()
                .fold(0, |sig, &(_, e)| sig | text_bit(text_bytes(e))),
        }
    }
}

/// An integer datum of type `typ` (int2, int4 or int8) as an `i64`.
fn int_value(typ: Oid, value: Datum) -> i64 {
    match typ {
        pg_sys::INT2OID => value.value() as i16 as i64,
        pg_sys::INT4OID => value.value() as i32 as i64,
        _ => value.value() as i64,
    }
}

/// The bytes of a text datum.
///
/// # Safety
/// `value` is a non-NULL text (or varchar) datum.
unsafe fn text_bytes<'a>(value: Datum) -> &'a [u8] {
    // SAFETY: (caller) a varlena; detoasting yields one valid for the call.
    unsafe {
        let v = pg_sys::pg_detoast_datum_packed(value.cast_mut_ptr());
        pgrx::varlena::varlena_to_byte_slice(v)
    }
}

/// The non-NULL elements of an array datum, with their type.
///
/// # Safety
/// `value` is a non-NULL array datum.
unsafe fn elements(value: Datum) -> Vec<(Oid, Datum)> {
    // SAFETY: (caller) an array; deconstruct_array allocates in the
    // current memory context.
    unsafe {
        let array = pg_sys::pg_detoast_datum(value.cast_mut_ptr()).cast::<pg_sys::ArrayType>();
        let elem = (*array).elemtype;
        let (mut len, mut byval, mut align) = (0i16, false, 0 as std::ffi::c_char);
        pg_sys::get_typlenbyvalalign(elem, &mut len, &mut byval, &mut align);
        let mut datums: *mut Datum = std::ptr::null_mut();
        let mut nulls: *mut bool = std::ptr::null_mut();
        let mut n = 0;
        pg_sys::deconstruct_array(
            array,
            elem,
            i32::from(len),
            byval,
            align,
            &mut datums,
            &mut nulls,
            &mut n,
        );
        let n = usize::try_from(n).unwrap_or(0);
        (0..n)
            .filter(|&i| !*nulls.add(i))
            .map(|i| (elem, *datums.add(i)))
            .collect()
    }
}

/// The test a scan key puts on its column, `None` if it cannot narrow
/// anything (the executor still checks it).
///
/// # Safety
/// `key`'s argument is of the operator's right-hand type (an array of it
/// with `SK_SEARCHARRAY`).
unsafe fn condition(kind: Kind, typ: Oid, key: &pg_sys::ScanKeyData) -> Option<Test> {
    if key.sk_flags & pg_sys::SK_ISNULL as i32 != 0 {
        return Some(Test::Never);
    }
    let strategy = key.sk_strategy as i16;
    let arg_type = if key.sk_subtype == pg_sys::InvalidOid {
        typ
    } else {
        key.sk_subtype
    };
    // SAFETY: (caller) the argument's type is as described.
    unsafe {
        if matches!(kind, Kind::IntArray | Kind::TextArray) {
            let sig = elements(key.sk_argument)
                .iter()
                .fold(0, |sig, &(t, e)| match kind {
                    Kind::IntArray => sig | int_bit(int_value(t, e)),
                    _ => sig | text_bit(text_bytes(e)),
                });
            return match strategy {
                FILTER_OVERLAPS if sig == 0 => Some(Test::Never),
                FILTER_OVERLAPS => Some(Test::Overlaps(sig)),
                FILTER_CONTAINS => Some(Test::Contains(sig)),
                _ => None,
            };
        }
        if kind == Kind::Text
            && key.sk_collation != pg_sys::InvalidOid
            && !pg_sys::get_collation_isdeterministic(key.sk_collation)
        {
            return None; // equal strings may differ in bytes
        }
        let list = key.sk_flags & pg_sys::SK_SEARCHARRAY as i32 != 0 || strategy == FILTER_MEMBER;
        let strategy = if strategy == FILTER_MEMBER {
            FILTER_EQ
        } else {
            strategy
        };
        let values: Vec<u64> = if list {
            elements(key.sk_argument)
                .iter()
                .map(|&(t, e)| encode(kind, t, e))
                .collect()
        } else {
            vec![encode(kind, arg_type, key.sk_argument)]
        };
        if values.is_empty() {
            return Some(Test::Never); // `= ANY('{}')`
        }
        if strategy == FILTER_EQ {
            let mut values = values;
            values.sort_unstable();
            values.dedup();
            return Some(Test::AnyOf(values));
        }
        if kind != Kind::Int {
            return None;
        }
        // `col < ANY(a)` holds when it holds for a's largest, and so on.
        let ints = values.iter().map(|&v| v as i64);
        let (min, max) = (ints.clone().min()?, ints.max()?);
        Some(match strategy {
            FILTER_LT => match max.checked_sub(1) {
                Some(hi) => Test::Between(i64::MIN, hi),
                None => Test::Never,
            },
            FILTER_LE => Test::Between(i64::MIN, max),
            FILTER_GE => Test::Between(min, i64::MAX),
            FILTER_GT => match min.checked_add(1) {
                Some(lo) => Test::Between(lo, i64::MAX),
                None => Test::Never,
            },
            _ => return None,
        })
    }
}

/// `value <@ array`: whether `value` equals an element of `array` (as
/// `value = ANY(array)`, which PostgreSQL does not plan as a condition
/// of an ordered scan on a column after the first; this operator it does).
/// Text compares bytes, as deterministic collations do.
fn member(args: &crate::fmgr::Args<'_>, kind: Kind, typ: Oid) -> SqlResult<Datum> {
    let (value, array) = (args.datum(0), args.datum(1));
    // SAFETY: fmgr passes non-NULL arguments (STRICT) of the declared types.
    let found = unsafe {
        elements(array).iter().any(|&(t, e)| match kind {
            Kind::Int => int_value(t, e) == int_value(typ, value),
            Kind::Bool => (e.value() & 0xff != 0) == (value.value() & 0xff != 0),
            Kind::Uuid => {
                std::slice::from_raw_parts(e.cast_mut_ptr::<u8>(), 16)
                    == std::slice::from_raw_parts(value.cast_mut_ptr::<u8>(), 16)
            }
            _ => text_bytes(e) == text_bytes(value),
        })
    };
    Ok(Datum::from(found))
}

pg_fn! {
    /// `in_array(int2, int2[])`
    fn vdb_in_array_int2(args) { member(&args, Kind::Int, pg_sys::INT2OID) }
}
pg_fn! {
    /// `in_array(int4, int4[])`
    fn vdb_in_array_int4(args) { member(&args, Kind::Int, pg_sys::INT4OID) }
}
pg_fn! {
    /// `in_array(int8, int8[])`
    fn vdb_in_array_int8(args) { member(&args, Kind::Int, pg_sys::INT8OID) }
}
pg_fn! {
    /// `in_array(bool, bool[])`
    fn vdb_in_array_bool(args) { member(&args, Kind::Bool, pg_sys::BOOLOID) }
}
pg_fn! {
    /// `in_array(text, text[])`
    fn vdb_in_array_text(args) { member(&args, Kind::Text, pg_sys::TEXTOID) }
}
pg_fn! {
    /// `in_array(uuid, uuid[])`
    fn vdb_in_array_uuid(args) { member(&args, Kind::Uuid, pg_sys::UUIDOID) }
}
