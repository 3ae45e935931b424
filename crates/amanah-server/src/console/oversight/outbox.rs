//! The demo's outbox of portal messages (`serve --portal-outbox DIR`, `amanah demo`): the files
//! the portal writes instead of sending a sign-in code, newest first. It stands in for the
//! people's mailboxes, so each message's recipient and code are shown, under an `outbox.read`
//! permit, audited.
//!
//! Only what is in the directory is read: a message is named by the portal's own pattern
//! (`<micros>-<token>.txt`, nothing else is looked at), must be a regular file in the directory
//! itself (a symbolic link is not followed out of it: the entry is checked without following,
//! and the file opened must be that same entry), and is read up to a bounded size.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use amanah_vault::{act, Target};
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use maud::html;

use crate::console::{desk, Desk, Early};
use crate::AppState;

/// Messages listed, newest first.
const LISTED: usize = 100;
/// The most of one message read (the portal's are a few hundred bytes).
const MESSAGE_MAX: u64 = 16 * 1024;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/outbox", get(list))
        .route("/console/outbox/{name}", get(one))
}

/// A message as the page shows it.
struct Message {
    name: String,
    /// When it was written (from its name).
    at_micros: Option<i64>,
    to: String,
    subject: String,
    /// The 6-digit code in it, if any.
    code: Option<String>,
    text: String,
}

/// Whether `name` is one the portal writes: `<digits>-<letters, digits, '-', '_'>.txt`.
fn well_formed(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".txt") else {
        return false;
    };
    let Some((time, token)) = stem.split_once('-') else {
        return false;
    };
    !time.is_empty()
        && time.len() <= 20
        && time.bytes().all(|b| b.is_ascii_digit())
        && !token.is_empty()
        && token.len() <= 64
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Reads the message `name` of `dir`: a regular file in the directory itself, never a link
/// followed elsewhere, at most [`MESSAGE_MAX`] bytes.
fn read_message(dir: &Path, name: &str) -> Option<Message> {
    if !well_formed(name) {
        return None;
    }
    let path = dir.join(name);
    // Opened without following a link (O_NOFOLLOW) and without waiting on a FIFO or a device
    // (O_NONBLOCK), then checked to be a regular file: what is read is what was checked.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(MESSAGE_MAX).read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let header = |key: &str| {
        text.lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let code = text
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_owned);
    Some(Message {
        name: name.to_owned(),
        at_micros: name.split('-').next().and_then(|t| t.parse::<i64>().ok()),
        to: header("To:"),
        subject: header("Subject:"),
        code,
        text,
    })
}

/// The newest messages of `dir` (entries the portal did not write are skipped).
fn newest(dir: &Path) -> std::io::Result<Vec<Message>> {
    let mut names: Vec<(u128, String)> = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        // The portal creates the directory with its first message.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        // The entry's own type: a link is not a file here.
        if !entry.file_type().is_ok_and(|t| t.is_file()) || !well_formed(&name) {
            continue;
        }
        let at = name
            .split('-')
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        names.push((at, name));
    }
    names.sort_unstable_by(|a, b| b.cmp(a));
    Ok(names
        .into_iter()
        .take(LISTED)
        .filter_map(|(_, name)| read_message(dir, &name))
        .collect())
}

fn when(desk: &Desk, m: &Message) -> String {
    m.at_micros
        .and_then(|us| jiff::Timestamp::from_microsecond(us).ok())
        .map(|ts| desk.when(ts))
        .unwrap_or_default()
}

/// The outbox directory, or the 404 page when the server has none.
fn directory(desk: &Desk) -> Result<PathBuf, Early> {
    desk.console.outbox.clone().ok_or_else(|| {
        Box::new(desk.message(
            StatusCode::NOT_FOUND,
            desk.t(
                "Server ini tidak memiliki kotak keluar: kode masuk portal dikirim lewat SMTP atau webhook.",
                "This server has no outbox: the portal's sign-in codes are sent by SMTP or a webhook.",
            ),
        ))
    })
}

/// The outbox permit (refusals audited by the decision point).
async fn permit(desk: &Desk) -> Result<amanah_vault::Permit<act::OutboxRead>, Early> {
    desk.vault
        .authorize::<act::OutboxRead>(&desk.who, Target::none())
        .await
        .map_err(|e| Box::new(desk.vault_error(e)))
}

