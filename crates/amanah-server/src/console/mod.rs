//! The officer's console (`/console`): server-rendered pages for the people who answer for the
//! policy (the DPO, the approvers of disclosures, the admin). A key holder signs in with their
//! own API key, which the session keeps in memory and authenticates again on every page: a key
//! revoked or a role removed ends the session at its next page. Every page then asks the
//! vault's decision point for its own permit, exactly as the API does, so the console shows
//! and changes only what the holder's role may, and every read and change is audited under the
//! holder's key. The menu lists the pages the role may use ([`Vault::may`]); that is a hint,
//! never the check.
//!
//! Invariants: a sign-in opens a session under a new id (no fixation); every form carries the
//! session's synchronizer token, checked by [`posted`] before anything is read or changed; the
//! cookie is `HttpOnly; SameSite=Strict; Path=/console` (`Secure` over TLS); personal values
//! are masked in lists and revealed one at a time with a reason from a closed list, audited
//! (`subject.reveal`); a data subject's portal session is not a console session (another
//! cookie, another path, and no API key behind it).

mod breaches;
mod dashboard;
mod disclosures;
mod oversight;
mod requests;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amanah_core::authz::Action;
use amanah_core::Error;
use amanah_vault::{Principal, Vault};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use zeroize::Zeroizing;

use crate::web::{self, Lang, Session, Sessions, Tier};
use crate::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "amanah_console";
/// A console session unused this long is over.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// A console session ends this long after sign-in, however busy.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sign-in attempts one client may make per window (keys are 256-bit: this bounds the work a
/// client causes, not guessing).
const SIGN_INS_PER_CLIENT: usize = 20;
const SIGN_IN_WINDOW: Duration = Duration::from_secs(15 * 60);
const MAX_SESSIONS: usize = 10_000;

/// How the console is configured.
#[derive(Debug, Clone, Default)]
pub struct ConsoleConfig {
    /// Cookies carry `Secure` (served over TLS, or behind an https origin).
    pub secure_cookies: bool,
    /// The demo's outbox of portal messages, which the console shows.
    pub outbox: Option<PathBuf>,
    /// Where `serve --checkpoint-dir` writes signed audit checkpoints (the audit page shows
    /// the latest).
    pub checkpoints: Option<PathBuf>,
    /// How often `serve` sweeps retention, the first sweep at start (the retention page says
    /// when the next one runs).
    pub retention_every: Option<Duration>,
}

/// Who a console session is.
#[derive(Clone)]
pub(crate) enum Stage {
    /// Not signed in (the sign-in form's token lives in this session).
    Visitor,
    /// Signed in with this API key, authenticated again on every page.
    SignedIn(Arc<Zeroizing<String>>),
}

/// The console: its sessions and limits.
pub struct Console {
    sessions: Sessions<Stage>,
    secure: bool,
    pub(crate) outbox: Option<PathBuf>,
    pub(crate) checkpoints: Option<PathBuf>,
    /// When the sweeps began and how often they run.
    pub(crate) sweeps: Option<(Instant, Duration)>,
    sign_ins: Mutex<HashMap<IpAddr, Vec<Instant>>>,
}

impl Console {
    pub fn start(config: ConsoleConfig) -> Arc<Console> {
        Arc::new(Console {
            sessions: Sessions::new(SESSION_IDLE, SESSION_LIFETIME, MAX_SESSIONS),
            secure: config.secure_cookies,
            outbox: config.outbox,
            checkpoints: config.checkpoints,
            sweeps: config.retention_every.map(|every| (Instant::now(), every)),
            sign_ins: Mutex::new(HashMap::new()),
        })
    }

    /// Counts a sign-in attempt from `client`; `false` beyond the limit.
    fn count_sign_in(&self, client: Option<IpAddr>, now: Instant) -> bool {
        let Some(ip) = client else { return true };
        let mut map = self.sign_ins.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > MAX_SESSIONS {
            map.retain(|_, l| l.iter().any(|t| now.duration_since(*t) < SIGN_IN_WINDOW));
        }
        let list = map.entry(ip).or_default();
        list.retain(|t| now.duration_since(*t) < SIGN_IN_WINDOW);
        if list.len() >= SIGN_INS_PER_CLIENT {
            return false;
        }
        list.push(now);
        true
    }

