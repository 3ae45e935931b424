//! Disclosures at the console: those awaiting this holder's step first (the person in charge
//! approves a pending one, the account owner authorizes an approved one), then the others; and
//! one disclosure's page, showing exactly what a release would hand over (the recipient, its
//! country and whether the transfer leaves Indonesia and on what basis, the purpose, the
//! categories carried and withheld, how many subjects and which ids, never a value), the steps
//! taken so far, and the forms of the steps the holder's role may take.
//!
//! The forms are drawn from [`Vault::may`](amanah_vault::Vault::may), a hint: every step goes
//! through the decision point and the vault's workflow exactly as over the API, which refuses
//! what the role may not do, a step out of turn, and four eyes broken (the requester approving
//! their own disclosure, one person taking two steps); the refusal is shown as a page.

use amanah_core::authz::Action;
use amanah_core::disclosure::DisclosureStatus;
use amanah_core::Error;
use amanah_vault::{act, DisclosureView, Target};
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};

use super::{desk, path_of, posted, short, token, Desk};
use crate::web::{field, words, Lang};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/disclosures", get(list))
        .route("/console/disclosures/{id}", get(page))
        .route("/console/disclosures/{id}/approve", post(approve))
        .route("/console/disclosures/{id}/authorize", post(authorize))
        .route("/console/disclosures/{id}/reject", post(reject))
}

/// Most disclosures the list shows.
const LISTED: usize = 500;

// ------------------------------------------------------------------------------ words

fn status_words(lang: Lang, status: &str) -> &str {
    match (lang, status) {
        (Lang::Id, "pending_approval") => "Menunggu persetujuan",
        (Lang::Id, "approved") => "Disetujui, menunggu otorisasi",
        (Lang::Id, "authorized") => "Diotorisasi, siap dirilis",
        (Lang::Id, "released") => "Sudah dirilis",
        (Lang::Id, "rejected") => "Ditolak",
        (Lang::En, "pending_approval") => "Awaiting approval",
        (Lang::En, "approved") => "Approved, awaiting authorization",
        (Lang::En, "authorized") => "Authorized, ready to release",
        (Lang::En, "released") => "Released",
        (Lang::En, "rejected") => "Rejected",
        (_, other) => other,
    }
}

fn kind_words(lang: Lang, kind: &str) -> &str {
    match (lang, kind) {
        (Lang::Id, "processor") => "Prosesor data pribadi",
        (Lang::Id, "third_party") => "Pihak ketiga",
        (Lang::Id, "authority") => "Instansi berwenang",
        (Lang::En, "processor") => "Processor",
        (Lang::En, "third_party") => "Third party",
        (Lang::En, "authority") => "Authority",
        (_, other) => other,
    }
}

fn transfer_words(lang: Lang, basis: &str) -> &str {
    match (lang, basis) {
        (Lang::Id, "adequate") => {
            "negara tujuan memiliki tingkat pelindungan yang setara atau lebih tinggi (UU PDP Pasal 56 ayat 2)"
        }
        (Lang::Id, "safeguards") => {
            "pelindungan data pribadi yang memadai dan bersifat mengikat (UU PDP Pasal 56 ayat 3)"
        }
        (Lang::Id, "consent") => "persetujuan subjek data pribadi (UU PDP Pasal 56 ayat 4)",
        (Lang::En, "adequate") => {
            "the country's protection is equal or higher (UU PDP Art. 56(2))"
        }
        (Lang::En, "safeguards") => "adequate and binding safeguards (UU PDP Art. 56(3))",
        (Lang::En, "consent") => "the data subjects' consent (UU PDP Art. 56(4))",
        (_, other) => other,
    }
}

fn consent_words(lang: Lang, check: &str) -> &str {
    match (lang, check) {
        (Lang::Id, "not_required") => "Tidak diperlukan untuk tujuan dan penerima ini",
        (Lang::Id, "all_valid") => "Setiap subjek memiliki persetujuan yang sah",
        (Lang::Id, "subjects_excluded") => {
            "Sebagian subjek dikecualikan (tanpa persetujuan yang sah atau pemrosesannya dibatasi)"
        }
        (Lang::En, "not_required") => "Not needed for this purpose and recipient",
        (Lang::En, "all_valid") => "Every subject holds a valid consent",
        (Lang::En, "subjects_excluded") => {
            "Some subjects are left out (no valid consent, or processing restricted)"
        }
        (_, other) => other,
    }
}

