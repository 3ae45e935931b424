//! The data subjects' self-service privacy portal (`/portal`): server-rendered pages, no
//! script. A person signs in with a one-time code sent to an address the vault holds for them
//! (blind-index lookup), then sees and acts on their own data only, as the data subject
//! themselves: every page calls the vault's ordinary operations under a permit the decision
//! point gave `Vault::data_subject` (see `amanah_core::authz::SELF_SERVICE`), so every view
//! and change is decided and audited like an API call, with the subject as the actor.
//!
//! Invariants: the answer to a sign-in is the same whether or not anyone holds the address
//! (the same work, the send on a task of its own); codes exist only as salted HMACs; a right
//! code opens a session under a new id (no fixation); every form carries the session's
//! synchronizer token and a form without it is refused with 403 before anything changes; the
//! session cookie is `HttpOnly; SameSite=Strict; Path=/portal` (and `Secure` when served over
//! TLS or behind an https origin). Sessions and codes live in memory (`state.rs` says why).

mod delivery;
mod pages;
pub mod state;
mod text;

use std::sync::Arc;
use std::time::Instant;

use amanah_core::Error;
use amanah_vault::{act, ConsentInput, Target, Vault};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::Markup;
use serde_json::{json, Map, Value};

pub use delivery::{Delivery, SmtpSecurity, SmtpSettings};
use delivery::{Outgoing, Sender};
use pages::{Frame, Nav};
use state::{CodeCheck, Lang, PortalState, Session, Stage};

use crate::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "amanah_portal";

/// How the portal is configured.
#[derive(Debug, Clone, Default)]
pub struct PortalConfig {
    pub delivery: Delivery,
    /// Cookies carry `Secure` (served over TLS, or behind an https origin).
    pub secure_cookies: bool,
}

/// The portal: its memory and the task that sends codes.
pub struct Portal {
    state: PortalState,
    sender: Sender,
    secure: bool,
}

impl Portal {
    /// Starts the portal (and its sending task: call it inside the runtime).
    pub fn start(config: PortalConfig) -> Result<Arc<Portal>, Error> {
        if !config.delivery.any() {
            tracing::warn!(
                "the privacy portal has no way to send codes (--smtp-host, --portal-webhook or --portal-outbox): nobody can sign in"
            );
        }
        Ok(Arc::new(Portal {
            state: PortalState::new().map_err(|e| Error::Internal(e.to_string()))?,
            sender: Sender::start(config.delivery),
            secure: config.secure_cookies,
        }))
    }
}

/// The portal's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/portal", get(home))
        .route("/portal/", get(home))
        .route("/portal/sign-in", post(sign_in))
        .route("/portal/code", get(code_page).post(code))
        .route("/portal/sign-out", post(sign_out))
        .route("/portal/act-for", post(act_for))
        .route("/portal/trail", get(trail))
        .route("/portal/consents", get(consents).post(consent))
        .route("/portal/requests", get(requests).post(file_request))
        .route("/portal/export.json", get(export_json))
        .route("/portal/export.csv", get(export_csv))
        .route("/portal/export.zip", get(export_zip))
        .route("/portal/assets/portal.css", get(css))
        .route("/portal/assets/icon.svg", get(icon))
}

/// The signed-in person as the pages act: `who` decides and is audited, `subject` is whose
/// data is shown (their own, or a child's they act for as guardian).
struct Me {
    who: amanah_vault::Principal,
    subject: String,
    own: String,
    csrf: String,
}

impl Me {
    /// A guardian acting for a child, not the person themselves.
    fn for_child(&self) -> bool {
        self.subject != self.own
    }
}

/// A response that ends a handler early (a redirect, a refusal), boxed: it is the rare path.
type Early = Box<Response>;

/// The request as the portal reads it.
struct Visit {
    portal: Arc<Portal>,
    vault: Arc<Vault>,
    /// The live session and its id, if the browser has one.
    session: Option<(String, Session)>,
    lang: Lang,
    /// A language the query asked for (`?lang=`), to remember.
    asked_lang: Option<Lang>,
    client: Option<std::net::IpAddr>,
    path: String,
}

/// The signed-in person's request: the visit and whose pages it shows, or a redirect to the
/// sign-in page. The request is read before the future starts, so the future does not borrow it.
fn person(
    state: &AppState,
    req: &Request,
) -> impl std::future::Future<Output = Result<(Visit, Me), Early>> + Send + 'static {
    let v = visit(state, req);
    async move {
        let v = v?;
        let me = v.me().await?;
        Ok((v, me))
    }
}