    fn cookie(&self, id: &str) -> HeaderValue {
        web::session_cookie(COOKIE, "/console", id, self.secure)
    }
}

/// The console's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(dashboard::page))
        .route("/console/", get(dashboard::page))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/assets/console.css", get(css))
        .merge(requests::routes())
        .merge(oversight::routes())
        .merge(disclosures::routes())
        .merge(breaches::routes())
}

/// A response that ends a handler early (a redirect, a refusal), boxed: it is the rare path.
pub(crate) type Early = Box<Response>;

/// The request as the console reads it, before knowing who signs in.
struct Visit {
    console: Arc<Console>,
    state: AppState,
    session: Option<(String, Session<Stage>)>,
    lang: Lang,
    asked_lang: Option<Lang>,
    client: Option<IpAddr>,
    path: String,
}

fn visit(state: &AppState, req: &Request) -> Result<Visit, Early> {
    let Some(console) = state.console.clone() else {
        return Err(Box::new(StatusCode::NOT_FOUND.into_response()));
    };
    let a = web::Arrival::of(req, &console.sessions, COOKIE);
    Ok(Visit {
        console,
        state: state.clone(),
        session: a.session,
        lang: a.lang,
        asked_lang: a.asked_lang,
        client: a.client,
        path: a.path,
    })
}

/// A signed-in key holder at the console: their vault (their key's organization), who they
/// are to its decision point, and what their pages need.
pub(crate) struct Desk {
    pub console: Arc<Console>,
    pub vault: Arc<Vault>,
    pub who: Principal,
    pub lang: Lang,
    pub csrf: String,
    pub path: String,
    pub zone: jiff::tz::TimeZone,
}

impl Desk {
    /// The Bahasa Indonesia or English of a text, in this page's language.
    pub fn t<'a>(&self, id: &'a str, en: &'a str) -> &'a str {
        self.lang.pick(id, en)
    }

    /// Now, as the vault's clock tells it.
    pub fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_microsecond(self.vault.clock().now_micros())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    /// A time in the organization's time zone.
    pub fn when(&self, ts: jiff::Timestamp) -> String {
        web::when_ts(ts, &self.zone)
    }

    /// A time the vault keeps (microseconds since the epoch) in the organization's time zone.
    pub fn when_micros(&self, micros: i64) -> String {
        jiff::Timestamp::from_microsecond(micros)
            .map(|ts| self.when(ts))
            .unwrap_or_default()
    }

    /// A page of the console: the frame (menu for this holder's role), `title` and `body`.
    pub fn page(&self, title: &str, body: Markup) -> Response {
        self.page_with(StatusCode::OK, title, body)
    }

    pub fn page_with(&self, status: StatusCode, title: &str, body: Markup) -> Response {
        web::html(status, self.layout(title, body))
    }

    /// A refusal or failure from the vault, as a page (its problem's status and detail; an
    /// internal error's detail goes to the log only).
    pub fn vault_error(&self, e: Error) -> Response {
        if let Error::Internal(detail) = &e {
            tracing::error!(error = %detail, "console page failed");
        }
        let problem = crate::problem::Problem::from(e);
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        self.message(status, &problem.detail)
    }

    /// A short message as a page (an error, or what a form did).
    pub fn message(&self, status: StatusCode, message: &str) -> Response {
        let title = self.t("Tidak dapat dilanjutkan", "Could not continue");
        self.page_with(
            status,
            title,
            html! {
                p class="error" role="alert" { (message) }
                p { a href="/console" { (self.t("Kembali ke dasbor", "Back to the dashboard")) } }
            },
        )
    }

    fn layout(&self, title: &str, body: Markup) -> Markup {
        let organization = self.vault.policy().policy.controller.name.clone();
        let menu: Vec<(&str, &str)> = MENU
            .iter()
            .filter(|m| m.shown(self))
            .map(|m| (m.href, self.t(m.id, m.en)))
            .collect();
        let current = MENU
            .iter()
            .filter(|m| self.path == m.href || self.path.starts_with(&format!("{}/", m.href)))
            .map(|m| m.href)
            .max_by_key(|h| h.len());
        let holder = self.who.holder().unwrap_or_else(|| self.who.key_id());
        frame(
            self.lang,
            &self.path,
            &organization,
            title,
            Some((&self.csrf, holder, self.who.role())),
            html! {
                nav aria-label=(self.t("Menu konsol", "Console menu")) {
                    ul {
                        @for (href, label) in &menu {
                            li { a href=(href) aria-current=[(current == Some(*href)).then_some("page")] { (label) } }
                        }
                    }
                }
            },
            body,
        )
    }
}

