//! The privacy portal's security, over plain HTTP against the real router (the university
//! preset on SQLite, codes delivered to an outbox directory): sign-in by one-time code, CSRF,
//! session fixation, locked codes, identical answers for unknown addresses, two people in one
//! browser, rate limits, and a portal session that reaches neither the API, nor the officers'
//! console, nor another person.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use amanah_server::portal::{Delivery, Portal, PortalConfig};
use amanah_server::{router, AppState};
use amanah_testkit::{Kind, TestVault};
use amanah_vault::{act, Target};
use reqwest::StatusCode;
use serde_json::{json, Value};

use support::pages::{Answer, Served};

struct Site {
    web: Served,
    outbox: PathBuf,
    kit: TestVault,
    admin: String,
    secure: bool,
    _dir: tempfile::TempDir,
}

struct Person {
    id: String,
    email: &'static str,
    phone: &'static str,
    name: &'static str,
}

const SITI: (&str, &str, &str) = ("siti@example.id", "+6281234567001", "Siti Rahmawati");
const BUDI: (&str, &str, &str) = ("budi@example.id", "+6281234567002", "Budi Santoso");

async fn site() -> Site {
    site_with(None, false).await
}

/// A site whose codes go to `webhook`, else to an outbox directory; `secure`: served behind
/// an https origin.
async fn site_with(webhook: Option<String>, secure: bool) -> Site {
    // The university preset without its 3 days of grace: a withdrawal stops processing at once.
    let policy = amanah_testkit::policies::UNIVERSITY
        .replace("withdrawal_grace_days = 3", "withdrawal_grace_days = 0");
    assert_ne!(policy, amanah_testkit::policies::UNIVERSITY);
    let kit = TestVault::new(Kind::Sqlite, "portal", &policy).await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let portal = Portal::start(PortalConfig {
        delivery: Delivery {
            outbox: webhook.is_none().then(|| outbox.clone()),
            webhook,
            ..Delivery::default()
        },
        secure_cookies: secure,
    })
    .unwrap();
    let console = amanah_server::console::Console::start(Default::default());
    let web = Served::start(router(
        AppState::new(kit.vault.clone())
            .with_portal(portal)
            .with_console(console),
    ))
    .await;
    let admin = kit
        .issue("admin", "Admin <admin@example.id>")
        .await
        .token
        .to_string();
    Site {
        web,
        outbox,
        kit,
        admin,
        secure,
        _dir: dir,
    }
}

