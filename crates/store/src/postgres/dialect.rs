//! PostgreSQL as a [`Dialect`]: `$N` placeholders as written, JSONB read with `->>` and id lists
//! as arrays, and the statements spelled its own way (the event stream follows transaction ids;
//! shard rows of the statistics are summed).

use super::rows::{db_err, json};
use crate::dialect::{Binds, Dialect, Ids, PolicyColumns, Stmt, Ts, Q};
use crate::rows::policy_extra;
use crate::StoreError;
use retake_core::PolicyOverrides;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::Postgres;
use std::sync::OnceLock;

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

    fn scene_type_err(e: sqlx::Error, name: &str) -> StoreError {
        match &e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                StoreError::invalid(Some("project_id"), "project does not exist")
            }
            _ => db_err(e, "name", || {
                format!("this project already has a scene type named `{name}`")
            }),
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
