//! What the shared store code needs from a database, and nothing more: bound values
//! ([`Value`]), result rows ([`Row`]), and a statement executor ([`Exec`], [`Writer`]) that each
//! backend implements over its own transaction. Every write operation (`crate::ops`) is written
//! once against these traits. The one thing the backends write differently is the key store
//! ([`KeyWrite`]): PostgreSQL's is a schema of the same database, written in the same
//! transaction; SQLite's is a file of its own, which commits first, so its writer stages the
//! changes ([`Keyed::Staged`]).
//!
//! The executor is async because PostgreSQL's driver is. SQLite's is not: its executor runs
//! each statement to completion before returning, so a shared operation driven over it never
//! waits, and the SQLite writer thread finishes it with [`ready`] (one poll, no runtime).

use std::borrow::Cow;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use amanah_core::audit::{AuditDraft, AuditRecord};
use amanah_crypto::audit::AuditKey;
use amanah_crypto::WrappedKey;

use crate::sql::{keys, Sql};
use crate::{StoreError, StoreResult};

/// One bound parameter, typed as the column it is compared with or stored in (PostgreSQL
/// checks the type of every parameter, `NULL` included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Int(Option<i64>),
    Bool(Option<bool>),
    Text(Option<Cow<'a, str>>),
    Blob(Option<Cow<'a, [u8]>>),
}

impl Value<'_> {
    /// The same value, owning its bytes (to cross to another thread).
    pub(crate) fn into_owned(self) -> Value<'static> {
        match self {
            Value::Int(v) => Value::Int(v),
            Value::Bool(v) => Value::Bool(v),
            Value::Text(v) => Value::Text(v.map(|s| Cow::Owned(s.into_owned()))),
            Value::Blob(v) => Value::Blob(v.map(|b| Cow::Owned(b.into_owned()))),
        }
    }

    /// The value as tokio-postgres binds it.
    pub(crate) fn pg(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        match self {
            Value::Int(v) => v,
            Value::Bool(v) => v,
            Value::Text(v) => v,
            Value::Blob(v) => v,
        }
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Int(Some(v)) => ValueRef::Integer(*v),
            Value::Bool(Some(v)) => ValueRef::Integer(i64::from(*v)),
            Value::Text(Some(v)) => ValueRef::Text(v.as_bytes()),
            Value::Blob(Some(v)) => ValueRef::Blob(v),
            Value::Int(None) | Value::Bool(None) | Value::Text(None) | Value::Blob(None) => {
                ValueRef::Null
            }
        }))
    }
}

macro_rules! value_from {
    ($variant:ident: $($t:ty => |$v:ident| $e:expr),* $(,)?) => {$(
        impl<'a> From<$t> for Value<'a> {
            fn from($v: $t) -> Self {
                Value::$variant($e)
            }
        }
    )*};
}

value_from!(Int:
    i64 => |v| Some(v),
    &i64 => |v| Some(*v),
    Option<i64> => |v| v,
    &Option<i64> => |v| *v,
    u32 => |v| Some(i64::from(v)),
);
value_from!(Bool:
    bool => |v| Some(v),
    &bool => |v| Some(*v),
);
value_from!(Text:
    &'a str => |v| Some(Cow::Borrowed(v)),
    &'a String => |v| Some(Cow::Borrowed(v.as_str())),
    String => |v| Some(Cow::Owned(v)),
    Option<&'a str> => |v| v.map(Cow::Borrowed),
    &'a Option<String> => |v| v.as_deref().map(Cow::Borrowed),
    Option<String> => |v| v.map(Cow::Owned),
);
value_from!(Blob:
    &'a [u8] => |v| Some(Cow::Borrowed(v)),
    &'a Vec<u8> => |v| Some(Cow::Borrowed(v.as_slice())),
    &'a [u8; 32] => |v| Some(Cow::Borrowed(&v[..])),
    &'a Option<Vec<u8>> => |v| v.as_deref().map(Cow::Borrowed),
    Option<&'a [u8]> => |v| v.map(Cow::Borrowed),
    Option<Vec<u8>> => |v| v.map(Cow::Owned),
);

/// `args![a, b]`: the bound values of a statement, in placeholder order.
macro_rules! args {
    ($($v:expr),* $(,)?) => {
        &[$($crate::exec::Value::from($v)),*][..]
    };
}

