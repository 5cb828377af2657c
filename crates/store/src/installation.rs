//! The installation's own records, written once for both databases over a [`Dialect`]: API
//! tokens, browser sessions and generation servers. Each runs on the backend's writer pool; a
//! refused write maps through [`crate::errors::db_err`] the same way on both, and text from
//! outside is stored as the dialect can ([`Dialect::text`]).

use crate::dialect::{Arg, Dialect, OTs, Stmt, Ts};
use crate::errors::db_err;
use crate::model::*;
use crate::rows::{self, RowExt};
use crate::{Result, StoreError};
use sqlx::Pool;

// Tokens and sessions.

static INSERT_TOKEN: Stmt = Stmt::new(&[
    "INSERT INTO api_tokens (name, role, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING *",
]);

pub(crate) async fn create_token<D: Dialect>(
    pool: &Pool<D>,
    name: &str,
    role: Role,
    token_hash: &str,
    expires_at: Option<Timestamp>,
) -> Result<ApiToken> {
    let name = D::text(name);
    let q = D::query(&INSERT_TOKEN)
        .arg(name.as_ref())
        .arg(role.as_str())
        .arg(token_hash)
        .arg(Ts(now()))
        .arg(OTs(expires_at));
    let r = D::one(q, pool).await.map_err(|e| {
        db_err(e, "token", || {
            "a token with this hash already exists".into()
        })
    })?;
    rows::token(&r)
}

static REVOKE_TOKEN: Stmt = Stmt::new(&[
    "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING *",
]);
static END_TOKEN_SESSIONS: Stmt = Stmt::new(&["DELETE FROM sessions WHERE token_id = $1"]);

/// Revokes a token (keeping the first revocation's time) and ends its sessions.
pub(crate) async fn revoke_token<D: Dialect>(pool: &Pool<D>, id: i64) -> Result<ApiToken> {
    let q = D::query(&REVOKE_TOKEN).arg(id).arg(Ts(now()));
    let r = D::optional(q, pool)
        .await?
        .ok_or_else(|| StoreError::not_found("token", id))?;
    D::all(D::query(&END_TOKEN_SESSIONS).arg(id), pool).await?;
    rows::token(&r)
}

static TOUCH_TOKEN: Stmt = Stmt::new(&[
    "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)",
]);

/// Records a token's use at `at`, at most once per [`crate::TOKEN_TOUCH_INTERVAL_SECONDS`].
pub(crate) async fn touch_token<D: Dialect>(pool: &Pool<D>, id: i64, at: Timestamp) -> Result<()> {
    let since = at - chrono::Duration::seconds(crate::TOKEN_TOUCH_INTERVAL_SECONDS);
    let q = D::query(&TOUCH_TOKEN).arg(id).arg(Ts(at)).arg(Ts(since));
    D::all(q, pool).await?;
    Ok(())
}

static DELETE_EXPIRED_SESSIONS: Stmt = Stmt::new(&["DELETE FROM sessions WHERE expires_at <= $1"]);
static INSERT_SESSION: Stmt = Stmt::new(&[
    "INSERT INTO sessions (token_id, session_hash, created_at, expires_at) VALUES ($1, $2, $3, $4) RETURNING id",
]);

/// A browser session of a token; expired sessions are removed first.
pub(crate) async fn create_session<D: Dialect>(
    pool: &Pool<D>,
    token_id: i64,
    session_hash: &str,
    expires_at: Timestamp,
) -> Result<Session> {
    let created = now();
    D::all(D::query(&DELETE_EXPIRED_SESSIONS).arg(Ts(created)), pool).await?;
    let q = D::query(&INSERT_SESSION)
        .arg(token_id)
        .arg(session_hash)
        .arg(Ts(created))
        .arg(Ts(expires_at));
    let r = D::one(q, pool)
        .await
        .map_err(|e| db_err(e, "token", || "this session exists already".into()))?;
    Ok(Session {
        id: r.value("id")?,
        token_id,
        created_at: created,
        expires_at,
    })
}

static DELETE_SESSION: Stmt = Stmt::new(&["DELETE FROM sessions WHERE session_hash = $1"]);

pub(crate) async fn delete_session<D: Dialect>(pool: &Pool<D>, session_hash: &str) -> Result<()> {
    D::all(D::query(&DELETE_SESSION).arg(session_hash), pool).await?;
    Ok(())
}

// Generation servers.

static UPSERT_COMFY_SERVER: Stmt = Stmt::new(&[
    "INSERT INTO comfy_servers (name, url, max_concurrency, drained, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)
     ON CONFLICT (name) DO UPDATE SET url = EXCLUDED.url, max_concurrency = EXCLUDED.max_concurrency,
     drained = EXCLUDED.drained, updated_at = EXCLUDED.updated_at RETURNING *",
]);

pub(crate) async fn upsert_comfy_server<D: Dialect>(
    pool: &Pool<D>,
    name: &str,
    url: &str,
    max_concurrency: u32,
    drained: bool,
) -> Result<ComfyServer> {
    let (name, url) = (D::text(name), D::text(url));
    let q = D::query(&UPSERT_COMFY_SERVER)
        .arg(name.as_ref())
        .arg(url.as_ref())
        // Out of the column's range either way: the CHECK names the field.
        .arg(max_concurrency.min(i32::MAX as u32) as i32)
        .arg(drained)
        .arg(Ts(now()));
    let r = D::one(q, pool)
        .await
        .map_err(|e| db_err(e, "max_concurrency", || "invalid server".into()))?;
    rows::comfy_server(&r)
}

static DELETE_COMFY_SERVER: Stmt =
    Stmt::new(&["DELETE FROM comfy_servers WHERE name = $1 RETURNING id"]);

pub(crate) async fn delete_comfy_server<D: Dialect>(pool: &Pool<D>, name: &str) -> Result<()> {
    D::optional(D::query(&DELETE_COMFY_SERVER).arg(name), pool)
        .await?
        .ok_or_else(|| StoreError::not_found("ComfyUI server", name))?;
    Ok(())
}
