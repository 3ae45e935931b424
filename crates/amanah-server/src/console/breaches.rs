//! Breaches at the console: the register with the UU PDP countdown (the agency and the people
//! affected are told within 3 × 24 hours of detection, Art. 46), counted in hours, those past
//! it in red; a breach's page with its facts, the notices to download in Bahasa Indonesia and
//! in English (as the vault writes them, one per affected person and one for the agency), and
//! the notices marked sent; and a form to record a new breach.
//!
//! The notices name each person and where to send their notice: the vault decrypts these for
//! the notice only and audits one entry per person, so they are a file to download, never shown
//! on a page.

use amanah_core::authz::Action;
use amanah_core::Error;
use amanah_vault::{act, BreachInput, BreachView, NoticeView, Target};
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};

use super::requests::hours_left;
use super::{desk, path_of, posted, short, token, Desk};
use crate::web::{field, Lang};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/breaches", get(register).post(record))
        .route("/console/breaches/{id}", get(page))
        .route("/console/breaches/{id}/sent", post(sent))
        .route("/console/breaches/{id}/notices-id.txt", get(notices_id))
        .route("/console/breaches/{id}/notices-en.txt", get(notices_en))
}

/// Most breaches the register shows.
const LISTED: usize = 500;
/// Subjects' notices one page of the vault holds (its largest page).
const NOTICE_PAGE: usize = 1_000;
/// Subjects' notices one downloaded file holds; a larger breach continues in another file.
const NOTICES_PER_FILE: usize = 10_000;

/// The countdown to the notification deadline, or when the notices were sent.
fn countdown(desk: &Desk, b: &BreachView) -> Markup {
    let r = &b.record;
    match r.notified_at_micros {
        Some(at) => html! {
            span class="sent" { (desk.t("Diberitahukan ", "Notified ")) (desk.when_micros(at)) }
        },
        None => {
            let (left, late) = hours_left(desk, r.notify_by_micros, true);
            html! { strong class=[late.then_some("overdue")] { (left) } }
        }
    }
}

fn affected(desk: &Desk, b: &BreachView) -> String {
    if b.record.all_subjects {
        desk.t("semua subjek", "every subject").to_owned()
    } else {
        format!(
            "{} {}",
            b.record.subject_ids.len(),
            desk.t("subjek", "subjects")
        )
    }
}

// ------------------------------------------------------------------------------ the register

fn table(desk: &Desk, rows: &[&BreachView]) -> Markup {
    html! {
        table class="stack" {
            thead { tr {
                th { (desk.t("Terdeteksi", "Detected")) }
                th { (desk.t("Batas pemberitahuan", "Notify by")) }
                th { (desk.t("Sisa waktu", "Time left")) }
                th { (desk.t("Data terungkap", "Data exposed")) }
                th { (desk.t("Terdampak", "Affected")) }
            } }
            tbody {
                @for b in rows {
                    tr class=[b.overdue.then_some("late")] {
                        td data-label=(desk.t("Terdeteksi", "Detected")) {
                            a href=(path_of("breaches", &b.record.id)) { (desk.when_micros(b.record.detected_at_micros)) }
                        }
                        td data-label=(desk.t("Batas pemberitahuan", "Notify by")) { (desk.when_micros(b.record.notify_by_micros)) }
                        td data-label=(desk.t("Sisa waktu", "Time left")) { (countdown(desk, b)) }
                        td data-label=(desk.t("Data terungkap", "Data exposed")) { (b.record.categories.join(", ")) }
                        td data-label=(desk.t("Terdampak", "Affected")) { (affected(desk, b)) }
                    }
                }
            }
        }
    }
}

