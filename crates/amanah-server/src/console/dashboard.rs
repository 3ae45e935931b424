//! The console's first page: what needs the officer now (open and overdue requests, those
//! awaiting identity verification, the next ones due).

use amanah_core::authz::Action;
use amanah_vault::{act, RequestView, Target};
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
        },
    )
}
