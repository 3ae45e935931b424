//! The store contract, run against both backends with the same code: group commit keeps each
//! job atomic and the chain intact; consents, relations and the schema version behave alike;
//! rights (`contract/rights.rs`) and accountability (`contract/accountability.rs`) keep their
//! records alike and refuse stale state changes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

mod common;

use amanah_core::audit::{
    canonical_bytes, AuditAction, AuditDraft, ChainBreak, ChainLink, ChainVerifier, LinkCheck,
    Outcome,
};
use amanah_crypto::audit::AuditKey;
use amanah_crypto::KeyRing;
use amanah_store::{
    ApiKeyRecord, BreachRecord, BulkInsert, ConsentRecord, ConsentSelection, DisclosureRecord,
    PgStore, PolicyRecord, RelationRecord, RightsStore, SqliteStore, Store, StoreError,
};
use common::{draft, subject};

/// Where a test's store lives: a SQLite file or a database of the shared test cluster.
enum Backend {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres(String),
}

impl Backend {
    fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        Backend::Sqlite { _dir: dir, path }
    }

    fn postgres(label: &str) -> Backend {
        Backend::Postgres(amanah_testpg::database(label))
    }

    async fn try_open(&self, key: AuditKey) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            Backend::Sqlite { path, .. } => Arc::new(SqliteStore::open(path, key)?),
            Backend::Postgres(url) => Arc::new(PgStore::open(url, key).await?),
        })
    }

    async fn open(&self, key: AuditKey) -> Arc<dyn Store> {
        self.try_open(key).await.unwrap()
    }

    /// Runs SQL on the store's database, behind the store's back (tampering, old schemas).
    fn sql(&self, sql: &str) {
        match self {
            Backend::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.execute_batch(sql).unwrap();
            }
            Backend::Postgres(url) => amanah_testpg::cluster().execute(url, sql),
        }
    }

    /// Marks the stored schema as written by a future version.
    fn set_future_schema(&self) {
        match self {
            Backend::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.pragma_update(None, "user_version", 99).unwrap();
            }
            Backend::Postgres(url) => amanah_testpg::cluster()
                .execute(url, "INSERT INTO schema_version (version) VALUES (99)"),
        }
    }
}

/// Each contract test, once per backend.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Backend::sqlite()).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Backend::postgres(stringify!($name))).await
            }
        }
    )*};
}

#[path = "contract/accountability.rs"]
mod accountability;
#[path = "contract/documents.rs"]
mod documents;
#[path = "contract/rights.rs"]
mod rights;

on_both_stores!(
    concurrent_writes_commit_atomically_and_the_chain_verifies,
    the_chain_survives_a_restart,
    a_newer_schema_is_refused,
    consents_keep_history_and_listings_see_the_latest_decision,
    bulk_insert_is_all_or_nothing_and_reports_every_conflict,
    audit_fields_with_commas_round_trip,
    a_new_store_has_a_signed_genesis_head,
    a_missing_or_unsigned_head_stops_writes_and_fails_verification,
    schema_5_lists_convert_without_breaking_the_chain,
    prop_any_audit_strings_round_trip_and_the_chain_verifies,
    disclosure_and_breach_categories_round_trip,
    rows_that_grant_access_are_sealed_and_forged_ones_refused,
    schema_6_rows_are_sealed_by_the_migration,
    rewrapping_is_conditional_and_keys_are_counted_per_kek,
    an_unknown_stored_action_is_refused_like_a_malformed_row,
    chain_links_are_checked_where_they_are_read,
    schema_10_fields_move_into_the_subject_row,
);

/// Schema 7's columns dropped: the store as schema 6 and before left it.
const UNSEAL: &str = "ALTER TABLE api_keys DROP COLUMN mac;
ALTER TABLE policy_versions DROP COLUMN mac;";

fn api_key(id: &str, role: &str, token_hash: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.into(),
        name: id.into(),
        role: role.into(),
        holder: Some("Ana <ana@example.id>".into()),
        token_hash: token_hash.into(),
        created_at_micros: 1,
        revoked_at_micros: None,
    }
}

fn policy(version: &str) -> PolicyRecord {
    PolicyRecord {
        seq: 0,
        version: version.into(),
        source: format!("version = \"{version}\""),
        sha256: "00".repeat(32),
        applied_at_micros: 1,
    }
}

/// API keys and policy versions are sealed by the store and checked on every read: rows
/// written behind its back (a forged admin key, a raised role, a policy inserted or an old one
/// moved to the top) are refused, a forged key cannot be revoked, genuine ones keep working.
async fn rows_that_grant_access_are_sealed_and_forged_ones_refused(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    let store = backend.open(ring.audit_key()).await;
    let (a, b) = ("a".repeat(64), "b".repeat(64));
    store
        .insert_api_key(
            api_key("clerk", "clerk", &a),
            draft(AuditAction::ApikeyCreate, None),
        )
        .await
        .unwrap();
    store
        .insert_policy(policy("v1"), draft(AuditAction::PolicyApply, None))
        .await
        .unwrap();
    store
        .insert_policy(policy("v2"), draft(AuditAction::PolicyApply, None))
        .await
        .unwrap();
    assert_eq!(
        store.api_key_by_hash(&a).await.unwrap().unwrap().role,
        "clerk"
    );
    assert_eq!(store.current_policy().await.unwrap().unwrap().version, "v2");

    backend.sql(&format!(
        "INSERT INTO api_keys (id, name, role, holder, token_hash, created_at)
         VALUES ('eve', 'eve', 'admin', NULL, '{b}', 1);
         INSERT INTO policy_versions (seq, version, source, sha256, applied_at)
         VALUES (10, 'forged', 'version = \"forged\"', 'x', 1);"
    ));
    assert_eq!(store.api_key_by_hash(&b).await.unwrap(), None);
    let listed: Vec<String> = store
        .list_api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(listed, ["clerk"]);
    assert!(matches!(
        store
            .revoke_api_key("eve", 2, draft(AuditAction::ApikeyRevoke, None))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.current_policy().await.unwrap().unwrap().version, "v2");

    // v1's genuine row and MAC copied above v2: its MAC covers its sequence number.
    backend.sql(
        "DELETE FROM policy_versions WHERE seq = 10;
         INSERT INTO policy_versions (seq, version, source, sha256, applied_at, mac)
         SELECT 11, version, source, sha256, applied_at, mac FROM policy_versions WHERE version = 'v1';",
    );
    assert_eq!(store.current_policy().await.unwrap().unwrap().version, "v2");

    // A genuine key raised to admin is refused; put back, it works, and revokes sealed.
    backend.sql("UPDATE api_keys SET role = 'admin' WHERE id = 'clerk'");
    assert_eq!(store.api_key_by_hash(&a).await.unwrap(), None);
    backend.sql("UPDATE api_keys SET role = 'clerk' WHERE id = 'clerk'");
    assert!(store.api_key_by_hash(&a).await.unwrap().is_some());
    store
        .revoke_api_key("clerk", 2, draft(AuditAction::ApikeyRevoke, None))
        .await
        .unwrap();
    let revoked = store.api_key_by_hash(&a).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at_micros, Some(2));
    // Revocation undone behind the store's back: the row no longer matches its MAC.
    backend.sql("UPDATE api_keys SET revoked_at = NULL WHERE id = 'clerk'");
    assert_eq!(store.api_key_by_hash(&a).await.unwrap(), None);

    // Only forged versions above nothing genuine: no policy is in force, loudly.
    backend.sql("DELETE FROM policy_versions WHERE seq < 11");
    assert!(store.current_policy().await.is_err());
    assert_eq!(verify(&store, &ring).await, 4);
}

