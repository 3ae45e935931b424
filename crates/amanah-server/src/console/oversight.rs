//! The console's oversight pages: the audit chain (its verification, the latest signed
//! checkpoint and whether the chain still holds against it, a subject's trail), the record of
//! processing activities with its downloads, the next retention sweep's preview, and the demo's
//! outbox of portal messages ([`outbox`]); the retention preview is in [`retention`].
//!
//! Each page asks the decision point for its own permit (`audit.verify`, `audit.read`, `ropa`,
//! `retention.sweep`, `outbox.read`) exactly as the API does; what it shows are ids, counts,
//! categories and the audit's own columns, never a subject's values.

mod outbox;
mod retention;

use std::path::{Path, PathBuf};

use amanah_core::checkpoint::SignedCheckpoint;
use amanah_vault::{act, recordable_id, CheckpointVerdict, Target, VerifyReport};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde_json::Value;

use super::{desk, posted, token, Desk, Early};
use crate::web::words;
use crate::AppState;

/// Audit entries shown per page of a subject's trail.
const TRAIL_PAGE: usize = 200;
/// The largest checkpoint file read.
const CHECKPOINT_MAX: u64 = 64 * 1024;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/audit", get(audit))
        .route("/console/audit/checkpoint", post(sign_checkpoint))
        .route("/console/ropa", get(ropa))
        .route("/console/ropa.md", get(ropa_markdown))
        .route("/console/ropa.csv", get(ropa_csv))
        .route("/console/ropa.json", get(ropa_json))
        .route("/console/retention", get(retention::page))
        .merge(outbox::routes())
}

/// The first value of `name` in the query string.
fn query(req: &Request, name: &str) -> Option<String> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ------------------------------------------------------------------------------ audit

/// Where the latest checkpoint of this organization is, when `serve` writes them: the
/// deployment's own in the directory, a hosted organization's under `tenants/<id>/`.
fn latest_checkpoint_path(desk: &Desk) -> Option<PathBuf> {
    let dir = desk.console.checkpoints.as_ref()?;
    Some(match desk.vault.tenant_id() {
        Some(id) => dir.join("tenants").join(id).join("latest.json"),
        None => dir.join("latest.json"),
    })
}

/// What is known of the latest checkpoint.
enum Latest {
    /// `serve` writes none (no `--checkpoint-dir`).
    NotWritten,
    /// None written yet, or the file is unreadable or malformed (the reason, for the page).
    Unreadable(String),
    Found(Box<SignedCheckpoint>),
}

fn read_checkpoint(path: &Path) -> Latest {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Latest::Unreadable("no checkpoint has been written yet".into())
        }
        Err(e) => return Latest::Unreadable(format!("cannot read the latest checkpoint: {e}")),
    };
    let mut bytes = Vec::new();
    if let Err(e) = file.take(CHECKPOINT_MAX + 1).read_to_end(&mut bytes) {
        return Latest::Unreadable(format!("cannot read the latest checkpoint: {e}"));
    }
    if bytes.len() as u64 > CHECKPOINT_MAX {
        return Latest::Unreadable("the latest checkpoint file is too large".into());
    }
    match SignedCheckpoint::parse(&bytes) {
        Ok(cp) => Latest::Found(Box::new(cp)),
        Err(e) => Latest::Unreadable(e.to_string()),
    }
}

fn chain_status(desk: &Desk, report: &VerifyReport) -> Markup {
    html! {
        @if let Some(b) = &report.first_bad {
            p class="error" role="alert" {
                strong { (desk.t("Rantai audit rusak.", "The audit chain is broken.")) }
                " " (desk.t("Entri yang utuh sebelum kerusakan:", "Entries intact before the break:")) " " (report.entries) ". "
                span lang="en" { (b.to_string()) }
            }
        } @else {
            p class="ok" {
                strong { (desk.t("Rantai audit utuh.", "The audit chain is intact.")) }
                " " (report.entries) " " (desk.t("entri diperiksa", "entries checked"))
            }
            @if let Some(head) = &report.head {
                p class="hint" { (desk.t("Kepala rantai", "Chain head")) ": " code { (head) } }
            }
        }
    }
}

