//! The console's disclosures and breaches over plain HTTP against the real router (the test
//! policy on SQLite, a manual clock): the person in charge approves and the account owner
//! authorizes a disclosure, each from their own console session; a role that may not take a
//! step sees no form and is refused when it posts one anyway, as is the requester approving
//! their own disclosure, and a form without the session's token; nothing changes then. A
//! breach counts down to its notification deadline in hours, its notices download in Bahasa
//! Indonesia and in English, they are marked sent, and a breach is recorded from the console.
//! Every console action is in the audit under the holder's own key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use amanah_server::console::{Console, ConsoleConfig};
use amanah_server::{router, AppState};
use amanah_testkit::{policies, Kind, TestVault};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use support::pages::{Answer, Served};

/// A key holder: their bearer token and their key's id (the audit's actor).
struct Holder {
    token: String,
    id: String,
}

struct Site {
    web: Served,
    kit: TestVault,
    admin: Holder,
    officer: Holder,
    pic: Holder,
    owner: Holder,
    dpo: Holder,
}

/// A signed-in console session.
struct Session {
    cookie: String,
}

async fn site() -> Site {
    let kit = TestVault::new(
        Kind::Sqlite,
        "console-accountability",
        &policies::test_policy("v1", 0),
    )
    .await;
    let web = Served::start(router(
        AppState::new(kit.vault.clone()).with_console(Console::start(ConsoleConfig::default())),
    ))
    .await;
    let mut holders = Vec::new();
    for (role, holder) in [
        ("admin", "Admin <admin@example.id>"),
        ("officer", "Olga <olga@example.id>"),
        ("pic", "Putri PIC <putri@example.id>"),
        ("owner", "Omar Owner <omar@example.id>"),
        ("dpo", "Dewi DPO <dewi@example.id>"),
    ] {
        let issued = kit.issue(role, holder).await;
        holders.push(Holder {
            token: issued.token.to_string(),
            id: issued.record.id.clone(),
        });
    }
    let mut holders = holders.into_iter();
    let mut next = || holders.next().unwrap();
    Site {
        web,
        admin: next(),
        officer: next(),
        pic: next(),
        owner: next(),
        dpo: next(),
        kit,
    }
}

