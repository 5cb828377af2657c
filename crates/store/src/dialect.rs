//! The seam between the store's shared code and its two databases.
//!
//! Reads ([`crate::reads`], row building in [`crate::rows`]) and the scene-type writes
//! (`scene_types.rs`) are written once over a [`Dialect`]: `sqlx::Sqlite` or `sqlx::Postgres`
//! with what really differs between them —
//!
//! - SQL text: shared statements are [`Stmt`]s written with `$N` placeholders; each dialect
//!   renders one once ([`Dialect::render`]: SQLite numbers its placeholders `?N` and has no
//!   `$N::type` casts) and fills the few `{fragment}`s that are spelled differently
//!   ([`Dialect::fragment`]). Statements that differ as a whole are the dialect's own constants.
//! - how a value is bound ([`Binds`]): most values the same way, timestamps ([`Ts`]), id lists
//!   ([`Ids`]), JSON and a scene type's [`PolicyColumns`] (`INT4`, `TEXT[]`) as each
//!   database stores them;
//! - how a column decodes ([`crate::rows::RowExt`], implemented for `SqliteRow` and `PgRow`);
//! - text PostgreSQL cannot hold ([`Dialect::text`]: a NUL character);
//! - locking: `{for_no_key_update}`, `{for_update}`, `{for_update_skip_locked}` and
//!   `{budget_lock_shared}` lock what a transaction reads on PostgreSQL, and [`WriteTx`] takes
//!   the locks that are statements of their own (SQLite has one writer, so nothing to lock).
//!   The hot write path (`ops.rs` over `tx.rs`) has its own seam, [`crate::ops::TxOps`], which
//!   [`WriteTx`] extends for the writes in `writes.rs`.

use crate::ops::TxOps;
use crate::rows::RowExt;
use crate::{Result, Timestamp};
use async_trait::async_trait;
use futures::future::BoxFuture;
use retake_core::PolicyOverrides;
use serde::Serialize;
use sqlx::query::Query;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};
use std::borrow::Cow;
use std::sync::OnceLock;

/// A query of dialect `D` with its arguments.
pub(crate) type Q<'q, D> = Query<'q, D, <D as Database>::Arguments<'q>>;

/// A database the store runs on. Everything a shared read needs from it is a supertrait here,
/// so generic code asks for `D: Dialect` and nothing else.
pub(crate) trait Dialect:
    Database<Row: RowExt>
    + Fetch
    + for<'q> Binds<'q, i32>
    + for<'q> Binds<'q, i64>
    + for<'q> Binds<'q, Option<i64>>
    + for<'q> Binds<'q, bool>
    + for<'q> Binds<'q, f64>
    + for<'q> Binds<'q, Option<f64>>
    + for<'q> Binds<'q, Option<bool>>
    + for<'q> Binds<'q, &'q str>
    + for<'q> Binds<'q, Option<&'q str>>
    + for<'q> Binds<'q, Ts>
    + for<'q> Binds<'q, OTs>
    + for<'q> Binds<'q, Ids<'q>>
{
    /// This dialect's cache slot in a shared statement.
    fn slot(s: &Stmt) -> &OnceLock<String>;
    /// A statement written with `$N` placeholders, in this dialect's text.
    fn render(sql: &str) -> String;
    /// The spelling of `{name}` in a shared statement (see [`Stmt`]).
    fn fragment(name: &str) -> &'static str;

    /// The statement following the event stream after an id, for every segment or for one.
    fn events_after(one_segment: bool) -> &'static str;
    /// A project's ledger summed per time bucket and scene type: `$1` project, `$2` start,
    /// `$3` bucket width in seconds, `$4` buckets; columns `bucket`, `scene_type_id`, `spent`.
    const SPEND_BUCKETS: &'static str;
    /// Arm statistics for failure patterns: `$1` an optional scene type; columns scene type,
    /// check, arm, tries, rescues.
    const ARM_STATS: &'static str;
    /// Check statistics for failure patterns: `$1` an optional scene type; columns scene type,
    /// check, attempts, failures, failed segments, rescues, ordered by scene type and check.
    const CHECK_STATS: &'static str;
    /// GPU seconds spent by every project, pending deltas included (one `f64`).
    const GPU_SECONDS_SPENT: &'static str;
    /// A worker's lease on its running attempts renewed: `$1` the new expiry, `$2` the worker,
    /// `$3` the attempt ids; returns the ids renewed.
    const HEARTBEAT: &'static str;

    /// Text from outside as this dialect can store it: as it is on SQLite; on PostgreSQL, whose
    /// `TEXT` cannot hold a NUL character, with each NUL as U+FFFD.
    fn text(s: &str) -> Cow<'_, str>;

    /// A JSON column's parameter: text on SQLite, NUL-free `JSONB` on PostgreSQL.
    type Json: for<'q> Encode<'q, Self> + Type<Self> + Send + 'static;
    fn json<T: Serialize>(v: &T) -> Self::Json;
    /// `auto_retry_max_attempts` (nullable): `INTEGER` on SQLite, `INT4` on PostgreSQL.
    type MaxAttempts: for<'q> Encode<'q, Self> + Type<Self> + Send + 'static;
    /// `auto_retry_trigger_checks` (nullable): JSON text on SQLite, `TEXT[]` on PostgreSQL.
    type TriggerChecks: for<'q> Encode<'q, Self> + Type<Self> + Send + 'static;
    fn policy_columns(p: &PolicyOverrides) -> PolicyColumns<Self>;

    /// The text of `s` in this dialect, rendered on first use.
    fn sql(s: &'static Stmt) -> &'static str {
        Self::slot(s).get_or_init(|| Self::render(&s.fill(Self::fragment)))
    }

    /// A query of the shared statement `s`.
    fn query<'q>(s: &'static Stmt) -> Q<'q, Self> {
        sqlx::query(Self::sql(s))
    }
}

