//! The officers' console over plain HTTP against the real router (the university preset on
//! SQLite): sign-in with a key holder's own API key under a new session id, forms refused
//! without their session's token, a revoked key ending its session, the request queue in hours
//! with unverified identities apart, values masked and revealed one at a time with an audited
//! reason, and requests answered (rectified, erased, refused) through the same decisions as
//! the API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use amanah_server::console::{Console, ConsoleConfig};
use amanah_server::{router, AppState};
use amanah_testkit::{Kind, TestVault};
use amanah_vault::{act, Target};
use reqwest::StatusCode;
use serde_json::{json, Value};

use support::pages::{console, session_of, Answer, Served};

struct Site {
    web: Served,
    kit: TestVault,
    admin: String,
    dpo: String,
}

async fn site() -> Site {
    let kit = TestVault::new(
        Kind::Sqlite,
        "console",
        amanah_testkit::policies::UNIVERSITY,
    )
    .await;
    let console = Console::start(ConsoleConfig::default());
    let web = Served::start(router(
        AppState::new(kit.vault.clone()).with_console(console),
    ))
    .await;
    let admin = kit.token("admin").await;
    let dpo = kit
        .issue("dpo", "Dewi Lestari <dpo@example.id>")
        .await
        .token
        .to_string();
    Site {
        web,
        kit,
        admin,
        dpo,
    }
}

