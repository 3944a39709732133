//! `avg(vector)` and `sum(vector)`.
//!
//! `avg` keeps its state as `double precision[]` = `{n, Σx0, Σx1, ...}`, the
//! same state pgvector uses, so a combine function can merge partial states
//! of a parallel aggregate and the `f64` sums do not lose precision. `sum`
//! reuses `vector_add` (see `sql/vdb.sql`).

use super::{check_dim, check_typmod};
use crate::error::{SqlError, SqlResult};
use crate::fmgr::{pg_fn, Args, NewVector};
use pgrx::array::RawArray;
use pgrx::pg_sys::{self, Datum};
use std::ptr::NonNull;

/// Adds `v` into running sums `sums`, rejecting overflow.
pub fn accumulate(sums: &mut [f64], v: impl IntoIterator<Item = f64>) -> SqlResult<()> {
    for (s, x) in sums.iter_mut().zip(v) {
        *s += x;
        if s.is_infinite() {
            return Err(SqlError::out_of_range("value out of range: overflow"));
        }
    }
    Ok(())
}

/// The mean of `n` vectors with element sums `sums`, as `float32`.
pub fn mean(n: f64, sums: &[f64]) -> SqlResult<Vec<f32>> {
    sums.iter()
        .map(|s| super::cast::f64_to_element(s / n))
        .collect()
}

/// A checked view of an aggregate state array.
struct State {
    array: *mut pg_sys::ArrayType,
    values: NonNull<[f64]>,
}

impl State {
    fn from_arg(args: &Args, i: usize) -> SqlResult<State> {
        let array = args.array(i);
        // SAFETY: args.array returns a valid detoasted array.
        let mut raw = unsafe { RawArray::from_ptr(NonNull::new(array).ok_or_else(bad_state)?) };
        // SAFETY: the null check reads the array's own bitmap.
        if raw.dims().len() != 1
            || raw.len() < 1
            || raw.oid() != pg_sys::FLOAT8OID
            || unsafe { raw.any_nulls() }
        {
            return Err(bad_state());
        }
        Ok(State {
            array,
            values: raw.data::<f64>(),
        })
    }

    fn values(&mut self) -> &mut [f64] {
        // SAFETY: the array is a 1-D float8 array without NULLs (checked in
        // from_arg), whose data is MAXALIGNed; no other reference to it lives.
        unsafe { self.values.as_mut() }
    }

    fn count(&mut self) -> f64 {
        self.values()[0]
    }

    fn sums(&mut self) -> &mut [f64] {
        &mut self.values()[1..]
    }
}

fn bad_state() -> SqlError {
    SqlError::internal("vector aggregate: expected a double precision[] state")
}

/// A new state array `{n, sums...}`.
fn new_state(n: f64, sums: &[f64]) -> Datum {
    let mut datums: Vec<Datum> = std::iter::once(n)
        .chain(sums.iter().copied())
        .map(|x| Datum::from(x.to_bits()))
        .collect();
    // SAFETY: construct_array copies the by-value float8 datums into a new array.
    let array = unsafe {
        pg_sys::construct_array(
            datums.as_mut_ptr(),
            datums.len() as i32,
            pg_sys::FLOAT8OID,
            8,
            true,
            pg_sys::TYPALIGN_DOUBLE as std::ffi::c_char,
        )
    };
    Datum::from(array)
}

pg_fn! {
    /// `vector_accum(double precision[], vector)`: `avg`'s transition.
    fn vdb_vector_accum(args) { accumulate_row(&args, args.vector(1)?) }
}

/// `avg`'s transition for a row `v` (of any vector type) into the state,
/// argument 0.
pub(crate) fn accumulate_row(args: &Args, v: &[f32]) -> SqlResult<Datum> {
    let mut state = State::from_arg(args, 0)?;
    let n = state.count() + 1.0;
    if state.sums().is_empty() {
        let sums: Vec<f64> = v.iter().map(|&x| f64::from(x)).collect();
        return Ok(new_state(n, &sums));
    }
    check_typmod(state.sums().len() as i32, v.len())?;
    if args.in_aggregate() {
        // The state belongs to the aggregate: update it in place rather
        // than copying dim + 1 doubles per row.
        accumulate(state.sums(), v.iter().map(|&x| f64::from(x)))?;
        state.values()[0] = n;
        return Ok(Datum::from(state.array));
    }
    let mut sums = state.sums().to_vec();
    accumulate(&mut sums, v.iter().map(|&x| f64::from(x)))?;
    Ok(new_state(n, &sums))
}

pg_fn! {
    /// `vector_combine(double precision[], double precision[])`: merges
    /// two partial `avg` states (parallel aggregation).
    fn vdb_vector_combine(args) {
        let mut a = State::from_arg(&args, 0)?;
        let mut b = State::from_arg(&args, 1)?;
        let n = a.count() + b.count();
        let sums = match (a.sums().len(), b.sums().len()) {
            (0, _) => b.sums().to_vec(),
            (_, 0) => a.sums().to_vec(),
            (da, db) => {
                check_typmod(da as i32, db)?;
                let mut sums = a.sums().to_vec();
                accumulate(&mut sums, b.sums().iter().copied())?;
                sums
            }
        };
        if !sums.is_empty() {
            check_dim(sums.len())?;
        }
        Ok(new_state(n, &sums))
    }
}

pg_fn! {
    /// `vector_avg(double precision[])`: `avg`'s final function; NULL for no rows.
    fn vdb_vector_avg(args) {
        let Some((n, sums)) = final_state(&args)? else {
            return Ok(args.return_null());
        };
        let values = mean(n, &sums)?;
        Ok(NewVector::from_slice(&values).into_datum())
    }
}

/// The row count and sums of the state, argument 0, of an `avg`; `None`
/// for no rows.
pub(crate) fn final_state(args: &Args) -> SqlResult<Option<(f64, Vec<f64>)>> {
    let mut state = State::from_arg(args, 0)?;
    let n = state.count();
    if n == 0.0 {
        return Ok(None);
    }
    check_dim(state.sums().len())?;
    Ok(Some((n, state.sums().to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulates_and_averages() {
        let mut sums = vec![0.0; 2];
        accumulate(&mut sums, [1.0, 2.0]).expect("adds");
        accumulate(&mut sums, [3.0, 6.0]).expect("adds");
        assert_eq!(mean(2.0, &sums), Ok(vec![2.0, 4.0]));
        let mut huge = vec![f64::MAX];
        assert!(accumulate(&mut huge, [f64::MAX]).is_err());
        // A mean too large for float32 is an error, not an infinity.
        assert!(mean(1.0, &[1e300]).is_err());
    }
}