/// The portal session id a `Set-Cookie` gives.
fn session_of(set_cookie: &str) -> String {
    support::pages::session_of(set_cookie, "amanah_portal")
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

    async fn person(
        &self,
        (email, phone, name): (&'static str, &'static str, &'static str),
    ) -> Person {
        let (status, created) = self
            .api(
                reqwest::Method::POST,
                "/v1/subjects?purpose=admission",
                &self.admin,
                Some(json!({"fields": {"full_name": name, "email": email, "whatsapp": phone}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        let (status, body) = self
            .api(
                reqwest::Method::POST,
                &format!("/v1/subjects/{id}/consents"),
                &self.admin,
                Some(
                    json!({"purpose": "direct_marketing", "granted": true, "channel": "web_form",
                            "evidence": "form 7", "contact_channels": ["email"]}),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        Person {
            id,
            email,
            phone,
            name,
        }
    }

    async fn get(&self, path: &str, session: Option<&str>) -> Answer {
        let cookie = session.map(|s| format!("amanah_portal={s}"));
        self.web.get(path, cookie.as_deref()).await
    }

    async fn post(&self, path: &str, session: Option<&str>, form: &[(&str, &str)]) -> Answer {
        let cookie = session.map(|s| format!("amanah_portal={s}"));
        self.web.post(path, cookie.as_deref(), form).await
    }

    /// A visitor's session: its id and the sign-in form's token.
    async fn visit(&self) -> (String, String) {
        let page = self.get("/portal", None).await;
        assert_eq!(page.status, StatusCode::OK);
        let set = page.cookie().expect("a session cookie");
        assert!(
            set.contains("HttpOnly")
                && set.contains("SameSite=Strict")
                && set.contains("Path=/portal"),
            "{set}"
        );
        assert_eq!(set.contains("; Secure"), self.secure, "{set}");
        (session_of(&set), page.csrf())
    }

    /// Asks a code for `address` in `session`; the answer.
    async fn ask(&self, session: &str, csrf: &str, address: &str) -> Answer {
        self.post(
            "/portal/sign-in",
            Some(session),
            &[("csrf", csrf), ("address", address)],
        )
        .await
    }

    /// The code of the next message to `to` in the outbox (and the message is removed).
    async fn code_for(&self, to: &str) -> String {
        for _ in 0..500 {
            if let Some(code) = take_code(&self.outbox, to) {
                return code;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no code reached {to}");
    }

    /// Signs `p` in from a fresh visitor session: the new session id.
    async fn sign_in(&self, p: &Person) -> String {
        let (session, csrf) = self.visit().await;
        self.sign_in_from(&session, &csrf, p.email).await
    }

    async fn sign_in_from(&self, session: &str, csrf: &str, address: &str) -> String {
        let asked = self.ask(session, csrf, address).await;
        assert_eq!(asked.status, StatusCode::SEE_OTHER);
        assert_eq!(asked.location(), Some("/portal/code"));
        let code = self.code_for(address).await;
        let page = self.get("/portal/code", Some(session)).await;
        let done = self
            .post(
                "/portal/code",
                Some(session),
                &[("csrf", &page.csrf()), ("code", &code)],
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        session_of(&done.cookie().expect("a new session cookie"))
    }

    async fn marketing_state(&self, p: &Person) -> String {
        let (_, history) = self
            .api(
                reqwest::Method::GET,
                &format!("/v1/subjects/{}/consents", p.id),
                &self.admin,
                None,
            )
            .await;
        history["current"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["purpose"] == "direct_marketing")
            .unwrap()["state"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

fn take_code(outbox: &Path, to: &str) -> Option<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(outbox)
        .ok()?
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).ok()?;
        if text.starts_with(&format!("To: {to}\n")) {
            std::fs::remove_file(&f).unwrap();
            let body = &text[text.find("\n\n").unwrap()..];
            let digits: String = body
                .split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 6)
                .unwrap()
                .to_owned();
            return Some(digits);
        }
    }
    None
}

#[tokio::test]
async fn a_code_opens_a_new_session_and_every_form_needs_its_token() {
    let site = site().await;
    let siti = site.person(SITI).await;
    let (visitor, csrf) = site.visit().await;

    // A form without the session's token is refused and sends nothing.
    let refused = site
        .post(
            "/portal/sign-in",
            Some(&visitor),
            &[("address", siti.email)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = site
        .post(
            "/portal/sign-in",
            Some(&visitor),
            &[("csrf", "0".repeat(64).as_str()), ("address", siti.email)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        site.get("/portal/code", Some(&visitor)).await.status,
        StatusCode::SEE_OTHER
    );

    let signed_in = site.sign_in_from(&visitor, &csrf, siti.email).await;
    // No fixation: the session after sign-in is a new one, and the old id is dead.
    assert_ne!(signed_in, visitor);
    let old = site.get("/portal", Some(&visitor)).await;
    assert!(!old.body.contains(siti.name));
    let mine = site.get("/portal", Some(&signed_in)).await;
    assert_eq!(mine.status, StatusCode::OK);
    assert!(mine.body.contains(siti.name) && mine.body.contains(siti.email));
    let token = mine.csrf();
    assert_ne!(token, csrf);
    // Who used her data: the admin created her record (a change) and read nothing of hers yet.
    let trail = site.get("/portal/trail", Some(&signed_in)).await;
    assert!(
        trail.body.contains("<td data-label=\"Peran\">admin</td>"),
        "{}",
        trail.body
    );
    assert!(trail.body.contains("mengubah") && trail.body.contains("masuk ke portal"));
    assert!(
        !trail.body.contains("Admin &lt;admin@example.id")
            && !trail.body.contains("admin@example.id")
    );

    // CSRF on a change: refused with 403 and nothing changes, also with the token of the
    // session before sign-in.
    for bad in [None, Some(csrf.as_str()), Some("x")] {
        let mut form = vec![("purpose", "direct_marketing"), ("decision", "withdraw")];
        if let Some(t) = bad {
            form.push(("csrf", t));
        }
        let r = site.post("/portal/consents", Some(&signed_in), &form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
    assert_eq!(site.marketing_state(&siti).await, "valid");
    let r = site
        .post("/portal/requests", Some(&signed_in), &[("type", "erasure")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let (_, requests) = site
        .api(
            reqwest::Method::GET,
            &format!("/v1/requests?subject={}", siti.id),
            &site.admin,
            None,
        )
        .await;
    assert_eq!(
        requests["requests"].as_array().map(Vec::len),
        Some(0),
        "{requests}"
    );

    // With the token: the withdrawal is recorded, by the subject, and the API sees it.
    let r = site
        .post(
            "/portal/consents",
            Some(&signed_in),
            &[
                ("csrf", &token),
                ("purpose", "direct_marketing"),
                ("decision", "withdraw"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(site.marketing_state(&siti).await, "withdrawn");
    let marketer = site
        .kit
        .issue("marketing", "Maya <maya@example.id>")
        .await
        .token
        .to_string();
    let (status, _) = site
        .api(
            reqwest::Method::GET,
            &format!("/v1/subjects/{}?purpose=direct_marketing", siti.id),
            &marketer,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Every view and change is in the audit, with the subject as actor and role.
    let (_, audit) = site
        .api(
            reqwest::Method::GET,
            &format!("/v1/audit?subject={}", siti.id),
            &site.admin,
            None,
        )
        .await;
    let entries = audit["entries"].as_array().unwrap().clone();
    let own: Vec<&Value> = entries.iter().filter(|e| e["role"] == "subject").collect();
    let actions: Vec<&str> = own.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"portal.sign_in"), "{actions:?}");
    assert!(actions.contains(&"subject.export"), "{actions:?}");
    assert!(actions.contains(&"consent.withdraw"), "{actions:?}");
    for e in own {
        assert_eq!(e["actor"], format!("subject:{}", siti.id));
    }

    // Sign-out ends the session.
    let out = site
        .post("/portal/sign-out", Some(&signed_in), &[("csrf", &token)])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.cookie().unwrap().contains("Max-Age=0"));
    assert!(!site
        .get("/portal", Some(&signed_in))
        .await
        .body
        .contains(siti.name));
}

#[tokio::test]
async fn three_wrong_tries_void_a_code_and_a_new_one_can_be_asked() {
    let site = site().await;
    let siti = site.person(SITI).await;
    let (visitor, csrf) = site.visit().await;
    site.ask(&visitor, &csrf, siti.phone).await;
    let code = site.code_for(siti.phone).await;
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    for left in [2, 1] {
        let r = site
            .post(
                "/portal/code",
                Some(&visitor),
                &[("csrf", &csrf), ("code", &wrong)],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            r.body.contains(&format!("Sisa percobaan: {left}")),
            "{}",
            r.body
        );
        assert!(r.cookie().is_none());
    }
    let voided = "Tidak ada kode yang berlaku";
    let r = site
        .post(
            "/portal/code",
            Some(&visitor),
            &[("csrf", &csrf), ("code", &wrong)],
        )
        .await;
    assert!(r.body.contains(voided), "{}", r.body);
    // Voided: even the right code no longer opens anything.
    let r = site
        .post(
            "/portal/code",
            Some(&visitor),
            &[("csrf", &csrf), ("code", &code)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains(voided), "{}", r.body);
    assert!(r.cookie().is_none());
    assert!(!site
        .get("/portal", Some(&visitor))
        .await
        .body
        .contains(siti.name));
    // A new code, in the same browser session, works.
    let session = site.sign_in_from(&visitor, &csrf, siti.phone).await;
    assert!(site
        .get("/portal", Some(&session))
        .await
        .body
        .contains(siti.name));
    // ...once.
    let r = site
        .post(
            "/portal/code",
            Some(&visitor),
            &[("csrf", &csrf), ("code", "000000")],
        )
        .await;
    assert_ne!(r.status, StatusCode::SEE_OTHER);
}

/// What an answer shows an observer, bar the Date header and the session's own form token.
fn observable(a: &Answer, token: &str) -> (StatusCode, Vec<(String, String)>, String) {
    let mut headers: Vec<(String, String)> = a
        .headers
        .iter()
        .filter(|(k, _)| k.as_str() != "date")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    (a.status, headers, a.body.replace(token, "TOKEN"))
}

#[tokio::test]
async fn unknown_and_known_addresses_get_the_same_answer() {
    let site = site().await;
    let siti = site.person(SITI).await;
    // Her parent's number is in her record, indexed (siblings share parents), but it is not
    // her address: whoever reads it must not sign in as her.
    let parent = "+6281234567099";
    let (status, body) = site
        .api(
            reqwest::Method::PATCH,
            &format!("/v1/subjects/{}?purpose=admission", siti.id),
            &site.admin,
            Some(json!({"fields": {"parent_whatsapp": parent}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut seen = Vec::new();
    for address in [
        siti.email,
        "nobody@example.id",
        siti.phone,
        "+6281299999999",
        parent,
        "not an address",
    ] {
        let (session, csrf) = site.visit().await;
        let asked = site.ask(&session, &csrf, address).await;
        let page = site.get("/portal/code", Some(&session)).await;
        let wrong = site
            .post(
                "/portal/code",
                Some(&session),
                &[("csrf", &csrf), ("code", "123456")],
            )
            .await;
        seen.push((
            observable(&asked, &csrf),
            observable(&page, &csrf),
            observable(&wrong, &csrf).0,
        ));
    }
    for other in &seen[1..] {
        assert_eq!(other, &seen[0]);
    }
    assert_eq!(seen[0].0 .0, StatusCode::SEE_OTHER);
    // Only her own addresses got a message (not her parent's number).
    site.code_for(siti.email).await;
    site.code_for(siti.phone).await;
    let left: Vec<_> = std::fs::read_dir(&site.outbox).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn two_people_one_after_the_other_in_one_browser_never_see_each_other() {
    let site = site().await;
    let siti = site.person(SITI).await;
    let budi = site.person(BUDI).await;
    // One browser: its cookie jar holds whatever the server last set.
    let (mut jar, csrf) = site.visit().await;
    jar = site.sign_in_from(&jar, &csrf, siti.email).await;
    for path in [
        "/portal",
        "/portal/trail",
        "/portal/consents",
        "/portal/requests",
        "/portal/export.json",
        "/portal/export.csv",
    ] {
        let page = site.get(path, Some(&jar)).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(
            !page.body.contains(budi.name)
                && !page.body.contains(budi.email)
                && !page.body.contains(&budi.id),
            "{path}"
        );
    }
    let token = site.get("/portal", Some(&jar)).await.csrf();
    let out = site
        .post("/portal/sign-out", Some(&jar), &[("csrf", &token)])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let page = site.get("/portal", Some(&jar)).await;
    let jar2 = session_of(&page.cookie().expect("a new visitor session"));
    let siti_session = jar;
    let jar = site.sign_in_from(&jar2, &page.csrf(), budi.email).await;
    for path in [
        "/portal",
        "/portal/trail",
        "/portal/consents",
        "/portal/requests",
        "/portal/export.json",
        "/portal/export.csv",
    ] {
        let page = site.get(path, Some(&jar)).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(
            page.body.contains(budi.name) || !path.ends_with("portal"),
            "{path}"
        );
        assert!(
            !page.body.contains(siti.name)
                && !page.body.contains(siti.email)
                && !page.body.contains(&siti.id),
            "{path}"
        );
    }
    // Siti's signed-out session shows nothing of hers.
    assert!(!site
        .get("/portal", Some(&siti_session))
        .await
        .body
        .contains(siti.name));
}

#[tokio::test]
async fn a_portal_session_reaches_neither_the_api_nor_anyone_else() {
    let site = site().await;
    let siti = site.person(SITI).await;
    let budi = site.person(BUDI).await;
    let session = site.sign_in(&siti).await;
    // The API takes keys, never the portal's cookie.
    for path in [
        format!("/v1/subjects/{}?purpose=admission", siti.id),
        format!("/v1/subjects/{}/export", budi.id),
        "/v1/requests".to_owned(),
    ] {
        let r = site.get(&path, Some(&session)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    // Nor does the console: the portal's cookie, or its id under the console's cookie name,
    // leads only to the console's sign-in (an API key).
    for cookie in [
        format!("amanah_portal={session}"),
        format!("amanah_console={session}"),
    ] {
        for path in [
            "/console".to_owned(),
            "/console/requests".to_owned(),
            format!("/console/requests/{}", siti.id),
        ] {
            let r = site.web.get(&path, Some(&cookie)).await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
            assert_eq!(r.location(), Some("/console/sign-in"), "{path}");
        }
    }
    // The principal the portal acts as reaches its own subject through self-service only.
    let vault = &site.kit.vault;
    let me = vault.data_subject(&siti.id);
    assert!(vault
        .authorize::<act::SubjectExport>(&me, Target::subject(&siti.id))
        .await
        .is_ok());
    for refused in [
        vault
            .authorize::<act::SubjectExport>(&me, Target::subject(&budi.id))
            .await
            .err(),
        vault
            .authorize::<act::ConsentRead>(&me, Target::subject(&budi.id))
            .await
            .err(),
        vault
            .authorize::<act::RequestCreate>(&me, Target::subject(&budi.id))
            .await
            .err(),
        vault
            .authorize::<act::SubjectRead>(&me, Target::subject_under(&siti.id, "admission"))
            .await
            .err(),
        vault
            .authorize::<act::SubjectSearch>(&me, Target::purpose("admission"))
            .await
            .err(),
        vault
            .authorize::<act::RequestList>(&me, Target::none())
            .await
            .err(),
        vault
            .authorize::<act::SubjectErase>(&me, Target::subject(&siti.id))
            .await
            .err(),
        vault
            .authorize::<act::AuditRead>(&me, Target::none())
            .await
            .err(),
    ] {
        assert!(
            matches!(refused, Some(amanah_core::Error::Forbidden(_))),
            "{refused:?}"
        );
    }
    // An API key cannot be issued for the built-in role either.
    let (status, _) = site
        .api(
            reqwest::Method::POST,
            "/v1/keys",
            &site.admin,
            Some(json!({"role": "subject", "name": "x", "holder": "X <x@example.id>"})),
        )
        .await;
    assert!(status.is_client_error(), "{status}");
}

#[tokio::test]
async fn sends_are_limited_per_address_and_per_client() {
    let site = site().await;
    let siti = site.person(SITI).await;
    let (session, csrf) = site.visit().await;
    for _ in 0..3 {
        assert_eq!(
            site.ask(&session, &csrf, siti.email).await.status,
            StatusCode::SEE_OTHER
        );
    }
    let limited = site.ask(&session, &csrf, siti.email).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    // The same for an address nobody holds.
    for _ in 0..3 {
        assert_eq!(
            site.ask(&session, &csrf, "x@example.id").await.status,
            StatusCode::SEE_OTHER
        );
    }
    assert_eq!(
        site.ask(&session, &csrf, "x@example.id").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Per client: ten sends from one address, whatever the addresses.
    for i in 0..4 {
        assert_eq!(
            site.ask(&session, &csrf, &format!("y{i}@example.id"))
                .await
                .status,
            StatusCode::SEE_OTHER
        );
    }
    assert_eq!(
        site.ask(&session, &csrf, "z@example.id").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn a_parent_acts_for_their_child_in_their_own_name_and_nobody_else_can() {
    let site = site().await;
    let ibu = site.person(SITI).await;
    let budi = site.person(BUDI).await;
    // A 14-year-old applicant who named Siti as parent.
    let (status, created) = site
        .api(
            reqwest::Method::POST,
            "/v1/subjects?purpose=admission",
            &site.admin,
            Some(
                json!({"fields": {"full_name": "Putri Rahmawati", "email": "putri@example.id",
                                   "birth_date": "2012-06-01"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let child = created["id"].as_str().unwrap().to_owned();
    let (status, body) = site
        .api(
            reqwest::Method::POST,
            &format!("/v1/subjects/{child}/relations"),
            &site.admin,
            Some(json!({"kind": "parent", "subject_id": ibu.id, "evidence": "enrolment form"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Budi is nobody's parent: no list, and asking to act for Putri is refused.
    let as_budi = site.sign_in(&budi).await;
    let page = site.get("/portal", Some(&as_budi)).await;
    assert!(!page.body.contains("/portal/act-for"), "{}", page.body);
    let refused = site
        .post(
            "/portal/act-for",
            Some(&as_budi),
            &[("csrf", &page.csrf()), ("subject", &child)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    // Said in the person's language first.
    assert!(
        refused.body.contains("Tindakan ini tidak diizinkan."),
        "{}",
        refused.body
    );
    let page = site.get("/portal", Some(&as_budi)).await;
    assert!(page.body.contains(budi.name) && !page.body.contains("Putri"));

    // Siti sees her daughter listed, acts for her, and sees her data, not her own.
    let session = site.sign_in(&ibu).await;
    let page = site.get("/portal", Some(&session)).await;
    assert!(page.body.contains(&child[..8]), "{}", page.body);
    let chose = site
        .post(
            "/portal/act-for",
            Some(&session),
            &[("csrf", &page.csrf()), ("subject", &child)],
        )
        .await;
    assert_eq!(chose.status, StatusCode::SEE_OTHER, "{}", chose.body);
    let page = site.get("/portal", Some(&session)).await;
    assert!(page.body.contains("Putri Rahmawati"), "{}", page.body);
    assert!(!page.body.contains(ibu.email));
    assert!(page.body.contains("Kembali ke data saya"));

    // She gives marketing consent for her daughter: recorded as a guardian's, in her name.
    let given = site
        .post(
            "/portal/consents",
            Some(&session),
            &[
                ("csrf", &page.csrf()),
                ("purpose", "direct_marketing"),
                ("decision", "grant"),
                ("channel", "email"),
            ],
        )
        .await;
    assert_eq!(given.status, StatusCode::OK, "{}", given.body);
    let (_, history) = site
        .api(
            reqwest::Method::GET,
            &format!("/v1/subjects/{child}/consents"),
            &site.admin,
            None,
        )
        .await;
    let decision = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == "direct_marketing")
        .unwrap_or_else(|| panic!("{history}"));
    assert_eq!(decision["given_by"], "guardian", "{history}");
    assert_eq!(decision["guardian_subject_id"], json!(ibu.id), "{history}");
    let (_, trail) = site
        .api(
            reqwest::Method::GET,
            &format!("/v1/audit?subject={child}"),
            &site.admin,
            None,
        )
        .await;
    assert!(
        trail["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "consent.grant"
                && e["actor"] == json!(format!("subject:{}", ibu.id))),
        "{trail}"
    );

    // Back to her own data.
    let back = site
        .post(
            "/portal/act-for",
            Some(&session),
            &[("csrf", &page.csrf()), ("subject", "self")],
        )
        .await;
    assert_eq!(back.status, StatusCode::SEE_OTHER);
    let page = site.get("/portal", Some(&session)).await;
    assert!(page.body.contains(ibu.email) && !page.body.contains("Kembali ke data saya"));
}

#[tokio::test]
async fn an_erased_person_is_found_no_more_and_their_session_ends() {
    let site = site().await;
    let siti = site.person(SITI).await;
    let session = site.sign_in(&siti).await;
    assert!(site
        .kit
        .vault
        .sign_in_target(siti.email)
        .await
        .unwrap()
        .is_some());
    let (status, _) = site
        .api(
            reqwest::Method::DELETE,
            &format!("/v1/subjects/{}", siti.id),
            &site.admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        site.kit.vault.sign_in_target(siti.email).await.unwrap(),
        None
    );
    assert_eq!(
        site.kit.vault.sign_in_target(siti.phone).await.unwrap(),
        None
    );
    let page = site.get("/portal", Some(&session)).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.cookie().unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn codes_to_phone_numbers_go_to_the_webhook_as_json() {
    // A WhatsApp/SMS gateway that hands over what it receives.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let gateway = axum::Router::new().route(
        "/send",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(v);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/send", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, gateway).await });
    // Behind an https origin: cookies are Secure.
    let site = site_with(Some(url), true).await;
    let siti = site.person(SITI).await;
    let (session, csrf) = site.visit().await;
    // Typed the local way: normalized like the stored number (E.164).
    let asked = site.ask(&session, &csrf, "0812-3456-7001").await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER);
    let sent = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("the gateway is called")
        .unwrap();
    assert_eq!(sent["channel"], "phone");
    assert_eq!(sent["to"], siti.phone);
    assert_eq!(sent["lang"], "id");
    let code = sent["code"].as_str().unwrap().to_owned();
    assert!(sent["text"].as_str().unwrap().contains(&code));
    let page = site.get("/portal/code", Some(&session)).await;
    let done = site
        .post(
            "/portal/code",
            Some(&session),
            &[("csrf", &page.csrf()), ("code", &code)],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    let signed_in = session_of(&done.cookie().unwrap());
    assert!(site
        .get("/portal", Some(&signed_in))
        .await
        .body
        .contains(siti.name));
}
