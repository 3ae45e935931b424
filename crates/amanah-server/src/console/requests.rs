//! Data-subject requests at the console: the queue by due date counted in hours, requests
//! whose requester's identity is not yet verified kept apart, and one request's page, where
//! the officer reads the subject's record (values masked, revealed one at a time for a stated
//! reason), answers the request (export, rectification, erasure, restriction) and completes
//! or refuses it with a reason the law allows.
//!
//! A request filed in the privacy portal is verified: the person proved a one-time code sent
//! to an address the vault holds for them. One a key holder entered (taken by phone, e-mail or
//! at a desk) waits for the officer to verify who asked before work begins.

use std::collections::BTreeMap;

use amanah_core::authz::Action;
use amanah_core::rights::{RefusalReason, RequestStatus, RevealReason};
use amanah_core::Error;
use amanah_vault::{act, RequestView, Target};
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde_json::{Map, Value};

use super::{desk, path_of, posted, short, token, Desk};
use crate::web::{field, words};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/requests", get(queue))
        .route("/console/requests/{id}", get(request_page))
        .route("/console/requests/{id}/status", post(change_status))
        .route("/console/requests/{id}/reveal", post(reveal))
        .route("/console/requests/{id}/rectify", post(rectify))
        .route("/console/requests/{id}/erase", post(erase))
        .route("/console/requests/{id}/restrict", post(restrict))
        .route("/console/requests/{id}/export.json", get(export_json))
}

/// Whether the requester's identity is established: filed by the person themselves in the
/// portal, or moved on by an officer (who verifies before beginning work).
pub(super) fn identity_verified(r: &RequestView) -> bool {
    r.record.received_by.starts_with("subject:") || r.record.status != "received"
}

/// Hours until `due` (or past it), in words: counted in whole hours, never rounded to days.
pub(super) fn hours_left(desk: &Desk, due_micros: i64, open: bool) -> (String, bool) {
    let left = due_micros - desk.now().as_microsecond();
    if !open {
        return (String::new(), false);
    }
    if left >= 0 {
        let h = left / 3_600_000_000;
        (
            match desk.lang {
                crate::web::Lang::Id => format!("{h} jam lagi"),
                crate::web::Lang::En => format!("{h} h left"),
            },
            false,
        )
    } else {
        let h = (-left + 3_599_999_999) / 3_600_000_000;
        (
            match desk.lang {
                crate::web::Lang::Id => format!("lewat {h} jam"),
                crate::web::Lang::En => format!("{h} h overdue"),
            },
            true,
        )
    }
}

// ------------------------------------------------------------------------------ the queue

fn queue_table(desk: &Desk, rows: &[&RequestView]) -> Markup {
    html! {
        div class="scroll" {
            table class="stack" {
                thead { tr {
                    th { (desk.t("Jatuh tempo", "Due")) }
                    th { (desk.t("Sisa waktu", "Time left")) }
                    th { (desk.t("Jenis", "Kind")) }
                    th { (desk.t("Status", "Status")) }
                    th { (desk.t("Subjek", "Subject")) }
                    th { (desk.t("Diterima", "Received")) }
                } }
                tbody {
                    @for r in rows {
                        @let open = RequestStatus::parse(&r.record.status).is_some_and(RequestStatus::is_open);
                        @let (left, late) = hours_left(desk, r.record.due_at_micros, open);
                        tr class=[late.then_some("late")] {
                            td data-label=(desk.t("Jatuh tempo", "Due")) {
                                a href={ "/console/requests/" (r.record.id) } { (desk.when_micros(r.record.due_at_micros)) }
                            }
                            td data-label=(desk.t("Sisa waktu", "Time left")) class=[late.then_some("overdue")] { (left) }
                            td data-label=(desk.t("Jenis", "Kind")) { (words::request_kind(desk.lang, &r.record.kind)) }
                            td data-label=(desk.t("Status", "Status")) { (words::state(desk.lang, &r.record.status)) }
                            td data-label=(desk.t("Subjek", "Subject")) { code { (short(&r.record.subject_id)) } }
                            td data-label=(desk.t("Diterima", "Received")) { (desk.when_micros(r.record.received_at_micros)) }
                        }
                    }
                }
            }
        }
    }
}

