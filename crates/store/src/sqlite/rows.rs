//! SQLite's side of row ↔ domain mapping: timestamps as fixed-width RFC 3339 text, JSON as text,
//! every integer an `INTEGER`. The row builders themselves are shared ([`crate::rows`]).

use crate::model::*;
use crate::rows::{Cell, Col, RowExt};
use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::sqlite::SqliteRow;

pub use crate::rows::{
    attempt, comfy_server, event, project, ready_attempt, scene_type, segment, session, token,
};

/// Fixed-width UTC text, so string order is time order and equality is exact.
pub fn ts(t: Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub fn ots(t: Option<Timestamp>) -> Option<String> {
    t.map(ts)
}

pub fn parse_ts(s: &str) -> Result<Timestamp> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp `{s}`: {e}")))
}

pub fn get_ojson<T: DeserializeOwned>(r: &SqliteRow, col: &str) -> Result<Option<T>> {
    r.ojson(col)
}

pub fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("domain values serialize")
}

impl RowExt for SqliteRow {
    fn ts<'c>(&self, c: impl Into<Col<'c>>) -> Result<Timestamp> {
        parse_ts(&self.value::<String>(c)?)
    }

    fn ots<'c>(&self, c: impl Into<Col<'c>>) -> Result<Option<Timestamp>> {
        let s: Option<String> = self.value(c)?;
        s.as_deref().map(parse_ts).transpose()
    }

    fn json<'c, T: DeserializeOwned>(&self, c: impl Into<Col<'c>>) -> Result<T> {
        let c = c.into();
        let s: String = self.cell(c)?;
        serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("{c}: {e}")))
    }

    fn ojson<'c, T: DeserializeOwned>(&self, c: impl Into<Col<'c>>) -> Result<Option<T>> {
        let c = c.into();
        let s: Option<String> = self.cell(c)?;
        match s.as_deref() {
            None | Some("null") => Ok(None),
            Some(s) => serde_json::from_str(s)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("{c}: {e}"))),
        }
    }

    fn json_value<'c>(&self, c: impl Into<Col<'c>>) -> Result<serde_json::Value> {
        self.json(c)
    }

    fn int<'c>(&self, c: impl Into<Col<'c>>) -> Result<i64> {
        self.value(c)
    }

    fn oint<'c>(&self, c: impl Into<Col<'c>>) -> Result<Option<i64>> {
        self.value(c)
    }

    fn strings<'c>(&self, c: impl Into<Col<'c>>) -> Result<Option<Vec<String>>> {
        self.ojson(c)
    }
}