/// The form that records a breach; `detected` is the field's value in the organization's
/// time zone (`YYYY-MM-DDTHH:MM`).
fn record_form(desk: &Desk, detected: &str) -> Markup {
    let policy = desk.vault.policy();
    let categories: Vec<&String> = policy.policy.categories.keys().collect();
    html! {
        details class="card" {
            summary { (desk.t("Catat insiden baru", "Record a new breach")) }
            form method="post" action="/console/breaches" {
                (token(desk))
                label for="detected_at" {
                    (desk.t("Terdeteksi pada", "Detected at")) " (" (desk.zone.iana_name().unwrap_or("UTC")) ")"
                }
                input type="datetime-local" id="detected_at" name="detected_at" required value=(detected);
                label for="description" { (desk.t("Apa yang terjadi", "What happened")) }
                textarea id="description" name="description" required maxlength="2000" rows="3" {}
                fieldset {
                    legend { (desk.t("Data yang terungkap", "Data exposed")) }
                    div class="choices" {
                        @for c in &categories {
                            label class="choice" {
                                input type="checkbox" name="categories" value=(c);
                                " " (c)
                            }
                        }
                    }
                }
                fieldset {
                    legend { (desk.t("Subjek terdampak", "People affected")) }
                    label class="choice" {
                        input type="checkbox" name="all_subjects" value="yes";
                        " " (desk.t("Semua subjek", "Every subject"))
                    }
                    label for="subject_ids" { (desk.t("Atau id subjek, satu per baris", "Or subject ids, one a line")) }
                    textarea id="subject_ids" name="subject_ids" rows="3" spellcheck="false" {}
                }
                label for="cause" { (desk.t("Penyebab", "Cause")) }
                textarea id="cause" name="cause" required maxlength="2000" rows="2" {}
                label for="measures" { (desk.t("Upaya penanganan dan pemulihan", "Handling and recovery")) }
                textarea id="measures" name="measures" required maxlength="2000" rows="2" {}
                p class="hint" { (desk.t(
                    "Tulis keterangan organisasi saja: jangan masukkan data pribadi siapa pun.",
                    "Write organizational facts only: never a person's data.")) }
                button type="submit" { (desk.t("Catat insiden", "Record the breach")) }
            }
        }
    }
}

async fn register(State(state): State<AppState>, req: Request) -> Response {
    let desk = match desk(&state, &req).await {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let found = match desk
        .vault
        .authorize::<act::BreachList>(&desk.who, Target::none())
        .await
    {
        Ok(p) => desk.vault.list_breaches(&p, false, None, LISTED).await,
        Err(e) => Err(e),
    };
    let found = match found {
        Ok(f) => f,
        Err(e) => return desk.vault_error(e),
    };
    // Those still to notify, the nearest deadline first; then the notified, newest first.
    let (mut open, notified): (Vec<&BreachView>, Vec<&BreachView>) = found
        .iter()
        .partition(|b| b.record.notified_at_micros.is_none());
    open.sort_by_key(|b| b.record.notify_by_micros);
    let overdue = open.iter().filter(|b| b.overdue).count();
    let now = desk
        .now()
        .to_zoned(desk.zone.clone())
        .strftime("%Y-%m-%dT%H:%M")
        .to_string();
    desk.page(
        desk.t("Insiden kegagalan pelindungan data", "Personal data breaches"),
        html! {
            p {
                (desk.t(
                    "UU PDP Pasal 46: subjek data dan Lembaga PDP diberi tahu paling lambat 3 × 24 jam sejak kegagalan pelindungan diketahui.",
                    "UU PDP Art. 46: the data subjects and the PDP agency are told within 3 × 24 hours of the breach becoming known."))
                " "
                @if overdue > 0 { strong class="overdue" { (overdue) " " (desk.t("lewat batas", "past the deadline")) } }
            }
            h2 { (desk.t("Belum diberitahukan", "To notify")) " (" (open.len()) ")" }
            @if open.is_empty() { p { (desk.t("Tidak ada.", "None.")) } } @else { (table(&desk, &open)) }
            h2 { (desk.t("Sudah diberitahukan", "Notified")) " (" (notified.len()) ")" }
            @if notified.is_empty() { p { (desk.t("Belum ada.", "None yet.")) } } @else { (table(&desk, &notified)) }
            @if desk.vault.may(&desk.who, Action::BreachRecord) { (record_form(&desk, &now)) }
        },
    )
}

/// The breach form's fields as the vault's input: the detection time read in the
/// organization's time zone, subject ids one a line (or separated by commas or spaces).
fn breach_input(desk: &Desk, fields: &[(String, String)]) -> Result<BreachInput, String> {
    let detected = field(fields, "detected_at").unwrap_or("").trim();
    let detected_at = detected
        .parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|t| t.to_zoned(desk.zone.clone()).ok())
        .map(|z| z.timestamp().to_string())
        .ok_or_else(|| {
            desk.t(
                "Isi waktu terdeteksi, misalnya 2026-03-01T14:30.",
                "Fill in when it was detected, e.g. 2026-03-01T14:30.",
            )
            .to_owned()
        })?;
    let all_subjects = field(fields, "all_subjects") == Some("yes");
    let ids: Vec<String> = field(fields, "subject_ids")
        .unwrap_or("")
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let subject_ids = match (all_subjects, ids.is_empty()) {
        (true, true) => None,
        (false, false) => Some(ids),
        _ => {
            return Err(desk
                .t(
                    "Pilih semua subjek, atau tulis id subjek yang terdampak (bukan keduanya).",
                    "Choose every subject, or write the ids of those affected (not both).",
                )
                .to_owned())
        }
    };
    let text = |name: &str| field(fields, name).unwrap_or("").trim().to_owned();
    Ok(BreachInput {
        detected_at,
        description: text("description"),
        categories: fields
            .iter()
            .filter(|(k, _)| k == "categories")
            .map(|(_, v)| v.clone())
            .collect(),
        subject_ids,
        all_subjects,
        cause: text("cause"),
        measures: text("measures"),
    })
}