async fn queue(State(state): State<AppState>, req: Request) -> Response {
    let desk = match desk(&state, &req).await {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let closed = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "view=closed"));
    let permit = match desk
        .vault
        .authorize::<act::RequestList>(&desk.who, Target::none())
        .await
    {
        Ok(p) => p,
        Err(e) => return desk.vault_error(e),
    };
    let status = if closed { "all" } else { "open" };
    let found = match desk
        .vault
        .list_requests(&permit, Some(status), false, None, None, 500)
        .await
    {
        Ok(f) => f,
        Err(e) => return desk.vault_error(e),
    };
    let title = desk.t("Permintaan subjek data", "Data subject requests");
    if closed {
        let rows: Vec<&RequestView> = found
            .iter()
            .filter(|r| !RequestStatus::parse(&r.record.status).is_some_and(RequestStatus::is_open))
            .collect();
        return desk.page(
            title,
            html! {
                p { a href="/console/requests" { (desk.t("Permintaan terbuka", "Open requests")) } }
                h2 { (desk.t("Selesai dan ditolak", "Completed and refused")) }
                @if rows.is_empty() { p { (desk.t("Belum ada.", "None yet.")) } } @else { (queue_table(&desk, &rows)) }
            },
        );
    }
    let (verified, unverified): (Vec<&RequestView>, Vec<&RequestView>) =
        found.iter().partition(|r| identity_verified(r));
    let overdue = found.iter().filter(|r| r.overdue).count();
    desk.page(
        title,
        html! {
            p {
                (desk.t("Diurutkan menurut jatuh tempo. UU PDP memberi 3 × 24 jam untuk sebagian besar permintaan.",
                        "Sorted by due date. UU PDP gives 3 × 24 hours for most requests."))
                " "
                @if overdue > 0 {
                    strong class="overdue" { (overdue) " " (desk.t("terlambat", "overdue")) }
                }
            }
            h2 { (desk.t("Siap dikerjakan", "Ready to work on")) " (" (verified.len()) ")" }
            @if verified.is_empty() { p { (desk.t("Tidak ada.", "None.")) } } @else { (queue_table(&desk, &verified)) }
            h2 { (desk.t("Menunggu verifikasi identitas", "Awaiting identity verification")) " (" (unverified.len()) ")" }
            p class="hint" { (desk.t(
                "Dicatat oleh petugas atas nama pemohon: pastikan dulu siapa yang meminta sebelum mulai.",
                "Entered by staff for the requester: establish who asked before work begins.")) }
            @if unverified.is_empty() { p { (desk.t("Tidak ada.", "None.")) } } @else { (queue_table(&desk, &unverified)) }
            p { a href="/console/requests?view=closed" { (desk.t("Permintaan yang sudah ditutup", "Closed requests")) } }
        },
    )
}

// ------------------------------------------------------------------------------ one request

/// Reads the request (audited as `request.read`).
async fn load(desk: &Desk, id: &str) -> Result<RequestView, Error> {
    let permit = desk
        .vault
        .authorize::<act::RequestRead>(&desk.who, Target::none())
        .await?;
    desk.vault.get_request(&permit, id).await
}

/// What a request page shows beside the request.
#[derive(Default)]
struct Shown {
    /// A value revealed on this page: its category and value.
    revealed: Option<(String, Value)>,
    notice: Option<String>,
}

async fn render(desk: &Desk, id: &str, shown: Shown) -> Response {
    match load(desk, id).await {
        Ok(view) => render_view(desk, view, shown).await,
        Err(e) => desk.vault_error(e),
    }
}