impl Site {
    async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.web.api(method, path, key, body).await
    }

    async fn get(&self, path: &str, session: Option<&str>) -> Answer {
        self.web.get(path, session.map(console).as_deref()).await
    }

    async fn post(&self, path: &str, session: Option<&str>, form: &[(&str, &str)]) -> Answer {
        self.web
            .post(path, session.map(console).as_deref(), form)
            .await
    }

    async fn visit(&self) -> (String, String) {
        self.web.console_visit().await
    }

    async fn sign_in(&self, key: &str) -> String {
        self.web.console_sign_in(key).await
    }

    async fn applicant(&self, name: &str, email: &str) -> String {
        let (status, created) = self
            .api(
                reqwest::Method::POST,
                "/v1/subjects?purpose=admission",
                &self.admin,
                Some(json!({"fields": {"full_name": name, "email": email}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }

    /// A request entered by a key holder (the DPO, for someone who phoned).
    async fn request_by_staff(&self, subject: &str, kind: &str, details: Value) -> String {
        let (status, body) = self
            .api(
                reqwest::Method::POST,
                "/v1/requests",
                &self.dpo,
                Some(json!({"subject_id": subject, "type": kind, "details": details})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// A request the person filed themselves (as the portal files it).
    async fn request_by_subject(&self, subject: &str, kind: &str, details: Value) -> String {
        let who = self.kit.vault.data_subject(subject);
        let permit = self
            .kit
            .permit::<act::RequestCreate>(&who, Target::subject(subject))
            .await;
        let view = self
            .kit
            .vault
            .create_request(&permit, kind, Some(&details))
            .await
            .unwrap();
        view.record.id
    }

    async fn request(&self, id: &str) -> Value {
        let (status, body) = self
            .api(
                reqwest::Method::GET,
                &format!("/v1/requests/{id}"),
                &self.dpo,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn audit(&self, subject: &str) -> Vec<Value> {
        let (status, body) = self
            .api(
                reqwest::Method::GET,
                &format!("/v1/audit?subject={subject}&limit=500"),
                &self.admin,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["entries"].as_array().unwrap().clone()
    }
}

#[tokio::test]
async fn a_key_opens_a_new_session_and_every_form_needs_its_token() {
    let site = site().await;

    // Not signed in: every page leads to the sign-in form.
    let page = site.get("/console", None).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), Some("/console/sign-in"));
    // A planted id is not adopted: the sign-in page opens a session of its own.
    let planted = "a".repeat(43);
    let page = site.get("/console/sign-in", Some(&planted)).await;
    let given = session_of(&page.cookie().expect("a fresh session"), "amanah_console");
    assert_ne!(given, planted);

    let (visitor, csrf) = site.visit().await;
    // Without the session's token, or with another session's, the sign-in is refused.
    let refused = site
        .post("/console/sign-in", Some(&visitor), &[("key", &site.dpo)])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let (_, other_csrf) = site.visit().await;
    let refused = site
        .post(
            "/console/sign-in",
            Some(&visitor),
            &[("csrf", &other_csrf), ("key", &site.dpo)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.cookie().is_none());
    // A wrong key: the form again, no session.
    let wrong = site
        .post(
            "/console/sign-in",
            Some(&visitor),
            &[("csrf", &csrf), ("key", "amanah_0000")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("tidak dikenal"), "{}", wrong.body);
    assert!(wrong.cookie().is_none());
    assert!(!wrong.body.contains("amanah_0000"));

    let dpo = site.sign_in(&site.dpo).await;
    let home = site.get("/console", Some(&dpo)).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert!(home.body.contains("Dewi Lestari"), "{}", home.body);
    assert!(home.body.contains("href=\"/console/requests\""));
    // The key is never written into a page.
    assert!(!home.body.contains(&site.dpo));
    assert_eq!(
        home.headers.get("cache-control").unwrap(),
        "no-store",
        "pages are not cached"
    );
    // The sign-in is on record under the holder's key.
    let (_, trail) = site
        .api(
            reqwest::Method::GET,
            "/v1/audit?limit=500",
            &site.admin,
            None,
        )
        .await;
    assert!(
        trail["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "console.sign_in" && e["role"] == "dpo"),
        "{trail}"
    );

    // Sign-out needs the token too, then ends the session.
    let subject = site.applicant("Siti Rahmawati", "siti@example.id").await;
    let rid = site
        .request_by_staff(&subject, "access", json!({"text": "by phone"}))
        .await;
    let refused = site
        .post(
            &format!("/console/requests/{rid}/status"),
            Some(&dpo),
            &[("to", "in_progress")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = site
        .post(
            &format!("/console/requests/{rid}/status"),
            Some(&dpo),
            &[("csrf", &csrf), ("to", "in_progress")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(site.request(&rid).await["status"], "received");
    let token = home.csrf();
    let out = site
        .post("/console/sign-out", Some(&dpo), &[("csrf", &token)])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.cookie().unwrap().contains("Max-Age=0"));
    assert_eq!(
        site.get("/console", Some(&dpo)).await.location(),
        Some("/console/sign-in")
    );
}

#[tokio::test]
async fn a_revoked_key_ends_its_session_and_roles_see_only_their_pages() {
    let site = site().await;
    let registrar = site.kit.issue("registrar", "Rudi <rudi@example.id>").await;
    let session = site.sign_in(&registrar.token).await;
    let home = site.get("/console", Some(&session)).await;
    assert_eq!(home.status, StatusCode::OK);
    // The registrar approves disclosures but handles no requests.
    assert!(home.body.contains("href=\"/console/disclosures\""));
    assert!(!home.body.contains("href=\"/console/requests\""));
    assert!(!home.body.contains("href=\"/console/audit\""));
    let queue = site.get("/console/requests", Some(&session)).await;
    assert_eq!(queue.status, StatusCode::FORBIDDEN, "{}", queue.body);

    // Revoked: the next page ends the session.
    let (status, body) = site
        .api(
            reqwest::Method::DELETE,
            &format!("/v1/keys/{}", registrar.record.id),
            &site.admin,
            None,
        )
        .await;
    assert!(status.is_success(), "{body}");
    let page = site.get("/console", Some(&session)).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), Some("/console/sign-in"));
    assert!(page.cookie().unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn the_queue_counts_hours_and_keeps_unverified_requests_apart() {
    let site = site().await;
    let siti = site.applicant("Siti Rahmawati", "siti@example.id").await;
    let budi = site.applicant("Budi Santoso", "budi@example.id").await;
    let by_phone = site
        .request_by_staff(&budi, "access", json!({"text": "called the office"}))
        .await;
    let own = site
        .request_by_subject(&siti, "erasure", json!({"filed_in": "privacy_portal"}))
        .await;
    let dpo = site.sign_in(&site.dpo).await;

    let queue = site.get("/console/requests", Some(&dpo)).await;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.body);
    let verified_at = queue.body.find("Siap dikerjakan").unwrap();
    let unverified_at = queue.body.find("Menunggu verifikasi identitas").unwrap();
    let own_at = queue.body.find(&own).unwrap();
    let phone_at = queue.body.find(&by_phone).unwrap();
    assert!(
        verified_at < own_at && own_at < unverified_at,
        "{}",
        queue.body
    );
    assert!(unverified_at < phone_at, "{}", queue.body);
    assert!(queue.body.contains("72 jam lagi"), "{}", queue.body);
    // No names or addresses in the queue.
    assert!(!queue.body.contains("Siti") && !queue.body.contains("budi@"));

    // 75 hours on: both overdue by 3 hours, in red, and in English on request.
    site.kit.advance(time::Duration::hours(75));
    let queue = site.get("/console/requests?lang=en", Some(&dpo)).await;
    assert!(queue.body.contains("3 h overdue"), "{}", queue.body);
    assert!(queue.body.contains("class=\"overdue\""), "{}", queue.body);
    assert!(queue.body.contains("2 overdue"), "{}", queue.body);
    let home = site.get("/console", Some(&dpo)).await;
    assert!(home.body.contains("tile alert"), "{}", home.body);

    // An unverified request begins only once the officer says the identity is verified.
    let page = site
        .get(&format!("/console/requests/{by_phone}"), Some(&dpo))
        .await;
    assert!(
        page.body.contains("Identity verified: begin work"),
        "{}",
        page.body
    );
    let moved = site
        .post(
            &format!("/console/requests/{by_phone}/status"),
            Some(&dpo),
            &[("csrf", &page.csrf()), ("to", "in_progress")],
        )
        .await;
    assert_eq!(moved.status, StatusCode::SEE_OTHER, "{}", moved.body);
    assert_eq!(site.request(&by_phone).await["status"], "in_progress");
}

#[tokio::test]
async fn values_are_masked_and_revealed_one_at_a_time_for_a_recorded_reason() {
    let site = site().await;
    let siti = site.applicant("Siti Rahmawati", "siti@example.id").await;
    let rid = site
        .request_by_subject(&siti, "access", json!({"filed_in": "privacy_portal"}))
        .await;
    let dpo = site.sign_in(&site.dpo).await;
    let page = site
        .get(&format!("/console/requests/{rid}"), Some(&dpo))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("full_name") && page.body.contains("••••••"));
    assert!(!page.body.contains("Siti") && !page.body.contains("siti@"));
    // The masked view read no value: its audit entry names no field.
    let masked_reads: Vec<Value> = site
        .audit(&siti)
        .await
        .into_iter()
        .filter(|e| e["action"] == "subject.export")
        .collect();
    assert!(!masked_reads.is_empty());
    assert!(masked_reads
        .iter()
        .all(|e| e["fields"].as_array().is_none_or(Vec::is_empty)));

    // A reason outside the list reveals nothing and records nothing.
    let csrf = page.csrf();
    let refused = site
        .post(
            &format!("/console/requests/{rid}/reveal"),
            Some(&dpo),
            &[
                ("csrf", &csrf),
                ("category", "email"),
                ("reason", "curiosity"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!refused.body.contains("siti@"));
    let shown = site
        .post(
            &format!("/console/requests/{rid}/reveal"),
            Some(&dpo),
            &[
                ("csrf", &csrf),
                ("category", "email"),
                ("reason", "verify_identity"),
            ],
        )
        .await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert!(shown.body.contains("siti@example.id"), "{}", shown.body);
    // One value: the name stays masked.
    assert!(!shown.body.contains("Siti Rahmawati"));
    let reveals: Vec<Value> = site
        .audit(&siti)
        .await
        .into_iter()
        .filter(|e| e["action"] == "subject.reveal")
        .collect();
    assert_eq!(reveals.len(), 1, "{reveals:?}");
    assert_eq!(reveals[0]["fields"], json!(["email"]));
    assert_eq!(reveals[0]["role"], "dpo");
    assert_eq!(reveals[0]["outcome"], "allowed");
}

#[tokio::test]
async fn an_officer_rectifies_erases_and_refuses_through_the_requests() {
    let site = site().await;
    let siti = site.applicant("Siti Rahmawati", "siti@example.id").await;
    let budi = site.applicant("Budi Santoso", "budi@example.id").await;
    let dpo = site.sign_in(&site.dpo).await;

    // A proposed value the policy would refuse is refused with the request, which is not filed.
    for proposed in [
        json!({"email": "not an address"}),
        json!({"secret_plan": "x"}),
        json!("full_name"),
    ] {
        let (status, body) = site
            .api(
                reqwest::Method::POST,
                "/v1/requests",
                &site.dpo,
                Some(json!({"subject_id": siti, "type": "rectification",
                            "details": {"proposed": proposed}})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["field"], "details.proposed", "{body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(!detail.contains("not an address") && !detail.contains("secret_plan"));
    }
    let (_, listed) = site
        .api(
            reqwest::Method::GET,
            &format!("/v1/requests?subject={siti}"),
            &site.dpo,
            None,
        )
        .await;
    assert_eq!(listed["requests"], json!([]), "{listed}");

    // Rectification: the proposed value is offered, saved under the request, then completed.
    let fix = site
        .request_by_subject(
            &siti,
            "rectification",
            json!({"proposed": {"full_name": "Siti Rahmawati Putri"}}),
        )
        .await;
    let page = site
        .get(&format!("/console/requests/{fix}"), Some(&dpo))
        .await;
    let csrf = page.csrf();
    let begin = site
        .post(
            &format!("/console/requests/{fix}/status"),
            Some(&dpo),
            &[("csrf", &csrf), ("to", "in_progress")],
        )
        .await;
    assert_eq!(begin.status, StatusCode::SEE_OTHER);
    let page = site
        .get(&format!("/console/requests/{fix}"), Some(&dpo))
        .await;
    assert!(
        page.body.contains("value=\"Siti Rahmawati Putri\""),
        "{}",
        page.body
    );
    // A value the policy refuses changes nothing.
    let bad = site
        .post(
            &format!("/console/requests/{fix}/rectify"),
            Some(&dpo),
            &[("csrf", &csrf), ("fix.email", "not an address")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    let saved = site
        .post(
            &format!("/console/requests/{fix}/rectify"),
            Some(&dpo),
            &[("csrf", &csrf), ("fix.full_name", "Siti Rahmawati Putri")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let (_, read) = site
        .api(
            reqwest::Method::GET,
            &format!("/v1/subjects/{siti}?purpose=admission"),
            &site.admin,
            None,
        )
        .await;
    assert_eq!(
        read["fields"]["full_name"], "Siti Rahmawati Putri",
        "{read}"
    );
    assert_eq!(read["fields"]["email"], "siti@example.id");
    assert!(site
        .audit(&siti)
        .await
        .iter()
        .any(|e| e["action"] == "subject.rectify" && e["role"] == "dpo"));

    // Refusal needs a ground the law allows.
    let refuse = site
        .post(
            &format!("/console/requests/{fix}/status"),
            Some(&dpo),
            &[
                ("csrf", &csrf),
                ("to", "refused"),
                ("reason", "because"),
                ("explanation", "x"),
            ],
        )
        .await;
    assert_eq!(refuse.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(site.request(&fix).await["status"], "in_progress");
    let refuse = site
        .post(
            &format!("/console/requests/{fix}/status"),
            Some(&dpo),
            &[
                ("csrf", &csrf),
                ("to", "refused"),
                ("reason", "manifestly_unfounded"),
                ("explanation", "The same correction was made yesterday."),
            ],
        )
        .await;
    assert_eq!(refuse.status, StatusCode::SEE_OTHER, "{}", refuse.body);
    let refused = site.request(&fix).await;
    assert_eq!(refused["status"], "refused");

    // Erasure: the subject's data and key go, the request completes, the page says so.
    let erase = site
        .request_by_subject(&budi, "erasure", json!({"filed_in": "privacy_portal"}))
        .await;
    let page = site
        .get(&format!("/console/requests/{erase}"), Some(&dpo))
        .await;
    // Not before the work begins.
    assert!(!page.body.contains("/erase\""));
    site.post(
        &format!("/console/requests/{erase}/status"),
        Some(&dpo),
        &[("csrf", &csrf), ("to", "in_progress")],
    )
    .await;
    let page = site
        .get(&format!("/console/requests/{erase}"), Some(&dpo))
        .await;
    assert!(page.body.contains("/erase\""), "{}", page.body);
    let done = site
        .post(
            &format!("/console/requests/{erase}/erase"),
            Some(&dpo),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(site.request(&erase).await["status"], "completed");
    let (status, _) = site
        .api(
            reqwest::Method::GET,
            &format!("/v1/subjects/{budi}?purpose=admission"),
            &site.admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::GONE);
    let page = site
        .get(&format!("/console/requests/{erase}"), Some(&dpo))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("sudah dihapus"), "{}", page.body);
}

#[tokio::test]
async fn nothing_is_answered_before_work_begins_nor_with_a_request_of_another_kind() {
    let site = site().await;
    let budi = site.applicant("Budi Santoso", "budi@example.id").await;
    // Entered by staff, not yet verified, with a reordering character in its text.
    let erase = site
        .request_by_staff(&budi, "erasure", json!({"text": "hapus \u{202E}semua"}))
        .await;
    let access = site
        .request_by_subject(&budi, "access", json!({"filed_in": "privacy_portal"}))
        .await;
    let dpo = site.sign_in(&site.dpo).await;
    let page = site
        .get(&format!("/console/requests/{erase}"), Some(&dpo))
        .await;
    assert!(!page.body.contains('\u{202E}'), "{}", page.body);
    assert!(page.body.contains("hapus \u{FFFD}semua"), "{}", page.body);
    let csrf = page.csrf();

    // Erasure is refused while the request waits for the identity check, and changes nothing.
    let refused = site
        .post(
            &format!("/console/requests/{erase}/erase"),
            Some(&dpo),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    let (status, _) = site
        .api(
            reqwest::Method::GET,
            &format!("/v1/subjects/{budi}?purpose=admission"),
            &site.admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(site.request(&erase).await["status"], "received");

    // An access request in progress does not restrict or erase anyone.
    site.post(
        &format!("/console/requests/{access}/status"),
        Some(&dpo),
        &[("csrf", &csrf), ("to", "in_progress")],
    )
    .await;
    for action in ["restrict", "erase", "rectify"] {
        let refused = site
            .post(
                &format!("/console/requests/{access}/{action}"),
                Some(&dpo),
                &[("csrf", &csrf), ("fix.full_name", "X")],
            )
            .await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{action}");
    }
    let (_, export) = site
        .api(
            reqwest::Method::GET,
            &format!("/v1/subjects/{budi}/export"),
            &site.admin,
            None,
        )
        .await;
    assert_eq!(export["restriction"], Value::Null, "{export}");
    assert_eq!(export["fields"]["full_name"], "Budi Santoso");
}