// ------------------------------------------------------------------------------ helpers

/// The step this holder would take next on `view`, if the disclosure waits for a role like
/// theirs and they took no earlier step of it (the vault still decides).
fn awaiting_me(desk: &Desk, view: &DisclosureView) -> Option<&'static str> {
    let r = &view.record;
    let me = desk.who.key_id();
    let earlier = r.requested_by == me || r.approved_by.as_deref() == Some(me);
    match DisclosureStatus::parse(&r.status)? {
        DisclosureStatus::PendingApproval
            if !earlier && desk.vault.may(&desk.who, Action::DisclosureApprove) =>
        {
            Some("approve")
        }
        DisclosureStatus::Approved
            if !earlier && desk.vault.may(&desk.who, Action::DisclosureAuthorize) =>
        {
            Some("authorize")
        }
        _ => None,
    }
}

/// A key id as the page shows it: "you" when it is this holder's.
fn actor(desk: &Desk, key_id: &str) -> Markup {
    html! {
        code { (key_id) }
        @if key_id == desk.who.key_id() { " (" (desk.t("Anda", "you")) ")" }
    }
}

fn recipient_line(desk: &Desk, view: &DisclosureView) -> Markup {
    let abroad = view
        .country
        .as_deref()
        .is_some_and(|c| c != amanah_core::policy::HOME_COUNTRY);
    html! {
        (view.record.recipient)
        @if let Some(c) = &view.country {
            " · " (c)
            @if abroad { " · " strong { (desk.t("ke luar negeri", "abroad")) } }
        }
    }
}

// ------------------------------------------------------------------------------ the list

fn table(desk: &Desk, rows: &[&DisclosureView]) -> Markup {
    html! {
        table class="stack" {
            thead { tr {
                th { (desk.t("Diminta", "Requested")) }
                th { (desk.t("Penerima", "Recipient")) }
                th { (desk.t("Tujuan", "Purpose")) }
                th { (desk.t("Data", "Data")) }
                th { (desk.t("Status", "Status")) }
            } }
            tbody {
                @for v in rows {
                    tr {
                        td data-label=(desk.t("Diminta", "Requested")) {
                            a href=(path_of("disclosures", &v.record.id)) { (desk.when_micros(v.record.requested_at_micros)) }
                        }
                        td data-label=(desk.t("Penerima", "Recipient")) { (recipient_line(desk, v)) }
                        td data-label=(desk.t("Tujuan", "Purpose")) { (v.record.purpose) }
                        td data-label=(desk.t("Data", "Data")) {
                            (v.preview.subjects) " " (desk.t("subjek", "subjects")) " · "
                            (v.preview.categories.join(", "))
                        }
                        td data-label=(desk.t("Status", "Status")) { (status_words(desk.lang, &v.record.status)) }
                    }
                }
            }
        }
    }
}

