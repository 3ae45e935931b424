//! What the two sets of server-rendered pages share, the data subjects' portal (`/portal`) and
//! the officer's console (`/console`): the language a page is shown in, sessions kept in the
//! server's memory, posted forms and their synchronizer-token check, and the HTML answer with
//! its Content-Security-Policy.

pub mod sessions;
pub mod words;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::Markup;

pub use sessions::{Session, Sessions, Tier};

/// The pages' Content-Security-Policy: the stylesheet from here, forms to here, nothing else.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

/// The language pages are shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Id,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Id => "id",
            Lang::En => "en",
        }
    }

    /// The other language (the switch links to it).
    pub fn other(self) -> Lang {
        match self {
            Lang::Id => Lang::En,
            Lang::En => Lang::Id,
        }
    }

    /// The Bahasa Indonesia or the English of a text.
    pub fn pick<'a>(self, id: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Id => id,
            Lang::En => en,
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "id" => Some(Lang::Id),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The first of `id`/`en` an `Accept-Language` header prefers (by q-value), else Bahasa
    /// Indonesia.
    pub fn from_accept(header: Option<&str>) -> Lang {
        let Some(header) = header else {
            return Lang::Id;
        };
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',') {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q=").map(str::to_owned))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = match tag.split('-').next() {
                Some("id") | Some("in") => Lang::Id,
                Some("en") => Lang::En,
                _ => continue,
            };
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::Id, |(_, l)| l)
    }

    /// The language a request asks for with `?lang=`, if any.
    pub fn asked(query: Option<&str>) -> Option<Lang> {
        query
            .into_iter()
            .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
            .find(|(k, _)| k == "lang")
            .and_then(|(_, v)| Lang::parse(&v))
    }
}

/// What a page request brings, read the same way by the portal and the console: the live
/// session its cookie names, the page's language (`?lang=` first, remembered in the session;
/// then the session's; then `Accept-Language`), the client's address and the path.
pub struct Arrival<S> {
    pub session: Option<(String, Session<S>)>,
    pub lang: Lang,
    /// A language the query asked for (`?lang=`).
    pub asked_lang: Option<Lang>,
    pub client: Option<std::net::IpAddr>,
    pub path: String,
}

impl<S: Clone> Arrival<S> {
    pub fn of(req: &axum::extract::Request, sessions: &Sessions<S>, cookie_name: &str) -> Self {
        let now = std::time::Instant::now();
        let session = cookie(req.headers(), cookie_name)
            .and_then(|id| sessions.get(&id, now).map(|s| (id, s)));
        let asked_lang = Lang::asked(req.uri().query());
        let accept = req
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        let lang = asked_lang
            .or_else(|| session.as_ref().and_then(|(_, s)| s.lang))
            .unwrap_or_else(|| Lang::from_accept(accept));
        if let (Some(l), Some((id, _))) = (asked_lang, &session) {
            sessions.set_lang(id, l);
        }
        let client = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        Arrival {
            session,
            lang,
            asked_lang,
            client,
            path: req.uri().path().to_owned(),
        }
    }
}

/// The value of the cookie `name`, if the request carries it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
}

/// A page.
pub fn html(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-store"),
        ],
        markup.into_string(),
    )
        .into_response()
}

/// A file to download from a page: its type, its name (the callers' own, never caller text),
/// and `no-store`, as every page.
pub fn attachment(
    content_type: &str,
    filename: &str,
    body: impl Into<axum::body::Body>,
) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body.into(),
    )
        .into_response()
}

/// A form's fields, in order (a name may repeat).
pub fn form(body: &Bytes) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The first value of the field `name`.
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The synchronizer token check: the form's `csrf` field must be `expected` (compared in
/// constant time, over digests so lengths do not show either).
pub fn csrf_matches(expected: &str, fields: &[(String, String)]) -> bool {
    let Some(given) = field(fields, "csrf") else {
        return false;
    };
    let a = amanah_crypto::digest::sha256(given.as_bytes());
    let b = amanah_crypto::digest::sha256(expected.as_bytes());
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// A `Set-Cookie` value for a session cookie on `path` (`id` empty: the cookie is cleared).
pub fn session_cookie(name: &str, path: &str, id: &str, secure: bool) -> header::HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let clear = if id.is_empty() { "; Max-Age=0" } else { "" };
    header::HeaderValue::from_str(&format!(
        "{name}={id}; Path={path}; HttpOnly; SameSite=Strict{clear}{secure}"
    ))
    .unwrap_or_else(|_| header::HeaderValue::from_static(""))
}

/// A stored value as page text: bidirectional controls (U+202A–U+202E, U+2066–U+2069) become
/// U+FFFD, so a value cannot reorder what follows it on the page (maud escapes the markup).
pub fn shown(value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    text.chars()
        .map(|c| match c {
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// [`shown`] for text.
pub fn shown_str(text: &str) -> String {
    shown(&serde_json::Value::String(text.to_owned()))
}

/// A time in the organization's time zone, to the minute.
pub fn when_ts(ts: jiff::Timestamp, zone: &jiff::tz::TimeZone) -> String {
    ts.to_zoned(zone.clone())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_preferred_of_ours() {
        assert_eq!(Lang::from_accept(None), Lang::Id);
        assert_eq!(Lang::from_accept(Some("en-US,en;q=0.9")), Lang::En);
        assert_eq!(Lang::from_accept(Some("fr, en;q=0.5, id;q=0.8")), Lang::Id);
        assert_eq!(Lang::from_accept(Some("de")), Lang::Id);
        assert_eq!(Lang::asked(Some("a=1&lang=en")), Some(Lang::En));
        assert_eq!(Lang::asked(Some("lang=fr")), None);
    }

    #[test]
    fn only_the_sessions_own_token_passes() {
        let fields = |v: &str| vec![("csrf".to_owned(), v.to_owned())];
        assert!(csrf_matches("abc", &fields("abc")));
        assert!(!csrf_matches("abc", &fields("abd")));
        assert!(!csrf_matches("abc", &fields("")));
        assert!(!csrf_matches("abc", &[]));
    }

    #[test]
    fn shown_values_cannot_reorder_the_page() {
        use serde_json::json;
        assert_eq!(shown(&json!("a\u{202E}b\u{2066}c")), "a\u{FFFD}b\u{FFFD}c");
        assert_eq!(shown(&json!("Siti")), "Siti");
        assert_eq!(shown(&json!(null)), "");
        assert_eq!(shown(&json!(42)), "42");
    }

    #[test]
    fn session_cookies_are_http_only_and_strict() {
        let set = session_cookie("c", "/console", "x1", true);
        assert_eq!(
            set.to_str().unwrap(),
            "c=x1; Path=/console; HttpOnly; SameSite=Strict; Secure"
        );
        let clear = session_cookie("c", "/portal", "", false);
        assert_eq!(
            clear.to_str().unwrap(),
            "c=; Path=/portal; HttpOnly; SameSite=Strict; Max-Age=0"
        );
    }
}