fn visit(state: &AppState, req: &Request) -> Result<Visit, Early> {
    let Some(portal) = state.portal.clone() else {
        return Err(Box::new(StatusCode::NOT_FOUND.into_response()));
    };
    let a = crate::web::Arrival::of(req, portal.state.sessions(), COOKIE);
    Ok(Visit {
        vault: state.vault().clone(),
        portal,
        session: a.session,
        lang: a.lang,
        asked_lang: a.asked_lang,
        client: a.client,
        path: a.path,
    })
}

impl Visit {
    fn organization(&self) -> String {
        self.vault.policy().policy.controller.name.clone()
    }

    fn frame<'a>(&'a self, organization: &'a str, csrf: Option<&'a str>, nav: Nav) -> Frame<'a> {
        Frame {
            lang: self.lang,
            organization,
            path: &self.path,
            csrf,
            nav,
            acting_for_child: false,
        }
    }

    fn set_cookie(&self, id: &str) -> HeaderValue {
        crate::web::session_cookie(COOKIE, "/portal", id, self.portal.secure)
    }

    fn clear_cookie(&self) -> HeaderValue {
        crate::web::session_cookie(COOKIE, "/portal", "", self.portal.secure)
    }

    /// This visitor's session, opening one (and its cookie) when there is none.
    fn visitor_session(&self) -> Result<(String, Session, Option<HeaderValue>), Early> {
        match &self.session {
            Some((id, s)) => Ok((id.clone(), s.clone(), None)),
            None => {
                let (id, s) = self
                    .portal
                    .state
                    .open(
                        Stage::Visitor { pending: None },
                        self.asked_lang,
                        Instant::now(),
                    )
                    .map_err(|_| Box::new(StatusCode::INTERNAL_SERVER_ERROR.into_response()))?;
                let cookie = self.set_cookie(&id);
                Ok((id, s, Some(cookie)))
            }
        }
    }

    /// The signed-in person, or a redirect to the sign-in page.
    fn signed_in(&self) -> Result<(String, String, String), Early> {
        match &self.session {
            Some((
                id,
                Session {
                    stage: Stage::SignedIn { subject_id, .. },
                    csrf,
                    ..
                },
            )) => Ok((id.clone(), subject_id.clone(), csrf.clone())),
            _ => Err(Box::new(Redirect::to("/portal").into_response())),
        }
    }

    /// Whose pages these are and as whom: the signed-in person themselves, or (after they chose
    /// to) a child in their care, checked again on every page (a child who comes of age, or a
    /// relation removed, drops the choice).
    async fn me(&self) -> Result<Me, Early> {
        let (session, own, csrf) = self.signed_in()?;
        let acting_for = match &self.session {
            Some((
                _,
                Session {
                    stage: Stage::SignedIn { acting_for, .. },
                    ..
                },
            )) => acting_for.clone(),
            _ => None,
        };
        if let Some(child) = acting_for {
            match self.vault.guardian_of(&own, &child).await {
                Ok(who) => {
                    return Ok(Me {
                        who,
                        subject: child,
                        own,
                        csrf,
                    })
                }
                Err(_) => self.portal.state.set_stage(
                    &session,
                    Stage::SignedIn {
                        subject_id: own.clone(),
                        acting_for: None,
                    },
                ),
            }
        }
        Ok(Me {
            who: self.vault.data_subject(&own),
            subject: own.clone(),
            own,
            csrf,
        })
    }

    fn page(&self, status: StatusCode, markup: Markup) -> Response {
        html(status, markup)
    }

    /// A signed-in person's page: the frame (navigation at `nav`, forms carrying `csrf`), the
    /// title `title` picks from the page's language, and the body `content` draws in it.
    fn signed_in_page(
        &self,
        me: &Me,
        nav: Nav,
        title: impl FnOnce(&text::Text) -> &'static str,
        content: impl FnOnce(&Frame<'_>) -> Markup,
    ) -> Response {
        let organization = self.organization();
        let mut frame = self.frame(&organization, Some(&me.csrf), nav);
        frame.acting_for_child = me.for_child();
        let body = content(&frame);
        let title = title(text::text(self.lang));
        self.page(StatusCode::OK, pages::layout(&frame, title, body))
    }

    fn error(&self, status: StatusCode, message: &str) -> Response {
        let t = text::text(self.lang);
        let organization = self.organization();
        let csrf = match &self.session {
            Some((_, s)) if matches!(s.stage, Stage::SignedIn { .. }) => Some(s.csrf.as_str()),
            _ => None,
        };
        let frame = self.frame(&organization, csrf, Nav::None);
        self.page(status, pages::message(&frame, t.error_title, message))
    }

    /// A vault error as a page: an erased or vanished subject ends the session.
    fn vault_error(&self, e: Error) -> Response {
        if matches!(e, Error::Gone(_) | Error::NotFound(_)) {
            if let Some((id, _)) = &self.session {
                self.portal.state.close(id);
            }
            let mut r = Redirect::to("/portal").into_response();
            r.headers_mut()
                .insert(header::SET_COOKIE, self.clear_cookie());
            return r;
        }
        let problem = crate::problem::Problem::from(e);
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // The vault's details are in English: the page leads with what happened in the
        // person's language.
        let lead = match status.as_u16() {
            403 => self
                .lang
                .pick("Tindakan ini tidak diizinkan.", "This is not allowed."),
            409 => self.lang.pick(
                "Ini tidak dapat dilakukan sekarang.",
                "This cannot be done now.",
            ),
            400 | 422 => self.lang.pick(
                "Isian Anda tidak dapat diterima.",
                "What you entered cannot be accepted.",
            ),
            _ => self
                .lang
                .pick("Terjadi kesalahan.", "Something went wrong."),
        };
        let detail = match self.lang {
            Lang::Id => format!("{lead} Rincian (dalam bahasa Inggris): {}", problem.detail),
            Lang::En => format!("{lead} {}", problem.detail),
        };
        self.error(status, &detail)
    }
}

