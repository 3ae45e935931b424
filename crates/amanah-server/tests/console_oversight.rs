//! The console's oversight pages over plain HTTP against the real router (the university
//! preset on SQLite): the audit chain, a signed checkpoint and a subject's trail; the record of
//! processing; the retention preview (which changes nothing); the demo's outbox (which reads
//! nothing outside its directory); the dashboard's counts; and the refusals (a role without
//! the actions, a form without the session's token).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::time::Duration;

use amanah_server::console::{Console, ConsoleConfig};
use amanah_server::{router, AppState};
use amanah_testkit::{Kind, TestVault};
use amanah_vault::{act, Target};
use reqwest::StatusCode;
use serde_json::{json, Value};

use support::pages::{console, Answer, Served};

struct Site {
    web: Served,
    kit: TestVault,
    admin: String,
    outbox: PathBuf,
    checkpoints: PathBuf,
    _dir: tempfile::TempDir,
}

/// A site with an outbox directory (when `outbox`) and a checkpoint directory.
async fn site_with(outbox: bool) -> Site {
    let kit = TestVault::new(
        Kind::Sqlite,
        "console-oversight",
        amanah_testkit::policies::UNIVERSITY,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let outbox_dir = dir.path().join("outbox");
    let checkpoints = dir.path().join("checkpoints");
    std::fs::create_dir_all(&outbox_dir).unwrap();
    std::fs::create_dir_all(&checkpoints).unwrap();
    let console = Console::start(ConsoleConfig {
        secure_cookies: false,
        outbox: outbox.then(|| outbox_dir.clone()),
        checkpoints: Some(checkpoints.clone()),
        retention_every: Some(Duration::from_secs(3600)),
    });
    let web = Served::start(router(
        AppState::new(kit.vault.clone()).with_console(console),
    ))
    .await;
    let admin = kit
        .issue("admin", "Admin <admin@example.id>")
        .await
        .token
        .to_string();
    Site {
        web,
        kit,
        admin,
        outbox: outbox_dir,
        checkpoints,
        _dir: dir,
    }
}

impl Site {
    async fn api(&self, method: reqwest::Method, path: &str, body: Value) -> (StatusCode, Value) {
        self.web.api(method, path, &self.admin, Some(body)).await
    }

    /// A person enrolled for admission who consented to direct marketing: their id.
    async fn person(&self, name: &str, email: &str) -> String {
        let (status, created) = self
            .api(
                reqwest::Method::POST,
                "/v1/subjects?purpose=admission",
                json!({"fields": {"full_name": name, "email": email}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        self.consent(&id, true).await;
        id
    }

    async fn consent(&self, id: &str, granted: bool) {
        let (status, body) = self
            .api(
                reqwest::Method::POST,
                &format!("/v1/subjects/{id}/consents"),
                json!({"purpose": "direct_marketing", "granted": granted, "channel": "web_form",
                       "evidence": "form 7",
                       "contact_channels": if granted { vec!["email"] } else { vec![] }}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    async fn get(&self, path: &str, session: &str) -> Answer {
        self.web.get(path, Some(&console(session))).await
    }

    async fn post(&self, path: &str, session: &str, form: &[(&str, &str)]) -> Answer {
        self.web.post(path, Some(&console(session)), form).await
    }

    /// Signs a new key of `role` in to the console: the session id.
    async fn sign_in(&self, role: &str) -> String {
        let key = self
            .kit
            .issue(role, &format!("Holder <{role}@example.id>"))
            .await
            .token;
        self.web.console_sign_in(&key).await
    }

    fn audited(&self, action: &str) -> i64 {
        self.kit.count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE action = '{action}'"
        ))
    }
}

/// The numbers in the cells of the row of `purpose` in the table `table`.
fn row_counts(body: &str, table: &str, purpose: &str) -> Vec<u64> {
    let start = body
        .find(&format!("id=\"{table}\""))
        .unwrap_or_else(|| panic!("no table {table}"));
    let table_html = &body[start..start + body[start..].find("</table>").unwrap()];
    let row_at = table_html
        .find(&format!("<code>{purpose}</code>"))
        .unwrap_or_else(|| panic!("no row {purpose} in {table}"));
    let row = &table_html[row_at..row_at + table_html[row_at..].find("</tr>").unwrap()];
    row.split("class=\"count\">")
        .skip(1)
        .map(|cell| cell[..cell.find('<').unwrap()].parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dpo_sees_the_chain_intact_its_checkpoint_and_a_subjects_trail() {
    let site = site_with(true).await;
    let siti = site.person("Siti Rahmawati", "siti@example.id").await;
    let other = site.person("Budi Santoso", "budi@example.id").await;
    // The checkpoint `serve --checkpoint-dir` would have written.
    let permit = site
        .kit
        .permit::<act::AuditVerify>(&site.kit.admin(), Target::none())
        .await;
    let cp = site.kit.vault.checkpoint(&permit).await.unwrap();
    std::fs::write(site.checkpoints.join("latest.json"), cp.to_json()).unwrap();

    let dpo = site.sign_in("dpo").await;
    let page = site.get("/console/audit?lang=en", &dpo).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("The audit chain is intact."),
        "{}",
        page.body
    );
    let entries = site.kit.vault.verify_chain().await.unwrap().entries;
    assert!(
        page.body.contains(&format!("{entries} entries checked")),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains(&format!("<dd>{}</dd>", cp.checkpoint.seq)));
    assert!(page
        .body
        .contains("The chain still holds the entry this checkpoint saw."));

    // One subject's trail: the audit's columns, the categories, never the values; the whole
    // chain is not verified again for it.
    let verifies = site.audited("audit.verify");
    let trail = site
        .get(&format!("/console/audit?lang=en&subject={siti}"), &dpo)
        .await;
    assert_eq!(trail.status, StatusCode::OK);
    assert!(trail.body.contains("subject.create"), "{}", trail.body);
    assert!(trail.body.contains("consent.grant"));
    assert!(trail.body.contains("full_name"));
    assert!(!trail.body.contains("Siti Rahmawati") && !trail.body.contains("siti@example.id"));
    // Only that subject's entries (the other person's creation is not in it).
    assert_eq!(
        trail.body.matches("subject.create").count(),
        1,
        "{}",
        trail.body
    );
    assert!(!trail.body.contains(&other));
    assert_eq!(site.audited("audit.read"), 1);
    assert_eq!(site.audited("audit.verify"), verifies);
    assert!(trail.body.contains("Verify the chain"), "{}", trail.body);
    let bad = site.get("/console/audit?subject=..%2Fetc", &dpo).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(site.audited("audit.read"), 1);

    // A checkpoint signed by another vault's key is not this chain's.
    let stranger = TestVault::new(
        Kind::Sqlite,
        "stranger",
        amanah_testkit::policies::UNIVERSITY,
    )
    .await;
    let permit = stranger
        .permit::<act::AuditVerify>(&stranger.admin(), Target::none())
        .await;
    let foreign = stranger.vault.checkpoint(&permit).await.unwrap();
    std::fs::write(site.checkpoints.join("latest.json"), foreign.to_json()).unwrap();
    let page = site.get("/console/audit?lang=en", &dpo).await;
    assert!(
        page.body
            .contains("The chain does not match this checkpoint."),
        "{}",
        page.body
    );
    assert!(!page.body.contains("still holds the entry"));
    // In Bahasa Indonesia by default.
    let page = site.get("/console/audit?lang=id", &dpo).await;
    assert!(page.body.contains("Rantai audit utuh."), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_the_actions_gets_no_menu_entry_and_a_403_page() {
    let site = site_with(true).await;
    let pages = [
        "/console/audit",
        "/console/ropa",
        "/console/retention",
        "/console/outbox",
    ];
    let dpo = site.sign_in("dpo").await;
    let menu = site.get("/console", &dpo).await;
    for p in pages {
        assert!(menu.body.contains(&format!("href=\"{p}\"")), "{p}");
    }
    let marketing = site.sign_in("marketing").await;
    let menu = site.get("/console", &marketing).await;
    assert_eq!(menu.status, StatusCode::OK);
    let refused_before = site
        .kit
        .count("SELECT COUNT(*) FROM audit_log WHERE outcome <> 'allowed' AND role = 'marketing'");
    for p in pages {
        assert!(!menu.body.contains(&format!("href=\"{p}\"")), "{p}");
        let page = site.get(p, &marketing).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{p}: {}", page.body);
        assert!(page.body.contains("role=\"alert\""), "{p}");
    }
    for p in [
        "/console/ropa.csv",
        "/console/outbox/1764633600000000-abc.txt",
    ] {
        assert_eq!(site.get(p, &marketing).await.status, StatusCode::FORBIDDEN);
    }
    let refused_after = site
        .kit
        .count("SELECT COUNT(*) FROM audit_log WHERE outcome <> 'allowed' AND role = 'marketing'");
    assert_eq!(
        refused_after - refused_before,
        6,
        "every refusal is audited"
    );
    // No statistics on the dashboard either.
    assert!(!menu.body.contains("consents-by-purpose"));
    assert_eq!(site.audited("statistics.read"), 1); // the DPO's dashboard only
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_of_processing_reads_and_downloads() {
    let site = site_with(true).await;
    site.person("Siti Rahmawati", "siti@example.id").await;
    let dpo = site.sign_in("dpo").await;
    let page = site.get("/console/ropa?lang=en", &dpo).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<code>admission</code>"));
    assert!(page.body.contains("Record of processing activities"));
    for (path, kind, start) in [
        (
            "/console/ropa.md",
            "text/markdown",
            "# Record of processing",
        ),
        (
            "/console/ropa.csv",
            "text/csv",
            "controller,contact,purpose",
        ),
        ("/console/ropa.json", "application/json", "{"),
    ] {
        let got = site.get(path, &dpo).await;
        assert_eq!(got.status, StatusCode::OK, "{path}");
        let ct = got.headers["content-type"].to_str().unwrap();
        assert!(ct.starts_with(kind), "{path}: {ct}");
        assert!(got.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment"));
        assert!(got.body.starts_with(start), "{path}: {}", got.body);
    }
    let json: Value =
        serde_json::from_str(&site.get("/console/ropa.json", &dpo).await.body).unwrap();
    let admission = json["activities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["purpose"] == "admission")
        .unwrap();
    assert_eq!(admission["subjects"], 1);
    assert_eq!(site.audited("ropa.read"), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_preview_changes_nothing() {
    let site = site_with(true).await;
    let siti = site.person("Siti Rahmawati", "siti@example.id").await;
    let dpo = site.sign_in("dpo").await;
    let page = site.get("/console/retention?lang=en", &dpo).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("Nothing would be erased"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Next scheduled sweep:"));

    // Six years on, every purpose of Siti's has ended.
    site.kit.advance(time::Duration::days(6 * 366));
    let state = |site: &Site| {
        (
            site.kit.count("SELECT COUNT(*) FROM subjects"),
            site.kit
                .count("SELECT COALESCE(SUM(length(fields)), 0) FROM subjects"),
            site.kit.count("SELECT COUNT(*) FROM subject_purposes"),
            site.kit
                .count("SELECT COUNT(*) FROM audit_log WHERE action = 'retention.apply'"),
        )
    };
    let before = state(&site);
    let page = site.get("/console/retention?lang=en", &dpo).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&siti), "{}", page.body);
    assert!(page.body.contains("admission: 5y"), "{}", page.body);
    assert!(!page.body.contains("Siti Rahmawati"));
    let again = site.get("/console/retention?lang=en", &dpo).await;
    assert!(again.body.contains(&siti));
    assert_eq!(state(&site), before);
    assert!(before.0 == 1 && before.1 > 0);
    assert_eq!(site.audited("retention.sweep"), 3);
}

/// A message as the portal writes it.
fn message(dir: &std::path::Path, micros: u64, to: &str, code: &str) -> String {
    let name = format!("{micros}-{}.txt", &code[..4]);
    std::fs::write(
        dir.join(&name),
        format!("To: {to}\nSubject: Kode masuk Universitas\n\nKode masuk:\n\n    {code}\n\nKode berlaku 10 menit.\n"),
    )
    .unwrap();
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_shows_messages_and_reads_nothing_outside() {
    let site = site_with(true).await;
    let older = message(
        &site.outbox,
        1_764_633_600_000_000,
        "siti@example.id",
        "123456",
    );
    let newer = message(
        &site.outbox,
        1_764_633_700_000_000,
        "+6281234567002",
        "654321",
    );
    // A secret outside the outbox, and a link to it inside, named like a message.
    let secret = site.outbox.parent().unwrap().join("secret.txt");
    std::fs::write(&secret, "To: root\n\n    999999\nTOPSECRET\n").unwrap();
    let link = "1764633800000000-link.txt";
    std::os::unix::fs::symlink(&secret, site.outbox.join(link)).unwrap();

    let dpo = site.sign_in("dpo").await;
    let page = site.get("/console/outbox?lang=en", &dpo).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let (a, b) = (
        page.body.find(">654321<").expect("the newer code"),
        page.body.find(">123456<").expect("the older code"),
    );
    assert!(a < b, "newest first: {}", page.body);
    assert!(page.body.contains("siti@example.id") && page.body.contains("+6281234567002"));
    assert!(!page.body.contains("999999") && !page.body.contains(link));
    assert_eq!(site.audited("outbox.read"), 1);

    let one = site.get(&format!("/console/outbox/{older}"), &dpo).await;
    assert_eq!(one.status, StatusCode::OK);
    assert!(one.body.contains("123456") && one.body.contains("Kode berlaku 10 menit."));
    for outside in [
        format!("/console/outbox/{link}"),
        "/console/outbox/..%2Fsecret.txt".to_owned(),
        "/console/outbox/secret.txt".to_owned(),
        format!("/console/outbox/{newer}%2F..%2F..%2Fsecret.txt"),
    ] {
        let got = site.get(&outside, &dpo).await;
        assert_eq!(got.status, StatusCode::NOT_FOUND, "{outside}");
        assert!(!got.body.contains("TOPSECRET") && !got.body.contains("999999"));
    }

    // Without an outbox, no menu entry and a 404 page.
    let bare = site_with(false).await;
    let dpo = bare.sign_in("dpo").await;
    assert!(!bare
        .get("/console", &dpo)
        .await
        .body
        .contains("href=\"/console/outbox\""));
    let none = bare.get("/console/outbox", &dpo).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    assert!(none.body.contains("role=\"alert\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_counts_what_was_created() {
    let site = site_with(true).await;
    let a = site.person("Siti Rahmawati", "siti@example.id").await;
    site.person("Budi Santoso", "budi@example.id").await;
    site.person("Ani Lestari", "ani@example.id").await;
    site.consent(&a, false).await;
    let dpo = site.sign_in("dpo").await;
    let page = site.get("/console?lang=en", &dpo).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        row_counts(&page.body, "consents-by-purpose", "direct_marketing"),
        [2, 1],
        "{}",
        page.body
    );
    assert_eq!(
        row_counts(&page.body, "subjects-by-purpose", "admission"),
        [3]
    );
    assert!(!page.body.contains("Siti Rahmawati") && !page.body.contains(&a));
    assert_eq!(site.audited("statistics.read"), 1);
    // Another person: the next look counts them.
    site.person("Dewi Sartika", "dewi@example.id").await;
    let page = site.get("/console?lang=en", &dpo).await;
    assert_eq!(
        row_counts(&page.body, "consents-by-purpose", "direct_marketing"),
        [3, 1]
    );
    assert_eq!(
        row_counts(&page.body, "subjects-by-purpose", "admission"),
        [4]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_without_the_sessions_token_is_refused() {
    let site = site_with(true).await;
    let dpo = site.sign_in("dpo").await;
    let page = site.get("/console/audit", &dpo).await;
    let csrf = page.csrf();
    for form in [vec![], vec![("csrf", "forged")]] {
        let got = site.post("/console/audit/checkpoint", &dpo, &form).await;
        assert_eq!(got.status, StatusCode::FORBIDDEN);
        assert!(got.headers.get("content-disposition").is_none());
    }
    // Another session's token is not this session's.
    let other = site.sign_in("dpo").await;
    let theirs = site.get("/console/audit", &other).await.csrf();
    assert_ne!(theirs, csrf);
    let got = site
        .post("/console/audit/checkpoint", &dpo, &[("csrf", &theirs)])
        .await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    // With it, a signed checkpoint of the head to keep elsewhere.
    let got = site
        .post("/console/audit/checkpoint", &dpo, &[("csrf", &csrf)])
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
    let cp = amanah_core::checkpoint::SignedCheckpoint::parse(got.body.as_bytes()).unwrap();
    cp.verify_signature(&site.kit.vault.checkpoint_public_key().unwrap())
        .unwrap();
    assert!(cp.checkpoint.seq > 0);
}