/// A scene type's policy overrides split into the seed document's columns and the JSON
/// remainder, as parameters of dialect `D`.
pub(crate) struct PolicyColumns<D: Dialect> {
    pub enabled: Option<bool>,
    pub max_attempts: D::MaxAttempts,
    pub trigger_checks: D::TriggerChecks,
    pub seed_variation: Option<bool>,
    pub cfg_jitter: Option<f64>,
    pub extra: D::Json,
}

/// A statement both dialects run, written once: its parts joined, with `$N` placeholders, and
/// `{name}` where the dialects spell something differently. Each dialect's text is made on
/// first use and kept.
pub(crate) struct Stmt {
    parts: &'static [&'static str],
    pub(crate) sqlite: OnceLock<String>,
    pub(crate) postgres: OnceLock<String>,
}

impl Stmt {
    pub(crate) const fn new(parts: &'static [&'static str]) -> Self {
        Stmt {
            parts,
            sqlite: OnceLock::new(),
            postgres: OnceLock::new(),
        }
    }

    /// The parts joined, each `{name}` replaced by `fragment(name)`.
    fn fill(&self, fragment: fn(&str) -> &'static str) -> String {
        let sql = self.parts.concat();
        let mut out = String::with_capacity(sql.len());
        let mut rest = sql.as_str();
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .map(|c| open + c)
                .unwrap_or_else(|| panic!("unclosed fragment in `{sql}`"));
            out.push_str(&rest[..open]);
            out.push_str(fragment(&rest[open + 1..close]));
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// A write transaction of one dialect: the [`TxOps`] the decisions run over, the connection the
/// shared writes (`writes.rs`) run their statements on, and the locks that are statements of
/// their own — taken on PostgreSQL, nothing on SQLite (one writer).
#[async_trait]
pub(crate) trait WriteTx: TxOps {
    type D: Dialect;
    fn conn(&mut self) -> &mut <Self::D as Database>::Connection;
    /// Before a project's budget is set: wait for the transactions that reserved for it without
    /// a budget, so every later reservation sees the new one.
    async fn lock_budget(&mut self, project_id: i64) -> Result<()>;
    /// Before a person closes a segment: lock its in-flight attempts, then the segment — the
    /// order a finishing worker takes them in.
    async fn lock_for_close(&mut self, segment_id: i64) -> Result<()>;
}

/// A timestamp parameter: RFC 3339 text on SQLite, `TIMESTAMPTZ` on PostgreSQL.
pub(crate) struct Ts(pub Timestamp);

/// A nullable timestamp parameter, bound as [`Ts`] is.
pub(crate) struct OTs(pub Option<Timestamp>);

/// A list of ids as one parameter: JSON text read with `json_each` on SQLite, an `int8[]` on
/// PostgreSQL.
pub(crate) struct Ids<'a>(pub &'a [i64]);

/// Binding a `T` to a query of this database.
pub(crate) trait Binds<'q, T>: Database {
    fn bind_to(q: Q<'q, Self>, v: T) -> Q<'q, Self>;
}

/// Values both databases encode the same way.
impl<'q, DB: Database, T> Binds<'q, T> for DB
where
    T: 'q + Send + Encode<'q, DB> + Type<DB>,
{
    fn bind_to(q: Q<'q, DB>, v: T) -> Q<'q, DB> {
        q.bind(v)
    }
}

/// `query.arg(v)`: binds `v` the way the query's dialect stores it.
pub(crate) trait Arg<'q, D: Database>: Sized {
    fn arg<T>(self, v: T) -> Self
    where
        D: Binds<'q, T>;
}

