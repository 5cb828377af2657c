//! Fresh databases for tests: a SQLite file in a temp dir, or a PostgreSQL database created with a
//! unique name and dropped afterwards. The PostgreSQL URL comes from `RETAKE_TEST_DATABASE_URL`
//! (default: the local trust-auth server). When no server answers, PostgreSQL tests print one loud
//! `SKIPPED` line and return — unless `RETAKE_REQUIRE_POSTGRES=1` (CI), which makes them fail.

use crate::Store;
use std::sync::{Arc, OnceLock};

pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn pg_admin_url() -> String {
    std::env::var("RETAKE_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned())
}

/// Keeps a test database alive; dropping it removes the database.
pub enum TestDb {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    /// The URL the test database answers at (for starting `retake` processes against it).
    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite(dir) => format!("sqlite:{}", dir.path().join("retake.db").display()),
            TestDb::Postgres { admin_url, name } => replace_db(admin_url, name),
        }
    }

    pub fn dir(&self) -> Option<&std::path::Path> {
        match self {
            TestDb::Sqlite(d) => Some(d.path()),
            TestDb::Postgres { .. } => None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs outside any async context we can rely on: use a private runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
                        .max_connections(1)
                        .connect(&admin_url)
                        .await
                    {
                        let _ = sqlx::query(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .execute(&pool)
                        .await;
                        pool.close().await;
                    }
                });
            })
            .join();
        }
    }
}

fn replace_db(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

pub async fn sqlite() -> (Arc<dyn Store>, TestDb) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = TestDb::Sqlite(dir);
    let store = crate::connect(&db.url()).await.expect("open sqlite");
    (store, db)
}

static SKIP_NOTICE: OnceLock<()> = OnceLock::new();

/// A fresh PostgreSQL database, or `None` (after one loud SKIPPED line) when no server answers.
pub async fn postgres() -> Option<(Arc<dyn Store>, TestDb)> {
    let admin_url = pg_admin_url();
    let admin = match sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(3))
        .connect(&admin_url)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            if std::env::var("RETAKE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!(
                    "RETAKE_REQUIRE_POSTGRES=1 but PostgreSQL at {admin_url} is not reachable: {e}"
                );
            }
            SKIP_NOTICE.get_or_init(|| {
                eprintln!("\n*** SKIPPED: PostgreSQL tests — no server at {admin_url} ({e}). Set RETAKE_TEST_DATABASE_URL. ***\n");
            });
            return None;
        }
    };
    let name = format!("retake_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&admin)
        .await
        .expect("create test database");
    admin.close().await;
    let db = TestDb::Postgres { admin_url, name };
    let store = crate::connect(&db.url()).await.expect("open postgres");
    Some((store, db))
}

tokio::task_local! {
    static DB_URL: String;
}

/// Runs a contract test body with its database's URL available to [`current_db_url`].
pub async fn with_db<F: std::future::Future>(db: &TestDb, body: F) -> F::Output {
    DB_URL.scope(db.url(), body).await
}

/// The URL of the database the running contract test uses (inside [`contract_tests!`] only).
pub fn current_db_url() -> String {
    DB_URL
        .try_with(Clone::clone)
        .expect("current_db_url() is only available inside contract_tests!")
}

/// A project's budget as the database holds it, with the append-only ledger's totals.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetAudit {
    pub budget: Option<f64>,
    pub spent: f64,
    pub reserved: f64,
    pub ledger_spent: f64,
    pub ledger_rows: i64,
}

/// Reads a project's budget columns and ledger straight from the database at `url`, on a
/// connection of its own (not through the store under test).
pub async fn budget_audit(url: &str, project_id: i64) -> BudgetAudit {
    use sqlx::Row;
    // The budget as readers see it: the project row plus the deltas finishes appended that no
    // claim has folded yet (folding them never raises spent + reserved: a finish releases at
    // least what it spends).
    const SQL: &str = "SELECT gpu_budget_seconds,
        gpu_spent_seconds + COALESCE((SELECT SUM(value) FROM project_deltas WHERE project_id = p.id AND key = 'gpu_spent'), 0.0),
        gpu_reserved_seconds + COALESCE((SELECT SUM(value) FROM project_deltas WHERE project_id = p.id AND key = 'gpu_reserved'), 0.0),
        (SELECT COALESCE(SUM(spent_seconds), 0.0) FROM gpu_ledger WHERE project_id = p.id) AS ledger_spent,
        (SELECT COUNT(*) FROM gpu_ledger WHERE project_id = p.id) AS ledger_rows
        FROM projects p WHERE id = $1";
    macro_rules! audit {
        ($row:expr) => {{
            let r = $row;
            BudgetAudit {
                budget: r.get(0),
                spent: r.get(1),
                reserved: r.get(2),
                ledger_spent: r.get(3),
                ledger_rows: r.get(4),
            }
        }};
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(url)
            .await
            .expect("connect for audit");
        audit!(sqlx::query(SQL)
            .bind(project_id)
            .fetch_one(&mut c)
            .await
            .expect("audit query"))
    } else {
        let path = url.strip_prefix("sqlite:").unwrap_or(url);
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .read_only(true);
        let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&opts)
            .await
            .expect("open for audit");
        audit!(sqlx::query(&SQL.replace("$1", "?1"))
            .bind(project_id)
            .fetch_one(&mut c)
            .await
            .expect("audit query"))
    }
}

/// Run the same test body against both stores.
#[macro_export]
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, db) = $crate::testing::sqlite().await;
                    $crate::testing::with_db(&db, super::$name(store)).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some((store, db)) = $crate::testing::postgres().await else { return };
                    $crate::testing::with_db(&db, super::$name(store)).await;
                }
            )*
        }
    };
}