/// One result row, whichever backend produced it. Read a column with `row.col::<T>(i)`.
pub(crate) trait Row {
    fn int(&self, i: usize) -> StoreResult<Option<i64>>;
    fn boolean(&self, i: usize) -> StoreResult<Option<bool>>;
    fn text(&self, i: usize) -> StoreResult<Option<String>>;
    fn blob(&self, i: usize) -> StoreResult<Option<Vec<u8>>>;
    /// The text of column `i` without a copy (for readers of many rows, e.g. the audit chain).
    fn text_ref(&self, i: usize) -> StoreResult<Option<&str>>;
    /// The bytes of column `i` without a copy.
    fn blob_ref(&self, i: usize) -> StoreResult<Option<&[u8]>>;
    /// The bytes of text column `i` without a copy, and on SQLite without checking they are
    /// UTF-8 (the audit verifier, whose MAC covers them, reads a row again with
    /// [`Row::text_ref`] when they do not match it).
    fn text_bytes(&self, i: usize) -> StoreResult<Option<&[u8]>>;
}

/// Reads a result row into a record (the mappers of `crate::rows`).
pub(crate) type Map<T> = fn(&dyn Row) -> StoreResult<T>;

/// Reads a result row into a state carried from row to row (`Backend::fold`); `false` stops.
pub(crate) type Step<S> = fn(&mut S, &dyn Row) -> StoreResult<bool>;

/// The bound values of one statement.
pub(crate) type Args<'a> = &'a [Value<'a>];

/// The records a read found.
pub(crate) type Rows<T> = StoreResult<Vec<T>>;

/// A column type both backends read: `i64`, `bool`, `String`, `Vec<u8>` and their options.
pub(crate) trait Column: Sized {
    fn read(row: &dyn Row, i: usize) -> StoreResult<Self>;
}

pub(crate) fn not_null<T>(v: Option<T>, i: usize) -> StoreResult<T> {
    v.ok_or_else(|| StoreError::Backend(format!("column {i} is NULL")))
}

macro_rules! column {
    ($($t:ty => $get:ident),* $(,)?) => {$(
        impl Column for $t {
            fn read(row: &dyn Row, i: usize) -> StoreResult<Self> {
                not_null(row.$get(i)?, i)
            }
        }
        impl Column for Option<$t> {
            fn read(row: &dyn Row, i: usize) -> StoreResult<Self> {
                row.$get(i)
            }
        }
    )*};
}

column!(i64 => int, bool => boolean, String => text, Vec<u8> => blob);

impl dyn Row + '_ {
    pub(crate) fn col<T: Column>(&self, i: usize) -> StoreResult<T> {
        T::read(self, i)
    }
}

impl Row for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> StoreResult<Option<i64>> {
        self.get(i).map_err(crate::sqlite::backend)
    }
    fn boolean(&self, i: usize) -> StoreResult<Option<bool>> {
        self.get(i).map_err(crate::sqlite::backend)
    }
    fn text(&self, i: usize) -> StoreResult<Option<String>> {
        self.get(i).map_err(crate::sqlite::backend)
    }
    fn blob(&self, i: usize) -> StoreResult<Option<Vec<u8>>> {
        self.get(i).map_err(crate::sqlite::backend)
    }
    fn text_ref(&self, i: usize) -> StoreResult<Option<&str>> {
        let value = self.get_ref(i).map_err(crate::sqlite::backend)?;
        value
            .as_str_or_null()
            .map_err(|e| crate::sqlite::backend(rusqlite::Error::from(e)))
    }
    fn blob_ref(&self, i: usize) -> StoreResult<Option<&[u8]>> {
        let value = self.get_ref(i).map_err(crate::sqlite::backend)?;
        value
            .as_blob_or_null()
            .map_err(|e| crate::sqlite::backend(rusqlite::Error::from(e)))
    }
    fn text_bytes(&self, i: usize) -> StoreResult<Option<&[u8]>> {
        match self.get_ref(i).map_err(crate::sqlite::backend)? {
            rusqlite::types::ValueRef::Text(bytes) => Ok(Some(bytes)),
            rusqlite::types::ValueRef::Null => Ok(None),
            _ => self.text_ref(i).map(|t| t.map(str::as_bytes)),
        }
    }
}

impl Row for tokio_postgres::Row {
    fn int(&self, i: usize) -> StoreResult<Option<i64>> {
        self.try_get(i).map_err(crate::postgres::backend)
    }
    fn boolean(&self, i: usize) -> StoreResult<Option<bool>> {
        self.try_get(i).map_err(crate::postgres::backend)
    }
    fn text(&self, i: usize) -> StoreResult<Option<String>> {
        self.try_get(i).map_err(crate::postgres::backend)
    }
    fn blob(&self, i: usize) -> StoreResult<Option<Vec<u8>>> {
        self.try_get(i).map_err(crate::postgres::backend)
    }
    fn text_ref(&self, i: usize) -> StoreResult<Option<&str>> {
        self.try_get(i).map_err(crate::postgres::backend)
    }
    fn blob_ref(&self, i: usize) -> StoreResult<Option<&[u8]>> {
        self.try_get(i).map_err(crate::postgres::backend)
    }
    fn text_bytes(&self, i: usize) -> StoreResult<Option<&[u8]>> {
        Ok(self.text_ref(i)?.map(str::as_bytes))
    }
}