/// A store from before schema 7 gets its existing rows sealed by the migration, under its own
/// key: they read back as before; rows added later without the key do not.
async fn schema_6_rows_are_sealed_by_the_migration(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    let hash = "c".repeat(64);
    {
        let store = backend.open(ring.audit_key()).await;
        store
            .insert_api_key(
                api_key("old", "dpo", &hash),
                draft(AuditAction::ApikeyCreate, None),
            )
            .await
            .unwrap();
        store
            .insert_policy(policy("old"), draft(AuditAction::PolicyApply, None))
            .await
            .unwrap();
    }
    let mut sql = UNSEAL.to_owned();
    match &backend {
        Backend::Sqlite { .. } => sql.push_str("PRAGMA user_version = 6;"),
        Backend::Postgres(_) => sql.push_str("DELETE FROM schema_version WHERE version >= 7;"),
    }
    backend.sql(&sql);
    let store = backend.open(ring.audit_key()).await;
    assert_eq!(
        store.api_key_by_hash(&hash).await.unwrap().unwrap().role,
        "dpo"
    );
    assert_eq!(
        store.current_policy().await.unwrap().unwrap().version,
        "old"
    );
    backend.sql(&format!(
        "INSERT INTO api_keys (id, name, role, token_hash, created_at)
         VALUES ('late', 'late', 'admin', '{}', 1)",
        "d".repeat(64)
    ));
    assert_eq!(store.api_key_by_hash(&"d".repeat(64)).await.unwrap(), None);
    assert_eq!(verify(&store, &ring).await, 2);
}

/// A store from before schema 11 kept a row per field in `subject_fields`: the migration moves
/// each subject's sealed values into its row, unopened, and they read, search, change and erase
/// as before.
async fn schema_10_fields_move_into_the_subject_row(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    let key = amanah_crypto::DataKey::generate(1).unwrap();
    let mut two = subject(&ring, "two", [2; 32]);
    two.wrapped_key = ring.wrap(&key, "two").unwrap();
    two.fields[0].ciphertext = key.seal_field("two", "email", b"two@example.id").unwrap();
    // "Zeta" sorts before "email" by bytes and after it in the case-blind collation the old
    // table's categories are given below: the migration must order by bytes, whatever the
    // column's collation.
    let name = key.seal_field("two", "Zeta", b"Dua").unwrap();
    let email = two.fields[0].ciphertext.clone();
    let mut bare = subject(&ring, "bare", [3; 32]);
    bare.fields.clear();
    {
        let store = backend.open(ring.audit_key()).await;
        for s in [two, bare] {
            let id = s.id.clone();
            store
                .insert_subject(s, draft(AuditAction::SubjectCreate, Some(&id)))
                .await
                .unwrap();
        }
    }
    // The shape schema 10 left: a row per field.
    let (blob, collation, rewind) = match &backend {
        Backend::Sqlite { .. } => ("x'{}'", "NOCASE", "PRAGMA user_version = 10;"),
        Backend::Postgres(_) => (
            "'\\x{}'::bytea",
            "\"und-x-icu\"",
            // The migration runs as a session with backslash escapes in strings would run it.
            "DELETE FROM schema_version WHERE version >= 11;
             DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET standard_conforming_strings = off',
                                        current_database()); END $$;",
        ),
    };
    let literal = |bytes: &[u8]| blob.replace("{}", &hex::encode(bytes));
    backend.sql(&format!(
        "CREATE TABLE subject_fields (
             subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
             category TEXT COLLATE {collation} NOT NULL,
             ciphertext {} NOT NULL,
             updated_at BIGINT NOT NULL,
             PRIMARY KEY (subject_id, category));
         INSERT INTO subject_fields VALUES ('two', 'email', {}, 1), ('two', 'Zeta', {}, 1);
         ALTER TABLE subjects DROP COLUMN fields;
         {rewind}",
        if blob.starts_with('x') {
            "BLOB"
        } else {
            "BYTEA"
        },
        literal(&email),
        literal(&name),
    ));
    let store = backend.open(ring.audit_key()).await;
    let loaded = store.load_subject("two").await.unwrap().unwrap();
    assert_eq!(
        loaded.fields.unwrap(),
        [
            ("Zeta".to_owned(), name.clone()),
            ("email".to_owned(), email.clone()),
        ]
    );
    let opened = ring.unwrap(&loaded.wrapped_key, "two").unwrap();
    assert_eq!(
        opened.open_field("two", "Zeta", &name).unwrap().as_slice(),
        b"Dua"
    );
    let bare = store.load_subject("bare").await.unwrap().unwrap();
    assert_eq!(bare.fields, Ok(Vec::new()));
    // Searchable and unique as before; retention sees both categories.
    assert_eq!(
        store
            .find_subjects("email", [2; 32], 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let err = store
        .insert_subject(
            subject(&ring, "again", [2; 32]),
            draft(AuditAction::SubjectCreate, Some("again")),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unique { .. }), "{err:?}");
    let page = store.retention_page(None, 10).await.unwrap();
    let of_two = page.iter().find(|s| s.id == "two").unwrap();
    assert_eq!(of_two.categories, ["Zeta", "email"]);
    store
        .erase_categories(
            "two",
            vec!["Zeta".into()],
            Vec::new(),
            draft(AuditAction::SubjectErase, Some("two")),
        )
        .await
        .unwrap();
    let loaded = store.load_subject("two").await.unwrap().unwrap();
    assert_eq!(loaded.fields.unwrap(), [("email".to_owned(), email)]);

    // A set cut short behind the store's back: the subject still loads (to be erased), its
    // fields do not; retention goes on without them, and changing them is refused.
    backend.sql("UPDATE subjects SET fields = substr(fields, 1, 3) WHERE id = 'two'");
    let loaded = store.load_subject("two").await.unwrap().unwrap();
    assert_eq!(loaded.fields, Err(amanah_store::sealed_fields::Malformed));
    let page = store.retention_page(None, 10).await.unwrap();
    assert!(page.iter().any(|s| s.id == "bare"));
    let of_two = page.iter().find(|s| s.id == "two").unwrap();
    assert!(of_two.categories.is_empty(), "{:?}", of_two.categories);
    let refused = store
        .erase_categories(
            "two",
            vec!["email".into()],
            Vec::new(),
            draft(AuditAction::SubjectErase, Some("two")),
        )
        .await;
    assert!(refused.is_err());
    assert_eq!(verify(&store, &ring).await, 3);
    store
        .erase_subject(
            "two",
            2,
            "test",
            draft(AuditAction::SubjectErase, Some("two")),
        )
        .await
        .unwrap();
    assert!(store.load_subject("two").await.unwrap().is_none());
}

/// Verifies the whole chain, returning the break instead of panicking.
async fn try_verify(
    store: &Arc<dyn Store>,
    ring: &KeyRing,
) -> Result<u64, amanah_core::audit::ChainBreak> {
    let key = ring.audit_key();
    let mut v = ChainVerifier::new(&key);
    for r in store.audit_entries(None, 0, usize::MAX >> 1).await.unwrap() {
        v.push(&r)?;
    }
    let n = v.count();
    v.finish(store.audit_head().await.unwrap())?;
    Ok(n)
}

