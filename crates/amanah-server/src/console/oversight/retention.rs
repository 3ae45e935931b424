//! The retention page: the next sweep's preview (the sweep run as a dry run, under the
//! `retention.sweep` permit and audited as such), what would be erased or de-identified, for
//! which purposes and why, counted, with subject ids only; and when `serve` sweeps next.

use std::collections::BTreeMap;

use amanah_core::retention::RetentionAction;
use amanah_vault::{act, SweepItem, Target};
use axum::extract::{Request, State};
use axum::response::Response;
use maud::html;

use crate::console::{desk, Desk};
use crate::AppState;

/// Items of the preview listed one by one (all are counted).
const PREVIEW_LISTED: usize = 500;

/// What the sweep would do to one subject, in words, and the purposes whose retention ended.
fn action_words<'a>(desk: &Desk, action: &'a RetentionAction) -> (&'static str, &'a [String]) {
    match action {
        RetentionAction::Keep => (desk.t("disimpan", "kept"), &[]),
        RetentionAction::EraseCategories { expired, .. } => {
            (desk.t("kategori dihapus", "categories erased"), expired)
        }
        RetentionAction::EraseSubject { expired } => {
            (desk.t("subjek dihapus", "subject erased"), expired)
        }
        RetentionAction::Deidentify { expired } => {
            (desk.t("dide-identifikasi", "de-identified"), expired)
        }
    }
}

/// When the next scheduled sweep runs, if `serve` runs them.
fn next_sweep(desk: &Desk) -> Option<jiff::Timestamp> {
    let (start, every) = desk.console.sweeps?;
    let every_us = every.as_micros().max(1);
    let elapsed = start.elapsed().as_micros();
    let next = (elapsed / every_us + 1) * every_us;
    let wait = i64::try_from(next - elapsed).ok()?;
    jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_micros(wait))
        .ok()
}

