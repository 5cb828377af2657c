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
            let column = match d.constraint() {
                Some(c) => check_column(d.table(), c),
                None => checked_expression_column(d.message()),
            }
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

/// PostgreSQL names a column's CHECK `<table>_<column>_check`.
fn check_column(table: Option<&str>, constraint: &str) -> Option<String> {
    let rest = constraint.strip_suffix("_check")?;
    let rest = match table {
        Some(t) => rest.strip_prefix(t)?.strip_prefix('_')?,
        None => rest,
    };
    Some(field_of(rest))
}

/// SQLite does not name a column's CHECK; its message quotes the expression, which begins with
/// the column (`CHECK constraint failed: max_concurrency BETWEEN 1 AND 64`).
fn checked_expression_column(message: &str) -> Option<String> {
    let expr = message
        .strip_prefix("CHECK constraint failed: ")?
        .trim_start_matches(['(', ' ', '"']);
    let column: String = expr
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!column.is_empty() && !column.starts_with(|c: char| c.is_ascii_digit()))
        .then(|| field_of(&column))
}

/// The field a column is known by in the API: a scene type's policy columns without their
/// `auto_retry_` prefix.
fn field_of(column: &str) -> String {
    column
        .strip_prefix("auto_retry_")
        .unwrap_or(column)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_dialects_name_the_checked_column() {
        assert_eq!(
            check_column(Some("comfy_servers"), "comfy_servers_max_concurrency_check").as_deref(),
            Some("max_concurrency")
        );
        assert_eq!(
            checked_expression_column("CHECK constraint failed: max_concurrency BETWEEN 1 AND 64")
                .as_deref(),
            Some("max_concurrency")
        );
        assert_eq!(
            checked_expression_column(
                "CHECK constraint failed: (auto_retry_max_attempts BETWEEN 1 AND 10)"
            )
            .as_deref(),
            Some("max_attempts")
        );
        assert_eq!(
            checked_expression_column("CHECK constraint failed: 1 > 0"),
            None
        );
        assert_eq!(
            checked_expression_column("UNIQUE constraint failed: projects.name"),
            None
        );
    }
}