/// A request's page for a request already read.
async fn render_view(desk: &Desk, view: RequestView, shown: Shown) -> Response {
    let subject = view.record.subject_id.clone();
    // The subject's record, values masked (audited as an export with no fields); an erased
    // subject has none.
    let record = if desk.vault.may(&desk.who, Action::SubjectExport) {
        match desk
            .vault
            .authorize::<act::SubjectExport>(&desk.who, Target::subject(&subject))
            .await
        {
            Ok(p) => match desk.vault.export_subject_masked(&p).await {
                Ok(e) => Some(Ok(e)),
                Err(Error::Gone(_)) => Some(Err(())),
                Err(e) => return desk.vault_error(e),
            },
            Err(Error::Gone(_)) => Some(Err(())),
            Err(e) => return desk.vault_error(e),
        }
    } else {
        None
    };
    let title = format!(
        "{}: {}",
        desk.t("Permintaan", "Request"),
        words::request_kind(desk.lang, &view.record.kind)
    );
    let body = html! {
        @if let Some(n) = &shown.notice { p class="notice" role="status" { (n) } }
        p { a href="/console/requests" { "← " (desk.t("Antrean permintaan", "Request queue")) } }
        (summary(desk, &view))
        (actions(desk, &view, record.as_ref().and_then(|r| r.as_ref().ok())))
        @match &record {
            Some(Ok(export)) => (subject_record(desk, &view, export, shown.revealed.as_ref())),
            Some(Err(())) => section class="card" {
                h2 { (desk.t("Data subjek", "The subject's data")) }
                p class="erased" { (desk.t("Data dan kunci subjek ini sudah dihapus.", "This subject's data and key have been erased.")) }
            },
            None => (html! {}),
        }
    };
    desk.page(&title, body)
}

fn summary(desk: &Desk, view: &RequestView) -> Markup {
    let r = &view.record;
    let open = RequestStatus::parse(&r.status).is_some_and(RequestStatus::is_open);
    let (left, late) = hours_left(desk, r.due_at_micros, open);
    let by_portal = r.received_by.starts_with("subject:");
    let by_guardian = by_portal && r.received_by != format!("subject:{}", r.subject_id);
    let proposed = view
        .details
        .as_ref()
        .and_then(|d| d.get("proposed"))
        .and_then(Value::as_object);
    let text = view
        .details
        .as_ref()
        .and_then(|d| d.get("text"))
        .and_then(Value::as_str);
    html! {
        section class="card" {
            dl {
                dt { (desk.t("Status", "Status")) } dd { (words::state(desk.lang, &r.status)) }
                dt { (desk.t("Diterima", "Received")) } dd { (desk.when_micros(r.received_at_micros)) }
                dt { (desk.t("Jatuh tempo", "Due")) }
                dd {
                    (desk.when_micros(r.due_at_micros))
                    @if !left.is_empty() { " · " span class=[late.then_some("overdue")] { (left) } }
                }
                dt { (desk.t("Diajukan", "Filed")) }
                dd { @if by_guardian {
                    (desk.t("oleh orang tua atau wali subjek di portal privasi (masuk dengan kode sekali pakai) ",
                            "by the person's parent or guardian in the privacy portal (signed in with a one-time code) "))
                    code { (r.received_by) }
                } @else if by_portal {
                    (desk.t("oleh subjek sendiri di portal privasi (masuk dengan kode sekali pakai)",
                            "by the person in the privacy portal (signed in with a one-time code)"))
                } @else {
                    (desk.t("oleh pemegang kunci ", "by key holder ")) code { (r.received_by) }
                } }
                dt { (desk.t("Identitas", "Identity")) }
                dd { @if identity_verified(view) { (desk.t("Terverifikasi", "Verified")) }
                     @else { strong { (desk.t("Belum diverifikasi", "Not yet verified")) } } }
                dt { (desk.t("Subjek", "Subject")) } dd { code { (r.subject_id) } }
                @if let Some(t) = text { dt { (desk.t("Keterangan", "Details")) } dd { (crate::web::shown_str(t)) } }
                @if let Some(reason) = &r.refusal_reason {
                    dt { (desk.t("Alasan penolakan", "Refused because")) }
                    dd { (words::refusal_reason(desk.lang, reason))
                         @if let Some(t) = &view.refusal_text { br; (crate::web::shown_str(t)) } }
                }
            }
            @if let Some(p) = proposed {
                h2 { (desk.t("Perbaikan yang diajukan", "Proposed corrections")) }
                dl { @for (category, value) in p {
                    dt { (category) } dd { (scalar(value)) }
                } }
            }
        }
    }
}