async fn list(State(state): State<AppState>, req: Request) -> Response {
    let desk = match desk(&state, &req).await {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let dir = match directory(&desk) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let permit = match permit(&desk).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let read = tokio::task::spawn_blocking(move || newest(&dir)).await;
    let messages = match read {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "reading the outbox failed");
            return desk.message(
                StatusCode::INTERNAL_SERVER_ERROR,
                desk.t(
                    "Kotak keluar tidak dapat dibaca.",
                    "The outbox cannot be read.",
                ),
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "reading the outbox failed");
            return desk.message(
                StatusCode::INTERNAL_SERVER_ERROR,
                desk.t(
                    "Kotak keluar tidak dapat dibaca.",
                    "The outbox cannot be read.",
                ),
            );
        }
    };
    if let Err(e) = desk.vault.record_outbox_read(&permit, messages.len()).await {
        return desk.vault_error(e);
    }
    desk.page(
        desk.t("Kotak keluar (demo)", "Outbox (demo)"),
        html! {
            p { (desk.t(
                "Dalam demo, portal menulis setiap kode masuk ke sini alih-alih mengirimnya: inilah kotak surat orang itu. Terbaru di atas.",
                "In the demo the portal writes each sign-in code here instead of sending it: this stands in for the person's mailbox. Newest first.")) }
            @if messages.is_empty() {
                p { (desk.t("Belum ada pesan.", "No messages yet.")) }
            } @else {
                div class="scroll" {
                    table class="stack" {
                        thead { tr {
                            th { (desk.t("Waktu", "Time")) }
                            th { (desk.t("Kepada", "To")) }
                            th { (desk.t("Kode", "Code")) }
                            th { (desk.t("Pesan", "Message")) }
                        } }
                        tbody {
                            @for m in &messages {
                                tr {
                                    td data-label=(desk.t("Waktu", "Time")) { (when(&desk, m)) }
                                    td data-label=(desk.t("Kepada", "To")) { code { (crate::web::shown_str(&m.to)) } }
                                    td data-label=(desk.t("Kode", "Code")) { strong class="code" { (m.code.as_deref().unwrap_or("—")) } }
                                    td data-label=(desk.t("Pesan", "Message")) {
                                        a href={ "/console/outbox/" (m.name) } { (crate::web::shown_str(&m.subject)) }
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

async fn one(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
    req: Request,
) -> Response {
    let desk = match desk(&state, &req).await {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let dir = match directory(&desk) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let permit = match permit(&desk).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let read = tokio::task::spawn_blocking(move || read_message(&dir, &name)).await;
    let Ok(Some(m)) = read else {
        return desk.message(
            StatusCode::NOT_FOUND,
            desk.t(
                "Pesan ini tidak ada di kotak keluar.",
                "There is no such message in the outbox.",
            ),
        );
    };
    if let Err(e) = desk.vault.record_outbox_read(&permit, 1).await {
        return desk.vault_error(e);
    }
    desk.page(
        &crate::web::shown_str(&m.subject),
        html! {
            p { a href="/console/outbox" { (desk.t("Kembali ke kotak keluar", "Back to the outbox")) } }
            dl class="facts" {
                dt { (desk.t("Waktu", "Time")) } dd { (when(&desk, &m)) }
                dt { (desk.t("Kepada", "To")) } dd { code { (crate::web::shown_str(&m.to)) } }
                dt { (desk.t("Kode", "Code")) } dd { strong class="code" { (m.code.as_deref().unwrap_or("—")) } }
            }
            pre class="message" { (crate::web::shown_str(&m.text)) }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::well_formed;

    #[test]
    fn only_the_portals_names_are_read() {
        assert!(well_formed("1764633600000000-a1B2_c-D.txt"));
        for bad in [
            "../secret.txt",
            "1764633600000000-../../x.txt",
            "1764633600000000-abc",
            "-abc.txt",
            "abc-def.txt",
            "1764633600000000-.txt",
            "1764633600000000-a/b.txt",
            ".1764633600000000-a.txt",
            "",
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }
}
