//! Scene-type writes, written once over a [`Dialect`]: creating one, and changing one under the
//! optimistic-concurrency precondition. What differs is the dialect's: how JSON and the policy
//! columns bind, NUL-free text, and the row lock (`{for_no_key_update}`). A refused write is
//! reported the same way on both ([`refused`]).

use crate::dialect::{Arg, Dialect, Stmt, Ts, Q};
use crate::errors::db_err;
use crate::model::*;
use crate::rows;
use crate::{Result, StoreError};
use retake_core::PolicyOverrides;
use sqlx::Pool;

/// Binds a scene type's policy overrides as its six policy columns, `auto_retry_enabled`
/// through `auto_retry_extra`.
fn bind_policy<'q, D: Dialect>(q: Q<'q, D>, p: &PolicyOverrides) -> Q<'q, D> {
    let pc = D::policy_columns(p);
    q.arg(pc.enabled)
        .arg(pc.max_attempts)
        .arg(pc.trigger_checks)
        .arg(pc.seed_variation)
        .arg(pc.cfg_jitter)
        .arg(pc.extra)
}

/// A failed scene-type insert or update as the store's error: a missing project, a name the
/// project already has, a value out of its column's range.
fn refused(e: sqlx::Error, name: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            StoreError::invalid(Some("project_id"), "project does not exist")
        }
        _ => db_err(e, "name", || {
            format!("this project already has a scene type named `{name}`")
        }),
    }
}

static INSERT: Stmt = Stmt::new(&[
    "INSERT INTO scene_types (project_id, name, backend, backend_config, workflow_template, parameter_bindings, default_parameters,
     qa_checks, qa_commands, parameter_domains, auto_retry_enabled, auto_retry_max_attempts, auto_retry_trigger_checks,
     auto_retry_seed_variation, auto_retry_cfg_jitter, auto_retry_extra, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17) RETURNING *",
]);

pub(crate) async fn create<D: Dialect>(pool: &Pool<D>, s: NewSceneType) -> Result<SceneType> {
    let (name, backend) = (D::text(&s.name), D::text(&s.backend));
    let q = D::query(&INSERT)
        .arg(s.project_id)
        .arg(name.as_ref())
        .arg(backend.as_ref())
        .arg(D::json(&s.backend_config))
        .arg(D::json(&s.workflow_template))
        .arg(D::json(&s.parameter_bindings))
        .arg(D::json(&s.default_parameters))
        .arg(D::json(&s.qa_checks))
        .arg(D::json(&s.qa_commands))
        .arg(D::json(&s.parameter_domains));
    let q = bind_policy(q, &s.retry_policy).arg(Ts(now()));
    let r = D::one(q, pool).await.map_err(|e| refused(e, &s.name))?;
    rows::scene_type(&r)
}

static GET_FOR_UPDATE: Stmt =
    Stmt::new(&["SELECT * FROM scene_types WHERE id = $1 {for_no_key_update}"]);
static UPDATE: Stmt = Stmt::new(&[
    "UPDATE scene_types SET name = $1, backend = $2, backend_config = $3, workflow_template = $4, parameter_bindings = $5,
     default_parameters = $6, qa_checks = $7, qa_commands = $8, parameter_domains = $9, auto_retry_enabled = $10,
     auto_retry_max_attempts = $11, auto_retry_trigger_checks = $12, auto_retry_seed_variation = $13, auto_retry_cfg_jitter = $14,
     auto_retry_extra = $15, updated_at = $16 WHERE id = $17 RETURNING *",
]);

/// Applies `p` in the transaction `conn` is in; a stale `if_updated_at` is a Conflict.
pub(crate) async fn update<D: Dialect>(
    conn: &mut D::Connection,
    id: i64,
    p: SceneTypePatch,
    if_updated_at: Option<Timestamp>,
) -> Result<SceneType> {
    let cur = D::optional_on(D::query(&GET_FOR_UPDATE).arg(id), conn).await?;
    let cur = cur
        .as_ref()
        .map(rows::scene_type)
        .transpose()?
        .ok_or_else(|| StoreError::not_found("scene type", id))?;
    if let Some(expected) = if_updated_at {
        if expected != cur.updated_at {
            return Err(StoreError::conflict(
                Some("updated_at"),
                format!("scene type {id} was changed by someone else at {}; reload and apply your change again", cur.updated_at.to_rfc3339()),
            ));
        }
    }
    let name = p.name.unwrap_or(cur.name);
    let backend = p.backend.unwrap_or(cur.backend);
    let policy = p.retry_policy.unwrap_or(cur.retry_policy);
    let (stored_name, stored_backend) = (D::text(&name), D::text(&backend));
    let q = D::query(&UPDATE)
        .arg(stored_name.as_ref())
        .arg(stored_backend.as_ref())
        .arg(D::json(&p.backend_config.unwrap_or(cur.backend_config)))
        .arg(D::json(
            &p.workflow_template.unwrap_or(cur.workflow_template),
        ))
        .arg(D::json(
            &p.parameter_bindings.unwrap_or(cur.parameter_bindings),
        ))
        .arg(D::json(
            &p.default_parameters.unwrap_or(cur.default_parameters),
        ))
        .arg(D::json(&p.qa_checks.unwrap_or(cur.qa_checks)))
        .arg(D::json(&p.qa_commands.unwrap_or(cur.qa_commands)))
        .arg(D::json(
            &p.parameter_domains.unwrap_or(cur.parameter_domains),
        ));
    let q = bind_policy(q, &policy)
        // Strictly later than the previous write, so a precondition taken before it always
        // fails (on PostgreSQL a trigger guarantees the same for writes that do not set it).
        .arg(Ts(
            now().max(cur.updated_at + chrono::Duration::microseconds(1))
        ))
        .arg(id);
    let r = D::one_on(q, conn).await.map_err(|e| refused(e, &name))?;
    rows::scene_type(&r)
}