fn scalar(v: &Value) -> String {
    crate::web::shown(v)
}

fn status_form(desk: &Desk, id: &str, to: &str, label: &str, secondary: bool) -> Markup {
    html! {
        form class="inline" method="post" action={ "/console/requests/" (id) "/status" } {
            (token(desk))
            input type="hidden" name="to" value=(to);
            button type="submit" class=[secondary.then_some("secondary")] { (label) }
        }
    }
}

fn actions(desk: &Desk, view: &RequestView, export: Option<&Value>) -> Markup {
    let r = &view.record;
    let Some(status) = RequestStatus::parse(&r.status) else {
        return html! {};
    };
    if !status.is_open() || !desk.vault.may(&desk.who, Action::RequestUpdate) {
        return html! {};
    }
    let id = r.id.as_str();
    let erased = export.is_none();
    html! {
        section class="card" {
            h2 { (desk.t("Tindakan", "Actions")) }
            @if status == RequestStatus::Received {
                @if identity_verified(view) {
                    p { (desk.t("Identitas pemohon sudah terbukti di portal.", "The requester proved their identity in the portal.")) }
                    (status_form(desk, id, "in_progress", desk.t("Mulai kerjakan", "Begin work"), false))
                } @else {
                    p { (desk.t("Pastikan siapa yang meminta (misalnya dengan menghubungi alamat yang tersimpan) sebelum mulai.",
                                "Establish who asked (e.g. by contacting the address on record) before beginning.")) }
                    (status_form(desk, id, "in_progress", desk.t("Identitas terverifikasi: mulai kerjakan", "Identity verified: begin work"), false))
                }
            } @else {
                (answer(desk, view, export, erased))
                p {
                    (status_form(desk, id, "completed", desk.t("Tandai selesai", "Mark completed"), false))
                }
            }
            details {
                summary { (desk.t("Tolak permintaan ini", "Refuse this request")) }
                form method="post" action={ "/console/requests/" (id) "/status" } {
                    (token(desk))
                    input type="hidden" name="to" value="refused";
                    label for="reason" { (desk.t("Dasar penolakan yang diizinkan hukum", "Ground the law allows")) }
                    select id="reason" name="reason" required {
                        @for reason in RefusalReason::ALL {
                            option value=(reason.as_str()) { (words::refusal_reason(desk.lang, reason.as_str())) }
                        }
                    }
                    label for="explanation" { (desk.t("Penjelasan untuk subjek", "Explanation for the person")) }
                    textarea id="explanation" name="explanation" required maxlength="2000" {}
                    button type="submit" class="danger" { (desk.t("Tolak", "Refuse")) }
                }
            }
        }
    }
}

/// What answering this kind of request takes, for a request in progress.
fn answer(desk: &Desk, view: &RequestView, export: Option<&Value>, erased: bool) -> Markup {
    let r = &view.record;
    let id = r.id.as_str();
    html! {
        @match r.kind.as_str() {
            "access" | "portability" if !erased => p {
                a href={ "/console/requests/" (id) "/export.json" } download {
                    (desk.t("Unduh ekspor data subjek (JSON)", "Download the subject's export (JSON)"))
                }
                " · " (desk.t("kirimkan kepada pemohon, lalu tandai selesai.", "send it to the requester, then mark it completed."))
            },
            "erasure" if !erased && desk.vault.may(&desk.who, Action::SubjectErase) => {
                p { (desk.t("Menghapus data dan kunci subjek (crypto-shredding) lalu menutup permintaan. Tidak dapat dibatalkan.",
                            "Erases the subject's data and key (crypto-shredding), then closes the request. This cannot be undone.")) }
                form method="post" action={ "/console/requests/" (id) "/erase" } {
                    (token(desk))
                    button type="submit" class="danger" { (desk.t("Hapus data dan selesaikan", "Erase and complete")) }
                }
            },
            "restriction" if !erased && desk.vault.may(&desk.who, Action::SubjectRestrict) => {
                form method="post" action={ "/console/requests/" (id) "/restrict" } {
                    (token(desk))
                    button type="submit" { (desk.t("Batasi pemrosesan", "Restrict processing")) }
                }
            },
            "rectification" if !erased => (rectify_form(desk, view, export)),
            _ => (html! {}),
        }
    }
}

