//! PostgreSQL store: see `postgres/` (being built). Until it lands, connecting says so.

use crate::{Result, StoreError};

pub struct PgStore;

impl PgStore {
    pub async fn connect(_url: &str) -> Result<crate::sqlite::SqliteStore> {
        Err(StoreError::invalid(Some("database_url"), "PostgreSQL support is not built yet"))
    }
}