/// Verifies the chain as `amanah audit verify` reads it: as links, `page` entries at a time.
async fn verify_links(
    store: &Arc<dyn Store>,
    key: &AuditKey,
    page: usize,
) -> Result<u64, amanah_core::audit::ChainBreak> {
    let mut v = ChainVerifier::new(key);
    loop {
        let links = store.audit_links(key, v.count(), page).await.unwrap();
        if links.is_empty() {
            break;
        }
        v.push_links(&links)?;
    }
    let n = v.count();
    v.finish(store.audit_head().await.unwrap())?;
    Ok(n)
}

async fn verify(store: &Arc<dyn Store>, ring: &KeyRing) -> u64 {
    let key = ring.audit_key();
    let mut v = ChainVerifier::new(&key);
    for r in store.audit_entries(None, 0, usize::MAX >> 1).await.unwrap() {
        v.push(&r).unwrap();
    }
    let n = v.count();
    v.finish(store.audit_head().await.unwrap()).unwrap();
    n
}

async fn concurrent_writes_commit_atomically_and_the_chain_verifies(backend: Backend) {
    let ring = Arc::new(KeyRing::generate().unwrap());
    let store = backend.open(ring.audit_key()).await;

    // 200 creates at once, every 10th reusing a unique term already taken: those must fail
    // alone, inside batches whose other jobs commit.
    let mut tasks = Vec::new();
    for i in 0..200u8 {
        let store = store.clone();
        let ring = ring.clone();
        tasks.push(tokio::spawn(async move {
            let term = if i % 10 == 9 { [0u8; 32] } else { [i; 32] };
            let id = format!("s{i}");
            store
                .insert_subject(
                    subject(&ring, &id, term),
                    draft(AuditAction::SubjectCreate, Some(&id)),
                )
                .await
        }));
    }
    let mut ok = 0;
    let mut unique = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Unique { category }) => {
                assert_eq!(category, "email");
                unique += 1
            }
            Err(e) => panic!("{e}"),
        }
    }
    // Term [0; 32] is taken by s0 (or by whichever of its users ran first): 20 users, 1 wins.
    assert_eq!(unique, 20);
    assert_eq!(ok, 180);
    assert_eq!(
        verify(&store, &ring).await,
        180,
        "failed jobs leave no audit entry"
    );
    for i in 0..200u8 {
        let loaded = store.load_subject(&format!("s{i}")).await.unwrap();
        let term = if i % 10 == 9 { [0u8; 32] } else { [i; 32] };
        let found = store.find_subjects("email", term, 10).await.unwrap();
        if loaded.is_some() {
            assert!(found.iter().any(|s| s.id == format!("s{i}")));
        } else {
            assert!(
                found.iter().all(|s| s.id != format!("s{i}")),
                "a failed create left index rows"
            );
        }
    }
}

async fn the_chain_survives_a_restart(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    {
        let store = backend.open(ring.audit_key()).await;
        store
            .append_audit(vec![
                draft(AuditAction::SubjectRead, None),
                draft(AuditAction::SubjectSearch, None),
            ])
            .await
            .unwrap();
    }
    let store = backend.open(ring.audit_key()).await;
    let rec = store
        .append_audit(vec![draft(AuditAction::SubjectRead, None)])
        .await
        .unwrap();
    assert_eq!(rec[0].seq, 3);
    assert_eq!(verify(&store, &ring).await, 3);
}