/// The purposes under which this holder may rectify each category the subject's record
/// holds: the first of the subject's purposes that covers the category.
fn rectifiable(desk: &Desk, export: &Value) -> BTreeMap<String, String> {
    let policy = desk.vault.policy();
    let mut out = BTreeMap::new();
    for p in export["purposes"].as_array().into_iter().flatten() {
        let Some(name) = p["purpose"].as_str() else {
            continue;
        };
        let Some(purpose) = policy.policy.purpose(name) else {
            continue;
        };
        if !desk
            .vault
            .may_under(&desk.who, Action::SubjectRectify, name)
        {
            continue;
        }
        for c in &purpose.categories {
            out.entry(c.clone()).or_insert_with(|| name.to_owned());
        }
    }
    out
}

fn rectify_form(desk: &Desk, view: &RequestView, export: Option<&Value>) -> Markup {
    let Some(export) = export else {
        return html! {};
    };
    let proposed = view
        .details
        .as_ref()
        .and_then(|d| d.get("proposed"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let allowed = rectifiable(desk, export);
    let categories: Vec<&String> = allowed.keys().collect();
    if categories.is_empty() {
        return html! { p { (desk.t("Peran Anda tidak dapat memperbaiki data subjek ini.", "Your role cannot rectify this subject's data.")) } };
    }
    html! {
        form method="post" action={ "/console/requests/" (view.record.id) "/rectify" } {
            (token(desk))
            p { (desk.t("Isi hanya nilai yang diperbaiki; yang kosong tidak diubah. Nilai diperiksa menurut kebijakan.",
                        "Fill in only the values to correct; empty ones are left as they are. Values are checked against the policy.")) }
            @for c in categories {
                label for={ "fix-" (c) } { (c) }
                input type="text" id={ "fix-" (c) } name={ "fix." (c) } maxlength="2000"
                    value=[proposed.get(c.as_str()).map(scalar)];
            }
            button type="submit" { (desk.t("Simpan perbaikan", "Save the corrections")) }
        }
    }
}

fn subject_record(
    desk: &Desk,
    view: &RequestView,
    export: &Value,
    revealed: Option<&(String, Value)>,
) -> Markup {
    let may_reveal = desk.vault.may(&desk.who, Action::SubjectReveal);
    let fields = export["fields"].as_object().cloned().unwrap_or_default();
    html! {
        section class="card" {
            h2 { (desk.t("Data subjek", "The subject's data")) }
            p class="hint" { (desk.t(
                "Nilai disamarkan. Tampilkan satu per satu bila perlu; setiap tampilan dicatat di audit beserta alasannya.",
                "Values are masked. Reveal one at a time when needed; each reveal is recorded in the audit with its reason.")) }
            div class="scroll" {
                table class="stack" {
                    thead { tr { th { (desk.t("Kategori", "Category")) } th { (desk.t("Nilai", "Value")) } th {} } }
                    tbody {
                        @for category in fields.keys() {
                            tr {
                                td data-label=(desk.t("Kategori", "Category")) { (category) }
                                @match revealed.filter(|(c, _)| c == category) {
                                    Some((_, value)) => {
                                        td data-label=(desk.t("Nilai", "Value")) class="revealed" { (scalar(value)) }
                                        td {}
                                    },
                                    None => {
                                        td data-label=(desk.t("Nilai", "Value")) { span class="masked" aria-label=(desk.t("disamarkan", "masked")) { "••••••" } }
                                        td {
                                            @if may_reveal {
                                                form class="reveal" method="post" action={ "/console/requests/" (view.record.id) "/reveal" } {
                                                    (token(desk))
                                                    input type="hidden" name="category" value=(category);
                                                    label class="sr" for={ "why-" (category) } { (desk.t("Alasan", "Reason")) }
                                                    select id={ "why-" (category) } name="reason" {
                                                        @for reason in RevealReason::ALL {
                                                            option value=(reason.as_str()) { (words::reveal_reason(desk.lang, reason.as_str())) }
                                                        }
                                                    }
                                                    button type="submit" class="secondary" { (desk.t("Tampilkan", "Reveal")) }
                                                }
                                            }
                                        }
                                    },
                                }
                            }
                        }
                    }
                }
            }
            h2 { (desk.t("Tujuan dan dasar hukum", "Purposes and legal bases")) }
            ul {
                @for p in export["purposes"].as_array().into_iter().flatten() {
                    li {
                        strong { (p["purpose"].as_str().unwrap_or("")) } " · "
                        (words::basis(desk.lang, p["basis"].as_str().unwrap_or("")))
                        @if let Some(r) = p["retention"].as_str() { " · " (desk.t("retensi ", "retention ")) (r) }
                    }
                }
            }
            @let consents = export["consents"].as_array().map_or(0, Vec::len);
            @let requests = export["requests"].as_array().map_or(0, Vec::len);
            p { (consents) " " (desk.t("keputusan persetujuan", "consent decisions")) " · "
                (requests) " " (desk.t("permintaan", "requests")) }
        }
    }
}

async fn request_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    match desk(&state, &req).await {
        Ok(desk) => render(&desk, &id, Shown::default()).await,
        Err(r) => *r,
    }
}

/// The request, when it is in progress and of `kind`: the officer began work on it (after
/// verifying who asked, for one a key holder entered). Anything else is a page saying why,
/// before anything is changed.
async fn in_progress(desk: &Desk, id: &str, kind: &str) -> Result<RequestView, Response> {
    let view = load(desk, id).await.map_err(|e| desk.vault_error(e))?;
    if view.record.kind != kind {
        return Err(desk.message(
            StatusCode::CONFLICT,
            desk.t(
                "Tindakan ini tidak menjawab permintaan jenis ini.",
                "This action does not answer a request of this kind.",
            ),
        ));
    }
    if view.record.status != RequestStatus::InProgress.as_str() {
        return Err(desk.message(
            StatusCode::CONFLICT,
            desk.t(
                "Mulai kerjakan permintaan ini dulu (setelah identitas pemohon terverifikasi).",
                "Begin work on this request first (once the requester's identity is verified).",
            ),
        ));
    }
    Ok(view)
}

fn back_to(id: &str) -> Response {
    Redirect::to(&path_of("requests", id)).into_response()
}

async fn change_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (desk, fields) = match posted(&state, req).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let to = field(&fields, "to").unwrap_or("");
    let refusal = (to == "refused").then(|| {
        (
            field(&fields, "reason").unwrap_or(""),
            field(&fields, "explanation").unwrap_or(""),
        )
    });
    let result = match desk
        .vault
        .authorize::<act::RequestUpdate>(&desk.who, Target::none())
        .await
    {
        Ok(p) => desk.vault.transition_request(&p, &id, to, refusal).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => back_to(&id),
        Err(e) => desk.vault_error(e),
    }
}