use crate::web::html;

fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, c);
    }
    response
}

use crate::web::{field, form};

/// The synchronizer token check: the form's token must be the session's.
fn csrf_ok(session: &Session, fields: &[(String, String)]) -> bool {
    crate::web::csrf_matches(&session.csrf, fields)
}

/// A form posted to the portal, its synchronizer token checked.
struct Posted {
    v: Visit,
    fields: Vec<(String, String)>,
    /// The session's id and the session the token belongs to.
    id: String,
    session: Session,
}

/// Reads a posted form; every POST route of the portal starts here, so none can forget the
/// CSRF check: without a session, or without that session's token, the answer is 403 and
/// nothing is changed.
async fn posted(state: &AppState, req: Request) -> Result<Posted, Early> {
    let v = visit(state, &req)?;
    let body = axum::body::to_bytes(req.into_body(), crate::BODY_LIMIT)
        .await
        .map_err(|_| Box::new(StatusCode::PAYLOAD_TOO_LARGE.into_response()))?;
    let fields = form(&body);
    let Some((id, session)) = v.session.clone() else {
        return Err(Box::new(refuse_csrf(&v)));
    };
    if !csrf_ok(&session, &fields) {
        return Err(Box::new(refuse_csrf(&v)));
    }
    Ok(Posted {
        v,
        fields,
        id,
        session,
    })
}

fn refuse_csrf(v: &Visit) -> Response {
    let t = text::text(v.lang);
    v.error(StatusCode::FORBIDDEN, t.csrf)
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        pages::CSS,
    )
        .into_response()
}

async fn icon() -> Response {
    ([(header::CONTENT_TYPE, "image/svg+xml")], pages::ICON).into_response()
}

// ------------------------------------------------------------------------------ sign-in

