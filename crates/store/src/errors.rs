//! Database errors as the store's errors, the same for both backends: a unique violation is a
//! `Conflict`, a check or foreign-key violation is `Invalid`, a full disk or an unreachable
//! server is `Unavailable` (see `From<sqlx::Error>`), anything else a database error.

use crate::StoreError;

/// A database error as the store's error: a unique violation is a `Conflict` naming `field`, a
/// check or foreign-key violation is `Invalid` naming the column the constraint guards (else
/// `field`), anything else stays a database error.
pub fn db_err(e: sqlx::Error, field: &str, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::conflict(Some(field), what())
        }
        sqlx::Error::Database(d) if d.is_check_violation() => {
            let column = d
                .constraint()
                .and_then(|c| check_column(d.table(), c))
                .unwrap_or_else(|| field.to_owned());
            StoreError::invalid(
                Some(&column),
                format!("{}: {column} is out of range", what()),
            )
        }
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            StoreError::invalid(Some(field), what())
        }
        _ => StoreError::from(e),
    }
}

/// PostgreSQL names a column's CHECK `<table>_<column>_check` (SQLite does not name them).
fn check_column(table: Option<&str>, constraint: &str) -> Option<String> {
    let rest = constraint.strip_suffix("_check")?;
    let rest = match table {
        Some(t) => rest.strip_prefix(t)?.strip_prefix('_')?,
        None => rest,
    };
    Some(rest.strip_prefix("auto_retry_").unwrap_or(rest).to_owned())
}