async fn reveal(State(state): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    let (desk, fields) = match posted(&state, req).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let Some(reason) = field(&fields, "reason").and_then(RevealReason::parse) else {
        return desk.message(
            StatusCode::UNPROCESSABLE_ENTITY,
            desk.t(
                "Pilih alasan dari daftar untuk menampilkan nilai.",
                "Choose a reason from the list to reveal a value.",
            ),
        );
    };
    let category = field(&fields, "category").unwrap_or("").to_owned();
    let view = match load(&desk, &id).await {
        Ok(v) => v,
        Err(e) => return desk.vault_error(e),
    };
    let subject = view.record.subject_id.as_str();
    let value = match desk
        .vault
        .authorize::<act::SubjectReveal>(&desk.who, Target::subject(subject))
        .await
    {
        Ok(p) => {
            desk.vault
                .reveal_value(&p, &category, reason, Some(&view.record.id))
                .await
        }
        Err(e) => Err(e),
    };
    match value {
        Ok(value) => {
            render_view(
                &desk,
                view,
                Shown {
                    revealed: Some((category, value)),
                    notice: Some(
                        desk.t(
                            "Nilai ditampilkan dan dicatat di audit.",
                            "The value is shown and recorded in the audit.",
                        )
                        .to_owned(),
                    ),
                },
            )
            .await
        }
        Err(e) => desk.vault_error(e),
    }
}

