//! User-facing errors, kept free of Postgres so that pure code can return
//! them and plain unit tests can check their SQLSTATE.
//!
//! The function-manager boundary turns a [`SqlError`] into an `ERROR`.

use std::fmt;

/// The SQLSTATE classes vdb raises (the names follow PostgreSQL's `errcodes.txt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlState {
    /// 22000
    DataException,
    /// 22P02
    InvalidTextRepresentation,
    /// 22P03
    InvalidBinaryRepresentation,
    /// 22003
    NumericValueOutOfRange,
    /// 22004
    NullValueNotAllowed,
    /// 22023
    InvalidParameterValue,
    /// 54000
    ProgramLimitExceeded,
    /// 0A000
    FeatureNotSupported,
    /// 42501
    InsufficientPrivilege,
    /// 42809
    WrongObjectType,
    /// 25006
    ReadOnlySqlTransaction,
    /// 55000
    ObjectNotInPrerequisiteState,
    /// 53200
    OutOfMemory,
    /// XX002
    IndexCorrupted,
    /// XX000
    Internal,
}

impl SqlState {
    /// The five-character code, as clients see it.
    pub fn code(self) -> &'static str {
        match self {
            SqlState::DataException => "22000",
            SqlState::InvalidTextRepresentation => "22P02",
            SqlState::InvalidBinaryRepresentation => "22P03",
            SqlState::NumericValueOutOfRange => "22003",
            SqlState::NullValueNotAllowed => "22004",
            SqlState::InvalidParameterValue => "22023",
            SqlState::ProgramLimitExceeded => "54000",
            SqlState::FeatureNotSupported => "0A000",
            SqlState::InsufficientPrivilege => "42501",
            SqlState::WrongObjectType => "42809",
            SqlState::ReadOnlySqlTransaction => "25006",
            SqlState::ObjectNotInPrerequisiteState => "55000",
            SqlState::OutOfMemory => "53200",
            SqlState::IndexCorrupted => "XX002",
            SqlState::Internal => "XX000",
        }
    }
}

/// An error with a SQLSTATE, a message and optional detail and hint lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    pub state: SqlState,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl SqlError {
    pub fn new(state: SqlState, message: impl Into<String>) -> Self {
        SqlError {
            state,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Damage found in index `index`, reported as nbtree reports it:
    /// XX002, naming the index (and, in `what`, the block), with a hint
    /// to rebuild it.
    pub fn corrupt(index: &str, what: impl fmt::Display) -> Self {
        Self::new(
            SqlState::IndexCorrupted,
            format!("index \"{index}\" is corrupt: {what}"),
        )
        .with_hint(format!("REINDEX INDEX \"{}\";", index.replace('"', "\"\"")))
    }

    pub fn data(message: impl Into<String>) -> Self {
        Self::new(SqlState::DataException, message)
    }

    pub fn out_of_range(message: impl Into<String>) -> Self {
        Self::new(SqlState::NumericValueOutOfRange, message)
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(SqlState::InvalidParameterValue, message)
    }

    pub fn feature(message: impl Into<String>) -> Self {
        Self::new(SqlState::FeatureNotSupported, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(SqlState::Internal, message)
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.state.code())?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SqlError {}

pub type SqlResult<T> = Result<T, SqlError>;