fn retention_counts(items: &[SweepItem]) -> BTreeMap<(&'static str, String), usize> {
    let mut out = BTreeMap::new();
    for i in items {
        let kind = match i.action {
            RetentionAction::Keep => "keep",
            RetentionAction::EraseCategories { .. } => "categories",
            RetentionAction::EraseSubject { .. } => "erase",
            RetentionAction::Deidentify { .. } => "deidentify",
        };
        let expired = match &i.action {
            RetentionAction::Keep => String::new(),
            RetentionAction::EraseCategories { expired, .. }
            | RetentionAction::EraseSubject { expired }
            | RetentionAction::Deidentify { expired } => expired.join(", "),
        };
        let key = if i.held_until.is_some() {
            ("held", expired)
        } else {
            (kind, expired)
        };
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

pub(super) async fn page(State(state): State<AppState>, req: Request) -> Response {
    let desk = match desk(&state, &req).await {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let permit = match desk
        .vault
        .authorize::<act::RetentionSweep>(&desk.who, Target::none())
        .await
    {
        Ok(p) => p,
        Err(e) => return desk.vault_error(e),
    };
    let report = match desk.vault.retention_sweep(&permit, true, |_| {}).await {
        Ok(r) => r,
        Err(e) => return desk.vault_error(e),
    };
    let policy = desk.vault.policy();
    let retention_of = |purpose: &str| {
        policy
            .policy
            .purposes
            .get(purpose)
            .map(|p| format!("{purpose}: {}", p.retention))
            .unwrap_or_else(|| purpose.to_owned())
    };
    let counts = retention_counts(&report.items);
    let kind_words = |k: &str| match k {
        "categories" => desk.t(
            "kategori yang tidak lagi diperlukan dihapus",
            "categories no purpose needs erased",
        ),
        "erase" => desk.t(
            "subjek dihapus (kunci data dimusnahkan)",
            "subject erased (data key destroyed)",
        ),
        "deidentify" => desk.t("dide-identifikasi", "de-identified"),
        "held" => desk.t(
            "ditangguhkan oleh penahanan hukum",
            "suspended by a legal hold",
        ),
        _ => desk.t("disimpan", "kept"),
    };
    let title = desk.t(
        "Retensi: pratinjau penyapuan berikutnya",
        "Retention: the next sweep's preview",
    );
    desk.page(
        title,
        html! {
            p {
                (desk.t("Pratinjau ini tidak mengubah apa pun: penyapuan dijalankan sebagai uji coba.",
                        "This preview changes nothing: the sweep runs as a dry run."))
                " "
                @match next_sweep(&desk) {
                    Some(at) => { (desk.t("Penyapuan terjadwal berikutnya:", "Next scheduled sweep:")) " " strong { (desk.when(at)) } "." }
                    None => {
                        (desk.t("Server ini tidak menjalankan penyapuan terjadwal;", "This server runs no scheduled sweeps;")) " "
                        code { "amanah retention sweep" } " " (desk.t("menjalankannya.", "runs one."))
                    }
                }
            }
            section class="tiles" aria-label=(desk.t("Ringkasan", "Summary")) {
                div class="tile" { span class="big" { (report.examined) } (desk.t("subjek diperiksa", "subjects examined")) }
                div class=(if report.items.is_empty() { "tile" } else { "tile alert" }) {
                    span class="big" { (report.items.len()) } (desk.t("akan ditindak", "would be acted on"))
                }
            }
            @if counts.is_empty() {
                p { (desk.t("Tidak ada yang akan dihapus atau dide-identifikasi.", "Nothing would be erased or de-identified.")) }
            } @else {
                h2 { (desk.t("Menurut tindakan dan tujuan", "By action and purpose")) }
                div class="scroll" {
                    table class="stack" {
                        thead { tr {
                            th { (desk.t("Tindakan", "Action")) }
                            th { (desk.t("Retensi berakhir untuk", "Retention ended for")) }
                            th { (desk.t("Subjek", "Subjects")) }
                        } }
                        tbody {
                            @for ((kind, expired), n) in &counts {
                                tr {
                                    td data-label=(desk.t("Tindakan", "Action")) { (kind_words(kind)) }
                                    td data-label=(desk.t("Retensi berakhir untuk", "Retention ended for")) {
                                        (expired.split(", ").map(retention_of).collect::<Vec<_>>().join("; "))
                                    }
                                    td data-label=(desk.t("Subjek", "Subjects")) { (n) }
                                }
                            }
                        }
                    }
                }
                h2 { (desk.t("Per subjek", "Per subject")) }
                @if report.items.len() > PREVIEW_LISTED {
                    p class="hint" { (desk.t("Hanya yang pertama ditampilkan:", "Only the first are listed:")) " " (PREVIEW_LISTED) }
                }
                div class="scroll" {
                    table class="stack" {
                        thead { tr {
                            th { (desk.t("Subjek", "Subject")) }
                            th { (desk.t("Tindakan", "Action")) }
                            th { (desk.t("Tujuan berakhir", "Purposes ended")) }
                            th { (desk.t("Kategori", "Categories")) }
                            th { (desk.t("Ditahan sampai", "Held until")) }
                        } }
                        tbody {
                            @for i in report.items.iter().take(PREVIEW_LISTED) {
                                @let (what, expired) = action_words(&desk, &i.action);
                                tr {
                                    td data-label=(desk.t("Subjek", "Subject")) { code { (i.subject_id) } }
                                    td data-label=(desk.t("Tindakan", "Action")) { (what) }
                                    td data-label=(desk.t("Tujuan berakhir", "Purposes ended")) { (expired.join(", ")) }
                                    td data-label=(desk.t("Kategori", "Categories")) {
                                        @if let RetentionAction::EraseCategories { categories, .. } = &i.action { (categories.join(", ")) } @else { "—" }
                                    }
                                    td data-label=(desk.t("Ditahan sampai", "Held until")) { (i.held_until.as_deref().unwrap_or("—")) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}