fn checkpoint_status(desk: &Desk, latest: &Latest, verdict: Option<&CheckpointVerdict>) -> Markup {
    html! {
        @match latest {
            Latest::NotWritten => p {
                (desk.t("Server ini tidak menulis checkpoint berkala (jalankan", "This server writes no periodic checkpoints (run")) " "
                code { "amanah serve --checkpoint-dir DIR" } (desk.t(", atau", ", or")) " " code { "amanah audit checkpoint" } "). "
                (desk.t("Anda dapat menandatangani satu di bawah dan menyimpannya di luar server.",
                        "You can sign one below and keep it off the server."))
            }
            Latest::Unreadable(why) => p class="error" role="alert" {
                (desk.t("Checkpoint terakhir tidak dapat dibaca:", "The latest checkpoint cannot be read:")) " "
                span lang="en" { (why) }
            }
            Latest::Found(cp) => {
                dl class="facts" {
                    dt { (desk.t("Entri", "Entry")) } dd { (cp.checkpoint.seq) }
                    dt { (desk.t("Waktu", "Time")) } dd {
                        (cp.checkpoint.time.parse::<jiff::Timestamp>().map(|t| desk.when(t)).unwrap_or_else(|_| cp.checkpoint.time.clone()))
                    }
                    dt { (desk.t("Kepala", "Head")) } dd { code { (hex(&cp.checkpoint.head)) } }
                }
                @if let Some(v) = verdict {
                    @match &v.checkpoint {
                        Ok(()) => p class="ok" { strong { (desk.t(
                            "Rantai masih memuat entri yang dilihat checkpoint ini.",
                            "The chain still holds the entry this checkpoint saw.")) } }
                        Err(e) => p class="error" role="alert" {
                            strong { (desk.t("Rantai tidak cocok dengan checkpoint ini.", "The chain does not match this checkpoint.")) }
                            " " span lang="en" { (e.to_string()) }
                        }
                    }
                }
            }
        }
    }
}

