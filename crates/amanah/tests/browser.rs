//! The privacy portal end to end, in a real browser: headless Chromium driven through WebDriver
//! (`chromedriver`, Debian's `chromium-driver`) against the real `amanah serve` on SQLite,
//! sign-in codes sent by SMTP to a sink this test runs. A person signs in with the code they
//! received, sees their data and who used it, withdraws a marketing consent (the API then
//! refuses that purpose for them) and asks for erasure; the DPO signs in to the console with
//! their API key, finds the request due in 72 hours, reveals one value for a recorded reason,
//! erases and completes it, and the person can no longer sign in. Every page is photographed at 360 and 1280 px into
//! `target/screenshots/`, and any browser console error fails the test. The server's output
//! never holds a code, an e-mail address or a phone number.
//!
//! The DPO's oversight pages too (audit, record of processing, retention, the demo outbox, the
//! dashboard's counts), each photographed the same way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use support::{preset, run_ok, serve};

/// One message the SMTP sink received.
struct Mail {
    to: String,
    data: String,
}

/// A minimal SMTP server on loopback: accepts every message and hands it over.
async fn smtp_sink() -> (u16, mpsc::UnboundedReceiver<Mail>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                let mut to = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        b"250-sink\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        to = line[8..].trim().trim_matches(['<', '>']).to_owned();
                        b"250 OK\r\n"
                    } else if upper.starts_with("DATA") {
                        write.write_all(b"354 go on\r\n").await.unwrap();
                        let mut data = String::new();
                        while let Ok(Some(l)) = lines.next_line().await {
                            if l == "." {
                                break;
                            }
                            data.push_str(&l);
                            data.push('\n');
                        }
                        let _ = tx.send(Mail {
                            to: std::mem::take(&mut to),
                            data,
                        });
                        b"250 queued\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        break;
                    } else {
                        b"250 OK\r\n"
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, rx)
}

/// The code in the next message, which must be to `to`.
async fn next_code(mails: &mut mpsc::UnboundedReceiver<Mail>, to: &str) -> String {
    let mail = tokio::time::timeout(Duration::from_secs(30), mails.recv())
        .await
        .expect("a message within 30 s")
        .unwrap();
    assert_eq!(mail.to, to, "the next message is to {to}");
    let body = &mail.data[mail.data.find("\n\n").unwrap()..];
    body.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("a 6-digit code")
        .to_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `chromedriver` on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let child =
            Command::new(std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()))
                .arg(format!("--port={port}"))
                // A group of its own, so that its browser goes with it.
                .process_group(0)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver (Debian: chromium-driver; scripts/test installs it)");
        // Owned from here: dropped (killed and reaped) whatever happens next.
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return driver;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("chromedriver did not listen on {port}");
    }
}