async fn record(State(state): State<AppState>, req: Request) -> Response {
    let (desk, fields) = match posted(&state, req).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let permit = match desk
        .vault
        .authorize::<act::BreachRecord>(&desk.who, Target::none())
        .await
    {
        Ok(p) => p,
        Err(e) => return desk.vault_error(e),
    };
    let input = match breach_input(&desk, &fields) {
        Ok(i) => i,
        Err(message) => return desk.message(StatusCode::UNPROCESSABLE_ENTITY, &message),
    };
    match desk.vault.record_breach(&permit, &input).await {
        Ok(view) => Redirect::to(&format!(
            "{}?done=recorded",
            path_of("breaches", &view.record.id)
        ))
        .into_response(),
        Err(e) => desk.vault_error(e),
    }
}

// ------------------------------------------------------------------------------ one breach

async fn load(desk: &Desk, id: &str) -> Result<BreachView, Error> {
    let permit = desk
        .vault
        .authorize::<act::BreachRead>(&desk.who, Target::none())
        .await?;
    desk.vault.get_breach(&permit, id).await
}

async fn page(State(state): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    let desk = match desk(&state, &req).await {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let done = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("done=")))
        .map(str::to_owned);
    let b = match load(&desk, &id).await {
        Ok(b) => b,
        Err(e) => return desk.vault_error(e),
    };
    let r = &b.record;
    let notice = match done.as_deref() {
        Some("recorded") => Some(desk.t(
            "Insiden dicatat. Hitung mundur 72 jam berjalan sejak waktu terdeteksi.",
            "The breach is recorded. The 72-hour countdown runs from when it was detected.",
        )),
        Some("sent") => Some(desk.t(
            "Pemberitahuan ditandai terkirim dan dicatat di audit atas nama kunci Anda.",
            "The notices are marked sent, and recorded in the audit under your key.",
        )),
        _ => None,
    };
    let open = r.notified_at_micros.is_none();
    let base = path_of("breaches", &r.id);
    let title = format!("{} {}", desk.t("Insiden", "Breach"), short(&r.id));
    let body = html! {
        @if let Some(n) = notice { p class="notice" role="status" { (n) } }
        p { a href="/console/breaches" { "← " (desk.t("Semua insiden", "All breaches")) } }
        section class=(if b.overdue { "card countdown late" } else { "card countdown" }) aria-labelledby="deadline" {
            h2 id="deadline" { (desk.t("Batas pemberitahuan", "Notification deadline")) }
            p class="big" { (countdown(&desk, &b)) }
            p {
                (desk.t("Paling lambat ", "By ")) strong { (desk.when_micros(r.notify_by_micros)) }
                " · " (desk.t("3 × 24 jam sejak terdeteksi (UU PDP Pasal 46)", "3 × 24 hours from detection (UU PDP Art. 46)"))
            }
        }
        section class="card" aria-labelledby="facts" {
            h2 id="facts" { (desk.t("Fakta", "Facts")) }
            dl {
                dt { (desk.t("Terdeteksi", "Detected")) } dd { (desk.when_micros(r.detected_at_micros)) }
                dt { (desk.t("Dicatat", "Recorded")) }
                dd { (desk.when_micros(r.recorded_at_micros)) " · " code { (r.recorded_by) } }
                @if let (Some(at), Some(by)) = (r.notified_at_micros, &r.notified_by) {
                    dt { (desk.t("Diberitahukan", "Notified")) }
                    dd { (desk.when_micros(at)) " · " code { (by) } }
                }
                dt { (desk.t("Apa yang terjadi", "What happened")) } dd { (crate::web::shown_str(&r.description)) }
                dt { (desk.t("Penyebab", "Cause")) } dd { (crate::web::shown_str(&r.cause)) }
                dt { (desk.t("Penanganan dan pemulihan", "Handling and recovery")) } dd { (crate::web::shown_str(&r.measures)) }
                dt { (desk.t("Data terungkap", "Data exposed")) } dd { (r.categories.join(", ")) }
                dt { (desk.t("Terdampak", "Affected")) } dd { (affected(&desk, &b)) }
            }
            @if !r.subject_ids.is_empty() {
                details {
                    summary { (desk.t("Id subjek", "Subject ids")) " (" (r.subject_ids.len()) ")" }
                    ul class="ids" { @for s in &r.subject_ids { li { code { (s) } } } }
                }
            }
        }
        @if desk.vault.may(&desk.who, Action::BreachNotices) {
            section class="card" aria-labelledby="notices" {
                h2 id="notices" { (desk.t("Pemberitahuan", "Notices")) }
                p { (desk.t(
                    "Satu pemberitahuan untuk setiap subjek terdampak (dengan nama dan alamat kirimnya) dan satu untuk Lembaga PDP. Mengunduh berkas mendekripsi nama dan kontak itu khusus untuk pemberitahuan, dan setiap subjek dicatat di audit.",
                    "One notice for each person affected (with their name and where to send it) and one for the PDP agency. Downloading a file decrypts those names and contacts for the notices only, and each person is recorded in the audit.")) }
                ul class="downloads" {
                    li { a href={ (base) "/notices-id.txt" } download hreflang="id" { (desk.t("Unduh dalam Bahasa Indonesia", "Download in Bahasa Indonesia")) } }
                    li { a href={ (base) "/notices-en.txt" } download hreflang="en" { (desk.t("Unduh dalam bahasa Inggris", "Download in English")) } }
                }
                @if open && desk.vault.may(&desk.who, Action::BreachNotified) {
                    form method="post" action={ (base) "/sent" } {
                        (token(&desk))
                        button type="submit" { (desk.t("Tandai pemberitahuan terkirim", "Mark the notices sent")) }
                    }
                }
            }
        }
    };
    desk.page(&title, body)
}

