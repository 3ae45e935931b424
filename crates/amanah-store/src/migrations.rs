//! The schema's history: one sequence of migrations, numbered alike on both backends, each
//! step a file per dialect in `migrations/{sqlite,postgres}/NNNN_name.sql`. A store records the
//! last step it applied (SQLite: `PRAGMA user_version`; PostgreSQL: the `schema_version`
//! table); opening it applies the steps after that one, in order, in one transaction, and
//! refuses a store whose number is above [`SCHEMA_VERSION`] (written by a newer Amanah). A
//! step that needs code as well as SQL names its number here ([`LISTS_AS_JSON`],
//! [`ACCESS_MACS`]) and each backend runs that code right after the step's SQL.

/// The newest schema this binary understands, on both backends.
pub const SCHEMA_VERSION: i64 = 11;

/// Schema 6's code: comma-joined lists converted to JSON, entries schema 5 misread recovered
/// from their MACs, the genesis head signed.
pub(crate) const LISTS_AS_JSON: i64 = 6;

/// Schema 7's code: the API key and policy rows already there sealed with their MAC
/// (`crate::integrity`).
pub(crate) const ACCESS_MACS: i64 = 7;

/// Schema 11 reshapes `subjects` (its fields move into it), which SQL cannot make conditional on
/// SQLite: a store already in that shape skips the step on either backend (only a test that
/// rewinds a store's version meets one).
pub(crate) const FIELDS_IN_SUBJECT_ROW: i64 = 11;

/// Whether a store of the old shape still needs schema 11: this query finds no `fields`
/// column in `subjects`.
pub(crate) const SUBJECT_ROW_HAS_FIELDS: crate::sql::Sql = crate::sql::Sql {
    pg: "SELECT COUNT(*) FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = 'subjects'
           AND column_name = 'fields'",
    lite: "SELECT COUNT(*) FROM pragma_table_info('subjects') WHERE name = 'fields'",
};

/// One step of the schema.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    pub(crate) sqlite: &'static str,
    pub(crate) postgres: &'static str,
}

macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sqlite: include_str!(concat!("../migrations/sqlite/", $name, ".sql")),
            postgres: include_str!(concat!("../migrations/postgres/", $name, ".sql")),
        }
    };
}

pub(crate) const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_initial"),
    migration!(2, "0002_consents"),
    migration!(3, "0003_key_store"),
    migration!(4, "0004_accountability"),
    migration!(5, "0005_api_key_holder"),
    migration!(6, "0006_json_lists"),
    migration!(7, "0007_access_macs"),
    migration!(8, "0008_batch_ledger"),
    migration!(9, "0009_tenants"),
    migration!(10, "0010_documents"),
    migration!(11, "0011_fields_in_subject_row"),
];

/// The steps a store at `found` still needs.
pub(crate) fn after(found: i64) -> impl Iterator<Item = &'static Migration> {
    MIGRATIONS.iter().filter(move |m| m.version > found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_numbered_sequence_ends_at_the_supported_version() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1);
            assert!(
                m.name.starts_with(&format!("{:04}_", m.version)),
                "{}",
                m.name
            );
            assert!(!m.sqlite.trim().is_empty() && !m.postgres.trim().is_empty());
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(SCHEMA_VERSION));
        assert!(MIGRATIONS.iter().any(|m| m.version == LISTS_AS_JSON));
        assert!(MIGRATIONS.iter().any(|m| m.version == ACCESS_MACS));
        assert!(MIGRATIONS
            .iter()
            .any(|m| m.version == FIELDS_IN_SUBJECT_ROW));
        assert_eq!(
            after(4).map(|m| m.version).collect::<Vec<_>>(),
            [5, 6, 7, 8, 9, 10, 11]
        );
    }

    #[test]
    fn every_migration_file_is_in_the_sequence() {
        for dialect in ["sqlite", "postgres"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dialect);
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(|c: char| c.is_ascii_digit()))
                .collect();
            files.sort();
            let listed: Vec<String> = MIGRATIONS
                .iter()
                .map(|m| format!("{}.sql", m.name))
                .collect();
            assert_eq!(files, listed, "{dialect}");
        }
    }
}
