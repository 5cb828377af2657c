//! PostgreSQL's side of row ↔ domain mapping (`TIMESTAMPTZ`, `JSONB`, `INT4`, `TEXT[]`), NUL-free
//! parameters, and which errors are worth a retry. The row builders themselves are shared
//! ([`crate::rows`]). It owns no SQL beyond column names.

use crate::model::*;
use crate::rows::{Cell, Col, RowExt};
use crate::{Result, StoreError};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use std::borrow::Cow;

pub use crate::rows::{
    attempt, comfy_server, event, project, ready_attempt, scene_type, segment, session, token,
};

/// A domain value as a `JSONB` parameter, NUL-free (see [`text`]).
pub fn json<T: serde::Serialize>(v: &T) -> Json<Value> {
    let mut v = serde_json::to_value(v).expect("domain values serialize");
    scrub(&mut v);
    Json(v)
}

/// PostgreSQL's `TEXT` and `JSONB` cannot hold a NUL character (SQLite can). Text from outside —
/// a generation server's error, a QA command's output — might carry one, and failing the whole
/// finish over it would strand the attempt, so it is stored as U+FFFD instead.
pub fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

pub fn otext(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(text)
}

fn scrub(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        Value::Array(a) => a.iter_mut().for_each(scrub),
        Value::Object(m) => {
            if m.keys().any(|k| k.contains('\0')) {
                *m = std::mem::take(m)
                    .into_iter()
                    .map(|(k, v)| (k.replace('\0', "\u{FFFD}"), v))
                    .collect();
            }
            m.values_mut().for_each(scrub);
        }
        _ => {}
    }
}

/// SQL `NULL` and JSON `null` both read as `None`.
pub fn get_ojson<T: DeserializeOwned>(r: &PgRow, col: &str) -> Result<Option<T>> {
    r.ojson(col)
}

fn from_json<T: DeserializeOwned>(c: Col<'_>, v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| StoreError::Corrupt(format!("{c}: {e}")))
}

impl RowExt for PgRow {
    fn ts<'c>(&self, c: impl Into<Col<'c>>) -> Result<Timestamp> {
        self.cell(c.into())
    }

    fn ots<'c>(&self, c: impl Into<Col<'c>>) -> Result<Option<Timestamp>> {
        self.cell(c.into())
    }

    fn json<'c, T: DeserializeOwned>(&self, c: impl Into<Col<'c>>) -> Result<T> {
        let c = c.into();
        let Json(v): Json<Value> = self.cell(c)?;
        from_json(c, v)
    }

    fn ojson<'c, T: DeserializeOwned>(&self, c: impl Into<Col<'c>>) -> Result<Option<T>> {
        let c = c.into();
        let v: Option<Json<Value>> = self.cell(c)?;
        match v {
            None | Some(Json(Value::Null)) => Ok(None),
            Some(Json(v)) => from_json(c, v).map(Some),
        }
    }

    fn json_value<'c>(&self, c: impl Into<Col<'c>>) -> Result<Value> {
        let Json(v): Json<Value> = self.cell(c.into())?;
        Ok(v)
    }

    fn int<'c>(&self, c: impl Into<Col<'c>>) -> Result<i64> {
        Ok(Cell::<i32>::cell(self, c.into())?.into())
    }

    fn oint<'c>(&self, c: impl Into<Col<'c>>) -> Result<Option<i64>> {
        Ok(Cell::<Option<i32>>::cell(self, c.into())?.map(i64::from))
    }

    fn strings<'c>(&self, c: impl Into<Col<'c>>) -> Result<Option<Vec<String>>> {
        self.cell(c.into())
    }
}

/// SQLSTATEs after which the whole transaction is worth running again.
pub fn is_retriable(e: &StoreError) -> bool {
    match e {
        StoreError::Db(sqlx::Error::Database(d)) => {
            matches!(d.code().as_deref(), Some("40P01" | "40001"))
        }
        _ => false,
    }
}

pub use crate::errors::db_err;
