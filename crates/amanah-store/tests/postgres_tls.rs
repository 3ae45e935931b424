//! The PostgreSQL store over TLS, against a throwaway cluster serving a certificate for
//! `localhost` issued by a CA made here: `verify-full` with that CA connects and the store works,
//! and every connection of the store is encrypted; a wrong host name or another CA is refused;
//! `verify-ca` does not check the name; `require` connects without a CA but not to a server
//! without TLS; `disable` stays plain. No error shows the password.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

mod common;

use amanah_core::audit::AuditAction;
use amanah_crypto::KeyRing;
use amanah_store::{PgStore, Store, StoreError};
use amanah_testpg::{Cluster, Options, ServerTls};
use common::{draft, subject};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// The TLS cluster and the CA files a client may trust.
struct Tls {
    cluster: Cluster,
    /// The CA that issued the server's certificate.
    ca: PathBuf,
    /// A CA that issued nothing the server sends.
    other_ca: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn tls() -> &'static Tls {
    static TLS: OnceLock<Tls> = OnceLock::new();
    TLS.get_or_init(|| {
        let issuer = ca("Amanah test CA");
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &issuer).unwrap();
        let cluster = Cluster::start(&Options {
            tls: Some(ServerTls {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            }),
        });
        // In the cluster's directory, removed with it when the tests end.
        let ca_file = cluster.dir().join("ca.pem");
        std::fs::write(&ca_file, issuer.pem()).unwrap();
        let other_ca = cluster.dir().join("other-ca.pem");
        std::fs::write(&other_ca, ca("Another CA").pem()).unwrap();
        Tls {
            cluster,
            ca: ca_file,
            other_ca,
        }
    })
}

/// `url` with more query parameters.
fn with(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let ring = KeyRing::generate().unwrap();
    Ok(Arc::new(PgStore::open(url, ring.audit_key()).await?))
}

/// Opens a store on `url` and proves it works: a write, then a read of what was written.
async fn round_trip(url: &str) -> Arc<dyn Store> {
    let ring = KeyRing::generate().unwrap();
    let store: Arc<dyn Store> = Arc::new(PgStore::open(url, ring.audit_key()).await.unwrap());
    store
        .insert_subject(
            subject(&ring, "s1", [7; 32]),
            draft(AuditAction::SubjectCreate, Some("s1")),
        )
        .await
        .unwrap();
    let read = store.load_subject("s1").await.unwrap().unwrap();
    assert_eq!(read.id, "s1");
    assert_eq!(read.fields.map(|f| f.len()), Ok(1));
    store
}

/// The (encrypted, plain) connections to `db_url`'s database, other than the one asking.
fn connections(cluster: &Cluster, db_url: &str) -> (u32, u32) {
    let counts = cluster
        .query_text(
            db_url,
            "SELECT count(*) FILTER (WHERE s.ssl) || ' ' || count(*) FILTER (WHERE NOT s.ssl)
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()",
        )
        .unwrap();
    let (tls, plain) = counts.split_once(' ').unwrap();
    (tls.parse().unwrap(), plain.parse().unwrap())
}

/// The error of opening a store on `url`, checked free of the password.
async fn refusal(cluster: &Cluster, url: &str) -> String {
    let Err(e) = open(url).await else {
        panic!(
            "the store opened on {}",
            url.replace(cluster.password(), "***")
        );
    };
    let e = e.to_string();
    assert!(!e.contains(cluster.password()), "{e}");
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_the_servers_ca_connects_and_every_connection_is_encrypted() {
    let tls = tls();
    let db = tls.cluster.create_database("verify_full");
    let name = db.rsplit('/').next().unwrap();
    let url = with(
        &tls.cluster.url_as("localhost", name),
        &format!("sslmode=verify-full&sslrootcert={}", tls.ca.display()),
    );
    let store = round_trip(&url).await;
    let (encrypted, plain) = connections(&tls.cluster, &db);
    assert!(
        encrypted > 0 && plain == 0,
        "{encrypted} TLS, {plain} plain"
    );
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_refuses_a_certificate_for_another_host_name() {
    let tls = tls();
    let db = tls.cluster.create_database("wrong_name");
    // The certificate names `localhost`; this URL names 127.0.0.1.
    let url = with(
        &db,
        &format!("sslmode=verify-full&sslrootcert={}", tls.ca.display()),
    );
    let e = refusal(&tls.cluster, &url).await;
    assert!(
        e.contains("(sslmode=verify-full)") && e.contains("not valid for name"),
        "{e}"
    );
    // verify-ca checks the chain only: the same URL connects with it.
    let url = with(
        &db,
        &format!("sslmode=verify-ca&sslrootcert={}", tls.ca.display()),
    );
    round_trip(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused() {
    let tls = tls();
    let db = tls.cluster.create_database("other_ca");
    let name = db.rsplit('/').next().unwrap();
    for mode in ["verify-full", "verify-ca", "require"] {
        // A CA file given with `require` is checked too, as libpq does.
        let url = with(
            &tls.cluster.url_as("localhost", name),
            &format!("sslmode={mode}&sslrootcert={}", tls.other_ca.display()),
        );
        let e = refusal(&tls.cluster, &url).await;
        assert!(e.contains("UnknownIssuer"), "{mode}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_connects_without_a_ca_and_disable_stays_plain() {
    let tls = tls();
    let db = tls.cluster.create_database("require");
    let store = round_trip(&with(&db, "sslmode=require")).await;
    let (encrypted, plain) = connections(&tls.cluster, &db);
    assert!(
        encrypted > 0 && plain == 0,
        "{encrypted} TLS, {plain} plain"
    );
    drop(store);

    let db = tls.cluster.create_database("disable");
    let store = round_trip(&with(&db, "sslmode=disable")).await;
    let (encrypted, plain) = connections(&tls.cluster, &db);
    assert!(
        encrypted == 0 && plain > 0,
        "{encrypted} TLS, {plain} plain"
    );
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_tls_is_refused_unless_plain_tcp_is_allowed() {
    let plain = amanah_testpg::cluster();
    let db = plain.create_database("no_tls");
    let ca = &tls().ca;
    for params in [
        "sslmode=require".to_owned(),
        format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    ] {
        let e = refusal(plain, &with(&db, &params)).await;
        assert!(e.contains("server does not support TLS"), "{params}: {e}");
    }
    round_trip(&with(&db, "sslmode=disable")).await;
    // `prefer`, the default, falls back to plain TCP.
    round_trip(&plain.create_database("no_tls_prefer")).await;
}