fn trail_table(desk: &Desk, entries: &[amanah_core::audit::AuditRecord]) -> Markup {
    html! {
        div class="scroll" {
            table class="stack" {
                thead { tr {
                    th { "#" }
                    th { (desk.t("Waktu", "Time")) }
                    th { (desk.t("Pelaku (kunci)", "Actor (key)")) }
                    th { (desk.t("Peran", "Role")) }
                    th { (desk.t("Tindakan", "Action")) }
                    th { (desk.t("Tujuan", "Purpose")) }
                    th { (desk.t("Hasil", "Outcome")) }
                    th { (desk.t("Kategori", "Fields")) }
                } }
                tbody {
                    @for r in entries {
                        @let e = &r.entry;
                        tr class=[(e.outcome.as_str() != "allowed").then_some("late")] {
                            td data-label="#" { (r.seq) }
                            td data-label=(desk.t("Waktu", "Time")) { (desk.when_micros(e.at_micros)) }
                            td data-label=(desk.t("Pelaku (kunci)", "Actor (key)")) { code { (e.actor) } }
                            td data-label=(desk.t("Peran", "Role")) { (e.role) }
                            td data-label=(desk.t("Tindakan", "Action")) { code { (e.action.as_str()) } }
                            td data-label=(desk.t("Tujuan", "Purpose")) { (e.purpose.as_deref().unwrap_or("—")) }
                            td data-label=(desk.t("Hasil", "Outcome")) { (e.outcome.as_str()) }
                            td data-label=(desk.t("Kategori", "Fields")) {
                                @if e.fields.is_empty() { "—" } @else { (e.fields.join(", ")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn audit(State(state): State<AppState>, req: Request) -> Response {
    let desk = match desk(&state, &req).await {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let subject = query(&req, "subject")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let after: u64 = query(&req, "after")
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let latest = match latest_checkpoint_path(&desk) {
        None => Latest::NotWritten,
        Some(path) => match tokio::task::spawn_blocking(move || read_checkpoint(&path)).await {
            Ok(l) => l,
            Err(e) => Latest::Unreadable(format!("cannot read the latest checkpoint: {e}")),
        },
    };
    // The whole chain is verified on the page itself, not on each look at a subject's trail
    // (it reads every entry: a click must not cost that).
    let verified = if subject.is_none() && after == 0 {
        let verify = match desk
            .vault
            .authorize::<act::AuditVerify>(&desk.who, Target::none())
            .await
        {
            Ok(p) => p,
            Err(e) => return desk.vault_error(e),
        };
        match &latest {
            Latest::Found(cp) => match desk
                .vault
                .verify_against_checkpoint(&verify, cp, None)
                .await
            {
                Ok(v) => Some((v.chain.clone(), Some(v))),
                Err(e) => return desk.vault_error(e),
            },
            _ => match desk.vault.verify_audit(&verify).await {
                Ok(r) => Some((r, None)),
                Err(e) => return desk.vault_error(e),
            },
        }
    } else {
        None
    };
    let mut status = StatusCode::OK;
    let trail: Option<Result<Vec<_>, String>> = match &subject {
        None => None,
        Some(s) => match recordable_id(s) {
            None => {
                status = StatusCode::BAD_REQUEST;
                Some(Err(desk
                    .t(
                        "Itu bukan id subjek (UUID).",
                        "That is not a subject id (a UUID).",
                    )
                    .to_owned()))
            }
            Some(id) => {
                let read = desk
                    .vault
                    .authorize::<act::AuditRead>(&desk.who, Target::subject(&id))
                    .await;
                let entries = match read {
                    Ok(p) => {
                        desk.vault
                            .audit_entries(&p, Some(&id), after, TRAIL_PAGE)
                            .await
                    }
                    Err(e) => Err(e),
                };
                match entries {
                    Ok(e) => Some(Ok(e)),
                    Err(e) => return desk.vault_error(e),
                }
            }
        },
    };
    let title = desk.t("Audit", "Audit");
    desk.page_with(
        status,
        title,
        html! {
            section class="card" aria-labelledby="chain" {
                h2 id="chain" { (desk.t("Rantai audit", "Audit chain")) }
                @match &verified {
                    Some((report, _)) => (chain_status(&desk, report)),
                    None => p { a href="/console/audit" { (desk.t("Periksa rantai", "Verify the chain")) } },
                }
            }
            section class="card" aria-labelledby="checkpoint" {
                h2 id="checkpoint" { (desk.t("Checkpoint bertanda tangan terakhir", "Latest signed checkpoint")) }
                (checkpoint_status(&desk, &latest, verified.as_ref().and_then(|(_, v)| v.as_ref())))
                form method="post" action="/console/audit/checkpoint" {
                    (token(&desk))
                    button type="submit" { (desk.t("Tanda tangani checkpoint sekarang (unduh)", "Sign a checkpoint now (download)")) }
                }
                p class="hint" {
                    (desk.t("Simpan checkpoint di luar server:", "Keep checkpoints off the server:")) " "
                    code { "amanah audit verify --checkpoint FILE" } " "
                    (desk.t("kemudian mendeteksi entri yang dihapus atau ditulis ulang.", "then detects entries removed or rewritten."))
                }
            }
            section class="card" aria-labelledby="trail" {
                h2 id="trail" { (desk.t("Jejak satu subjek", "One subject's trail")) }
                form method="get" action="/console/audit" class="search" {
                    label for="subject" { (desk.t("Id subjek", "Subject id")) }
                    input type="text" id="subject" name="subject" required maxlength="36" spellcheck="false"
                        autocomplete="off" value=[subject.as_deref()];
                    button type="submit" { (desk.t("Tampilkan", "Show")) }
                }
                @match &trail {
                    None => {}
                    Some(Err(message)) => p class="error" role="alert" { (message) }
                    Some(Ok(entries)) => {
                        @if entries.is_empty() {
                            p { (desk.t("Tidak ada entri untuk subjek ini.", "No entries for this subject.")) }
                        } @else {
                            p class="hint" { (desk.t(
                                "Kolom audit saja: siapa, kapan, untuk apa, kategori apa. Nilai data tidak pernah dicatat.",
                                "The audit's columns only: who, when, what for, which categories. Values are never recorded.")) }
                            (trail_table(&desk, entries))
                            @if entries.len() == TRAIL_PAGE {
                                @let last = entries.last().map_or(0, |e| e.seq);
                                p { a href={ "/console/audit?subject=" (subject.as_deref().unwrap_or("")) "&after=" (last) } {
                                    (desk.t("Entri berikutnya", "Later entries"))
                                } }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// Signs a checkpoint of the chain's head now and hands it over as a file to keep elsewhere.
async fn sign_checkpoint(State(state): State<AppState>, req: Request) -> Response {
    let (desk, _) = match posted(&state, req).await {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let permit = match desk
        .vault
        .authorize::<act::AuditVerify>(&desk.who, Target::none())
        .await
    {
        Ok(p) => p,
        Err(e) => return desk.vault_error(e),
    };
    match desk.vault.checkpoint(&permit).await {
        Ok(cp) => crate::web::attachment(
            "application/json",
            &format!("audit-checkpoint-seq{}.json", cp.checkpoint.seq),
            cp.to_json(),
        ),
        Err(e) => desk.vault_error(e),
    }
}

// ------------------------------------------------------------------------------ record of processing

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn retention_from(desk: &Desk, from: &str) -> String {
    match from {
        "collection" => desk.t("sejak pengumpulan", "from collection").to_owned(),
        "relationship_end" => desk
            .t("sejak hubungan berakhir", "from the relationship's end")
            .to_owned(),
        other => other.to_owned(),
    }
}

fn on_expiry(desk: &Desk, what: &str) -> String {
    match what {
        "erase" => desk.t("dihapus", "erased").to_owned(),
        "deidentify" => desk.t("dide-identifikasi", "de-identified").to_owned(),
        other => other.to_owned(),
    }
}

async fn ropa_document(desk: &Desk) -> Result<Value, Early> {
    let permit = desk
        .vault
        .authorize::<act::Ropa>(&desk.who, Target::none())
        .await
        .map_err(|e| Box::new(desk.vault_error(e)))?;
    desk.vault
        .ropa(&permit, crate::accountability::STORAGE)
        .await
        .map_err(|e| Box::new(desk.vault_error(e)))
}

async fn ropa(State(state): State<AppState>, req: Request) -> Response {
    let desk = match desk(&state, &req).await {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let doc = match ropa_document(&desk).await {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let activities = doc["activities"].as_array().cloned().unwrap_or_default();
    let title = desk.t(
        "Catatan kegiatan pemrosesan",
        "Record of processing activities",
    );
    desk.page(
        title,
        html! {
            p {
                (desk.t("UU PDP Pasal 31. Pengendali:", "UU PDP Art. 31. Controller:")) " "
                strong { (text(&doc["controller"]["name"])) } " (" (text(&doc["controller"]["contact"])) "). "
                (desk.t("Versi kebijakan", "Policy version")) " " code { (text(&doc["policy_version"])) } "."
            }
            p class="downloads" {
                (desk.t("Unduh:", "Download:")) " "
                a href="/console/ropa.md" download { "Markdown" } " · "
                a href="/console/ropa.csv" download { "CSV" } " · "
                a href="/console/ropa.json" download { "JSON" }
            }
            @for a in &activities {
                section class="card activity" {
                    h2 { code { (text(&a["purpose"])) } }
                    @if let Some(d) = a["description"].as_str() { p { (d) } }
                    dl class="facts" {
                        dt { (desk.t("Dasar hukum", "Legal basis")) }
                        dd { (words::basis(desk.lang, a["legal_basis"].as_str().unwrap_or(""))) }
                        dt { (desk.t("Subjek", "Subjects")) } dd { (text(&a["subjects"])) }
                        dt { (desk.t("Kategori data", "Data categories")) }
                        dd {
                            @for (i, c) in a["categories"].as_array().into_iter().flatten().enumerate() {
                                @if i > 0 { ", " }
                                (text(&c["name"]))
                                @if c["class"] == "specific" { " (" (desk.t("spesifik", "specific")) ")" }
                            }
                        }
                        dt { (desk.t("Penerima", "Recipients")) }
                        dd {
                            @let recipients = a["recipients"].as_array().cloned().unwrap_or_default();
                            @if recipients.is_empty() { "—" }
                            @for (i, r) in recipients.iter().enumerate() {
                                @if i > 0 { "; " }
                                (text(&r["name"])) " (" (text(&r["kind"])) ", " (text(&r["country"]))
                                @if let Some(b) = r["transfer_basis"].as_str() { ", " (desk.t("dasar transfer", "transfer basis")) ": " (b) }
                                ")"
                            }
                        }
                        dt { (desk.t("Retensi", "Retention")) }
                        dd {
                            (text(&a["retention"])) " " (retention_from(&desk, a["retention_from"].as_str().unwrap_or("")))
                            ", " (desk.t("lalu", "then")) " " (on_expiry(&desk, a["on_expiry"].as_str().unwrap_or("")))
                        }
                    }
                }
            }
            section class="card" {
                h2 { (desk.t("Langkah keamanan", "Security measures")) }
                ul {
                    @for m in doc["security_measures"].as_array().into_iter().flatten() {
                        li lang="en" { (text(m)) }
                    }
                }
            }
        },
    )
}

async fn ropa_markdown(State(state): State<AppState>, req: Request) -> Response {
    let desk = match desk(&state, &req).await {
        Ok(d) => d,
        Err(r) => return *r,
    };
    match ropa_document(&desk).await {
        Ok(doc) => crate::web::attachment(
            "text/markdown; charset=utf-8",
            "ropa.md",
            amanah_core::ropa::markdown(&doc),
        ),
        Err(r) => *r,
    }
}

async fn ropa_csv(State(state): State<AppState>, req: Request) -> Response {
    let desk = match desk(&state, &req).await {
        Ok(d) => d,
        Err(r) => return *r,
    };
    match ropa_document(&desk).await {
        Ok(doc) => crate::web::attachment(
            "text/csv; charset=utf-8",
            "ropa.csv",
            amanah_core::ropa::csv(&doc),
        ),
        Err(r) => *r,
    }
}

async fn ropa_json(State(state): State<AppState>, req: Request) -> Response {
    let desk = match desk(&state, &req).await {
        Ok(d) => d,
        Err(r) => return *r,
    };
    match ropa_document(&desk).await {
        Ok(doc) => crate::web::attachment("application/json", "ropa.json", doc.to_string()),
        Err(r) => *r,
    }
}
