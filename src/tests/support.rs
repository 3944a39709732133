//! Helpers shared by the database tests.

use pgrx::prelude::*;

/// Runs `query` and returns `"<SQLSTATE> <message>"` of the error it raises,
/// or `"no error"`.
pub fn sql_error(query: &str) -> String {
    Spi::run(
        "CREATE OR REPLACE FUNCTION pg_temp.sql_error(q text) RETURNS text LANGUAGE plpgsql AS $f$
         BEGIN EXECUTE q; RETURN 'no error';
         EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ' ' || SQLERRM; END $f$",
    )
    .expect("helper function");
    Spi::get_one_with_args::<String>("SELECT pg_temp.sql_error($1)", &[query.into()])
        .expect("query runs")
        .expect("not null")
}

/// The single value of a query, which must not be NULL.
pub fn one<T: FromDatum + IntoDatum>(query: &str) -> T {
    Spi::get_one::<T>(query)
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .unwrap_or_else(|| panic!("{query}: NULL"))
}

/// Asserts that a boolean query is true.
pub fn check(query: &str) {
    assert!(one::<bool>(query), "expected true: {query}");
}

/// Runs a statement.
pub fn run(query: &str) {
    Spi::run(query).unwrap_or_else(|e| panic!("{query}: {e}"));
}