async fn home(State(state): State<AppState>, req: Request) -> Response {
    let v = match visit(&state, &req) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    if v.signed_in().is_ok() {
        return my_data(v).await;
    }
    let (_, session, cookie) = match v.visitor_session() {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let organization = v.organization();
    let frame = v.frame(&organization, None, Nav::None);
    with_cookie(
        v.page(StatusCode::OK, pages::sign_in(&frame, &session.csrf, None)),
        cookie,
    )
}

async fn sign_in(State(state): State<AppState>, req: Request) -> Response {
    let Posted {
        v,
        fields,
        id,
        session,
    } = match posted(&state, req).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    if matches!(session.stage, Stage::SignedIn { .. }) {
        return Redirect::to("/portal").into_response();
    }
    let t = text::text(v.lang);
    let typed = field(&fields, "address").unwrap_or("").trim().to_owned();
    let kind = amanah_vault::AddressKind::of(&typed);
    let field_type = match kind {
        amanah_vault::AddressKind::Email => amanah_core::fields::FieldType::Email,
        amanah_vault::AddressKind::Phone => amanah_core::fields::FieldType::Phone,
    };
    let normalized = amanah_core::fields::normalize_str(field_type, &typed)
        .unwrap_or_else(|_| typed.to_lowercase());
    let key = v.portal.state.address_key(&normalized);
    let now = Instant::now();
    if v.portal.state.count_send(key, v.client, now).is_err() {
        let organization = v.organization();
        let frame = v.frame(&organization, None, Nav::None);
        return v.page(
            StatusCode::TOO_MANY_REQUESTS,
            pages::sign_in(&frame, &session.csrf, Some(t.limited)),
        );
    }
    // The same work whether anyone holds the address or not: one code and one pending entry
    // here; the lookup (and the send, when someone holds it) on a task of their own, so the
    // answer cannot depend on either.
    let (code, hash) = match amanah_crypto::otp::new_code() {
        Ok(c) => c,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let generation = v.portal.state.put_code(key, hash, now);
    v.portal.state.set_pending(&id, key, generation);
    let (portal, vault, lang) = (v.portal.clone(), v.vault.clone(), v.lang);
    tokio::spawn(async move {
        let target = match vault.sign_in_target(&typed).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "portal sign-in lookup failed");
                None
            }
        };
        let Some(target) = target else { return };
        if portal.state.bind(key, generation, target.subject_id) {
            portal.sender.send(Outgoing {
                email: target.kind == amanah_vault::AddressKind::Email,
                to: target.address,
                code,
                lang,
                organization: vault.policy().policy.controller.name.clone(),
            });
        }
    });
    Redirect::to("/portal/code").into_response()
}

async fn code_page(State(state): State<AppState>, req: Request) -> Response {
    let v = match visit(&state, &req) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match &v.session {
        Some((
            _,
            s @ Session {
                stage: Stage::Visitor { pending: Some(_) },
                ..
            },
        )) => {
            let organization = v.organization();
            let frame = v.frame(&organization, None, Nav::None);
            v.page(StatusCode::OK, pages::code(&frame, &s.csrf, None))
        }
        _ => Redirect::to("/portal").into_response(),
    }
}

async fn code(State(state): State<AppState>, req: Request) -> Response {
    let Posted {
        v,
        fields,
        id: old_id,
        session,
    } = match posted(&state, req).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let Stage::Visitor {
        pending: Some((key, generation)),
    } = session.stage
    else {
        return Redirect::to("/portal").into_response();
    };
    let t = text::text(v.lang);
    let typed: String = field(&fields, "code")
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let organization = v.organization();
    let frame = v.frame(&organization, None, Nav::None);
    match v
        .portal
        .state
        .check_code(key, generation, &typed, Instant::now())
    {
        CodeCheck::Valid(subject_id) => {
            // A new session under a new id: whatever id the browser had before is dropped.
            v.portal.state.close(&old_id);
            let opened = v.portal.state.open(
                Stage::SignedIn {
                    subject_id: subject_id.clone(),
                    acting_for: None,
                },
                session.lang.or(Some(v.lang)),
                Instant::now(),
            );
            let Ok((new_id, _)) = opened else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            let who = v.vault.data_subject(&subject_id);
            if let Err(e) = v.vault.record_sign_in(&who).await {
                v.portal.state.close(&new_id);
                return v.vault_error(e);
            }
            let mut r = Redirect::to("/portal").into_response();
            r.headers_mut()
                .insert(header::SET_COOKIE, v.set_cookie(&new_id));
            r
        }
        // A mistyped code is the form again with a message (200: a browser logs every 4xx
        // page as an error, and this is an ordinary turn of the flow).
        CodeCheck::Wrong(left) if left > 0 => {
            let message = format!("{} {left}", t.code_wrong);
            v.page(
                StatusCode::OK,
                pages::code(&frame, &session.csrf, Some(&message)),
            )
        }
        CodeCheck::Wrong(_) | CodeCheck::NoCode => v.page(
            StatusCode::OK,
            pages::sign_in(&frame, &session.csrf, Some(t.code_none)),
        ),
    }
}

async fn sign_out(State(state): State<AppState>, req: Request) -> Response {
    // An expired session has nothing left to end: back to the start, not a refusal.
    if visit(&state, &req).is_ok_and(|v| v.session.is_none()) {
        return Redirect::to("/portal").into_response();
    }
    let Posted { v, id, .. } = match posted(&state, req).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    v.portal.state.close(&id);
    let mut r = Redirect::to("/portal").into_response();
    r.headers_mut().insert(header::SET_COOKIE, v.clear_cookie());
    r
}