async fn list(State(state): State<AppState>, req: Request) -> Response {
    let desk = match desk(&state, &req).await {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let found = match desk
        .vault
        .authorize::<act::DisclosureList>(&desk.who, Target::none())
        .await
    {
        Ok(p) => {
            desk.vault
                .list_disclosures(&p, None, None, None, LISTED)
                .await
        }
        Err(e) => Err(e),
    };
    let found = match found {
        Ok(f) => f,
        Err(e) => return desk.vault_error(e),
    };
    let (mine, others): (Vec<&DisclosureView>, Vec<&DisclosureView>) =
        found.iter().partition(|v| awaiting_me(&desk, v).is_some());
    let approves = desk.vault.may(&desk.who, Action::DisclosureApprove);
    let authorizes = desk.vault.may(&desk.who, Action::DisclosureAuthorize);
    desk.page(
        desk.t("Pengungkapan data", "Disclosures"),
        html! {
            p { (desk.t(
                "Pengungkapan kepada penerima melewati empat mata: diminta, disetujui oleh penanggung jawab, lalu diotorisasi oleh pemilik akun, tiga orang yang berbeda. Baru setelah itu paketnya dapat dirilis.",
                "A disclosure to a recipient goes through four eyes: requested, approved by the person in charge, then authorized by the account owner, three different people. Only then can its package be released.")) }
            @if approves || authorizes {
                h2 { (desk.t("Menunggu keputusan Anda", "Awaiting your decision")) " (" (mine.len()) ")" }
                @if mine.is_empty() { p { (desk.t("Tidak ada.", "None.")) } } @else { (table(&desk, &mine)) }
                h2 { (desk.t("Pengungkapan lainnya", "Other disclosures")) " (" (others.len()) ")" }
            }
            @if others.is_empty() { p { (desk.t("Belum ada.", "None yet.")) } } @else { (table(&desk, &others)) }
        },
    )
}

// ------------------------------------------------------------------------------ one disclosure

async fn load(desk: &Desk, id: &str) -> Result<DisclosureView, Error> {
    let permit = desk
        .vault
        .authorize::<act::DisclosureRead>(&desk.who, Target::none())
        .await?;
    desk.vault.get_disclosure(&permit, id).await
}

fn released(desk: &Desk, view: &DisclosureView) -> Markup {
    let r = &view.record;
    let p = &view.preview;
    let policy = desk.vault.policy();
    let basis = policy
        .policy
        .purpose(&r.purpose)
        .map(|p| p.basis.as_str())
        .unwrap_or("");
    let abroad = view
        .country
        .as_deref()
        .is_some_and(|c| c != amanah_core::policy::HOME_COUNTRY);
    html! {
        section class="card" aria-labelledby="released" {
            h2 id="released" { (desk.t("Yang akan diserahkan", "What a release hands over")) }
            dl {
                dt { (desk.t("Penerima", "Recipient")) }
                dd {
                    strong { (r.recipient) }
                    @if let Some(k) = &view.kind { " · " (kind_words(desk.lang, k)) }
                }
                dt { (desk.t("Negara", "Country")) }
                dd { @match &view.country {
                    Some(c) => { (c) },
                    None => { (desk.t("tidak lagi dinyatakan dalam kebijakan", "no longer declared by the policy")) },
                } }
                dt { (desk.t("Transfer ke luar negeri", "Transfer abroad")) }
                dd class=[abroad.then_some("abroad")] {
                    @if abroad {
                        strong { (desk.t("Ya", "Yes")) } " · "
                        @match &view.transfer_basis {
                            Some(b) => { (desk.t("dasar: ", "basis: ")) (transfer_words(desk.lang, b)) },
                            None => { (desk.t("tanpa dasar transfer", "no transfer basis")) },
                        }
                    } @else {
                        (desk.t("Tidak, penerima di Indonesia", "No, the recipient is in Indonesia"))
                    }
                }
                dt { (desk.t("Tujuan", "Purpose")) }
                dd { (r.purpose) @if !basis.is_empty() { " · " (words::basis(desk.lang, basis)) } }
                dt { (desk.t("Kategori yang diserahkan", "Categories released")) }
                dd { @if p.categories.is_empty() { (desk.t("tidak ada", "none")) } @else { (p.categories.join(", ")) } }
                @if !p.withheld_categories.is_empty() {
                    dt { (desk.t("Kategori yang ditahan", "Categories withheld")) }
                    dd { (p.withheld_categories.join(", ")) }
                }
                dt { (desk.t("Subjek", "Subjects")) }
                dd {
                    strong { (p.subjects) }
                    @if p.pseudonymized {
                        " · " (desk.t("sebagai nama samaran per pengungkapan, tanpa id subjek", "as per-disclosure pseudonyms, never the subject ids"))
                    }
                }
                dt { (desk.t("Persetujuan subjek", "The subjects' consent")) }
                dd { (consent_words(desk.lang, view.consent_check)) }
                dt { (desk.t("Alasan", "Reason")) } dd { (crate::web::shown_str(&r.reason)) }
                @if let Some(reference) = &r.reference {
                    dt { (desk.t("Rujukan", "Reference")) } dd { (crate::web::shown_str(reference)) }
                }
                dt { (desk.t("Rilis", "Releases")) }
                dd { (r.releases) " " (desk.t("dari paling banyak", "of at most")) " " (r.max_releases) }
                @if let Some(until) = &r.notification_deferred_until {
                    dt { (desk.t("Pemberitahuan kepada subjek ditunda sampai", "The subjects are told no earlier than")) }
                    dd { (until) @if let Some(why) = &r.deferral_reason { " · " (crate::web::shown_str(why)) } }
                }
            }
            p class="hint" { (desk.t(
                "Nilai data pribadi tidak pernah ditampilkan di sini: hanya kategori, jumlah dan id subjek.",
                "Personal values are never shown here: only categories, counts and subject ids.")) }
            details {
                summary { (desk.t("Id subjek", "Subject ids")) " (" (r.subject_ids.len()) ")" }
                ul class="ids" { @for s in &r.subject_ids { li { code { (s) } } } }
            }
            @if !view.excluded.is_empty() {
                details open {
                    summary { (desk.t("Subjek yang dikecualikan", "Subjects left out")) " (" (view.excluded.len()) ")" }
                    ul class="ids" { @for e in &view.excluded { li { code { (e.subject_id) } " · " (e.reason) } } }
                }
            }
        }
    }
}

fn history(desk: &Desk, view: &DisclosureView) -> Markup {
    let r = &view.record;
    html! {
        section class="card" aria-labelledby="history" {
            h2 id="history" { (desk.t("Riwayat", "History")) }
            ol class="steps" {
                li {
                    strong { (desk.t("Diminta", "Requested")) } " · " (desk.when_micros(r.requested_at_micros))
                    " · " (actor(desk, &r.requested_by))
                }
                @if let (Some(by), Some(at)) = (&r.approved_by, r.approved_at_micros) {
                    li { strong { (desk.t("Disetujui", "Approved")) } " · " (desk.when_micros(at)) " · " (actor(desk, by)) }
                }
                @if let (Some(by), Some(at)) = (&r.authorized_by, r.authorized_at_micros) {
                    li { strong { (desk.t("Diotorisasi", "Authorized")) } " · " (desk.when_micros(at)) " · " (actor(desk, by)) }
                }
                @if let (Some(by), Some(at)) = (&r.rejected_by, r.rejected_at_micros) {
                    li {
                        strong { (desk.t("Ditolak", "Rejected")) } " · " (desk.when_micros(at)) " · " (actor(desk, by))
                        @if let Some(why) = &r.rejection_reason { br; (crate::web::shown_str(why)) }
                    }
                }
                @if let Some(first) = r.first_released_at_micros {
                    li {
                        strong { (desk.t("Dirilis", "Released")) } " · " (desk.when_micros(first))
                        @if let Some(last) = r.last_released_at_micros.filter(|l| *l != first) {
                            " – " (desk.when_micros(last))
                        }
                        " · " (r.releases) "×"
                    }
                }
            }
        }
    }
}

fn step_form(desk: &Desk, id: &str, step: &str, label: &str) -> Markup {
    html! {
        form class="inline" method="post" action={ (path_of("disclosures", id)) "/" (step) } {
            (token(desk))
            button type="submit" { (label) }
        }
    }
}

fn actions(desk: &Desk, view: &DisclosureView) -> Markup {
    let r = &view.record;
    let id = r.id.as_str();
    let Some(status) = DisclosureStatus::parse(&r.status) else {
        return html! {};
    };
    let (step, may_step, may_reject) = match status {
        DisclosureStatus::PendingApproval => {
            let may = desk.vault.may(&desk.who, Action::DisclosureApprove);
            ("approve", may, may)
        }
        DisclosureStatus::Approved => {
            let may = desk.vault.may(&desk.who, Action::DisclosureAuthorize);
            ("authorize", may, may)
        }
        _ => return html! {},
    };
    if !may_step && !may_reject {
        return html! {
            p class="hint" { (desk.t(
                "Langkah berikutnya diambil oleh peran lain.",
                "The next step is another role's.")) }
        };
    }
    let me = desk.who.key_id();
    let earlier = r.requested_by == me || r.approved_by.as_deref() == Some(me);
    html! {
        section class="card" aria-labelledby="decide" {
            h2 id="decide" { (desk.t("Keputusan", "Decision")) }
            @if earlier {
                p class="hint" { (desk.t(
                    "Anda sudah mengambil langkah sebelumnya: empat mata meminta orang lain yang memutuskan.",
                    "You took an earlier step: four eyes ask someone else to decide.")) }
            }
            @if may_step {
                @if step == "approve" {
                    p { (desk.t(
                        "Sebagai penanggung jawab, setujui bila pengungkapan ini perlu dan sesuai dengan tujuannya; pemilik akun lalu mengotorisasinya.",
                        "As the person in charge, approve when this disclosure is needed and fits its purpose; the account owner then authorizes it.")) }
                    (step_form(desk, id, "approve", desk.t("Setujui", "Approve")))
                } @else {
                    p { (desk.t(
                        "Sebagai pemilik akun, otorisasi pengungkapan yang telah disetujui ini; setelah itu pemintanya dapat merilis paketnya.",
                        "As the account owner, authorize this approved disclosure; its requester can then release the package.")) }
                    (step_form(desk, id, "authorize", desk.t("Otorisasi", "Authorize")))
                }
            }
            @if may_reject {
                form method="post" action={ (path_of("disclosures", id)) "/reject" } {
                    (token(desk))
                    label for="reason" { (desk.t("Alasan penolakan", "Why it is rejected")) }
                    textarea id="reason" name="reason" required maxlength="1000" rows="3" {}
                    button type="submit" class="danger" { (desk.t("Tolak", "Reject")) }
                }
            }
        }
    }
}

async fn page(State(state): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    let desk = match desk(&state, &req).await {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let done = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|p| p.strip_prefix("done="))
            .map(str::to_owned)
    });
    let view = match load(&desk, &id).await {
        Ok(v) => v,
        Err(e) => return desk.vault_error(e),
    };
    let notice = match done.as_deref() {
        Some("approve") => Some(desk.t(
            "Disetujui dan dicatat di audit atas nama kunci Anda.",
            "Approved, and recorded in the audit under your key.",
        )),
        Some("authorize") => Some(desk.t(
            "Diotorisasi dan dicatat di audit atas nama kunci Anda.",
            "Authorized, and recorded in the audit under your key.",
        )),
        Some("reject") => Some(desk.t(
            "Ditolak dan dicatat di audit atas nama kunci Anda.",
            "Rejected, and recorded in the audit under your key.",
        )),
        _ => None,
    };
    let title = format!(
        "{} {}",
        desk.t("Pengungkapan", "Disclosure"),
        short(&view.record.id)
    );
    let body = html! {
        @if let Some(n) = notice { p class="notice" role="status" { (n) } }
        p { a href="/console/disclosures" { "← " (desk.t("Semua pengungkapan", "All disclosures")) } }
        p class="status" {
            (desk.t("Status: ", "Status: ")) strong { (status_words(desk.lang, &view.record.status)) }
            " · " (recipient_line(&desk, &view))
        }
        (actions(&desk, &view))
        (released(&desk, &view))
        (history(&desk, &view))
    };
    desk.page(&title, body)
}

// ------------------------------------------------------------------------------ the steps

/// Takes step `A` on disclosure `id` for the holder of a posted form, then shows the
/// disclosure again (or the vault's refusal as a page).
async fn take<A: act::DisclosureStep>(
    state: &AppState,
    id: &str,
    req: Request,
    done: &str,
) -> Response {
    let (desk, fields) = match posted(state, req).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let reason = field(&fields, "reason")
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let result = match desk.vault.authorize::<A>(&desk.who, Target::none()).await {
        Ok(p) => desk.vault.step_disclosure(&p, id, reason).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => {
            Redirect::to(&format!("{}?done={done}", path_of("disclosures", id))).into_response()
        }
        Err(e) => desk.vault_error(e),
    }
}

async fn approve(State(state): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    take::<act::DisclosureApprove>(&state, &id, req, "approve").await
}

async fn authorize(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    take::<act::DisclosureAuthorize>(&state, &id, req, "authorize").await
}

async fn reject(State(state): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    take::<act::DisclosureReject>(&state, &id, req, "reject").await
}
