//! The databases a deployment makes and removes for the organizations it hosts, in the
//! cluster of its own store (or of a tenant's dedicated store).

use super::tls::{self, Target};
use super::{backend, connect};
use crate::{StoreError, StoreResult};

/// Names the platform makes are lower-case letters, digits and `_` (quoted all the same).
fn checked(name: &str) -> StoreResult<&str> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(name)
    } else {
        Err(StoreError::Backend(
            "a database the platform makes is named with a-z, 0-9 and _".into(),
        ))
    }
}

/// Whether database `name` exists in the cluster `url` connects to.
pub async fn database_exists(url: &str, name: &str) -> StoreResult<bool> {
    let client = connect(&Target::new(tls::parse(url)?)?).await?;
    let rows = client
        .query("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(backend)?;
    Ok(!rows.is_empty())
}

/// Makes database `name` in the cluster `url` connects to (its role needs `CREATEDB`).
pub async fn create_database(url: &str, name: &str) -> StoreResult<()> {
    let name = checked(name)?;
    let client = connect(&Target::new(tls::parse(url)?)?).await?;
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .map_err(backend)
}

/// Drops database `name` (closing its connections) if it exists.
pub async fn drop_database(url: &str, name: &str) -> StoreResult<()> {
    let name = checked(name)?;
    let client = connect(&Target::new(tls::parse(url)?)?).await?;
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .map_err(backend)
}

/// Removes every Amanah table of the database at `url` (a database dedicated to one
/// organization, being purged after its deletion): its `public` schema and the key schema.
pub async fn clear_database(url: &str) -> StoreResult<()> {
    let client = connect(&Target::new(tls::parse(url)?)?).await?;
    client
        .batch_execute(
            "DROP SCHEMA IF EXISTS amanah_keys CASCADE;
             DROP SCHEMA IF EXISTS public CASCADE;
             CREATE SCHEMA public;",
        )
        .await
        .map_err(backend)
}

/// Whether the database at `url` holds no table of its own (a database given to a new
/// organization must: nothing already there is ever touched).
pub async fn is_empty(url: &str) -> StoreResult<bool> {
    let client = connect(&Target::new(tls::parse(url)?)?).await?;
    let row = client
        .query_one(
            // The catalog, not information_schema (which lists only what this role may use).
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
               AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')",
            &[],
        )
        .await
        .map_err(backend)?;
    Ok(row.get::<_, i64>(0) == 0)
}

/// How many databases of the cluster have a name starting with `prefix` (the organizations a
/// deployment placed in its own cluster).
pub async fn count_databases_with_prefix(url: &str, prefix: &str) -> StoreResult<i64> {
    let prefix = checked(prefix)?;
    let client = connect(&Target::new(tls::parse(url)?)?).await?;
    // `_` is a LIKE wildcard: escaped.
    let pattern = format!("{}%", prefix.replace('_', "\\_"));
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname LIKE $1",
            &[&pattern],
        )
        .await
        .map_err(backend)?;
    Ok(row.get(0))
}