async fn sent(State(state): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    let (desk, _) = match posted(&state, req).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let result = match desk
        .vault
        .authorize::<act::BreachNotified>(&desk.who, Target::none())
        .await
    {
        Ok(p) => desk.vault.mark_breach_notified(&p, &id).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Redirect::to(&format!("{}?done=sent", path_of("breaches", &id))).into_response(),
        Err(e) => desk.vault_error(e),
    }
}

// ------------------------------------------------------------------------------ the notices

async fn notices_id(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    notices(&state, &id, req, Lang::Id).await
}

async fn notices_en(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    notices(&state, &id, req, Lang::En).await
}

/// One notice as the file writes it.
fn write_notice(out: &mut String, lang: Lang, n: &NoticeView) {
    let text = match lang {
        Lang::Id => &n.notice.id,
        Lang::En => &n.notice.en,
    };
    out.push_str(&"=".repeat(72));
    out.push('\n');
    match &n.subject_id {
        Some(subject) => {
            out.push_str(lang.pick("Untuk subjek: ", "For subject: "));
            out.push_str(subject);
            out.push('\n');
            out.push_str(lang.pick("Kirim ke: ", "Send to: "));
            if n.send_to.is_empty() {
                out.push_str(lang.pick("(tidak ada kontak tersimpan)", "(no contact on record)"));
            } else {
                out.push_str(&n.send_to.join(", "));
            }
            out.push('\n');
        }
        None => {
            out.push_str(lang.pick(
                "Untuk: Lembaga Pelindungan Data Pribadi\n",
                "For: the Personal Data Protection agency\n",
            ));
        }
    }
    out.push_str(&"=".repeat(72));
    out.push_str("\n\n");
    out.push_str(&text.title);
    out.push_str("\n\n");
    out.push_str(&text.body);
    out.push_str("\n\n");
}