async fn a_newer_schema_is_refused(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    drop(backend.open(ring.audit_key()).await);
    backend.set_future_schema();
    match backend.try_open(ring.audit_key()).await {
        Err(StoreError::SchemaTooNew { found: 99, .. }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

/// Sends `ids` as one bulk insert, in chunks of 3, then `Commit` if `commit`.
async fn bulk(
    store: &Arc<dyn Store>,
    ring: &KeyRing,
    subjects: &[(&str, u8)],
    commit: bool,
) -> Result<u64, StoreError> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let writer = {
        let store = store.clone();
        tokio::spawn(async move { store.insert_subjects(rx).await })
    };
    for chunk in subjects.chunks(3) {
        let rows = chunk
            .iter()
            .map(|(id, t)| {
                (
                    subject(ring, id, [*t; 32]),
                    draft(AuditAction::SubjectCreate, Some(id)),
                )
            })
            .collect();
        tx.send(BulkInsert::Subjects(rows)).await.unwrap();
    }
    if commit {
        tx.send(BulkInsert::Commit).await.unwrap();
    }
    drop(tx);
    writer.await.unwrap()
}

async fn bulk_insert_is_all_or_nothing_and_reports_every_conflict(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    let store = backend.open(ring.audit_key()).await;
    store
        .insert_subject(
            subject(&ring, "old", [9; 32]),
            draft(AuditAction::SubjectCreate, Some("old")),
        )
        .await
        .unwrap();

    // Index 2 collides with the stored subject, index 5 with index 0 of the same call.
    let rows = [
        ("a", 1),
        ("b", 2),
        ("c", 9),
        ("d", 3),
        ("e", 4),
        ("f", 1),
        ("g", 5),
    ];
    match bulk(&store, &ring, &rows, true).await {
        Err(StoreError::Conflicts(c)) => {
            let got: Vec<(u64, &str)> = c.iter().map(|c| (c.index, c.category.as_str())).collect();
            assert_eq!(got, vec![(2, "email"), (5, "email")]);
        }
        other => panic!("expected conflicts, got {other:?}"),
    }
    for (id, _) in rows {
        assert!(
            store.load_subject(id).await.unwrap().is_none(),
            "{id} was written"
        );
    }
    assert_eq!(
        verify(&store, &ring).await,
        1,
        "a failed bulk insert leaves no audit entry"
    );

    // Without `Commit` nothing is written either.
    let good = [("a", 1), ("b", 2), ("d", 3), ("e", 4)];
    assert_eq!(bulk(&store, &ring, &good, false).await.unwrap(), 0);
    assert!(store.load_subject("a").await.unwrap().is_none());
    assert_eq!(verify(&store, &ring).await, 1);

    // With it, every subject and one audit entry each; single writes still chain on.
    assert_eq!(bulk(&store, &ring, &good, true).await.unwrap(), 4);
    for (id, t) in good {
        assert!(store.load_subject(id).await.unwrap().is_some());
        let found = store.find_subjects("email", [t; 32], 10).await.unwrap();
        assert_eq!(found.len(), 1);
    }
    store
        .append_audit(vec![draft(AuditAction::SubjectSearch, None)])
        .await
        .unwrap();
    assert_eq!(verify(&store, &ring).await, 6);
}

fn consent(
    id: &str,
    subject: &str,
    granted: bool,
    version: &str,
    channels: &[&str],
) -> ConsentRecord {
    ConsentRecord {
        id: id.into(),
        subject_id: subject.into(),
        purpose: "marketing".into(),
        purpose_version: version.into(),
        policy_version: format!("policy-{version}"),
        granted,
        given_by: "subject".into(),
        capture_channel: "web_form".into(),
        contact_channels: channels.iter().map(|c| c.to_string()).collect(),
        guardian_subject_id: None,
        guardian_details: None,
        evidence: Some(vec![1, 2, 3]),
        evidence_sha256: Some("ab".into()),
        recorded_by: "k".into(),
        at_micros: 5,
    }
}

async fn consents_keep_history_and_listings_see_the_latest_decision(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    let store = backend.open(ring.audit_key()).await;
    for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
        store
            .insert_subject(
                subject(&ring, id, [i as u8 + 1; 32]),
                draft(AuditAction::SubjectCreate, Some(id)),
            )
            .await
            .unwrap();
    }
    let grant = |id: &str, s: &str, v: &str, ch: &[&str]| consent(id, s, true, v, ch);
    for c in [
        grant("1", "a", "v2", &["email", "sms"]), // current, email
        grant("2", "b", "v1", &["email"]),        // stale
        grant("3", "c", "v2", &["sms"]),          // current, no email
        grant("4", "d", "v2", &["email"]),
        consent("5", "d", false, "v2", &[]), // ... then withdrawn
    ] {
        let s = c.subject_id.clone();
        store
            .insert_consent(c, draft(AuditAction::ConsentGrant, Some(&s)))
            .await
            .unwrap();
    }
    let history = store.consents("d").await.unwrap();
    assert_eq!(
        history.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["4", "5"]
    );
    assert_eq!(history[0].contact_channels, ["email"]);
    assert_eq!(history[0].evidence.as_deref(), Some(&[1u8, 2, 3][..]));

    let ids = |v: Vec<ConsentRecord>| v.into_iter().map(|c| c.subject_id).collect::<Vec<_>>();
    let stale = ConsentSelection::StaleFor {
        current_version: "v2".into(),
    };
    assert_eq!(
        ids(store
            .select_consents("marketing", stale.clone(), None, 10)
            .await
            .unwrap()),
        ["b"]
    );
    let on = |ch: &str| ConsentSelection::ContactableOn {
        current_version: "v2".into(),
        channel: ch.into(),
    };
    assert_eq!(
        ids(store
            .select_consents("marketing", on("email"), None, 10)
            .await
            .unwrap()),
        ["a"]
    );
    assert_eq!(
        ids(store
            .select_consents("marketing", on("sms"), None, 10)
            .await
            .unwrap()),
        ["a", "c"]
    );
    // Paging: after "a", at most one.
    assert_eq!(
        ids(store
            .select_consents("marketing", on("sms"), Some("a"), 1)
            .await
            .unwrap()),
        ["c"]
    );
    // "em" is not a channel prefix match.
    assert!(store
        .select_consents("marketing", on("em"), None, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .select_consents("other", on("sms"), None, 10)
        .await
        .unwrap()
        .is_empty());

    // Unknown subject or guardian: nothing written, no audit entry.
    let before = verify(&store, &ring).await;
    let err = store
        .insert_consent(
            grant("6", "zz", "v2", &[]),
            draft(AuditAction::ConsentGrant, Some("zz")),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound));
    let mut with_guardian = grant("7", "a", "v2", &[]);
    with_guardian.guardian_subject_id = Some("nobody".into());
    assert!(matches!(
        store
            .insert_consent(with_guardian, draft(AuditAction::ConsentGrant, Some("a")))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(verify(&store, &ring).await, before);

    let relation = RelationRecord {
        id: "r1".into(),
        subject_id: "a".into(),
        kind: "parent".into(),
        related_subject_id: "b".into(),
        evidence: None,
        evidence_sha256: None,
        recorded_by: "k".into(),
        at_micros: 9,
    };
    store
        .insert_relation(
            relation.clone(),
            draft(AuditAction::RelationCreate, Some("a")),
        )
        .await
        .unwrap();
    assert_eq!(
        store.relations("b").await.unwrap(),
        std::slice::from_ref(&relation)
    );
    assert_eq!(
        store.relations("a").await.unwrap(),
        std::slice::from_ref(&relation)
    );
    assert!(store.relations("c").await.unwrap().is_empty());
    let dangling = RelationRecord {
        id: "r2".into(),
        related_subject_id: "nobody".into(),
        ..relation
    };
    assert!(matches!(
        store
            .insert_relation(dangling, draft(AuditAction::RelationCreate, Some("a")))
            .await,
        Err(StoreError::NotFound)
    ));
}

fn files_hold(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .filter(|p| {
            std::fs::read(p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
        })
        .map(|p| p.display().to_string())
        .collect()
}

#[tokio::test]
async fn erasure_shreds_the_key_everywhere_and_restored_backups_forget() {
    // SQLite only: backups and the key store file are the embedded store's.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("vault");
    std::fs::create_dir(&data).unwrap();
    let db = data.join("amanah.db");
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let ring = KeyRing::generate().unwrap();
    let store = SqliteStore::open(&db, ring.audit_key()).unwrap();
    let gone = subject(&ring, "gone", [1; 32]);
    let wrapped = gone.wrapped_key.ciphertext.clone();
    let ciphertext = gone.fields[0].ciphertext.clone();
    store
        .insert_subject(gone, draft(AuditAction::SubjectCreate, Some("gone")))
        .await
        .unwrap();
    store
        .insert_subject(
            subject(&ring, "kept", [2; 32]),
            draft(AuditAction::SubjectCreate, Some("kept")),
        )
        .await
        .unwrap();
    // The data file never holds a data key; the key store does.
    assert!(files_hold(&data, &wrapped)
        .iter()
        .all(|f| f.ends_with("-keys.db") || f.ends_with("-keys.db-wal")));
    let data_backup = backups.join("data.db");
    let key_backup = backups.join("keys.db");
    store.backup_data(&data_backup).await.unwrap();
    store.backup_key_store(&key_backup, 1_000).await.unwrap();
    assert!(
        files_hold(&backups, &wrapped)
            .iter()
            .all(|f| f.ends_with("keys.db")),
        "the data backup holds no key"
    );
    assert!(
        !files_hold(&backups, &ciphertext).is_empty(),
        "the data backup holds ciphertext"
    );

    store
        .erase_subject(
            "gone",
            50,
            "request r1",
            draft(AuditAction::SubjectErase, Some("gone")),
        )
        .await
        .unwrap();
    assert!(store.load_subject("gone").await.unwrap().is_none());
    assert_eq!(store.erased_at("gone").await.unwrap(), Some(50));
    assert!(store.load_subject("kept").await.unwrap().is_some());
    assert!(store
        .find_subjects("email", [1; 32], 10)
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        store
            .erase_subject(
                "gone",
                60,
                "again",
                draft(AuditAction::SubjectErase, Some("gone"))
            )
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        files_hold(&data, &wrapped),
        Vec::<String>::new(),
        "key bytes left in the data dir"
    );
    assert_eq!(
        files_hold(&data, &ciphertext),
        Vec::<String>::new(),
        "ciphertext left in the data dir"
    );
    drop(store);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    // Restore the data backup taken before the erasure: the erased subject stays gone.
    amanah_store::restore_data(&db, &data_backup).unwrap();
    let store = SqliteStore::open(&db, ring.audit_key()).unwrap();
    let (done, _) = store
        .reconcile_after_data_restore(70, draft(AuditAction::BackupRestore, None))
        .await
        .unwrap();
    assert_eq!(done.purged_subjects, 1);
    assert!(store.load_subject("gone").await.unwrap().is_none());
    assert_eq!(store.erased_at("gone").await.unwrap(), Some(70));
    assert!(store.load_subject("kept").await.unwrap().is_some());
    assert!(files_hold(&data, &ciphertext).is_empty());
    verify(&(Arc::new(store.clone()) as Arc<dyn Store>), &ring).await;

    // A key-store snapshot older than the limit is refused; a recent one loses erased keys.
    drop(store);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let err = amanah_store::restore_key_store(
        &db,
        &key_backup,
        1_000 + 31 * 86_400_000_000,
        30 * 86_400_000_000,
    )
    .unwrap_err();
    assert!(err.to_string().contains("31 days old"), "{err}");
    assert!(
        amanah_store::restore_data(&db, &key_backup).is_err(),
        "kinds are checked"
    );
    amanah_store::restore_key_store(&db, &key_backup, 2_000, 30 * 86_400_000_000).unwrap();
    let store = SqliteStore::open(&db, ring.audit_key()).unwrap();
    let (done, _) = store
        .reconcile_after_key_restore(draft(AuditAction::BackupRestore, None))
        .await
        .unwrap();
    assert_eq!(done.dropped_keys, 1);
    assert_eq!(done.keyless_subjects, 0);
    assert!(store.load_subject("gone").await.unwrap().is_none());
    assert!(store.load_subject("kept").await.unwrap().is_some());
    assert!(
        files_hold(&data, &wrapped).is_empty(),
        "the restored snapshot's copy of the key is gone"
    );
}

/// Several PostgreSQL stores on one database (as several server processes are): writes from
/// all of them form one chain that verifies, a unique term is held once, and concurrent
/// updates of one subject are all applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_writers_share_one_chain() {
    let backend = Backend::postgres("shared_chain");
    let ring = Arc::new(KeyRing::generate().unwrap());
    let stores = [
        backend.open(ring.audit_key()).await,
        backend.open(ring.audit_key()).await,
        backend.open(ring.audit_key()).await,
    ];
    let mut tasks = Vec::new();
    for i in 0..90u8 {
        let store = stores[usize::from(i) % 3].clone();
        let ring = ring.clone();
        tasks.push(tokio::spawn(async move {
            // Every 9th create claims the same unique term.
            let term = if i % 9 == 8 { [0u8; 32] } else { [i + 1; 32] };
            let id = format!("w{i}");
            let created = store
                .insert_subject(
                    subject(&ring, &id, term),
                    draft(AuditAction::SubjectCreate, Some(&id)),
                )
                .await;
            let reads = store
                .append_audit(vec![draft(AuditAction::SubjectRead, Some(&id)); 2])
                .await
                .unwrap();
            assert_eq!(reads.len(), 2);
            created.is_ok()
        }));
    }
    let mut created = 0;
    for t in tasks {
        created += usize::from(t.await.unwrap());
    }
    assert_eq!(created, 81, "one of the ten claims of the shared term wins");
    assert_eq!(verify(&stores[0], &ring).await, 81 + 180);
    let holders = stores[1]
        .find_subjects("email", [0u8; 32], 10)
        .await
        .unwrap();
    assert_eq!(holders.len(), 1);
}

/// PostgreSQL writes a batch's creates together, one statement per table: a create that fails
/// in the database there (its id already taken) sends the batch back to one savepoint per job,
/// so it fails alone, while creates and other writes queued with it on two stores of one
/// database commit, a unique term claimed from the other store is refused as a conflict, and
/// the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_create_failing_in_a_batch_fails_alone() {
    let backend = Backend::postgres("failing_in_a_batch");
    let term = |i: u8, round: u8| {
        let mut t = [1u8; 32];
        (t[0], t[1]) = (i, round);
        t
    };
    let ring = Arc::new(KeyRing::generate().unwrap());
    let stores = [
        backend.open(ring.audit_key()).await,
        backend.open(ring.audit_key()).await,
    ];
    let first = subject(&ring, "taken", [200; 32]);
    let first_key = first.wrapped_key.clone();
    stores[0]
        .insert_subject(first, draft(AuditAction::SubjectCreate, Some("taken")))
        .await
        .unwrap();
    for round in 0..3u8 {
        let mut tasks = Vec::new();
        for i in 0..40u8 {
            let store = stores[usize::from(i) % 2].clone();
            let ring = ring.clone();
            tasks.push(tokio::spawn(async move {
                // Every 6th job is not a create (it is written in a savepoint, between groups
                // of creates); job 7 reuses the id "taken", job 8 (on the other store) its term.
                if i % 6 == 5 {
                    let id = format!("k{round}-{i}");
                    let key = api_key(&id, "admin", &id);
                    let done = store.insert_api_key(key, draft(AuditAction::ApikeyCreate, None));
                    return (i, done.await);
                }
                let id = match i {
                    7 => "taken".to_owned(),
                    _ => format!("r{round}-{i}"),
                };
                let term = match i {
                    8 => [200; 32],
                    _ => term(i, round),
                };
                let created = store
                    .insert_subject(
                        subject(&ring, &id, term),
                        draft(AuditAction::SubjectCreate, Some(&id)),
                    )
                    .await;
                (i, created)
            }));
        }
        for t in tasks {
            match t.await.unwrap() {
                (7, Err(StoreError::Backend(msg))) => assert!(msg.contains("23505"), "{msg}"),
                (8, Err(StoreError::Unique { category })) => assert_eq!(category, "email"),
                (7 | 8, other) => panic!("{other:?}"),
                (_, created) => {
                    created.unwrap();
                }
            }
        }
    }
    assert_eq!(verify(&stores[1], &ring).await, 1 + 3 * 38);
    assert_eq!(stores[0].list_api_keys().await.unwrap().len(), 3 * 6);
    // The first subject keeps its key and its term; the failed create left nothing.
    let taken = stores[1].load_subject("taken").await.unwrap().unwrap();
    assert_eq!(taken.wrapped_key, first_key);
    let holders = stores[0]
        .find_subjects("email", [200; 32], 10)
        .await
        .unwrap();
    assert_eq!(holders.len(), 1);
    for round in 0..3 {
        let found = stores[0].find_subjects("email", term(7, round), 10).await;
        assert!(found.unwrap().is_empty());
    }
}

/// A database written by the first release (schema 1: data keys inside `subjects`) is upgraded
/// in place: its keys move to the key store, and its subjects read, search and erase as before.
#[tokio::test]
async fn a_schema_1_database_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("amanah.db");
    let ring = KeyRing::generate().unwrap();
    let old = subject(&ring, "old", [7; 32]);
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(include_str!("../migrations/sqlite/0001_initial.sql"))
            .unwrap();
        conn.execute(
            "INSERT INTO subjects (id, kek_id, key_version, wrapped_key, created_at) VALUES (?1, ?2, ?3, ?4, 1)",
            rusqlite::params![
                old.id,
                old.wrapped_key.kek_id,
                old.wrapped_key.version,
                old.wrapped_key.ciphertext
            ],
        )
        .unwrap();
        let f = &old.fields[0];
        conn.execute(
            "INSERT INTO subject_fields (subject_id, category, ciphertext, updated_at) VALUES ('old', ?1, ?2, 1)",
            rusqlite::params![f.category, f.ciphertext],
        )
        .unwrap();
        for table in ["blind_index", "unique_index"] {
            conn.execute(
                &format!(
                    "INSERT INTO {table} (category, term, subject_id) VALUES ('email', ?1, 'old')"
                ),
                [&[7u8; 32][..]],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO subject_purposes (subject_id, purpose, collected_at) VALUES ('old', 'p', 1)",
            [],
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    let store = SqliteStore::open(&db, ring.audit_key()).unwrap();
    let loaded = store.load_subject("old").await.unwrap().unwrap();
    assert_eq!(loaded.wrapped_key, old.wrapped_key);
    let fields = loaded.fields.unwrap();
    assert_eq!(
        fields,
        vec![("email".to_owned(), old.fields[0].ciphertext.clone())]
    );
    let key = ring.unwrap(&loaded.wrapped_key, "old").unwrap();
    assert_eq!(
        key.open_field("old", "email", &fields[0].1)
            .unwrap()
            .as_slice(),
        b"x"
    );
    assert_eq!(
        store
            .find_subjects("email", [7; 32], 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // The unique term is still held.
    let err = store
        .insert_subject(
            subject(&ring, "new", [7; 32]),
            draft(AuditAction::SubjectCreate, Some("new")),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unique { .. }));
    store
        .erase_subject(
            "old",
            2,
            "test",
            draft(AuditAction::SubjectErase, Some("old")),
        )
        .await
        .unwrap();
    assert!(store.load_subject("old").await.unwrap().is_none());
    let version: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert!(version >= 4, "{version}");
}

/// Issue 14, reproduction 1: a field name holding a comma was stored comma-joined and split
/// back into two, so the entry no longer matched its MAC and `audit verify` failed for good.
async fn audit_fields_with_commas_round_trip(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    let lists: Vec<Vec<String>> = vec![
        vec!["a,b".into()],
        vec![String::new()],
        vec![",".into(), "\"q\"".into(), "[\"x\"]".into(), "\\".into()],
        vec![],
    ];
    {
        let store = backend.open(ring.audit_key()).await;
        let drafts: Vec<AuditDraft> = lists
            .iter()
            .map(|fields| AuditDraft {
                fields: fields.clone(),
                ..draft(AuditAction::SubjectSearch, None)
            })
            .collect();
        let appended = store.append_audit(drafts.clone()).await.unwrap();
        let read = store.audit_entries(None, 0, 100).await.unwrap();
        assert_eq!(read, appended);
        let read_fields: Vec<_> = read.iter().map(|r| r.entry.fields.clone()).collect();
        assert_eq!(read_fields, lists);
        assert_eq!(verify(&store, &ring).await, 4);
    }
    // And after a restart, with more entries chained after them.
    let store = backend.open(ring.audit_key()).await;
    store
        .append_audit(vec![draft(AuditAction::AuditRead, None)])
        .await
        .unwrap();
    assert_eq!(verify(&store, &ring).await, 5);
}

async fn a_new_store_has_a_signed_genesis_head(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    let store = backend.open(ring.audit_key()).await;
    let (seq, hash, mac) = store.audit_head().await.unwrap().expect("a genesis head");
    assert_eq!((seq, hash), (0, amanah_crypto::audit::GENESIS));
    assert_eq!(
        mac,
        amanah_core::audit::head_mac(&ring.audit_key(), 0, &hash)
    );
    assert_eq!(verify(&store, &ring).await, 0);
}

/// Issue 14, item 6: a deleted head was ignored on SQLite (the chain restarted from the last
/// row) and a `seq = 0` head skipped its MAC check on PostgreSQL.
async fn a_missing_or_unsigned_head_stops_writes_and_fails_verification(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    let store = backend.open(ring.audit_key()).await;
    store
        .append_audit(vec![
            draft(AuditAction::SubjectRead, None),
            draft(AuditAction::SubjectSearch, None),
        ])
        .await
        .unwrap();
    backend.sql("DELETE FROM audit_head");
    assert_eq!(
        try_verify(&store, &ring).await,
        Err(amanah_core::audit::ChainBreak::HeadMissing { last: 2 })
    );
    let err = store
        .append_audit(vec![draft(AuditAction::SubjectRead, None)])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("head is missing"), "{err}");
    drop(store);
    // Reopening does not re-create it.
    let store = backend.open(ring.audit_key()).await;
    assert!(store.audit_head().await.unwrap().is_none());
    assert!(store
        .append_audit(vec![draft(AuditAction::SubjectRead, None)])
        .await
        .is_err());

    // An empty log whose head is at seq 0 but unsigned (rows and head all removed, then the
    // head put back as schema 1 wrote it): refused too.
    backend.sql("DELETE FROM audit_log");
    backend.sql(
        "INSERT INTO audit_head (id, seq, hash, mac) VALUES (1, 0, zeroblob(32), zeroblob(32))"
            .replace(
                "zeroblob(32)",
                if matches!(backend, Backend::Sqlite { .. }) {
                    "zeroblob(32)"
                } else {
                    "decode(repeat('00', 32), 'hex')"
                },
            )
            .as_str(),
    );
    assert!(matches!(
        try_verify(&store, &ring).await,
        Err(amanah_core::audit::ChainBreak::Head { last: 0, head: 0 })
    ));
    let err = store
        .append_audit(vec![draft(AuditAction::SubjectRead, None)])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
}

/// A store written by schema 5 (lists comma-joined) migrates to JSON lists holding exactly what
/// schema 5 read back, so its chain still verifies, and new entries chain after the old ones.
/// Entries that schema 5 broke (a comma inside a name, a list of one empty name) get back the
/// list their MAC confirms, so a vault hit by the bug verifies again.
async fn schema_5_lists_convert_without_breaking_the_chain(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    let lists: Vec<Vec<String>> = vec![
        vec!["email".into(), "phone".into()],
        vec![],
        vec!["a".into(), String::new()],
        vec!["a,b".into()],
        vec!["nik".into()],
        vec![String::new()],
        vec!["x".into(), "y,,z".into(), String::new(), ",".into()],
    ];
    let appended = {
        let store = backend.open(ring.audit_key()).await;
        let drafts = lists
            .iter()
            .map(|fields| AuditDraft {
                fields: fields.clone(),
                ..draft(AuditAction::SubjectRead, None)
            })
            .collect();
        store.append_audit(drafts).await.unwrap()
    };
    // Write the lists back as schema 5 stored them and mark the store as schema 5.
    let mut sql = String::new();
    for (r, fields) in appended.iter().zip(&lists) {
        sql.push_str(&format!(
            "UPDATE audit_log SET fields = '{}' WHERE seq = {};\n",
            fields.join(","),
            r.seq
        ));
    }
    match &backend {
        Backend::Sqlite { .. } => sql.push_str("PRAGMA user_version = 5;"),
        Backend::Postgres(_) => sql.push_str("DELETE FROM schema_version WHERE version >= 6;"),
    }
    sql.push_str(UNSEAL);
    backend.sql(&sql);
    let store = backend.open(ring.audit_key()).await;
    let read = store.audit_entries(None, 0, 100).await.unwrap();
    assert_eq!(read, appended);
    assert_eq!(verify(&store, &ring).await, 7);
    store
        .append_audit(vec![draft(AuditAction::AuditVerify, None)])
        .await
        .unwrap();
    assert_eq!(verify(&store, &ring).await, 8);
}

fn any_string() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        8 => "[,\"'\\\\\\[\\]{}\\x00\\x01\\n a-zé€😀]{0,24}",
        1 => proptest::collection::vec(any::<char>(), 0..1024).prop_map(String::from_iter),
        1 => (0usize..=65_536, any::<char>()).prop_map(|(n, c)| c.to_string().repeat(n / c.len_utf8())),
    ]
}

fn any_draft() -> impl proptest::strategy::Strategy<Value = AuditDraft> {
    use proptest::prelude::*;
    let s = any_string;
    (
        (
            any::<i64>(),
            s(),
            s(),
            proptest::sample::select(AuditAction::ALL),
            proptest::option::of(s()),
        ),
        (
            proptest::option::of(s()),
            any::<bool>(),
            proptest::option::of(s()),
            proptest::option::of(s()),
        ),
        (proptest::collection::vec(s(), 0..6), s()),
    )
        .prop_map(
            |(
                (at_micros, actor, role, action, purpose),
                (basis, allowed, reason, subject),
                (fields, policy_version),
            )| AuditDraft {
                at_micros,
                actor,
                role,
                action,
                purpose,
                basis,
                outcome: if allowed {
                    Outcome::Allowed
                } else {
                    Outcome::Denied
                },
                reason,
                subject,
                fields,
                policy_version,
            },
        )
}

/// Arbitrary strings (commas, quotes, brackets, NUL, control characters, up to 64 KB) in
/// every string and list of an entry, and any action: what is read back is what was appended (the entry as
/// bounded by `AuditDraft::bounded`, equal to the draft when within bounds), and the chain
/// verifies after every append.
async fn prop_any_audit_strings_round_trip_and_the_chain_verifies(backend: Backend) {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::{Config, TestRunner};
    let ring = KeyRing::generate().unwrap();
    let store = backend.open(ring.audit_key()).await;
    let cases = if matches!(backend, Backend::Sqlite { .. }) {
        48
    } else {
        24
    };
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let strategy = proptest::collection::vec(any_draft(), 1..4);
    let mut total = 0u64;
    let mut prev = amanah_crypto::audit::GENESIS;
    for _ in 0..cases {
        let drafts = strategy.new_tree(&mut runner).unwrap().current();
        let appended = store.append_audit(drafts.clone()).await.unwrap();
        for (d, r) in drafts.iter().zip(&appended) {
            assert_eq!(r.entry, d.clone().bounded());
            if d.within_bounds() {
                assert_eq!(&r.entry, d);
            }
            assert!(r.entry.within_bounds());
        }
        let read = store
            .audit_entries(None, total, drafts.len())
            .await
            .unwrap();
        assert_eq!(read, appended);
        // The links the verifier reads carry the MACs of exactly the canonical bytes of those
        // records, each over the stored hash of the entry before it.
        let key = ring.audit_key();
        let links = store.audit_links(&key, total, drafts.len()).await.unwrap();
        assert_eq!(links.len(), appended.len());
        let mut from = prev;
        for (l, r) in links.iter().zip(&appended) {
            let mac = key.chain(&from, &canonical_bytes(r.seq, &r.entry));
            let check = LinkCheck::Mac { from, mac };
            assert_eq!(
                (l.seq, l.hash, &l.check),
                (r.seq, r.hash, &check),
                "entry {}",
                r.seq
            );
            from = r.hash;
        }
        prev = from;
        total += drafts.len() as u64;
        assert_eq!(verify(&store, &ring).await, total);
        assert_eq!(verify_links(&store, &key, 3).await, Ok(total));
    }
}

/// The action is stored as its name, the text the chain covers. A name Amanah never writes can
/// only come from behind the store's back: reading that entry fails like a malformed row does
/// (an error naming the entry, not repeating the text), never a panic; the entries before it
/// still read, and with its name written back the chain verifies again.
async fn an_unknown_stored_action_is_refused_like_a_malformed_row(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    let store = backend.open(ring.audit_key()).await;
    let appended = store
        .append_audit(vec![
            draft(AuditAction::SubjectRead, None),
            draft(AuditAction::RecoveryShredKey, None),
        ])
        .await
        .unwrap();
    let seq = appended[1].seq;
    backend.sql(&format!(
        "UPDATE audit_log SET action = 'subject.peek' WHERE seq = {seq};"
    ));
    let err = store.audit_entries(None, 0, 10).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AlteredAuditEntry { seq: s } if s == seq),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&format!("audit entry {seq} ")), "{msg}");
    assert!(!msg.contains("peek"), "{msg}");
    let err = store
        .audit_links(&ring.audit_key(), 0, 10)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::AlteredAuditEntry { seq: s } if s == seq),
        "the verifier's reading refuses it the same way: {err:?}"
    );
    let before = store.audit_entries(None, 0, 1).await.unwrap();
    assert_eq!(before, appended[..1]);
    backend.sql(&format!(
        "UPDATE audit_log SET action = 'recovery.shred_key' WHERE seq = {seq};"
    ));
    assert_eq!(store.audit_entries(None, 0, 10).await.unwrap(), appended);
    assert_eq!(verify(&store, &ring).await, 2);
}

