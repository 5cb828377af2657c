//! SQLite as a [`Dialect`]: `?N` placeholders, JSON read with `json_extract`/`json_each`,
//! timestamps bound as RFC 3339 text, and the statements spelled its own way. One writer: the
//! locks PostgreSQL takes are nothing here.

use super::rows::{json, ts};
use super::tx::{id_list, SqliteTx};
use crate::dialect::{
    sqlite_placeholders, Binds, Dialect, Ids, OTs, PolicyColumns, Stmt, Ts, WriteTx, Q,
};
use crate::rows::policy_extra;
use crate::Result;
use async_trait::async_trait;
use retake_core::PolicyOverrides;
use sqlx::{Sqlite, SqliteConnection};
use std::borrow::Cow;
use std::sync::OnceLock;

impl Dialect for Sqlite {
    fn slot(s: &Stmt) -> &OnceLock<String> {
        &s.sqlite
    }

    fn render(sql: &str) -> String {
        sqlite_placeholders(sql)
    }

    fn fragment(name: &str) -> &'static str {
        match name {
            "strpos" => "instr",
            "server" => "json_extract(a.provenance, '$.server')",
            "in_ids_1" => "IN (SELECT value FROM json_each($1))",
            // One writer: a transaction's reads need no row locks.
            "for_no_key_update" | "for_update" | "for_update_skip_locked" => "",
            "budget_lock_shared" => "",
            _ => panic!("no SQLite spelling of `{{{name}}}`"),
        }
    }

    fn events_after(_one_segment: bool) -> &'static str {
        // One writer at a time: ids are in commit order.
        "SELECT * FROM events WHERE id > ?1 AND (?2 IS NULL OR segment_id = ?2) ORDER BY id LIMIT ?3"
    }

    // Seconds since `start`, from the stored RFC 3339 text (julianday keeps milliseconds).
    const SPEND_BUCKETS: &'static str =
        "SELECT MAX(0, MIN(CAST((julianday(g.created_at) - julianday(?2)) * 86400.0 / ?3 AS INTEGER), ?4 - 1)) AS bucket,
                a.scene_type_id, SUM(g.spent_seconds) AS spent
         FROM gpu_ledger g LEFT JOIN retry_attempts a ON a.id = g.attempt_id
         WHERE g.project_id = ?1 GROUP BY bucket, a.scene_type_id ORDER BY bucket, a.scene_type_id";

    const ARM_STATS: &'static str = r#"SELECT scene_type_id, "check", arm, tries, rescues FROM scene_arm_stats WHERE (?1 IS NULL OR scene_type_id = ?1)"#;

    const CHECK_STATS: &'static str = r#"SELECT scene_type_id, "check", attempts, failures, failed_segments, rescues FROM scene_check_stats
           WHERE (?1 IS NULL OR scene_type_id = ?1) ORDER BY scene_type_id, "check""#;

    const GPU_SECONDS_SPENT: &'static str =
        "SELECT COALESCE((SELECT SUM(gpu_spent_seconds) FROM projects), 0.0)
            + COALESCE((SELECT SUM(value) FROM project_deltas WHERE key = 'gpu_spent'), 0.0)";

    const HEARTBEAT: &'static str =
        "UPDATE retry_attempts SET lease_expires_at = ?1 WHERE worker = ?2
         AND overall_status IN ('generating','scoring') AND id IN (SELECT value FROM json_each(?3)) RETURNING id";

    fn text(s: &str) -> Cow<'_, str> {
        Cow::Borrowed(s)
    }

    type Json = String;

    fn json<T: serde::Serialize>(v: &T) -> String {
        json(v)
    }

    type MaxAttempts = Option<i64>;
    type TriggerChecks = Option<String>;

    fn policy_columns(p: &PolicyOverrides) -> PolicyColumns<Self> {
        PolicyColumns {
            enabled: p.enabled,
            max_attempts: p.max_attempts.map(i64::from),
            trigger_checks: p.trigger_checks.as_ref().map(json),
            seed_variation: p.seed_variation,
            cfg_jitter: p.cfg_jitter,
            extra: json(&policy_extra(p)),
        }
    }
}

impl<'q> Binds<'q, Ts> for Sqlite {
    fn bind_to(q: Q<'q, Self>, v: Ts) -> Q<'q, Self> {
        q.bind(ts(v.0))
    }
}

impl<'q> Binds<'q, Ids<'q>> for Sqlite {
    fn bind_to(q: Q<'q, Self>, v: Ids<'q>) -> Q<'q, Self> {
        q.bind(id_list(v.0))
    }
}

impl<'q> Binds<'q, OTs> for Sqlite {
    fn bind_to(q: Q<'q, Self>, v: OTs) -> Q<'q, Self> {
        q.bind(v.0.map(ts))
    }
}

/// One writer: a transaction already excludes every other, so there is nothing more to lock.
#[async_trait]
impl WriteTx for SqliteTx {
    type D = Sqlite;

    fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }

    async fn lock_budget(&mut self, _project_id: i64) -> Result<()> {
        Ok(())
    }

    async fn lock_for_close(&mut self, _segment_id: i64) -> Result<()> {
        Ok(())
    }
}