/// The breach's notices in one language as a file: the agency's first, then one per person
/// affected, a page of the vault at a time (each page audited per person); a breach larger
/// than one file ends with where the next file starts.
async fn notices(state: &AppState, id: &str, req: Request, lang: Lang) -> Response {
    let desk = match desk(state, &req).await {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let mut after: Option<String> = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "after")
            .map(|(_, v)| v.into_owned())
    });
    let first_file = after.is_none();
    let permit = match desk
        .vault
        .authorize::<act::BreachNotices>(&desk.who, Target::none())
        .await
    {
        Ok(p) => p,
        Err(e) => return desk.vault_error(e),
    };
    let mut found: Vec<NoticeView> = Vec::new();
    let mut people = 0usize;
    loop {
        let page = match desk
            .vault
            .breach_notices(&permit, id, after.as_deref(), Some(NOTICE_PAGE))
            .await
        {
            Ok(p) => p,
            Err(e) => return desk.vault_error(e),
        };
        people += page.items.iter().filter(|n| n.subject_id.is_some()).count();
        found.extend(page.items);
        after = page.next;
        if after.is_none() || people >= NOTICES_PER_FILE {
            break;
        }
    }
    // The agency's notice first: it counts everyone affected.
    found.sort_by_key(|n| n.subject_id.is_some());
    let mut out = String::new();
    out.push_str(lang.pick(
        "Pemberitahuan kegagalan pelindungan data pribadi ",
        "Notices of the personal data breach ",
    ));
    out.push_str(id);
    out.push('\n');
    out.push_str(lang.pick("Dibuat ", "Written "));
    out.push_str(&desk.when(desk.now()));
    out.push_str(" · ");
    out.push_str(&found.len().to_string());
    out.push_str(lang.pick(" pemberitahuan", " notices"));
    if !first_file {
        out.push_str(lang.pick(" (lanjutan)", " (continued)"));
    }
    out.push_str("\n\n");
    for n in &found {
        write_notice(&mut out, lang, n);
    }
    if let Some(next) = &after {
        let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
        out.push_str(lang.pick(
            "Pemberitahuan berikutnya ada di berkas lanjutan: ",
            "The next notices are in the following file: ",
        ));
        out.push_str(&format!(
            "{}/notices-{}.txt?after={next}\n",
            path_of("breaches", id),
            lang.code()
        ));
    }
    let file = format!(
        "breach-{}-notices-{}.txt",
        short(id).replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', ""),
        lang.code()
    );
    crate::web::attachment("text/plain; charset=utf-8", &file, out)
}