/// `audit_links` computes each link's MAC where it reads the rows, over the stored hash of the
/// entry before the link (the genesis hash before the first), whichever entry a page starts
/// after: read page by page, the chain verifies as entry by entry, and breaks at the same
/// entry. A page whose entry before it is gone carries its first link's canonical bytes.
async fn chain_links_are_checked_where_they_are_read(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    let key = ring.audit_key();
    let store = backend.open(key.clone()).await;
    let drafts = (0..7)
        .map(|i| AuditDraft {
            at_micros: i,
            ..draft(AuditAction::SubjectRead, None)
        })
        .collect();
    let appended = store.append_audit(drafts).await.unwrap();
    let from = |seq: u64| {
        if seq == 1 {
            amanah_crypto::audit::GENESIS
        } else {
            appended[seq as usize - 2].hash
        }
    };
    for after in 0..7usize {
        for page in [1usize, 3, 10] {
            let links = store.audit_links(&key, after as u64, page).await.unwrap();
            let expected: Vec<ChainLink> = appended[after..]
                .iter()
                .take(page)
                .map(|r| ChainLink {
                    seq: r.seq,
                    hash: r.hash,
                    check: LinkCheck::Mac {
                        from: from(r.seq),
                        mac: key.chain(&from(r.seq), &canonical_bytes(r.seq, &r.entry)),
                    },
                })
                .collect();
            assert_eq!(links, expected, "after {after}, page {page}");
        }
    }
    assert_eq!(store.audit_links(&key, 7, 5).await.unwrap(), Vec::new());
    assert_eq!(store.audit_links(&key, 3, 0).await.unwrap(), Vec::new());
    for page in [1, 2, 3, 100] {
        assert_eq!(verify_links(&store, &key, page).await, Ok(7), "page {page}");
    }
    let other = KeyRing::generate().unwrap().audit_key();
    assert_eq!(
        verify_links(&store, &other, 3).await,
        Err(ChainBreak::Hash { seq: 1 })
    );

    // An altered entry breaks the chain at that entry whatever the pages.
    backend.sql("UPDATE audit_log SET actor = 'someone else' WHERE seq = 4;");
    for page in [1, 2, 3, 4, 100] {
        assert_eq!(
            verify_links(&store, &key, page).await,
            Err(ChainBreak::Hash { seq: 4 }),
            "page {page}"
        );
    }
    backend.sql("UPDATE audit_log SET actor = 'k' WHERE seq = 4;");
    assert_eq!(verify_links(&store, &key, 2).await, Ok(7));
    if let Backend::Sqlite { .. } = backend {
        // Text that is not UTF-8 (SQLite keeps what it is given): the links are refused as the
        // records are, not read as bytes.
        backend.sql("UPDATE audit_log SET role = CAST(X'61FF62' AS TEXT) WHERE seq = 5;");
        let read = store.audit_entries(None, 0, 10).await.unwrap_err();
        assert!(matches!(read, StoreError::Backend(_)), "{read:?}");
        for page in [1, 3, 5] {
            let links = store.audit_links(&key, 5 - page as u64, page).await;
            let err = links.unwrap_err();
            assert!(
                matches!(err, StoreError::Backend(_)),
                "page {page}: {err:?}"
            );
            assert!(err.to_string().contains("utf-8"), "page {page}: {err}");
        }
        backend.sql("UPDATE audit_log SET role = 'admin' WHERE seq = 5;");
        assert_eq!(verify_links(&store, &key, 2).await, Ok(7));
    }

    // Entry 3 removed: a page after it carries the bytes of its first link, which a verifier
    // that checked entry 3 before it went MACs over entry 3's hash (as it did before links
    // were MACed where they are read); read from the start, the gap is a break.
    backend.sql("DELETE FROM audit_log WHERE seq = 3;");
    let links = store.audit_links(&key, 3, 2).await.unwrap();
    let canonical = canonical_bytes(4, &appended[3].entry);
    assert_eq!(links[0].check, LinkCheck::Canonical(canonical));
    assert_eq!(
        links[1].check,
        LinkCheck::Mac {
            from: appended[3].hash,
            mac: appended[4].hash
        }
    );
    let mut v = ChainVerifier::new(&key);
    v.push_links(&store.audit_links(&key, 0, 2).await.unwrap())
        .unwrap();
    v.push(&appended[2]).unwrap();
    v.push_links(&links).unwrap();
    assert_eq!(v.count(), 5);
    for page in [1, 2, 100] {
        assert_eq!(
            verify_links(&store, &key, page).await,
            Err(ChainBreak::Sequence {
                expected: 3,
                found: 4
            }),
            "page {page}"
        );
    }
}