impl<'q, D: Database> Arg<'q, D> for Q<'q, D> {
    fn arg<T>(self, v: T) -> Self
    where
        D: Binds<'q, T>,
    {
        D::bind_to(self, v)
    }
}

/// Running a query on a pool or a connection (in a transaction); the same for every database
/// sqlx can run queries on. Errors are sqlx's, for the caller to map.
pub(crate) trait Fetch: Database {
    fn all<'e>(q: Q<'e, Self>, pool: &'e Pool<Self>)
        -> BoxFuture<'e, sqlx::Result<Vec<Self::Row>>>;
    fn optional<'e>(
        q: Q<'e, Self>,
        pool: &'e Pool<Self>,
    ) -> BoxFuture<'e, sqlx::Result<Option<Self::Row>>>;
    fn one<'e>(q: Q<'e, Self>, pool: &'e Pool<Self>) -> BoxFuture<'e, sqlx::Result<Self::Row>>;
    fn optional_on<'e>(
        q: Q<'e, Self>,
        conn: &'e mut Self::Connection,
    ) -> BoxFuture<'e, sqlx::Result<Option<Self::Row>>>;
    fn one_on<'e>(
        q: Q<'e, Self>,
        conn: &'e mut Self::Connection,
    ) -> BoxFuture<'e, sqlx::Result<Self::Row>>;
    fn all_on<'e>(
        q: Q<'e, Self>,
        conn: &'e mut Self::Connection,
    ) -> BoxFuture<'e, sqlx::Result<Vec<Self::Row>>>;
}

impl<DB> Fetch for DB
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    fn all<'e>(q: Q<'e, DB>, pool: &'e Pool<DB>) -> BoxFuture<'e, sqlx::Result<Vec<DB::Row>>> {
        Box::pin(q.fetch_all(pool))
    }
    fn optional<'e>(
        q: Q<'e, DB>,
        pool: &'e Pool<DB>,
    ) -> BoxFuture<'e, sqlx::Result<Option<DB::Row>>> {
        Box::pin(q.fetch_optional(pool))
    }
    fn one<'e>(q: Q<'e, DB>, pool: &'e Pool<DB>) -> BoxFuture<'e, sqlx::Result<DB::Row>> {
        Box::pin(q.fetch_one(pool))
    }
    fn optional_on<'e>(
        q: Q<'e, DB>,
        conn: &'e mut DB::Connection,
    ) -> BoxFuture<'e, sqlx::Result<Option<DB::Row>>> {
        Box::pin(q.fetch_optional(conn))
    }
    fn one_on<'e>(
        q: Q<'e, DB>,
        conn: &'e mut DB::Connection,
    ) -> BoxFuture<'e, sqlx::Result<DB::Row>> {
        Box::pin(q.fetch_one(conn))
    }
    fn all_on<'e>(
        q: Q<'e, DB>,
        conn: &'e mut DB::Connection,
    ) -> BoxFuture<'e, sqlx::Result<Vec<DB::Row>>> {
        Box::pin(q.fetch_all(conn))
    }
}

/// SQLite's text of a statement written for PostgreSQL's placeholders: `$N` becomes `?N`, and a
/// type cast on a placeholder (`$1::int8`, which SQLite has no syntax for) is dropped. A `$` not
/// followed by a digit (a JSON path such as `'$.server'`) is left as it is.
pub(crate) fn sqlite_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        let is_param = c == '$' && chars.peek().is_some_and(|(_, d)| d.is_ascii_digit());
        if !is_param {
            out.push(c);
            continue;
        }
        out.push('?');
        while let Some(&(_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
            out.push(d);
            chars.next();
        }
        if let Some(&(i, ':')) = chars.peek() {
            if sql[i..].starts_with("::") {
                chars.next();
                chars.next();
                while chars
                    .peek()
                    .is_some_and(|(_, t)| t.is_ascii_alphanumeric() || *t == '_')
                {
                    chars.next();
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_placeholders_drop_casts_and_keep_json_paths() {
        assert_eq!(
            sqlite_placeholders(
                "SELECT json_extract(p, '$.server') FROM t WHERE ($1::int8 IS NULL OR a = $1) AND b = $12::text LIMIT $2"
            ),
            "SELECT json_extract(p, '$.server') FROM t WHERE (?1 IS NULL OR a = ?1) AND b = ?12 LIMIT ?2"
        );
        assert_eq!(sqlite_placeholders("a::int8 $"), "a::int8 $");
    }

    #[test]
    fn fragments_are_filled() {
        static S: Stmt = Stmt::new(&["SELECT {a} FROM t", " WHERE {b}(x) > 0"]);
        let f = |n: &str| match n {
            "a" => "one",
            "b" => "two",
            _ => panic!("{n}"),
        };
        assert_eq!(S.fill(f), "SELECT one FROM t WHERE two(x) > 0");
    }
}