// ------------------------------------------------------------------------------ pages

/// The person's whole record, read by the access export under their own permit (audited).
async fn own_export(v: &Visit, me: &Me) -> Result<Value, Error> {
    let permit = v
        .vault
        .authorize::<act::SubjectExport>(&me.who, Target::subject(&me.subject))
        .await?;
    v.vault.export_subject(&permit).await
}

async fn my_data(v: Visit) -> Response {
    let me = match v.me().await {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let export = match own_export(&v, &me).await {
        Ok(e) => e,
        Err(e) => return v.vault_error(e),
    };
    // The children this person may act for (none while already acting for one).
    let wards = if me.for_child() {
        Vec::new()
    } else {
        match v.vault.wards(&me.own).await {
            Ok(w) => w,
            Err(e) => return v.vault_error(e),
        }
    };
    let active = v.vault.policy();
    let zone = active.policy.settings.zone();
    v.signed_in_page(
        &me,
        Nav::Data,
        |t| t.data_title,
        |frame| {
            maud::html! {
                (pages::wards(frame, &me.csrf, &wards))
                (pages::data(frame, &export, &active.policy, &zone))
            }
        },
    )
}

/// Chooses whose data the pages show: `subject=self`, or a child's id the vault agrees this
/// person may act for as parent or guardian.
async fn act_for(State(state): State<AppState>, req: Request) -> Response {
    let Posted { v, fields, id, .. } = match posted(&state, req).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let (_, own, _) = match v.signed_in() {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let chosen = field(&fields, "subject").unwrap_or("self");
    let acting_for = if chosen == "self" || chosen == own {
        None
    } else {
        match v.vault.guardian_of(&own, chosen).await {
            Ok(_) => Some(chosen.to_owned()),
            Err(e) => return v.vault_error(e),
        }
    };
    v.portal.state.set_stage(
        &id,
        Stage::SignedIn {
            subject_id: own,
            acting_for,
        },
    );
    Redirect::to("/portal").into_response()
}

async fn trail(State(state): State<AppState>, req: Request) -> Response {
    let (v, me) = match person(&state, &req).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let export = match own_export(&v, &me).await {
        Ok(e) => e,
        Err(e) => return v.vault_error(e),
    };
    let zone = v.vault.policy().policy.settings.zone();
    v.signed_in_page(
        &me,
        Nav::Trail,
        |t| t.trail_title,
        |frame| pages::trail(frame, &export, &zone),
    )
}

async fn consents_page(v: &Visit, notice: Option<&str>) -> Response {
    let me = match v.me().await {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let history = match v
        .vault
        .authorize::<act::ConsentRead>(&me.who, Target::subject(&me.subject))
        .await
    {
        Ok(permit) => v.vault.consent_history(&permit).await,
        Err(e) => Err(e),
    };
    let history = match history {
        Ok(h) => h,
        Err(e) => return v.vault_error(e),
    };
    let active = v.vault.policy();
    v.signed_in_page(
        &me,
        Nav::Consents,
        |t| t.consents_title,
        |frame| pages::consents(frame, &me.csrf, &history.current, &active.policy, notice),
    )
}

async fn consents(State(state): State<AppState>, req: Request) -> Response {
    match visit(&state, &req) {
        Ok(v) => consents_page(&v, None).await,
        Err(r) => *r,
    }
}

async fn consent(State(state): State<AppState>, req: Request) -> Response {
    let Posted { v, fields, .. } = match posted(&state, req).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let me = match v.me().await {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let purpose = field(&fields, "purpose").unwrap_or("").to_owned();
    let granted = field(&fields, "decision") == Some("grant");
    let channels: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "channel")
        .map(|(_, v)| v.clone())
        .collect();
    // A guardian acting for a child decides in their own name (the vault refuses otherwise).
    let (given_by, guardian, evidence) = if me.for_child() {
        (
            "guardian",
            Some(amanah_vault::GuardianInput::Subject(me.own.clone())),
            "given by the parent or guardian in the privacy portal, signed in with a one-time code",
        )
    } else {
        (
            "subject",
            None,
            "given by the data subject in the privacy portal, signed in with a one-time code",
        )
    };
    let input = ConsentInput {
        purpose: purpose.clone(),
        granted,
        channel: "privacy_portal".into(),
        evidence: Some(evidence.into()),
        given_by: given_by.into(),
        guardian,
        contact_channels: if granted { channels } else { Vec::new() },
    };
    let who = &me.who;
    let target = Target::subject_under(&me.subject, &purpose);
    let result = if granted {
        match v.vault.authorize::<act::ConsentGrant>(who, target).await {
            Ok(p) => v.vault.record_consent(&p, &input).await.map(|_| ()),
            Err(e) => Err(e),
        }
    } else {
        match v.vault.authorize::<act::ConsentWithdraw>(who, target).await {
            Ok(p) => v.vault.record_consent(&p, &input).await.map(|_| ()),
            Err(e) => Err(e),
        }
    };
    match result {
        Ok(()) => consents_page(&v, Some(text::text(v.lang).consent_saved)).await,
        Err(e) => v.vault_error(e),
    }
}

async fn requests_page(v: &Visit, notice: Option<&str>) -> Response {
    let me = match v.me().await {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let export = match own_export(v, &me).await {
        Ok(e) => e,
        Err(e) => return v.vault_error(e),
    };
    let zone = v.vault.policy().policy.settings.zone();
    let now = jiff::Timestamp::from_microsecond(v.vault.clock().now_micros())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    v.signed_in_page(
        &me,
        Nav::Requests,
        |t| t.requests_title,
        |frame| pages::requests(frame, &me.csrf, &export, &zone, now, notice),
    )
}

async fn requests(State(state): State<AppState>, req: Request) -> Response {
    match visit(&state, &req) {
        Ok(v) => requests_page(&v, None).await,
        Err(r) => *r,
    }
}

async fn file_request(State(state): State<AppState>, req: Request) -> Response {
    let Posted { v, fields, .. } = match posted(&state, req).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let me = match v.me().await {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let kind = field(&fields, "type").unwrap_or("");
    let mut details = Map::new();
    if let Some(text) = field(&fields, "details")
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        details.insert("text".into(), json!(text));
    }
    let proposed: Map<String, Value> = fields
        .iter()
        .filter_map(|(k, val)| {
            let category = k.strip_prefix("fix.")?;
            let val = val.trim();
            (!val.is_empty()).then(|| (category.to_owned(), json!(val)))
        })
        .collect();
    if kind == "rectification" && !proposed.is_empty() {
        details.insert("proposed".into(), Value::Object(proposed));
    }
    details.insert("filed_in".into(), json!("privacy_portal"));
    let details = Value::Object(details);
    let result = match v
        .vault
        .authorize::<act::RequestCreate>(&me.who, Target::subject(&me.subject))
        .await
    {
        Ok(p) => v.vault.create_request(&p, kind, Some(&details)).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => requests_page(&v, Some(text::text(v.lang).request_filed)).await,
        Err(e) => v.vault_error(e),
    }
}

// ------------------------------------------------------------------------------ downloads

async fn export_json(State(state): State<AppState>, req: Request) -> Response {
    let (v, me) = match person(&state, &req).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    match own_export(&v, &me).await {
        Ok(export) => crate::web::attachment(
            "application/json",
            "my-data.json",
            serde_json::to_vec_pretty(&export).unwrap_or_default(),
        ),
        Err(e) => v.vault_error(e),
    }
}

async fn export_csv(State(state): State<AppState>, req: Request) -> Response {
    let (v, me) = match person(&state, &req).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    match own_export(&v, &me).await {
        Ok(export) => match crate::rights::export_csv(&export) {
            Ok(csv) => crate::handlers::csv_attachment("my-data.csv", csv),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        Err(e) => v.vault_error(e),
    }
}

async fn export_zip(State(state): State<AppState>, req: Request) -> Response {
    let (v, me) = match person(&state, &req).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let permit = match v
        .vault
        .authorize::<act::SubjectExport>(&me.who, Target::subject(&me.subject))
        .await
    {
        Ok(p) => p,
        Err(e) => return v.vault_error(e),
    };
    let export = match v.vault.export_subject(&permit).await {
        Ok(e) => e,
        Err(e) => return v.vault_error(e),
    };
    match crate::documents::export_zip(v.vault.clone(), permit, &export) {
        Ok(mut r) => {
            r.headers_mut().insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"my-data.zip\""),
            );
            r
        }
        Err(p) => p.into_response(),
    }
}
