//! PostgreSQL as a [`Dialect`]: `$N` placeholders as written, JSONB read with `->>` and id lists
//! as arrays, NUL-free text, and the statements spelled its own way (the event stream follows
//! transaction ids; shard rows of the statistics are summed); and the locks the shared writes
//! take through it between replicas — row locks in the statements, the advisory budget lock
//! and the lock order before a segment is closed in [`WriteTx`].

use super::rows::{json, text};
use super::tx::{PgTx, BUDGET_LOCK};
use crate::dialect::{Binds, Dialect, Ids, OTs, PolicyColumns, Stmt, Ts, WriteTx, Q};
use crate::rows::policy_extra;
use crate::Result;
use async_trait::async_trait;
use retake_core::PolicyOverrides;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres};
use std::borrow::Cow;
use std::sync::{LazyLock, OnceLock};

/// A column taking the budget lock shared (see [`BUDGET_LOCK`]) of the row's `project_id`, in
/// the statement that reads it: the lock is held before a later statement reads the budget.
static BUDGET_LOCK_SHARED: LazyLock<String> = LazyLock::new(|| {
    format!(", pg_advisory_xact_lock_shared({BUDGET_LOCK}, (project_id % 2147483647)::int4)::text")
});

impl Dialect for Postgres {
    fn slot(s: &Stmt) -> &OnceLock<String> {
        &s.postgres
    }

    fn render(sql: &str) -> String {
        sql.to_owned()
    }

    fn fragment(name: &str) -> &'static str {
        match name {
            "strpos" => "strpos",
            "server" => "a.provenance->>'server'",
            "in_ids_1" => "= ANY($1)",
            "for_no_key_update" => "FOR NO KEY UPDATE",
            "for_update" => "FOR UPDATE",
            "for_update_skip_locked" => "FOR UPDATE SKIP LOCKED",
            "budget_lock_shared" => BUDGET_LOCK_SHARED.as_str(),
            _ => panic!("no PostgreSQL spelling of `{{{name}}}`"),
        }
    }

    fn events_after(one_segment: bool) -> &'static str {
        // Only events of transactions older than every running one: any event that becomes
        // visible later has a larger txid, so following (txid, id) from the last event seen skips
        // none.
        //
        // One segment's events are written under its row lock, so their ids are already in commit
        // order, and a segment's history shows what has committed at once.
        if one_segment {
            "SELECT * FROM events WHERE id > $1 AND segment_id = $2 ORDER BY id LIMIT $3"
        } else {
            "SELECT * FROM events
             WHERE (txid, id) > (COALESCE((SELECT txid FROM events WHERE id = $1), '0'::xid8), $1)
               AND txid < pg_snapshot_xmin(pg_current_snapshot())
               AND ($2::int8 IS NULL OR segment_id = $2)
             ORDER BY txid, id LIMIT $3"
        }
    }

    const SPEND_BUCKETS: &'static str =
        "SELECT GREATEST(0, LEAST(floor(extract(epoch FROM g.created_at - $2::timestamptz)::float8 / $3)::int8, $4 - 1)) AS bucket,
                a.scene_type_id, SUM(g.spent_seconds)::float8 AS spent
         FROM gpu_ledger g LEFT JOIN retry_attempts a ON a.id = g.attempt_id
         WHERE g.project_id = $1 GROUP BY 1, a.scene_type_id ORDER BY 1, a.scene_type_id";

    const ARM_STATS: &'static str = r#"SELECT scene_type_id, "check", arm, SUM(tries)::int4, SUM(rescues)::int4 FROM scene_arm_stats
        WHERE ($1::int8 IS NULL OR scene_type_id = $1) GROUP BY scene_type_id, "check", arm"#;

    const CHECK_STATS: &'static str = r#"SELECT scene_type_id, "check", SUM(attempts)::int4, SUM(failures)::int4, SUM(failed_segments)::int4,
           SUM(rescues)::int4 FROM scene_check_stats WHERE ($1::int8 IS NULL OR scene_type_id = $1)
           GROUP BY scene_type_id, "check" ORDER BY scene_type_id, "check""#;

    const GPU_SECONDS_SPENT: &'static str =
        "SELECT (COALESCE((SELECT SUM(gpu_spent_seconds) FROM projects), 0)
                + COALESCE((SELECT SUM(value) FROM project_deltas WHERE key = 'gpu_spent'), 0))::float8";

    // Rows are locked in id order, like every other multi-attempt lock.
    const HEARTBEAT: &'static str = "WITH mine AS (
             SELECT id FROM retry_attempts
             WHERE id = ANY($3) AND worker = $2 AND overall_status IN ('generating','scoring')
             ORDER BY id FOR UPDATE)
         UPDATE retry_attempts a SET lease_expires_at = $1 FROM mine WHERE a.id = mine.id RETURNING a.id";

    fn text(s: &str) -> Cow<'_, str> {
        text(s)
    }

    type Json = Json<Value>;

    fn json<T: serde::Serialize>(v: &T) -> Json<Value> {
        json(v)
    }

    type MaxAttempts = Option<i32>;
    type TriggerChecks = Option<Vec<String>>;

    fn policy_columns(p: &PolicyOverrides) -> PolicyColumns<Self> {
        PolicyColumns {
            enabled: p.enabled,
            max_attempts: p.max_attempts.map(i32::from),
            trigger_checks: p
                .trigger_checks
                .as_ref()
                .map(|t| t.iter().map(|c| c.to_string()).collect()),
            seed_variation: p.seed_variation,
            cfg_jitter: p.cfg_jitter,
            extra: Json(policy_extra(p)),
        }
    }
}

impl<'q> Binds<'q, Ts> for Postgres {
    fn bind_to(q: Q<'q, Self>, v: Ts) -> Q<'q, Self> {
        q.bind(v.0)
    }
}

impl<'q> Binds<'q, Ids<'q>> for Postgres {
    fn bind_to(q: Q<'q, Self>, v: Ids<'q>) -> Q<'q, Self> {
        q.bind(v.0)
    }
}

impl<'q> Binds<'q, OTs> for Postgres {
    fn bind_to(q: Q<'q, Self>, v: OTs) -> Q<'q, Self> {
        q.bind(v.0)
    }
}

#[async_trait]
impl WriteTx for PgTx {
    type D = Postgres;

    fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// The budget lock exclusively: it waits for the reservations made without a budget to
    /// commit, and later ones see this budget (see [`BUDGET_LOCK`]).
    async fn lock_budget(&mut self, project_id: i64) -> Result<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1, ($2 % 2147483647)::int4)::text")
            .bind(BUDGET_LOCK)
            .bind(project_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn lock_for_close(&mut self, segment_id: i64) -> Result<()> {
        self.lock_segment_for_close(segment_id).await
    }
}