async fn rectify(State(state): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    let (desk, fields) = match posted(&state, req).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let view = match in_progress(&desk, &id, "rectification").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let subject = view.record.subject_id.clone();
    let export = match desk
        .vault
        .authorize::<act::SubjectExport>(&desk.who, Target::subject(&subject))
        .await
    {
        Ok(p) => desk.vault.export_subject_masked(&p).await,
        Err(e) => Err(e),
    };
    let export = match export {
        Ok(e) => e,
        Err(e) => return desk.vault_error(e),
    };
    let allowed = rectifiable(&desk, &export);
    // The values to correct, grouped by the purpose each is rectified under.
    let mut by_purpose: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for (name, value) in &fields {
        let Some(category) = name.strip_prefix("fix.") else {
            continue;
        };
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let Some(purpose) = allowed.get(category) else {
            return desk.message(
                StatusCode::UNPROCESSABLE_ENTITY,
                desk.t(
                    "Kategori ini tidak dapat diperbaiki oleh peran Anda.",
                    "Your role cannot rectify this category.",
                ),
            );
        };
        by_purpose
            .entry(purpose.clone())
            .or_default()
            .insert(category.to_owned(), Value::String(value.to_owned()));
    }
    if by_purpose.is_empty() {
        return desk.message(
            StatusCode::UNPROCESSABLE_ENTITY,
            desk.t("Tidak ada nilai yang diisi.", "No value was filled in."),
        );
    }
    for (purpose, values) in &by_purpose {
        let result = match desk
            .vault
            .authorize::<act::SubjectRectify>(&desk.who, Target::subject_under(&subject, purpose))
            .await
        {
            Ok(p) => {
                desk.vault
                    .rectify_subject(&p, values, Some(&view.record.id))
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            return desk.vault_error(e);
        }
    }
    back_to(&id)
}

async fn erase(State(state): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    let (desk, _) = match posted(&state, req).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let view = match in_progress(&desk, &id, "erasure").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let subject = view.record.subject_id.as_str();
    let erased = match desk
        .vault
        .authorize::<act::SubjectErase>(&desk.who, Target::subject(subject))
        .await
    {
        Ok(p) => desk.vault.erase_subject(&p, Some(&view.record.id)).await,
        Err(e) => Err(e),
    };
    if let Err(e) = erased {
        return desk.vault_error(e);
    }
    let closed = match desk
        .vault
        .authorize::<act::RequestUpdate>(&desk.who, Target::none())
        .await
    {
        Ok(p) => {
            desk.vault
                .transition_request(&p, &view.record.id, "completed", None)
                .await
        }
        Err(e) => Err(e),
    };
    match closed {
        Ok(_) => back_to(&id),
        Err(e) => desk.vault_error(e),
    }
}

async fn restrict(State(state): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    let (desk, _) = match posted(&state, req).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let view = match in_progress(&desk, &id, "restriction").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let reason = format!(
        "restriction requested by the data subject (request {})",
        view.record.id
    );
    let result = match desk
        .vault
        .authorize::<act::SubjectRestrict>(&desk.who, Target::subject(&view.record.subject_id))
        .await
    {
        Ok(p) => desk.vault.restrict(&p, Some(&reason)).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => back_to(&id),
        Err(e) => desk.vault_error(e),
    }
}

async fn export_json(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let desk = match desk(&state, &req).await {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let view = match load(&desk, &id).await {
        Ok(v) => v,
        Err(e) => return desk.vault_error(e),
    };
    let export = match desk
        .vault
        .authorize::<act::SubjectExport>(&desk.who, Target::subject(&view.record.subject_id))
        .await
    {
        Ok(p) => desk.vault.export_subject(&p).await,
        Err(e) => Err(e),
    };
    match export {
        Ok(export) => crate::web::attachment(
            "application/json",
            &format!("export-{}.json", short(&view.record.subject_id)),
            serde_json::to_vec_pretty(&export).unwrap_or_default(),
        ),
        Err(e) => desk.vault_error(e),
    }
}