/// One entry of the console's menu: shown when the holder's role may attempt its action.
struct MenuItem {
    href: &'static str,
    id: &'static str,
    en: &'static str,
    action: Action,
}

impl MenuItem {
    fn shown(&self, desk: &Desk) -> bool {
        if self.action == Action::OutboxRead && desk.console.outbox.is_none() {
            return false;
        }
        desk.vault.may(&desk.who, self.action)
    }
}

const MENU: &[MenuItem] = &[
    MenuItem {
        href: "/console",
        id: "Dasbor",
        en: "Dashboard",
        action: Action::RequestList,
    },
    MenuItem {
        href: "/console/requests",
        id: "Permintaan",
        en: "Requests",
        action: Action::RequestList,
    },
    MenuItem {
        href: "/console/disclosures",
        id: "Pengungkapan",
        en: "Disclosures",
        action: Action::DisclosureList,
    },
    MenuItem {
        href: "/console/breaches",
        id: "Insiden",
        en: "Breaches",
        action: Action::BreachList,
    },
    MenuItem {
        href: "/console/audit",
        id: "Audit",
        en: "Audit",
        action: Action::AuditVerify,
    },
    MenuItem {
        href: "/console/ropa",
        id: "Catatan pemrosesan",
        en: "Record of processing",
        action: Action::Ropa,
    },
    MenuItem {
        href: "/console/retention",
        id: "Retensi",
        en: "Retention",
        action: Action::RetentionSweep,
    },
    MenuItem {
        href: "/console/outbox",
        id: "Kotak keluar",
        en: "Outbox",
        action: Action::OutboxRead,
    },
];

