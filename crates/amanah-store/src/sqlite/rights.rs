//! SQLite's entry points to the shared erasure (`crate::ops::shred`), for what runs outside a
//! store method: reconciliation after a restore, and crash recovery.

use rusqlite::Connection;

use super::*;

/// Deletes everything of one subject (its data key staged: the key store commits first) and
/// leaves a tombstone.
pub(super) fn shred(
    tx: &Connection,
    chain: &mut Chain,
    id: &str,
    at: i64,
    cause: &str,
) -> StoreResult<()> {
    ready(ops::shred(&mut Lite::writer(tx, chain), id, at, cause))
}

/// Purges every subject whose data key the key store does not hold (nor this batch stages);
/// returns how many.
pub(super) fn shred_keyless(tx: &Connection, chain: &mut Chain, at: i64) -> StoreResult<u64> {
    let mut ids = super::recovery::ids(tx, super::recovery::KEYLESS)?;
    ids.retain(|id| !chain.keys.inserts(id));
    for id in &ids {
        shred(tx, chain, id, at, "restore: no key in the key store")?;
    }
    Ok(ids.len() as u64)
}
