//! The key store's queries, written once: rotation's reads, and the key writes (a new subject's
//! key, an erasure's, a rotation's rewrap; see `crate::exec::KeyWrite`). The data keys live in
//! the key store, whose name is the one dialect difference here (`amanah_keys` on PostgreSQL,
//! the attached `keys` on SQLite): each query is a macro of that name, expanded for both by
//! [`on_key_store!`].

use super::Sql;

/// A query over the key store, written once as a macro of the key store's schema name.
macro_rules! on_key_store {
    ($query:ident) => {
        Sql {
            pg: sql!($query!("amanah_keys")).pg,
            lite: sql!($query!("keys")).lite,
        }
    };
}

/// $1 the active KEK; keyset paging on subject id after $2; at most $3.
macro_rules! data_keys_not_under {
    ($keys:literal) => {
        concat!(
            "SELECT subject_id, kek_id, key_version, wrapped_key FROM ",
            $keys,
            ".data_keys WHERE kek_id <> $1 AND subject_id > $2 ORDER BY subject_id LIMIT $3"
        )
    };
}

/// Rewrites one key only if it is still the one read: same subject, KEK and version.
/// $1 subject, $2 the KEK it was under, $3 version, $4 the new KEK, $5 the new wrapped key.
macro_rules! rewrap_data_key {
    ($keys:literal) => {
        concat!(
            "UPDATE ",
            $keys,
            ".data_keys SET kek_id = $4, wrapped_key = $5
             WHERE subject_id = $1 AND kek_id = $2 AND key_version = $3"
        )
    };
}

/// $1 subject, $2 KEK, $3 version, $4 the wrapped key.
macro_rules! insert_data_key {
    ($keys:literal) => {
        concat!(
            "INSERT INTO ",
            $keys,
            ".data_keys (subject_id, kek_id, key_version, wrapped_key) VALUES ($1, $2, $3, $4)"
        )
    };
}

/// Destroys one subject's key ($1).
macro_rules! delete_data_key {
    ($keys:literal) => {
        concat!("DELETE FROM ", $keys, ".data_keys WHERE subject_id = $1")
    };
}

macro_rules! data_keys_per_kek {
    ($keys:literal) => {
        concat!(
            "SELECT kek_id, COUNT(*) FROM ",
            $keys,
            ".data_keys GROUP BY kek_id ORDER BY kek_id"
        )
    };
}

pub(crate) const DATA_KEYS_NOT_UNDER: Sql = on_key_store!(data_keys_not_under);
pub(crate) const REWRAP_DATA_KEY: Sql = on_key_store!(rewrap_data_key);
pub(crate) const DATA_KEYS_PER_KEK: Sql = on_key_store!(data_keys_per_kek);
pub(crate) const INSERT_DATA_KEY: Sql = on_key_store!(insert_data_key);
pub(crate) const DELETE_DATA_KEY: Sql = on_key_store!(delete_data_key);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_backend_names_its_key_store() {
        assert!(DATA_KEYS_NOT_UNDER
            .pg
            .contains("FROM amanah_keys.data_keys WHERE kek_id <> $1"));
        assert!(DATA_KEYS_NOT_UNDER
            .lite
            .contains("FROM keys.data_keys WHERE kek_id <> ?1"));
        assert!(REWRAP_DATA_KEY
            .lite
            .contains("UPDATE keys.data_keys SET kek_id = ?4"));
        assert!(REWRAP_DATA_KEY.pg.contains("AND key_version = $3"));
        assert!(DATA_KEYS_PER_KEK
            .pg
            .contains("amanah_keys.data_keys GROUP BY kek_id"));
        assert!(INSERT_DATA_KEY.pg.contains("INTO amanah_keys.data_keys ("));
        assert!(INSERT_DATA_KEY.lite.contains("INTO keys.data_keys ("));
        assert!(DELETE_DATA_KEY.lite.ends_with("WHERE subject_id = ?1"));
    }
}