impl Drop for Driver {
    /// Kills chromedriver and whatever it started (the browser, on a failed test), as one
    /// process group.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser and what the test asks of it beyond WebDriver's core (the console log, the
/// viewport of a phone), through chromedriver's own endpoints.
struct Browser {
    client: Client,
    driver: String,
    session: String,
    http: reqwest::Client,
    shots: PathBuf,
}

impl Browser {
    async fn start(driver: &Driver) -> Browser {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            // A browser set to Bahasa Indonesia, as most applicants' phones are.
            json!({"args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                            "--disable-gpu", "--window-size=1280,900", "--lang=id"],
                   "prefs": {"intl.accept_languages": "id-ID,id"}}),
        );
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .expect("a Chromium session");
        let session = client.session_id().await.unwrap().unwrap();
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            client,
            driver: driver.url.clone(),
            session,
            http: reqwest::Client::new(),
            shots,
        }
    }

    async fn cdp(&self, cmd: &str, params: Value) {
        let r = self
            .http
            .post(format!(
                "{}/session/{}/goog/cdp/execute",
                self.driver, self.session
            ))
            .json(&json!({"cmd": cmd, "params": params}))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "{cmd}: {}",
            r.text().await.unwrap()
        );
    }

    /// Fails on any console error since the last call.
    async fn no_console_errors(&self, page: &str) {
        let log: Value = self
            .http
            .post(format!("{}/session/{}/se/log", self.driver, self.session))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let errors: Vec<&Value> = log["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
            .collect();
        assert!(errors.is_empty(), "{page}: console errors {errors:?}");
    }

    /// The page at 360 and 1280 px wide, into target/screenshots/NAME-{360,1280}.png.
    async fn shoot(&self, name: &str) {
        for (width, mobile) in [(360, true), (1280, false)] {
            self.cdp(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": mobile}),
            )
            .await;
            // Nothing may overflow sideways on a phone.
            let overflow = self
                .client
                .execute(
                    "return document.documentElement.scrollWidth > window.innerWidth + 1",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(overflow, json!(false), "{name} overflows at {width} px");
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(self.shots.join(format!("{name}-{width}.png")), png).unwrap();
        }
        self.no_console_errors(name).await;
    }

    async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    async fn click(&self, xpath: &str) {
        self.client
            .find(Locator::XPath(xpath))
            .await
            .unwrap_or_else(|e| panic!("{xpath}: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn type_in(&self, id: &str, text: &str) {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap()
            .send_keys(text)
            .await
            .unwrap();
    }

    /// Waits for the page that has `css` (the previous one must not).
    async fn arrive(&self, css: &str) {
        self.client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
    }

    /// Asks a code for `address` from the sign-in page.
    async fn ask_code(&self, base: &str, address: &str) {
        self.client.goto(&format!("{base}/portal")).await.unwrap();
        self.type_in("address", address).await;
        self.click("//form[@action='/portal/sign-in']//button")
            .await;
        self.arrive("#code").await;
    }

    /// Types a code: signed in (the menu) or told why not.
    async fn enter_code(&self, code: &str) {
        self.type_in("code", code).await;
        self.click("//form[@action='/portal/code']//button").await;
        self.arrive("nav, p.error").await;
    }

    /// Follows a link of the menu.
    async fn menu(&self, href: &str) {
        self.click(&format!("//nav//a[@href='{href}']")).await;
        self.arrive(&format!("nav a[aria-current='page'][href='{href}']"))
            .await;
    }
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

impl Api {
    /// An applicant for admission, created by `admin`: their id.
    async fn applicant(&self, admin: &str, (name, email, phone): (&str, &str, &str)) -> String {
        let (status, created) = self
            .call(
                reqwest::Method::POST,
                "/v1/subjects?purpose=admission",
                admin,
                Some(json!({"fields": {"full_name": name, "email": email, "whatsapp": phone}})),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }
}

fn key(data: &str, role: &str, holder: &str) -> String {
    let out = run_ok(&[
        "apikey", "create", "--data", data, "--role", role, "--holder", holder,
    ]);
    out.lines().last().unwrap().trim().to_owned()
}

const SITI: (&str, &str, &str) = ("Siti Rahmawati", "siti.rahma@example.id", "+6281234567001");
const BUDI: (&str, &str, &str) = ("Budi Santoso", "budi.s@example.id", "+6281234567002");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_sees_their_data_withdraws_consent_and_is_erased() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("v");
    let data = data_dir.to_str().unwrap();
    run_ok(&[
        "init",
        "--data",
        data,
        "--policy",
        &preset("university.toml"),
    ]);
    let admin = key(data, "admin", "Admin <admin@example.id>");
    let dpo = key(data, "dpo", "Dewi DPO <dpo@example.id>");
    let officer = key(data, "admissions_officer", "Olga <olga@example.id>");
    let marketing = key(data, "marketing", "Maya <maya@example.id>");

    let (smtp_port, mut mails) = smtp_sink().await;
    let port = smtp_port.to_string();
    let mut server = serve([
        "--data",
        data,
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &port,
        "--smtp-from",
        "Privasi <privacy@example.id>",
        "--smtp-security",
        "none",
    ])
    .log("debug")
    .start();
    let base = server.base().to_owned();
    let api = Api {
        base: base.clone(),
        http: reqwest::Client::new(),
    };

    // Two applicants, a marketing consent each, and an officer who reads Siti's file.
    let mut ids = Vec::new();
    for person in [SITI, BUDI] {
        let id = api.applicant(&admin, person).await;
        let (status, body) = api
            .call(reqwest::Method::POST, &format!("/v1/subjects/{id}/consents"), &admin,
                  Some(json!({"purpose": "direct_marketing", "granted": true, "channel": "web_form",
                              "evidence": "brochure form 12", "contact_channels": ["email", "whatsapp"]})))
            .await;
        assert_eq!(status, 201, "{body}");
        ids.push(id);
    }
    let (siti, budi) = (ids[0].clone(), ids[1].clone());
    let (status, _) = api
        .call(
            reqwest::Method::GET,
            &format!("/v1/subjects/{siti}?purpose=admission"),
            &officer,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .call(
            reqwest::Method::GET,
            &format!("/v1/subjects/{siti}?purpose=direct_marketing"),
            &marketing,
            None,
        )
        .await;
    assert_eq!(status, 200);

    let driver = Driver::start();
    let browser = Browser::start(&driver).await;

    // Sign in with the code received by e-mail.
    browser
        .client
        .goto(&format!("{base}/portal"))
        .await
        .unwrap();
    assert!(browser.source().await.contains("Masuk ke portal privasi"));
    browser.shoot("portal-sign-in").await;
    browser.ask_code(&base, SITI.1).await;
    let code = next_code(&mut mails, SITI.1).await;
    assert!(browser.source().await.contains("Kode 6 angka"));
    browser.shoot("portal-code").await;
    browser.enter_code(&code).await;

    // My data: values, purposes, legal bases, recipients.
    let page = browser.source().await;
    assert!(
        page.contains(SITI.0) && page.contains(SITI.1) && page.contains(SITI.2),
        "{page}"
    );
    assert!(page.contains("admission") && page.contains("Pelaksanaan perjanjian"));
    assert!(page.contains("WIB"), "times in the organization's zone");
    assert!(!page.contains(BUDI.0));
    browser.shoot("portal-data").await;

    // Who used my data: the officer's read, by role, never by key.
    browser.menu("/portal/trail").await;
    let page = browser.source().await;
    assert!(
        page.contains("admissions_officer") && page.contains("membaca"),
        "{page}"
    );
    assert!(!page.contains("Olga") && !page.contains("olga@"));
    browser.shoot("portal-trail").await;

    // Withdraw the marketing consent. The preset gives 3 days' grace to other processing, but
    // contact stops at once: the API no longer lists her for any marketing channel.
    browser.menu("/portal/consents").await;
    let page = browser.source().await;
    assert!(
        page.contains("masa tenggang (hari): 3"),
        "the effect is stated: {page}"
    );
    browser.shoot("portal-consents").await;
    browser
        .click("//form[input[@name='purpose' and @value='direct_marketing']]//button")
        .await;
    browser.arrive("p.notice").await;
    let page = browser.source().await;
    assert!(
        page.contains("Keputusan Anda telah dicatat") && page.contains("Ditarik"),
        "{page}"
    );
    for channel in ["email", "whatsapp"] {
        let (status, list) = api
            .call(
                reqwest::Method::GET,
                &format!("/v1/contactable?purpose=direct_marketing&channel={channel}"),
                &marketing,
                None,
            )
            .await;
        assert_eq!(status, 200, "{list}");
        let listed: Vec<&str> = list["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert!(
            !listed.contains(&siti.as_str()) && listed.contains(&budi.as_str()),
            "{channel}: {list}"
        );
    }

    // English by the switch.
    browser.click("//a[@hreflang='en']").await;
    browser.arrive("html[lang='en']").await;
    assert!(browser.source().await.contains("Withdrawn"));
    browser.shoot("portal-consents-en").await;
    browser.click("//a[@hreflang='id']").await;
    browser.arrive("html[lang='id']").await;

    // Ask for erasure.
    browser.menu("/portal/requests").await;
    browser
        .client
        .find(Locator::Id("type"))
        .await
        .unwrap()
        .select_by_value("erasure")
        .await
        .unwrap();
    browser.type_in("details", "Hapus semua data saya.").await;
    browser
        .click("//form[@action='/portal/requests']//button")
        .await;
    browser.arrive("p.notice").await;
    let page = browser.source().await;
    assert!(
        page.contains("Permohonan Anda telah diterima") && page.contains("Penghapusan"),
        "{page}"
    );
    assert!(
        page.contains("72 jam lagi") || page.contains("71 jam lagi"),
        "{page}"
    );
    browser.shoot("portal-requests").await;

    // The DPO sees it due in 72 hours, erases and completes it.
    let (_, list) = api
        .call(
            reqwest::Method::GET,
            &format!("/v1/requests?subject={siti}"),
            &dpo,
            None,
        )
        .await;
    let request = &list["requests"][0];
    assert_eq!(request["type"], "erasure", "{list}");
    let received: jiff::Timestamp = request["received_at"].as_str().unwrap().parse().unwrap();
    let due: jiff::Timestamp = request["due_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(due.as_second() - received.as_second(), 72 * 3600);
    let rid = request["id"].as_str().unwrap().to_owned();

    // The DPO works on it in the console, signed in with their own key.
    browser
        .client
        .goto(&format!("{base}/console/sign-in"))
        .await
        .unwrap();
    browser.shoot("console-sign-in").await;
    browser.console_sign_in(&base, &dpo).await;
    browser
        .arrive("nav a[aria-current='page'][href='/console']")
        .await;
    let page = browser.source().await;
    assert!(page.contains("permintaan terbuka"), "{page}");
    browser.shoot("console-dashboard").await;
    browser.menu("/console/requests").await;
    let page = browser.source().await;
    assert!(
        page.contains("72 jam lagi") || page.contains("71 jam lagi"),
        "{page}"
    );
    // Her name and address are nowhere in the queue.
    assert!(!page.contains(SITI.0) && !page.contains(SITI.1), "{page}");
    browser.shoot("console-requests").await;
    browser
        .click(&format!("//a[@href='/console/requests/{rid}']"))
        .await;
    browser.arrive("form[action$='/status'] button").await;
    let page = browser.source().await;
    assert!(!page.contains(SITI.1), "values are masked: {page}");
    browser
        .click(&format!(
            "//form[@action='/console/requests/{rid}/status']//button[not(@class)]"
        ))
        .await;
    browser.arrive("form[action$='/erase']").await;
    // She asked to be erased: the officer checks her e-mail address first, for a reason the
    // audit records.
    browser
        .click("//form[@class='reveal'][input[@value='email']]//button")
        .await;
    browser.arrive("td.revealed").await;
    assert!(browser.source().await.contains(SITI.1));
    browser.shoot("console-request").await;
    browser
        .click(&format!(
            "//form[@action='/console/requests/{rid}/erase']//button"
        ))
        .await;
    browser.arrive("p.erased").await;
    browser.shoot("console-request-erased").await;
    let (_, request) = api
        .call(
            reqwest::Method::GET,
            &format!("/v1/requests/{rid}"),
            &dpo,
            None,
        )
        .await;
    assert_eq!(request["status"], "completed", "{request}");

    // Her session is over, and she can no longer sign in: no code goes to her address (the
    // next message the relay receives is Budi's), and the page says the same as ever.
    browser
        .client
        .goto(&format!("{base}/portal"))
        .await
        .unwrap();
    assert!(browser.source().await.contains("Masuk ke portal privasi"));
    browser.ask_code(&base, SITI.1).await;
    assert!(browser.source().await.contains("Kode 6 angka"));
    browser.enter_code(&code).await;
    assert!(!browser.source().await.contains(SITI.0));

    // The next person in the same browser sees only their own data. The relay's next message
    // is Budi's: codes go out in order, so none went to Siti's erased address.
    browser.ask_code(&base, BUDI.1).await;
    let budi_code = next_code(&mut mails, BUDI.1).await;
    browser.enter_code(&budi_code).await;
    let page = browser.source().await;
    assert!(
        page.contains(BUDI.0) && !page.contains(SITI.0) && !page.contains(&siti),
        "{page}"
    );
    browser.no_console_errors("after erasure").await;

    let output = server.output();
    // Ending the session makes chromedriver quit the browser.
    browser.client.close().await.unwrap();
    drop(driver);
    server.stop();
    // Nothing a person typed or received is in the server's log.
    for secret in [
        SITI.1,
        SITI.2,
        BUDI.1,
        BUDI.2,
        "siti.rahma",
        "81234567001",
        &code,
        &budi_code,
    ] {
        assert!(
            !output.contains(secret),
            "the server's output holds {secret:?}"
        );
    }
    assert!(output.contains("portal sign-in code sent"), "{output}");
}

/// The DPO's oversight pages in the browser: the audit chain and its checkpoint (written by
/// `serve --checkpoint-dir`), a subject's trail, the record of processing, the retention
/// preview, the demo outbox with the code the portal just wrote, and the dashboard's counts;
/// each at 360 and 1280 px without sideways scrolling or console errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dpo_oversees_the_audit_record_retention_and_outbox() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("v");
    let data = data_dir.to_str().unwrap();
    let outbox = dir.path().join("outbox");
    let anchors = dir.path().join("anchors");
    run_ok(&[
        "init",
        "--data",
        data,
        "--policy",
        &preset("university.toml"),
    ]);
    let admin = key(data, "admin", "Admin <admin@example.id>");
    let dpo = key(data, "dpo", "Dewi DPO <dpo@example.id>");
    let mut server = serve([
        "--data",
        data,
        "--portal-outbox",
        outbox.to_str().unwrap(),
        "--checkpoint-dir",
        anchors.to_str().unwrap(),
    ])
    .start();
    let base = server.base().to_owned();
    let api = Api {
        base: base.clone(),
        http: reqwest::Client::new(),
    };
    let mut ids = Vec::new();
    for person in [SITI, BUDI] {
        ids.push(api.applicant(&admin, person).await);
    }
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            &format!("/v1/subjects/{}/consents", ids[0]),
            &admin,
            Some(
                json!({"purpose": "direct_marketing", "granted": true, "channel": "web_form",
                          "evidence": "brochure form 12", "contact_channels": ["email"]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let driver = Driver::start();
    let browser = Browser::start(&driver).await;
    // Siti asks for a code: the portal writes it to the outbox.
    browser.ask_code(&base, SITI.1).await;

    browser
        .client
        .goto(&format!("{base}/console/sign-in"))
        .await
        .unwrap();
    browser.type_in("key", &dpo).await;
    browser
        .click("//form[@action='/console/sign-in']//button")
        .await;
    browser.arrive("nav").await;
    let page = browser.source().await;
    assert!(page.contains("consents-by-purpose") && page.contains("direct_marketing"));
    browser.shoot("console-dashboard-statistics").await;

    browser.menu("/console/audit").await;
    let page = browser.source().await;
    assert!(page.contains("Rantai audit utuh."), "{page}");
    assert!(page.contains("Rantai masih memuat entri"), "{page}");
    browser.shoot("console-audit").await;
    browser.type_in("subject", &ids[0]).await;
    browser
        .click("//form[@action='/console/audit']//button")
        .await;
    browser.arrive("table.stack").await;
    let page = browser.source().await;
    assert!(
        page.contains("subject.create") && !page.contains(SITI.0),
        "{page}"
    );
    browser.shoot("console-audit-trail").await;

    browser.menu("/console/ropa").await;
    assert!(browser.source().await.contains("/console/ropa.csv"));
    browser.shoot("console-ropa").await;

    browser.menu("/console/retention").await;
    assert!(browser
        .source()
        .await
        .contains("Penyapuan terjadwal berikutnya"));
    browser.shoot("console-retention").await;

    browser.menu("/console/outbox").await;
    let page = browser.source().await;
    assert!(page.contains(SITI.1), "{page}");
    browser.shoot("console-outbox").await;
    browser
        .click("//table//a[contains(@href, '/console/outbox/')]")
        .await;
    browser.arrive("pre.message").await;
    browser.shoot("console-outbox-message").await;

    browser.client.close().await.unwrap();
    drop(driver);
    server.stop();
}

impl Browser {
    /// Signs in to the console with an API key, from the sign-in page.
    async fn console_sign_in(&self, base: &str, key: &str) {
        self.client
            .goto(&format!("{base}/console/sign-in"))
            .await
            .unwrap();
        self.arrive("#key").await;
        self.type_in("key", key).await;
        self.click("//form[@action='/console/sign-in']//button")
            .await;
        self.arrive("nav").await;
    }

    /// Signs out of the console.
    async fn console_sign_out(&self) {
        self.click("//form[@action='/console/sign-out']//button")
            .await;
        self.arrive("#key").await;
    }
}

/// The DPO's side: the registrar (the person in charge) approves a disclosure an admissions
/// officer requested, the DPO (the university's authorizer) authorizes it, then sees a breach
/// counting down to its notification deadline; each console page at 360 and 1280 px.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_approves_a_disclosure_and_sees_a_breach_countdown() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("v");
    let data = data_dir.to_str().unwrap();
    run_ok(&[
        "init",
        "--data",
        data,
        "--policy",
        &preset("university.toml"),
    ]);
    let admin = key(data, "admin", "Admin <admin@example.id>");
    let officer = key(data, "admissions_officer", "Olga <olga@example.id>");
    let registrar = key(data, "registrar", "Rina Registrar <rina@example.id>");
    let dpo = key(data, "dpo", "Dewi DPO <dpo@example.id>");
    let mut server = serve(["--data", data]).start();
    let base = server.base().to_owned();
    let api = Api {
        base: base.clone(),
        http: reqwest::Client::new(),
    };

    // An applicant, checked with a verification partner: the officer asks to disclose her name.
    let (status, created) = api
        .call(
            reqwest::Method::POST,
            "/v1/subjects?purpose=admission",
            &admin,
            Some(json!({"fields": {"full_name": SITI.0, "email": SITI.1, "whatsapp": SITI.2}})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let siti = created["id"].as_str().unwrap().to_owned();
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            &format!("/v1/subjects/{siti}/purposes"),
            &admin,
            Some(json!({"purpose": "verification"})),
        )
        .await;
    assert!(status == 200 || status == 201, "{status} {body}");
    let (status, disclosure) = api
        .call(
            reqwest::Method::POST,
            "/v1/disclosures",
            &officer,
            Some(
                json!({"recipient": "verification_partners", "purpose": "verification",
                        "subject_ids": [siti], "categories": ["full_name"],
                        "reason": "checking the school certificate with the issuing school"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{disclosure}");
    let id = disclosure["id"].as_str().unwrap().to_owned();
    let at = format!("/console/disclosures/{id}");
    // A breach detected ten hours ago.
    let detected = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(10);
    let (status, breach) = api
        .call(
            reqwest::Method::POST,
            "/v1/breaches",
            &dpo,
            Some(json!({"detected_at": detected.to_string(),
                        "description": "A laptop holding an export was stolen.",
                        "categories": ["full_name", "email"], "subject_ids": [siti],
                        "cause": "theft", "measures": "keys rotated; police report filed"})),
        )
        .await;
    assert_eq!(status, 201, "{breach}");
    let breach_at = format!("/console/breaches/{}", breach["id"].as_str().unwrap());

    let driver = Driver::start();
    let browser = Browser::start(&driver).await;

    // The registrar signs in with their own key and finds the disclosure awaiting them.
    browser
        .client
        .goto(&format!("{base}/console/sign-in"))
        .await
        .unwrap();
    browser.arrive("#key").await;
    assert!(browser.source().await.contains("Masuk ke konsol"));
    browser.shoot("console-sign-in").await;
    browser.console_sign_in(&base, &registrar).await;
    browser.menu("/console/disclosures").await;
    let page = browser.source().await;
    assert!(
        page.contains("Menunggu keputusan Anda (1)") && page.contains(&at),
        "{page}"
    );
    browser.shoot("console-disclosures").await;
    browser.click(&format!("//a[@href='{at}']")).await;
    browser
        .arrive(&format!("form[action='{at}/approve']"))
        .await;
    let page = browser.source().await;
    assert!(
        page.contains("verification_partners")
            && page.contains("full_name")
            && page.contains(&siti),
        "{page}"
    );
    assert!(
        !page.contains(SITI.0) && !page.contains(SITI.1),
        "no personal value"
    );
    browser.shoot("console-disclosure").await;
    browser
        .click(&format!("//form[@action='{at}/approve']//button"))
        .await;
    browser.arrive("p.notice").await;
    assert!(browser
        .source()
        .await
        .contains("Disetujui dan dicatat di audit"));
    browser.shoot("console-disclosure-approved").await;
    browser.console_sign_out().await;

    // The preset's second step: the DPO authorizes it.
    browser.console_sign_in(&base, &dpo).await;
    browser.menu("/console/disclosures").await;
    assert!(browser
        .source()
        .await
        .contains("Menunggu keputusan Anda (1)"));
    browser.click(&format!("//a[@href='{at}']")).await;
    browser
        .arrive(&format!("form[action='{at}/authorize']"))
        .await;
    browser
        .click(&format!("//form[@action='{at}/authorize']//button"))
        .await;
    browser.arrive("p.notice").await;
    assert!(browser
        .source()
        .await
        .contains("Diotorisasi dan dicatat di audit"));
    browser.shoot("console-disclosure-authorized").await;
    let (status, d) = api
        .call(
            reqwest::Method::GET,
            &format!("/v1/disclosures/{id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(d["status"], "authorized", "{d}");

    // The breach register counts down in hours: 62 of the 72 are left (61 past the hour).
    browser.menu("/console/breaches").await;
    let page = browser.source().await;
    assert!(
        page.contains("62 jam lagi") || page.contains("61 jam lagi"),
        "{page}"
    );
    browser.shoot("console-breaches").await;
    browser.click(&format!("//a[@href='{breach_at}']")).await;
    browser.arrive("section.countdown").await;
    let page = browser.source().await;
    assert!(
        page.contains(&format!("{breach_at}/notices-id.txt"))
            && page.contains(&format!("{breach_at}/notices-en.txt")),
        "{page}"
    );
    browser.shoot("console-breach").await;
    browser.click("//a[@hreflang='en']").await;
    browser.arrive("html[lang='en']").await;
    let page = browser.source().await;
    assert!(
        page.contains("62 h left") || page.contains("61 h left"),
        "{page}"
    );
    browser.shoot("console-breach-en").await;
    browser.no_console_errors("console").await;

    browser.client.close().await.unwrap();
    drop(driver);
    server.stop();
}