/// The frame of every console page; `signed_in` carries the form token, the holder's name and
/// role (for the sign-out form and the header).
fn frame(
    lang: Lang,
    path: &str,
    organization: &str,
    title: &str,
    signed_in: Option<(&str, &str, &str)>,
    menu: Markup,
    body: Markup,
) -> Markup {
    let other = lang.other();
    let console = lang.pick("Konsol pelindungan data", "Data protection console");
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (console) " · " (organization) }
                link rel="stylesheet" href="/console/assets/console.css";
                link rel="icon" href="/portal/assets/icon.svg" type="image/svg+xml";
            }
            body class="console" {
                a class="skip" href="#main" { (lang.pick("Langsung ke isi", "Skip to content")) }
                header {
                    span class="org" { (organization) " · " (console) }
                    (menu)
                    span {
                        a href={ (path) "?lang=" (other.code()) } lang=(other.code()) hreflang=(other.code()) {
                            (lang.pick("English", "Bahasa Indonesia"))
                        }
                        @if let Some((csrf, holder, role)) = signed_in {
                            " · " span class="holder" { (holder) " (" (role) ")" } " · "
                            form class="inline" method="post" action="/console/sign-out" {
                                input type="hidden" name="csrf" value=(csrf);
                                button class="link" type="submit" { (lang.pick("Keluar", "Sign out")) }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The signed-in holder of this request, or a redirect to the sign-in page (no session, an
/// expired one, or a key that no longer authenticates: then the session ends too).
pub(crate) fn desk(
    state: &AppState,
    req: &Request,
) -> impl std::future::Future<Output = Result<Desk, Early>> + Send + 'static {
    // The request is read before the future starts, so the future does not borrow it.
    let v = visit(state, req);
    async move { desk_of(v?).await }
}

async fn desk_of(v: Visit) -> Result<Desk, Early> {
    let to_sign_in = || Box::new(Redirect::to("/console/sign-in").into_response());
    let Some((id, session)) = v.session.clone() else {
        return Err(to_sign_in());
    };
    let Stage::SignedIn(token) = &session.stage else {
        return Err(to_sign_in());
    };
    let (vault, who) = match v.state.deployment.authenticate(token).await {
        Ok(found) => found,
        Err(Error::Unauthenticated) => {
            v.console.sessions.close(&id);
            let mut r = Redirect::to("/console/sign-in").into_response();
            r.headers_mut()
                .insert(header::SET_COOKIE, v.console.cookie(""));
            return Err(Box::new(r));
        }
        Err(e) => return Err(Box::new(refusal_page(&v, e))),
    };
    let zone = vault.policy().policy.settings.zone();
    Ok(Desk {
        console: v.console,
        vault,
        who,
        lang: v.lang,
        csrf: session.csrf,
        path: v.path,
        zone,
    })
}

/// A form posted to the console by a signed-in holder, its synchronizer token checked: every
/// POST route that changes something starts here, so none can forget the check. Without the
/// session's token the answer is 403 and nothing is read or changed.
pub(crate) async fn posted(
    state: &AppState,
    req: Request,
) -> Result<(Desk, Vec<(String, String)>), Early> {
    let v = visit(state, &req)?;
    let body = axum::body::to_bytes(req.into_body(), crate::BODY_LIMIT)
        .await
        .map_err(|_| Box::new(StatusCode::PAYLOAD_TOO_LARGE.into_response()))?;
    let fields = web::form(&body);
    let token_ok = v
        .session
        .as_ref()
        .is_some_and(|(_, s)| web::csrf_matches(&s.csrf, &fields));
    if !token_ok {
        return Err(Box::new(refuse_csrf(&v)));
    }
    Ok((desk_of(v).await?, fields))
}

/// A failure before anyone is signed in (a suspended organization, a store that fails), as a
/// page with its problem's status and detail (an internal error's detail goes to the log).
fn refusal_page(v: &Visit, e: Error) -> Response {
    if let Error::Internal(detail) = &e {
        tracing::error!(error = %detail, "console sign-in failed");
    }
    let problem = crate::problem::Problem::from(e);
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let lang = v.lang;
    web::html(
        status,
        frame(
            lang,
            &v.path,
            "Amanah",
            lang.pick("Tidak dapat dilanjutkan", "Could not continue"),
            None,
            html! {},
            html! {
                p class="error" role="alert" { (problem.detail) }
                p { a href="/console/sign-in" { (lang.pick("Ke halaman masuk", "To the sign-in page")) } }
            },
        ),
    )
}

fn refuse_csrf(v: &Visit) -> Response {
    let lang = v.lang;
    web::html(
        StatusCode::FORBIDDEN,
        frame(
            lang,
            &v.path,
            "Amanah",
            lang.pick("Formulir ditolak", "Form refused"),
            None,
            html! {},
            html! {
                p class="error" role="alert" {
                    (lang.pick(
                        "Formulir ini kedaluwarsa atau tidak berasal dari konsol. Muat ulang halaman dan coba lagi.",
                        "This form has expired or did not come from the console. Reload the page and try again."))
                }
                p { a href="/console" { (lang.pick("Ke konsol", "To the console")) } }
            },
        ),
    )
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        concat!(
            include_str!("../portal/portal.css"),
            include_str!("console.css")
        ),
    )
        .into_response()
}

// ------------------------------------------------------------------------------ sign-in

fn sign_in_form(v: &Visit, csrf: &str, status: StatusCode, error: Option<&str>) -> Response {
    let lang = v.lang;
    let organization = v.state.vault().policy().policy.controller.name.clone();
    web::html(
        status,
        frame(
            lang,
            &v.path,
            &organization,
            lang.pick("Masuk ke konsol", "Sign in to the console"),
            None,
            html! {},
            html! {
                @if let Some(e) = error { p class="error" role="alert" { (e) } }
                p { (lang.pick(
                    "Untuk petugas pelindungan data dan pemegang kunci lain. Masuk dengan kunci API Anda sendiri: yang tampil mengikuti peran kunci itu, dan setiap tindakan dicatat atas nama kunci itu.",
                    "For the data protection officer and other key holders. Sign in with your own API key: what you see follows that key's role, and every action is recorded under that key.")) }
                section class="card" {
                    form method="post" action="/console/sign-in" {
                        input type="hidden" name="csrf" value=(csrf);
                        label for="key" { (lang.pick("Kunci API", "API key")) }
                        input type="password" id="key" name="key" required autocomplete="current-password"
                            maxlength="200" spellcheck="false";
                        button type="submit" { (lang.pick("Masuk", "Sign in")) }
                    }
                }
            },
        ),
    )
}

async fn sign_in_page(State(state): State<AppState>, req: Request) -> Response {
    let v = match visit(&state, &req) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    if matches!(&v.session, Some((_, s)) if matches!(s.stage, Stage::SignedIn(_))) {
        return Redirect::to("/console").into_response();
    }
    if let Some((_, s)) = &v.session {
        return sign_in_form(&v, &s.csrf, StatusCode::OK, None);
    }
    let opened =
        v.console
            .sessions
            .open(Tier::Visitor, Stage::Visitor, v.asked_lang, Instant::now());
    let Ok((id, s)) = opened else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut r = sign_in_form(&v, &s.csrf, StatusCode::OK, None);
    r.headers_mut()
        .insert(header::SET_COOKIE, v.console.cookie(&id));
    r
}

async fn sign_in(State(state): State<AppState>, req: Request) -> Response {
    let v = match visit(&state, &req) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let body = match axum::body::to_bytes(req.into_body(), crate::BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let fields = web::form(&body);
    // The sign-in form is bound to the visitor session that drew it (no sign-in from a form
    // on another site).
    let Some((old_id, session)) = v.session.clone() else {
        return refuse_csrf(&v);
    };
    if !web::csrf_matches(&session.csrf, &fields) {
        return refuse_csrf(&v);
    }
    let lang = v.lang;
    if !v.console.count_sign_in(v.client, Instant::now()) {
        return sign_in_form(
            &v,
            &session.csrf,
            StatusCode::TOO_MANY_REQUESTS,
            Some(lang.pick(
                "Terlalu banyak percobaan masuk. Coba lagi dalam 15 menit.",
                "Too many sign-in attempts. Try again in 15 minutes.",
            )),
        );
    }
    let key = Zeroizing::new(web::field(&fields, "key").unwrap_or("").trim().to_owned());
    let (vault, who) = match state.deployment.authenticate(&key).await {
        Ok(found) => found,
        Err(Error::Unauthenticated) => {
            return sign_in_form(
                &v,
                &session.csrf,
                StatusCode::UNAUTHORIZED,
                Some(lang.pick(
                    "Kunci ini tidak dikenal atau sudah dicabut.",
                    "This key is unknown or has been revoked.",
                )),
            )
        }
        Err(e) => return refusal_page(&v, e),
    };
    if let Err(e) = vault.record_console_sign_in(&who).await {
        return refusal_page(&v, e);
    }
    // A new session under a new id: whatever id the browser had before is dropped.
    v.console.sessions.close(&old_id);
    let opened = v.console.sessions.open(
        Tier::SignedIn,
        Stage::SignedIn(Arc::new(key)),
        session.lang.or(Some(lang)),
        Instant::now(),
    );
    let Ok((new_id, _)) = opened else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut r = Redirect::to("/console").into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, v.console.cookie(&new_id));
    r
}

async fn sign_out(State(state): State<AppState>, req: Request) -> Response {
    let v = match visit(&state, &req) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    // An expired session has nothing left to end: back to the start, not a refusal.
    let Some((id, session)) = v.session.clone() else {
        return Redirect::to("/console/sign-in").into_response();
    };
    let body = match axum::body::to_bytes(req.into_body(), crate::BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    if !web::csrf_matches(&session.csrf, &web::form(&body)) {
        return refuse_csrf(&v);
    }
    v.console.sessions.close(&id);
    let mut r = Redirect::to("/console/sign-in").into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, v.console.cookie(""));
    r
}

/// The first characters of an id, enough to tell records apart on a page.
pub(crate) fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// The page of the record `id` in `section` (`requests`, `disclosures`, `breaches`); the id
/// percent-encoded (ids are UUIDs, but a path is never built from raw text).
pub(crate) fn path_of(section: &str, id: &str) -> String {
    let segment: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("/console/{section}/{segment}")
}

/// The fields of a form as a hidden token input, for forms drawn by the pages.
pub(crate) fn token(desk: &Desk) -> Markup {
    html! { input type="hidden" name="csrf" value=(desk.csrf); }
}
