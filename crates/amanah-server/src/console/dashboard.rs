//! The console's first page: what needs the officer now (open and overdue requests, those
//! awaiting identity verification, the next ones due), then the statistics (current consent
//! decisions and subjects, counted per purpose: counts only).

use amanah_core::authz::Action;
use amanah_vault::{act, RequestView, Statistics, Target};
use axum::extract::{Request, State};
use axum::response::Response;
use maud::html;

use super::desk;
use super::requests::{hours_left, identity_verified};
use crate::web::words;
use crate::AppState;

pub(super) async fn page(State(state): State<AppState>, req: Request) -> Response {
    let desk = match desk(&state, &req).await {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let title = desk.t("Dasbor", "Dashboard");
    let requests: Option<Vec<RequestView>> = if desk.vault.may(&desk.who, Action::RequestList) {
        let listed = match desk
            .vault
            .authorize::<act::RequestList>(&desk.who, Target::none())
            .await
        {
            Ok(p) => {
                desk.vault
                    .list_requests(&p, Some("open"), false, None, None, 500)
                    .await
            }
            Err(e) => Err(e),
        };
        match listed {
            Ok(l) => Some(l),
            Err(e) => return desk.vault_error(e),
        }
    } else {
        None
    };
    let statistics: Option<Statistics> = if desk.vault.may(&desk.who, Action::StatisticsRead) {
        let read = match desk
            .vault
            .authorize::<act::StatisticsRead>(&desk.who, Target::none())
            .await
        {
            Ok(p) => desk.vault.statistics(&p).await,
            Err(e) => Err(e),
        };
        match read {
            Ok(s) => Some(s),
            Err(e) => return desk.vault_error(e),
        }
    } else {
        None
    };
    desk.page(
        title,
        html! {
            @if let Some(open) = &requests {
                @let overdue = open.iter().filter(|r| r.overdue).count();
                @let unverified = open.iter().filter(|r| !identity_verified(r)).count();
                section class="tiles" aria-label=(desk.t("Permintaan", "Requests")) {
                    a class="tile" href="/console/requests" {
                        span class="big" { (open.len()) } (desk.t("permintaan terbuka", "open requests"))
                    }
                    a class=(if overdue > 0 { "tile alert" } else { "tile" }) href="/console/requests" {
                        span class="big" { (overdue) } (desk.t("terlambat", "overdue"))
                    }
                    a class="tile" href="/console/requests" {
                        span class="big" { (unverified) } (desk.t("menunggu verifikasi identitas", "awaiting identity verification"))
                    }
                }
                @if !open.is_empty() {
                    h2 { (desk.t("Jatuh tempo berikutnya", "Due next")) }
                    ul class="due" {
                        @for r in open.iter().take(5) {
                            @let (left, late) = hours_left(&desk, r.record.due_at_micros, true);
                            li {
                                a href={ "/console/requests/" (r.record.id) } { (words::request_kind(desk.lang, &r.record.kind)) }
                                " · " span class=[late.then_some("overdue")] { (left) }
                            }
                        }
                    }
                }
            } @else {
                p { (desk.t("Peran Anda tidak menangani permintaan subjek data. Menu di atas memuat halaman yang dapat Anda gunakan.",
                            "Your role does not handle data subject requests. The menu above lists the pages you can use.")) }
            }
            @if let Some(stats) = &statistics {
                section class="card stats" aria-labelledby="consents" {
                    h2 id="consents" { (desk.t("Persetujuan per tujuan", "Consents by purpose")) }
                    p class="hint" { (desk.t("Keputusan terakhir setiap subjek.", "Each subject's current decision.")) }
                    @if stats.consents.is_empty() {
                        p { (desk.t("Belum ada persetujuan yang dicatat.", "No consent recorded yet.")) }
                    } @else {
                        table class="stack" id="consents-by-purpose" {
                            thead { tr {
                                th { (desk.t("Tujuan", "Purpose")) }
                                th { (desk.t("Diberikan", "Given")) }
                                th { (desk.t("Ditarik", "Withdrawn")) }
                            } }
                            tbody {
                                @for (purpose, given, withdrawn) in &stats.consents {
                                    tr {
                                        td data-label=(desk.t("Tujuan", "Purpose")) { code { (purpose) } }
                                        td data-label=(desk.t("Diberikan", "Given")) class="count" { (given) }
                                        td data-label=(desk.t("Ditarik", "Withdrawn")) class="count" { (withdrawn) }
                                    }
                                }
                            }
                        }
                    }
                }
                section class="card stats" aria-labelledby="subjects" {
                    h2 id="subjects" { (desk.t("Subjek per tujuan", "Subjects by purpose")) }
                    @if stats.subjects.is_empty() {
                        p { (desk.t("Belum ada subjek.", "No subjects yet.")) }
                    } @else {
                        table class="stack" id="subjects-by-purpose" {
                            thead { tr {
                                th { (desk.t("Tujuan", "Purpose")) }
                                th { (desk.t("Subjek", "Subjects")) }
                            } }
                            tbody {
                                @for (purpose, n) in &stats.subjects {
                                    tr {
                                        td data-label=(desk.t("Tujuan", "Purpose")) { code { (purpose) } }
                                        td data-label=(desk.t("Subjek", "Subjects")) class="count" { (n) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}
