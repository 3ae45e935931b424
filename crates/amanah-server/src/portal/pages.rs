//! The portal's pages, server-rendered (maud escapes every value). No script: every flow is a
//! link or a form. One stylesheet, served from the binary.

use amanah_core::policy::Policy;
use amanah_vault::PurposeConsent;
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

use super::state::Lang;
use super::text::{self, Text};

/// Which page of the signed-in menu is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Data,
    Trail,
    Consents,
    Requests,
    None,
}

/// What every page needs to know.
pub struct Frame<'a> {
    pub lang: Lang,
    pub organization: &'a str,
    /// The path of this page (the language switch links back to it).
    pub path: &'a str,
    /// Signed in: the session's form token (for the sign-out form).
    pub csrf: Option<&'a str>,
    pub nav: Nav,
    /// A guardian is acting for a child: every page says so and offers the way back.
    pub acting_for_child: bool,
}

pub fn layout(f: &Frame<'_>, title: &str, body: Markup) -> Markup {
    let t = text::text(f.lang);
    let other = match f.lang {
        Lang::Id => "en",
        Lang::En => "id",
    };
    let item = |nav: Nav, href: &str, label: &str| {
        html! {
            li { a href=(href) aria-current=[(f.nav == nav).then_some("page")] { (label) } }
        }
    };
    html! {
        (DOCTYPE)
        html lang=(f.lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (t.title) " · " (f.organization) }
                link rel="stylesheet" href="/portal/assets/portal.css";
                link rel="icon" href="/portal/assets/icon.svg" type="image/svg+xml";
            }
            body {
                a class="skip" href="#main" { (t.skip) }
                header {
                    span class="org" { (f.organization) " · " (t.title) }
                    @if f.csrf.is_some() {
                        nav aria-label=(t.title) {
                            ul {
                                (item(Nav::Data, "/portal", t.nav_data))
                                (item(Nav::Trail, "/portal/trail", t.nav_trail))
                                (item(Nav::Consents, "/portal/consents", t.nav_consents))
                                (item(Nav::Requests, "/portal/requests", t.nav_requests))
                            }
                        }
                    }
                    span {
                        a href={ (f.path) "?lang=" (other) } lang=(other) hreflang=(other) { (t.switch_lang) }
                        @if let Some(csrf) = f.csrf {
                            " · "
                            form class="inline" method="post" action="/portal/sign-out" {
                                input type="hidden" name="csrf" value=(csrf);
                                button class="link" type="submit" { (t.sign_out) }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    @if let (true, Some(csrf)) = (f.acting_for_child, f.csrf) {
                        form class="acting notice" method="post" action="/portal/act-for" {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="subject" value="self";
                            (f.lang.pick("Anda bertindak sebagai orang tua atau wali untuk anak Anda.",
                                         "You are acting as parent or guardian for your child."))
                            " "
                            button class="secondary" type="submit" { (f.lang.pick("Kembali ke data saya", "Back to my own data")) }
                        }
                    }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

pub fn sign_in(f: &Frame<'_>, csrf: &str, error: Option<&str>) -> Markup {
    let t = text::text(f.lang);
    layout(
        f,
        t.sign_in_title,
        html! {
            @if let Some(e) = error { p class="error" role="alert" { (e) } }
            p { (t.sign_in_intro) }
            section class="card" {
                form method="post" action="/portal/sign-in" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="address" { (t.address_label) }
                    p class="hint" id="address-hint" { (t.address_hint) }
                    input type="text" id="address" name="address" required autocomplete="email"
                        inputmode="email" aria-describedby="address-hint" maxlength="320";
                    button type="submit" { (t.send_code) }
                }
            }
        },
    )
}

pub fn code(f: &Frame<'_>, csrf: &str, error: Option<&str>) -> Markup {
    let t = text::text(f.lang);
    layout(
        f,
        t.code_title,
        html! {
            @if let Some(e) = error { p class="error" role="alert" { (e) } }
            p class="notice" { (t.code_sent) }
            section class="card" {
                form method="post" action="/portal/code" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="code" { (t.code_label) }
                    input type="text" id="code" name="code" required inputmode="numeric"
                        autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6";
                    button type="submit" { (t.code_submit) }
                }
                p { a href="/portal?again=1" { (t.code_again) } }
            }
        },
    )
}

pub fn message(f: &Frame<'_>, title: &str, message: &str) -> Markup {
    let t = text::text(f.lang);
    layout(
        f,
        title,
        html! {
            p class="error" role="alert" { (message) }
            p { a href="/portal" { (t.back) } }
        },
    )
}

/// A time from the export (RFC 3339) in the organization's time zone.
pub fn when(value: &Value, zone: &jiff::tz::TimeZone) -> String {
    value
        .as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .map(|ts| when_ts(ts, zone))
        .unwrap_or_default()
}

pub use crate::web::when_ts;

fn scalar(v: &Value) -> String {
    crate::web::shown(v)
}

fn downloads(t: &Text) -> Markup {
    html! {
        h2 { (t.download) }
        p class="downloads" {
            a href="/portal/export.json" download { "JSON" }
            a href="/portal/export.csv" download { "CSV" }
            a href="/portal/export.zip" download { "ZIP (JSON + " (t.documents) ")" }
        }
    }
}

/// The children a parent or guardian may act for, each with a button to do so.
pub fn wards(f: &Frame<'_>, csrf: &str, wards: &[String]) -> Markup {
    html! {
        @if !wards.is_empty() {
            section class="card" {
                h2 { (f.lang.pick("Anak dalam perwalian Anda", "Children in your care")) }
                p { (f.lang.pick(
                    "Anda tercatat sebagai orang tua atau wali anak berikut. Selama mereka belum dewasa, Anda dapat melihat data mereka, memberi atau menarik persetujuan, dan mengajukan permohonan atas nama mereka; semuanya dicatat atas nama Anda.",
                    "You are recorded as parent or guardian of the children below. While they are minors you can see their data, give or withdraw consent and file requests for them; everything is recorded in your name.")) }
                ul {
                    @for (i, w) in wards.iter().enumerate() {
                        li {
                            form class="inline" method="post" action="/portal/act-for" {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="subject" value=(w);
                                (f.lang.pick("Anak", "Child")) " " (i + 1) " (" code { (w.get(..8).unwrap_or(w)) } ") "
                                button class="secondary" type="submit" { (f.lang.pick("Bertindak untuk anak ini", "Act for this child")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn data(f: &Frame<'_>, export: &Value, policy: &Policy, zone: &jiff::tz::TimeZone) -> Markup {
    let t = text::text(f.lang);
    let fields = export["fields"].as_object();
    let documents = export["documents"].as_array();
    html! {
        p { (t.data_intro) }
        section class="card" {
            dl {
                dt { (t.controller) }
                dd { (scalar(&export["controller"]["name"])) " — " (scalar(&export["controller"]["contact"])) }
            }
        }
        @for p in export["purposes"].as_array().into_iter().flatten() {
            @let name = scalar(&p["purpose"]);
            section class="card" {
                h2 { (t.purpose) ": " (name) }
                @if let Some(d) = p["description"].as_str() { p { (d) } }
                dl {
                    dt { (t.basis) }
                    dd { (text::basis(f.lang, &scalar(&p["basis"]))) }
                    dt { (t.collected) }
                    dd { (when(&p["collected_at"], zone)) }
                    dt { (t.retention_end) }
                    dd { (retention(f.lang, policy, &name, &p["collected_at"], zone)) }
                    dt { (t.recipients) }
                    dd {
                        @let recipients = p["recipients"].as_array().cloned().unwrap_or_default();
                        @if recipients.is_empty() { (t.no_recipients) }
                        @else {
                            ul {
                                @for r in &recipients {
                                    li { (scalar(&r["name"])) " (" (scalar(&r["kind"])) ", " (scalar(&r["country"])) ")" }
                                }
                            }
                        }
                    }
                }
                h2 { (t.values) }
                @let held: Vec<String> = p["categories_held"].as_array().into_iter().flatten().map(scalar).collect();
                @if held.is_empty() { p { (t.nothing_held) } }
                @else {
                    table class="stack" {
                        thead { tr { th scope="col" { (t.category) } th scope="col" { (t.value) } } }
                        tbody {
                            @for c in &held {
                                @if let Some(v) = fields.and_then(|m| m.get(c)) {
                                    tr { td data-label=(t.category) { (c) } td data-label=(t.value) { (scalar(v)) } }
                                }
                                @for d in documents.into_iter().flatten().filter(|d| d["category"].as_str() == Some(c.as_str()) && d["current"].as_bool() == Some(true)) {
                                    tr { td data-label=(t.category) { (c) } td data-label=(t.value) { (t.documents) ": " (scalar(&d["media_type"])) ", " (scalar(&d["size"])) " B" } }
                                }
                            }
                        }
                    }
                }
            }
        }
        (downloads(t))
    }
}

fn retention(
    lang: Lang,
    policy: &Policy,
    purpose: &str,
    collected: &Value,
    zone: &jiff::tz::TimeZone,
) -> String {
    let t = text::text(lang);
    let Some(p) = policy.purpose(purpose) else {
        return String::new();
    };
    match p.retention_from {
        amanah_core::policy::RetentionFrom::Collection => collected
            .as_str()
            .and_then(|s| s.parse::<jiff::Timestamp>().ok())
            .map(|ts| {
                let end = amanah_core::retention::retention_end(ts.as_microsecond(), p.retention);
                jiff::Timestamp::from_microsecond(end)
                    .map(|e| when_ts(e, zone))
                    .unwrap_or_default()
            })
            .unwrap_or_default(),
        amanah_core::policy::RetentionFrom::RelationshipEnd => {
            format!("{} {}", p.retention, t.retention_after_end)
        }
    }
}

/// Whether an audited action reads or changes.
fn reads(action: &str) -> bool {
    action.ends_with(".read")
        || action.ends_with(".search")
        || action.ends_with(".export")
        || action.ends_with(".list")
        || action == "consent.contactable"
}

pub fn trail(f: &Frame<'_>, export: &Value, zone: &jiff::tz::TimeZone) -> Markup {
    let t = text::text(f.lang);
    let mut entries: Vec<&Value> = export["processing"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    entries.reverse();
    html! {
        p { (t.trail_intro) }
        @if entries.is_empty() { p { (t.no_trail) } }
        @else {
            div class="scroll" {
                table class="stack" {
                    thead { tr {
                        th scope="col" { (t.when) } th scope="col" { (t.role) }
                        th scope="col" { (t.purpose) } th scope="col" { (t.what) }
                    } }
                    tbody {
                        @for e in entries {
                            @let action = scalar(&e["action"]);
                            @let role = scalar(&e["role"]);
                            tr {
                                td data-label=(t.when) { (when(&e["time"], zone)) }
                                td data-label=(t.role) {
                                    @if role == amanah_core::policy::SUBJECT_ROLE { (t.yourself) } @else { (role) }
                                }
                                td data-label=(t.purpose) { (scalar(&e["purpose"])) }
                                td data-label=(t.what) {
                                    @if action == "portal.sign_in" { (t.sign_in_event) }
                                    @else if reads(&action) { (t.read) } @else { (t.change) }
                                    @if e["outcome"].as_str() == Some("denied") { " (" (t.refused) ")" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn consents(
    f: &Frame<'_>,
    csrf: &str,
    current: &[PurposeConsent],
    policy: &Policy,
    notice: Option<&str>,
) -> Markup {
    let t = text::text(f.lang);
    let grace = policy.settings.withdrawal_grace_days;
    html! {
        @if let Some(n) = notice { p class="notice" role="status" { (n) } }
        p { (t.consents_intro) }
        @if current.is_empty() { p { (t.no_consents) } }
        @for c in current {
            @let p = policy.purpose(&c.purpose);
            @let given = c.state == "valid";
            section class="card" {
                h2 { (t.purpose) ": " (c.purpose) }
                @if let Some(d) = p.and_then(|p| p.description.as_deref()) { p { (d) } }
                dl {
                    dt { (t.state) }
                    dd { (text::state(f.lang, c.state)) }
                    @if !c.contact_channels.is_empty() {
                        dt { (t.channels) }
                        dd { (c.contact_channels.join(", ")) }
                    }
                }
                form method="post" action="/portal/consents" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="purpose" value=(c.purpose);
                    @if given {
                        input type="hidden" name="decision" value="withdraw";
                        p class="hint" {
                            @if grace == 0 { (t.withdraw_effect_now) }
                            @else { (t.withdraw_effect_grace) " " (grace) }
                        }
                        button type="submit" class="secondary" { (t.withdraw) " — " (c.purpose) }
                    } @else {
                        input type="hidden" name="decision" value="grant";
                        @let channels = p.map(amanah_core::consent::allowed_channels).unwrap_or_default();
                        fieldset class="checks" {
                            legend { (t.channels) }
                            @for ch in &channels {
                                @let id = format!("ch-{}-{}", c.purpose, ch);
                                label for=(id) { input type="checkbox" id=(id) name="channel" value=(ch); (ch) }
                            }
                        }
                        p class="hint" { (t.grant_effect) }
                        button type="submit" { (t.grant) " — " (c.purpose) }
                    }
                }
            }
        }
    }
}

pub const REQUEST_KINDS: [&str; 6] = [
    "access",
    "rectification",
    "erasure",
    "restriction",
    "objection",
    "portability",
];

pub fn requests(
    f: &Frame<'_>,
    csrf: &str,
    export: &Value,
    zone: &jiff::tz::TimeZone,
    now: jiff::Timestamp,
    notice: Option<&str>,
) -> Markup {
    let t = text::text(f.lang);
    let held: Vec<String> = export["fields"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let requests: Vec<&Value> = export["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    html! {
        @if let Some(n) = notice { p class="notice" role="status" { (n) } }
        p { (t.requests_intro) }
        @if requests.is_empty() { p { (t.no_requests) } }
        @else {
            table class="stack" {
                thead { tr {
                    th scope="col" { (t.request_type) } th scope="col" { (t.status) }
                    th scope="col" { (t.received) } th scope="col" { (t.due) }
                } }
                tbody {
                    @for r in requests.iter().rev() {
                        @let status = scalar(&r["status"]);
                        @let open = status == "received" || status == "in_progress";
                        @let due = r["due_at"].as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok());
                        tr {
                            td data-label=(t.request_type) { (text::request_kind(f.lang, &scalar(&r["type"]))) }
                            td data-label=(t.status) { (text::state(f.lang, &status)) }
                            td data-label=(t.received) { (when(&r["received_at"], zone)) }
                            td data-label=(t.due) {
                                (when(&r["due_at"], zone))
                                @if let (true, Some(due)) = (open, due) {
                                    @let hours = (due.as_second() - now.as_second()) / 3600;
                                    @if hours >= 0 { " (" (hours) " " (t.hours_left) ")" }
                                    @else { span class="overdue" { " (" (-hours) " " (t.hours_over) ")" } }
                                }
                            }
                        }
                    }
                }
            }
        }
        section class="card" {
            h2 { (t.file_request) }
            form method="post" action="/portal/requests" {
                input type="hidden" name="csrf" value=(csrf);
                label for="type" { (t.request_type) }
                select id="type" name="type" required {
                    @for k in REQUEST_KINDS { option value=(k) { (text::request_kind(f.lang, k)) } }
                }
                label for="details" { (t.request_details) }
                p class="hint" id="details-hint" { (t.request_details_hint) }
                textarea id="details" name="details" maxlength="2000" aria-describedby="details-hint" {}
                @if !held.is_empty() {
                    fieldset {
                        legend { (t.proposed) }
                        p class="hint" { (t.proposed_hint) }
                        @for c in &held {
                            @let id = format!("fix-{c}");
                            label for=(id) { (c) }
                            input type="text" id=(id) name={ "fix." (c) } maxlength="500";
                        }
                    }
                }
                button type="submit" { (t.file_request) }
            }
        }
        (downloads(t))
    }
}

/// The stylesheet, from the binary.
pub const CSS: &str = include_str!("portal.css");

/// The pages' icon: a shield.
pub const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\
<path d=\"M8 1 2 3.5V8c0 3.3 2.6 6.2 6 7 3.4-.8 6-3.7 6-7V3.5z\" fill=\"#0e3a5f\"/></svg>";