impl Site {
    async fn api(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> Value {
        let (status, value) = self.web.api(method, path, key, body).await;
        assert!(status.is_success(), "{path}: {status} {value}");
        value
    }

    async fn disclosure(&self, id: &str) -> Value {
        self.api(
            Method::GET,
            &format!("/v1/disclosures/{id}"),
            &self.admin.token,
            None,
        )
        .await
    }

    async fn audit(&self) -> Vec<Value> {
        let v = self
            .api(
                Method::GET,
                "/v1/audit?limit=10000",
                &self.admin.token,
                None,
            )
            .await;
        v["entries"].as_array().unwrap().clone()
    }

    /// An applicant with a name, an e-mail address and a NIK.
    async fn applicant(&self) -> String {
        let v = self
            .api(
                Method::POST,
                "/v1/subjects?purpose=admission",
                &self.officer.token,
                Some(
                    json!({"fields": {"full_name": "Ani Lestari", "email": "ani@example.id",
                                       "nik": "3171014101900001"}}),
                ),
            )
            .await;
        v["id"].as_str().unwrap().to_owned()
    }

    /// A disclosure to the verifier requested with `key`, waiting for approval.
    async fn disclosure_by(&self, key: &str, subject: &str) -> String {
        let v = self
            .api(
                Method::POST,
                "/v1/disclosures",
                key,
                Some(json!({"recipient": "verifier", "purpose": "admission",
                            "subject_ids": [subject], "categories": ["full_name", "nik"],
                            "reason": "identity verification of applicants",
                            "reference": "contract V-7"})),
            )
            .await;
        assert_eq!(v["status"], "pending_approval");
        v["id"].as_str().unwrap().to_owned()
    }

    async fn get(&self, path: &str, session: Option<&Session>) -> Answer {
        self.web.get(path, session.map(|s| s.cookie.as_str())).await
    }

    async fn post(&self, path: &str, session: &Session, form: &[(&str, &str)]) -> Answer {
        self.web.post(path, Some(&session.cookie), form).await
    }

    /// Signs in to the console with `holder`'s API key.
    async fn sign_in(&self, holder: &Holder) -> Session {
        let id = self.web.console_sign_in(&holder.token).await;
        Session {
            cookie: support::pages::console(&id),
        }
    }

    /// A page of a signed-in session, which must answer 200.
    async fn page(&self, path: &str, session: &Session) -> Answer {
        let a = self.get(path, Some(session)).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
        a
    }
}

fn pairs<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    fields.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn has_form(page: &str, action: &str) -> bool {
    page.contains(&format!("action=\"{action}\""))
}

/// Audit entries of `action` by `actor` with `outcome`.
fn entries<'a>(audit: &'a [Value], action: &str, actor: &str, outcome: &str) -> Vec<&'a Value> {
    audit
        .iter()
        .filter(|e| e["action"] == action && e["actor"] == actor && e["outcome"] == outcome)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_person_in_charge_approves_and_the_owner_authorizes() {
    let site = site().await;
    let subject = site.applicant().await;
    let id = site.disclosure_by(&site.officer.token, &subject).await;
    let at = format!("/console/disclosures/{id}");

    // The PIC finds it awaiting their decision, and sees exactly what would be released.
    let pic = site.sign_in(&site.pic).await;
    let list = site.page("/console/disclosures", &pic).await;
    let mine = &list.body[list.body.find("Menunggu keputusan Anda").unwrap()
        ..list.body.find("Pengungkapan lainnya").unwrap()];
    assert!(mine.contains("(1)") && mine.contains(&at), "{}", list.body);
    let page = site.page(&at, &pic).await;
    for shown in [
        "verifier",
        "Tidak, penerima di Indonesia",
        "full_name, nik",
        &subject,
        "Pelaksanaan perjanjian",
        "contract V-7",
        &site.officer.id,
    ] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }
    for value in ["Ani Lestari", "3171014101900001", "ani@example.id"] {
        assert!(!page.body.contains(value), "a personal value on the page");
    }
    assert!(has_form(&page.body, &format!("{at}/approve")));
    assert!(has_form(&page.body, &format!("{at}/reject")));
    assert!(!has_form(&page.body, &format!("{at}/authorize")));
    let done = site
        .post(&format!("{at}/approve"), &pic, &[("csrf", &page.csrf())])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        done.header("location"),
        Some(format!("{at}?done=approve").as_str())
    );
    let d = site.disclosure(&id).await;
    assert_eq!(d["status"], "approved");
    assert_eq!(d["approved_by"], site.pic.id.as_str());
    // It no longer waits for the PIC; the English page says where it stands.
    let list = site.page("/console/disclosures?lang=en", &pic).await;
    assert!(
        list.body.contains("Awaiting your decision (0)"),
        "{}",
        list.body
    );
    assert!(list.body.contains("Approved, awaiting authorization"));

    // The owner authorizes it from their own session.
    let owner = site.sign_in(&site.owner).await;
    let page = site.page(&at, &owner).await;
    assert!(
        has_form(&page.body, &format!("{at}/authorize")),
        "{}",
        page.body
    );
    assert!(!has_form(&page.body, &format!("{at}/approve")));
    let done = site
        .post(
            &format!("{at}/authorize"),
            &owner,
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let d = site.disclosure(&id).await;
    assert_eq!(d["status"], "authorized");
    assert_eq!(d["authorized_by"], site.owner.id.as_str());
    let page = site.page(&format!("{at}?done=authorize"), &owner).await;
    assert!(page.body.contains("Diotorisasi dan dicatat di audit"));
    assert!(
        !has_form(&page.body, &format!("{at}/reject")),
        "no step left"
    );
    // The history names both steps' keys.
    assert!(page.body.contains(&site.pic.id) && page.body.contains(&site.owner.id));

    // Each step is in the audit under the key of the holder who took it, after their sign-in.
    let audit = site.audit().await;
    assert_eq!(
        entries(&audit, "disclosure.approve", &site.pic.id, "allowed").len(),
        1
    );
    assert_eq!(
        entries(&audit, "disclosure.authorize", &site.owner.id, "allowed").len(),
        1
    );
    for who in [&site.pic.id, &site.owner.id] {
        assert_eq!(
            entries(&audit, "console.sign_in", who, "allowed").len(),
            1,
            "{who}"
        );
    }
    assert!(!audit.iter().any(|e| e.to_string().contains("Ani Lestari")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_the_role_may_not_take_is_neither_offered_nor_allowed() {
    let site = site().await;
    let subject = site.applicant().await;
    let id = site.disclosure_by(&site.officer.token, &subject).await;
    let at = format!("/console/disclosures/{id}");

    // The owner authorizes, but does not approve: no form, and a form posted anyway is a 403
    // page that changes nothing (the refusal audited under the owner's key).
    let owner = site.sign_in(&site.owner).await;
    let page = site.page(&at, &owner).await;
    for step in ["approve", "authorize", "reject"] {
        assert!(!has_form(&page.body, &format!("{at}/{step}")), "{step}");
    }
    assert!(page
        .body
        .contains("Langkah berikutnya diambil oleh peran lain"));
    let list = site.page("/console/disclosures", &owner).await;
    assert!(
        list.body.contains("Menunggu keputusan Anda (0)"),
        "{}",
        list.body
    );
    let refused = site
        .post(&format!("{at}/approve"), &owner, &[("csrf", &page.csrf())])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("role=\"alert\""), "{}", refused.body);
    assert_eq!(site.disclosure(&id).await["status"], "pending_approval");

    // The DPO oversees disclosures but takes no step: the page, no forms, a refused reject.
    let dpo = site.sign_in(&site.dpo).await;
    let page = site.page(&at, &dpo).await;
    assert!(page.body.contains("verifier"));
    for step in ["approve", "authorize", "reject"] {
        assert!(!has_form(&page.body, &format!("{at}/{step}")), "{step}");
    }
    let refused = site
        .post(
            &format!("{at}/reject"),
            &dpo,
            &[("csrf", &page.csrf()), ("reason", "not needed")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let d = site.disclosure(&id).await;
    assert_eq!(d["status"], "pending_approval");
    assert!(d.get("rejected_by").is_none(), "{d}");

    // Four eyes: the PIC's own request shows them the form (their role approves), and the
    // vault refuses it, shown as a page.
    let own = site.disclosure_by(&site.pic.token, &subject).await;
    let pic = site.sign_in(&site.pic).await;
    let own_at = format!("/console/disclosures/{own}");
    let page = site.page(&own_at, &pic).await;
    assert!(has_form(&page.body, &format!("{own_at}/approve")));
    assert!(page
        .body
        .contains("Anda sudah mengambil langkah sebelumnya"));
    let list = site.page("/console/disclosures", &pic).await;
    let mine = &list.body[list.body.find("Menunggu keputusan Anda").unwrap()
        ..list.body.find("Pengungkapan lainnya").unwrap()];
    assert!(
        mine.contains(&at) && !mine.contains(&own_at),
        "their own is not awaiting them: {}",
        list.body
    );
    let refused = site
        .post(
            &format!("{own_at}/approve"),
            &pic,
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("four eyes"), "{}", refused.body);
    assert_eq!(site.disclosure(&own).await["status"], "pending_approval");

    let audit = site.audit().await;
    assert_eq!(
        entries(&audit, "disclosure.approve", &site.owner.id, "denied").len(),
        1
    );
    assert_eq!(
        entries(&audit, "disclosure.reject", &site.dpo.id, "denied").len(),
        1
    );
    assert_eq!(
        entries(&audit, "disclosure.approve", &site.pic.id, "denied").len(),
        1
    );
    assert!(entries(&audit, "disclosure.approve", &site.pic.id, "allowed").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_the_sessions_token_changes_nothing() {
    let site = site().await;
    let subject = site.applicant().await;
    let id = site.disclosure_by(&site.officer.token, &subject).await;
    let at = format!("/console/disclosures/{id}");
    let pic = site.sign_in(&site.pic).await;
    let owner = site.sign_in(&site.owner).await;
    let owners_token = site.page(&at, &owner).await.csrf();
    let pics_token = site.page(&at, &pic).await.csrf();
    assert_ne!(owners_token, pics_token);

    for form in [
        vec![],
        vec![("csrf", "")],
        vec![("csrf", owners_token.as_str())],
    ] {
        let refused = site.post(&format!("{at}/approve"), &pic, &form).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{form:?}");
        assert!(
            refused.body.contains("Formulir ditolak"),
            "{}",
            refused.body
        );
        let refused = site
            .post(
                &format!("{at}/reject"),
                &pic,
                &[form.as_slice(), &[("reason", "no")]].concat(),
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{form:?}");
    }
    let d = site.disclosure(&id).await;
    assert_eq!(d["status"], "pending_approval");
    // Refused before anything was read: no step was even attempted.
    let audit = site.audit().await;
    assert!(!audit
        .iter()
        .any(|e| e["action"] == "disclosure.approve" || e["action"] == "disclosure.reject"));

    // The breach forms are guarded the same way.
    let dpo = site.sign_in(&site.dpo).await;
    let refused = site
        .post(
            "/console/breaches",
            &dpo,
            &[("detected_at", "2026-11-23T08:00"), ("description", "x")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let listed = site
        .api(Method::GET, "/v1/breaches", &site.admin.token, None)
        .await;
    assert_eq!(listed["breaches"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breach_counts_down_in_hours_and_its_notices_download_in_both_languages() {
    let site = site().await;
    let subject = site.applicant().await;
    // Detected ten hours before the clock's start: 62 hours are left of the 72.
    let breach = site
        .api(
            Method::POST,
            "/v1/breaches",
            &site.dpo.token,
            Some(json!({"detected_at": "2026-11-22T17:00:00Z",
                        "description": "A laptop with an export was stolen.",
                        "categories": ["full_name", "email"], "subject_ids": [subject],
                        "cause": "theft", "measures": "keys rotated, police report filed"})),
        )
        .await;
    let id = breach["id"].as_str().unwrap().to_owned();
    let at = format!("/console/breaches/{id}");

    let dpo = site.sign_in(&site.dpo).await;
    let list = site.page("/console/breaches", &dpo).await;
    assert!(list.body.contains("62 jam lagi"), "{}", list.body);
    assert!(list.body.contains(&at) && list.body.contains("email, full_name"));
    assert!(!list.body.contains("class=\"overdue\""));
    let list = site.page("/console/breaches?lang=en", &dpo).await;
    assert!(list.body.contains("62 h left"), "{}", list.body);
    let page = site.page(&format!("{at}?lang=id"), &dpo).await;
    assert!(page.body.contains("62 jam lagi"), "{}", page.body);
    // The deadline in the organization's time zone: 2026-11-25 17:00 UTC.
    assert!(page.body.contains("2026-11-26 00:00 WIB"), "{}", page.body);
    assert!(page.body.contains(&format!("{at}/notices-id.txt")));
    assert!(page.body.contains(&format!("{at}/notices-en.txt")));
    assert!(!page.body.contains("ani@example.id") && !page.body.contains("Ani Lestari"));

    // Seventy hours on, it is eight hours past the deadline, in red.
    site.kit.advance(time::Duration::hours(70));
    let list = site.page("/console/breaches", &dpo).await;
    assert!(list.body.contains("lewat 8 jam"), "{}", list.body);
    assert!(list.body.contains("class=\"overdue\""));
    assert!(list.body.contains("1 lewat batas"));

    // The notices as files, one language each: the agency's and Ani's as the vault writes
    // them (her name and address are in the file, decrypted for it, never on a page).
    for (lang, agency, person, count) in [
        (
            "id",
            "Kepada Lembaga Pelindungan Data Pribadi,\n",
            "Yth. Ani Lestari,\n",
            " · 2 pemberitahuan\n",
        ),
        (
            "en",
            "To the Personal Data Protection Agency,\n",
            "Dear Ani Lestari,\n",
            " · 2 notices\n",
        ),
    ] {
        let file = site
            .get(&format!("{at}/notices-{lang}.txt"), Some(&dpo))
            .await;
        assert_eq!(file.status, StatusCode::OK, "{}", file.body);
        assert_eq!(
            file.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        let disposition = file.header("content-disposition").unwrap();
        assert_eq!(
            disposition,
            format!(
                "attachment; filename=\"breach-{}-notices-{lang}.txt\"",
                &id[..8]
            )
        );
        assert_eq!(file.header("cache-control"), Some("no-store"));
        assert!(file.body.contains(agency), "{}", file.body);
        assert!(file.body.contains(person), "{}", file.body);
        assert_eq!(
            file.body.contains("Data subjects affected: 1."),
            lang == "en"
        );
        assert_eq!(
            file.body.contains("Jumlah subjek data terdampak: 1."),
            lang == "id"
        );
        assert!(file.body.contains("ani@example.id"), "where to send it");
        assert!(file.body.contains(&subject) && file.body.contains("theft"));
        assert!(file.body.contains(count), "two notices: {}", file.body);
    }
    let id_file = site
        .get(&format!("{at}/notices-id.txt"), Some(&dpo))
        .await
        .body;
    assert!(
        !id_file.contains("Notice of a personal data breach"),
        "one language a file"
    );

    // Marked sent from the page: the countdown gives way to when.
    let page = site.page(&at, &dpo).await;
    assert!(has_form(&page.body, &format!("{at}/sent")));
    let done = site
        .post(&format!("{at}/sent"), &dpo, &[("csrf", &page.csrf())])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let b = site
        .api(
            Method::GET,
            &format!("/v1/breaches/{id}"),
            &site.admin.token,
            None,
        )
        .await;
    assert!(b["notified_at"].is_string(), "{b}");
    let page = site.page(&at, &dpo).await;
    assert!(!has_form(&page.body, &format!("{at}/sent")));
    assert!(
        page.body.contains("Diberitahukan 2026-11-26 08:00 WIB"),
        "{}",
        page.body
    );
    let again = site
        .post(&format!("{at}/sent"), &dpo, &[("csrf", &page.csrf())])
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);

    // The PIC handles no breaches: no page for them.
    let pic = site.sign_in(&site.pic).await;
    assert_eq!(
        site.get("/console/breaches", Some(&pic)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        site.get(&format!("{at}/notices-id.txt"), Some(&pic))
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // The audit: the notices read under the DPO's key (Ani's entry per file), marked sent.
    let audit = site.audit().await;
    let notices: Vec<&Value> = entries(&audit, "breach.notice", &site.dpo.id, "allowed")
        .into_iter()
        .filter(|e| e["subject"] == subject.as_str())
        .collect();
    assert_eq!(notices.len(), 3, "one per file downloaded");
    assert_eq!(
        entries(&audit, "breach.notified", &site.dpo.id, "allowed").len(),
        1
    );
    assert!(!audit
        .iter()
        .any(|e| e.to_string().contains("ani@example.id")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breach_is_recorded_from_the_console() {
    let site = site().await;
    let subject = site.applicant().await;
    let dpo = site.sign_in(&site.dpo).await;
    let list = site.page("/console/breaches", &dpo).await;
    assert!(has_form(&list.body, "/console/breaches"));
    // The form's time is in the organization's zone (03:00 UTC is 10:00 WIB).
    assert!(
        list.body.contains("value=\"2026-11-23T10:00\""),
        "{}",
        list.body
    );
    let csrf = list.csrf();
    let form = |ids: &str, all: bool| {
        let mut f: Vec<(&'static str, String)> = vec![
            ("csrf", csrf.clone()),
            ("detected_at", "2026-11-23T07:00".into()),
            (
                "description",
                "A misaddressed e-mail with an attachment.".into(),
            ),
            ("categories", "full_name".into()),
            ("categories", "email".into()),
            ("subject_ids", ids.to_owned()),
            ("cause", "human\u{202E} error".into()),
            ("measures", "recipient asked to delete it".into()),
        ];
        if all {
            f.push(("all_subjects", "yes".into()));
        }
        f
    };
    // Neither the ids nor every subject, or both: told so, nothing recorded.
    let ids = format!("{subject}\n");
    for (ids, all) in [("", false), (ids.as_str(), true)] {
        let refused = site
            .post("/console/breaches", &dpo, &pairs(&form(ids, all)))
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.body
        );
    }
    let done = site
        .post("/console/breaches", &dpo, &pairs(&form(&ids, false)))
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let location = done.header("location").unwrap().to_owned();
    let id = location
        .strip_prefix("/console/breaches/")
        .and_then(|l| l.strip_suffix("?done=recorded"))
        .unwrap()
        .to_owned();

    let b = site
        .api(
            Method::GET,
            &format!("/v1/breaches/{id}"),
            &site.admin.token,
            None,
        )
        .await;
    // 07:00 WIB is 00:00 UTC.
    assert_eq!(b["detected_at"], "2026-11-23T00:00:00Z", "{b}");
    assert_eq!(b["subject_ids"], json!([subject]));
    assert_eq!(b["categories"], json!(["email", "full_name"]));
    let page = site.page(&location, &dpo).await;
    assert!(page.body.contains("Insiden dicatat"), "{}", page.body);
    // Detected three hours ago: 69 of the 72 hours are left.
    assert!(page.body.contains("69 jam lagi"), "{}", page.body);
    // What the holder wrote is shown as text: a bidirectional control cannot reorder the page.
    assert!(page.body.contains("human\u{FFFD} error"), "{}", page.body);
    assert!(!page.body.contains('\u{202E}'));
    let audit = site.audit().await;
    assert_eq!(
        entries(&audit, "breach.record", &site.dpo.id, "allowed").len(),
        1
    );
}