/// Disclosure and breach category lists were stored comma-joined too (issue 14, item 1).
async fn disclosure_and_breach_categories_round_trip(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    let store = backend.open(ring.audit_key()).await;
    let categories: Vec<String> = vec!["a,b".into(), String::new(), "\"q\"".into(), ",".into()];
    let disclosure = DisclosureRecord {
        categories: categories.clone(),
        reference: None,
        ..accountability::disclosure("d1", &[], 1)
    };
    store
        .insert_disclosure(disclosure, draft(AuditAction::DisclosureRequest, None))
        .await
        .unwrap();
    let loaded = store.load_disclosure("d1").await.unwrap().unwrap();
    assert_eq!(loaded.categories, categories);
    let breach = BreachRecord {
        categories: categories.clone(),
        ..accountability::breach("b1", &[], 1, 3)
    };
    store
        .insert_breach(breach, draft(AuditAction::BreachRecord, None))
        .await
        .unwrap();
    let loaded = store.load_breach("b1").await.unwrap().unwrap();
    assert_eq!(loaded.categories, categories);
    assert_eq!(verify(&store, &ring).await, 2);
}

/// Key rotation's store methods: keys under older KEKs listed by keyset page, a rewrap applied
/// only to a row still as it was read (an erasure or an earlier rewrap wins), counts per KEK.
async fn rewrapping_is_conditional_and_keys_are_counted_per_kek(backend: Backend) {
    use amanah_store::Rewrap;
    let mut ring = KeyRing::generate().unwrap();
    let old = ring.active_kek_id().to_owned();
    let store = backend.open(ring.audit_key()).await;
    let ids = ["s1", "s2", "s3"];
    for (i, id) in ids.iter().enumerate() {
        store
            .insert_subject(
                subject(&ring, id, [i as u8 + 1; 32]),
                draft(AuditAction::SubjectCreate, Some(id)),
            )
            .await
            .unwrap();
    }
    let new = ring.add_kek().unwrap();
    assert_eq!(
        store.data_keys_per_kek().await.unwrap(),
        vec![(old.clone(), 3)]
    );
    let page = store.data_keys_not_under(&new, "", 2).await.unwrap();
    assert_eq!(
        page.iter()
            .map(|k| k.subject_id.as_str())
            .collect::<Vec<_>>(),
        ["s1", "s2"]
    );
    let rest = store.data_keys_not_under(&new, "s2", 2).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].subject_id, "s3");
    assert!(store
        .data_keys_not_under(&old, "", 10)
        .await
        .unwrap()
        .is_empty());
    let rewraps: Vec<Rewrap> = page
        .iter()
        .map(|k| Rewrap {
            subject_id: k.subject_id.clone(),
            from_kek: k.wrapped.kek_id.clone(),
            wrapped: ring.rewrap(&k.wrapped, &k.subject_id).unwrap(),
        })
        .collect();
    // s2 is erased between the read and the rewrap: its key stays gone.
    store
        .erase_subject(
            "s2",
            2,
            "request",
            draft(AuditAction::SubjectErase, Some("s2")),
        )
        .await
        .unwrap();
    let (n, record) = store
        .rewrap_data_keys(rewraps.clone(), draft(AuditAction::KeysRotate, None))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(record.entry.action.as_str(), "keys.rotate");
    // The same batch again finds s1 under the new KEK already: nothing is rewritten.
    let (again, _) = store
        .rewrap_data_keys(rewraps, draft(AuditAction::KeysRotate, None))
        .await
        .unwrap();
    assert_eq!(again, 0);
    assert_eq!(store.data_keys_per_kek().await.unwrap(), {
        let mut want = vec![(old.clone(), 1), (new.clone(), 1)];
        want.sort();
        want
    });
    let s1 = store.load_subject("s1").await.unwrap().unwrap();
    assert_eq!(s1.wrapped_key.kek_id, new);
    let key = ring.unwrap(&s1.wrapped_key, "s1").unwrap();
    assert_eq!(
        key.open_field("s1", "email", &s1.fields.as_ref().unwrap()[0].1)
            .unwrap()
            .as_slice(),
        b"x"
    );
    assert!(store.load_subject("s2").await.unwrap().is_none());
    verify(&store, &ring).await;
}