/// Runs statements inside a backend's transaction.
pub(crate) trait Exec {
    /// A refusal (`NotFound`, `Unique`, ...) or a database error; PostgreSQL keeps the
    /// driver's error to tell a retryable one.
    type Error: From<StoreError> + Send;

    /// Runs a statement; the number of rows it changed.
    async fn execute(&mut self, q: Sql, args: &[Value<'_>]) -> Result<u64, Self::Error>;

    /// Runs a query; every row, read by `map`.
    async fn query<T: Send>(
        &mut self,
        q: Sql,
        args: &[Value<'_>],
        map: Map<T>,
    ) -> Result<Vec<T>, Self::Error>;

    /// Runs statements that do not depend on each other's results, in order; the rows each
    /// changed. PostgreSQL sends them as one pipeline (one round trip).
    async fn execute_all(
        &mut self,
        batch: &[(Sql, Vec<Value<'_>>)],
    ) -> Result<Vec<u64>, Self::Error>;
}

/// A change to the key store (the wrapped data keys).
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyWrite<'a> {
    /// A new subject's data key.
    Insert {
        subject: &'a str,
        key: &'a WrappedKey,
    },
    /// Destroys a subject's data key.
    Delete { subject: &'a str },
    /// A rotation's rewrap: only while the stored key is still under `from_kek` at
    /// `key.version` (a key erased or rewrapped meanwhile is left as it is).
    Rewrap {
        subject: &'a str,
        from_kek: &'a str,
        key: &'a WrappedKey,
    },
}

impl<'a> KeyWrite<'a> {
    /// The statement that makes the change over the key store as the data's connection sees it.
    pub(crate) fn statement(self) -> (Sql, Vec<Value<'a>>) {
        match self {
            KeyWrite::Insert { subject, key } => (
                keys::INSERT_DATA_KEY,
                args![subject, &key.kek_id, key.version, &key.ciphertext].to_vec(),
            ),
            KeyWrite::Delete { subject } => (keys::DELETE_DATA_KEY, args![subject].to_vec()),
            KeyWrite::Rewrap {
                subject,
                from_kek,
                key,
            } => (
                keys::REWRAP_DATA_KEY,
                args![subject, from_kek, key.version, &key.kek_id, &key.ciphertext].to_vec(),
            ),
        }
    }
}

/// How a backend takes a [`KeyWrite`].
pub(crate) enum Keyed<'a> {
    /// Staged for the key store's own commit, which goes before the data's (SQLite); how many
    /// stored keys it changes.
    Staged(u64),
    /// A statement to run in this transaction (PostgreSQL).
    Run(Sql, Vec<Value<'a>>),
}

/// An executor inside a write job: it also appends to the audit chain.
pub(crate) trait Writer: Exec {
    /// Appends one entry to the chain, in this transaction.
    async fn append(&mut self, entry: &AuditDraft) -> Result<AuditRecord, Self::Error>;

    /// The audit key, which also seals the rows that grant access (`crate::integrity`).
    fn audit_key(&self) -> &AuditKey;

    /// Takes a change to the key store: stages it, or hands back the statement to run.
    fn key_write<'a>(&mut self, change: KeyWrite<'a>) -> Result<Keyed<'a>, Self::Error>;

    /// The job destroyed key material (SQLite then truncates both write-ahead logs after the
    /// commit, so no copy of the erased pages stays in them).
    fn keys_erased(&mut self);
}

/// Finishes a future that never waits: a shared operation over SQLite's executor, every
/// statement of which completes before it returns.
pub(crate) fn ready<T>(job: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
    let mut job = pin!(job);
    match job.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(StoreError::Backend(
            "a SQLite statement waited: the writer cannot wait".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_that_waits_is_refused_not_hung() {
        assert_eq!(ready(async { Ok(7) }).ok(), Some(7));
        let waits = std::future::pending::<StoreResult<u8>>();
        assert!(ready(waits).is_err());
    }

    #[test]
    fn values_keep_their_type_when_null() {
        let none: Option<String> = None;
        assert_eq!(Value::from(&none), Value::Text(None));
        assert_eq!(Value::from(None::<i64>), Value::Int(None));
        assert_eq!(Value::from(3u32), Value::Int(Some(3)));
        assert_eq!(
            Value::from("a").into_owned(),
            Value::Text(Some(Cow::Owned("a".into())))
        );
    }
}