on_both_stores!(consents_and_subjects_are_counted_per_purpose);

/// The console's statistics: each purpose's current consent decisions (a later decision
/// replaces an earlier one of the same subject) and its subjects, counted.
async fn consents_and_subjects_are_counted_per_purpose(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    let store = backend.open(ring.audit_key()).await;
    assert!(store.consents_per_purpose().await.unwrap().is_empty());
    for (i, (id, purpose)) in [("a", "p"), ("b", "p"), ("c", "q")].iter().enumerate() {
        let mut s = subject(&ring, id, [i as u8 + 1; 32]);
        s.purpose = (*purpose).into();
        store
            .insert_subject(s, draft(AuditAction::SubjectCreate, Some(id)))
            .await
            .unwrap();
    }
    let newsletter = |id: &str, s: &str, granted: bool| {
        let mut c = consent(id, s, granted, "v1", &[]);
        c.purpose = "newsletter".into();
        c
    };
    for c in [
        consent("1", "a", true, "v1", &["email"]), // given
        consent("2", "b", true, "v1", &["email"]), // given, then withdrawn
        consent("3", "b", false, "v1", &[]),
        consent("4", "c", false, "v1", &[]),     // withdrawn
        consent("5", "c", true, "v1", &["sms"]), // ... then given again
        consent("6", "a", false, "v1", &[]),     // given, then withdrawn
        newsletter("7", "a", true),
    ] {
        let s = c.subject_id.clone();
        store
            .insert_consent(c, draft(AuditAction::ConsentGrant, Some(&s)))
            .await
            .unwrap();
    }
    assert_eq!(
        store.consents_per_purpose().await.unwrap(),
        vec![
            ("marketing".to_owned(), 1, 2),
            ("newsletter".to_owned(), 1, 0)
        ]
    );
    // A consent decision enrolls its subject in the purpose (given or not).
    let per = |v: &[(&str, u64)]| {
        v.iter()
            .map(|(p, n)| ((*p).to_owned(), *n))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        store.subjects_per_purpose().await.unwrap(),
        per(&[("marketing", 3), ("newsletter", 1), ("p", 2), ("q", 1)])
    );
}
