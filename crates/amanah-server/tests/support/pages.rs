//! Driving the server-rendered pages (the privacy portal, the officers' console) over HTTP as a
//! browser without script would: the real router on a loopback port, answers with their
//! cookies and form tokens, a session sent as its cookie, and a console sign-in.

use std::net::SocketAddr;

use reqwest::header::{HeaderMap, COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// An answer, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub async fn of(resp: reqwest::Response) -> Answer {
        Answer {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The `Set-Cookie` header, whole.
    pub fn cookie(&self) -> Option<String> {
        self.header(SET_COOKIE.as_str()).map(str::to_owned)
    }

    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }

    /// The session id the `Set-Cookie` gives for the cookie `name`.
    pub fn session(&self, name: &str) -> String {
        session_of(&self.cookie().expect("a session cookie"), name)
    }

    /// The form token of the page's first form.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("a form token in {}", self.body));
        let rest = &self.body[at + 19..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

/// The value a `Set-Cookie` header gives the cookie `name`.
pub fn session_of(set_cookie: &str, name: &str) -> String {
    let pair = set_cookie.split(';').next().unwrap();
    pair.strip_prefix(&format!("{name}="))
        .unwrap_or_else(|| panic!("{set_cookie} sets no {name}"))
        .to_owned()
}

/// The console's session cookie, as a browser sends it.
pub fn console(session: &str) -> String {
    format!("amanah_console={session}")
}

/// An app served on a loopback port: its address, and a client that follows no redirect.
pub struct Served {
    pub base: String,
    pub http: reqwest::Client,
}

impl Served {
    pub async fn start(app: axum::Router) -> Served {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        Served {
            base,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// An API call with a bearer key: its status and JSON body (`null` when none).
    pub async fn api(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, value) = super::send(&self.http, &self.base, method, path, key, body).await;
        (status, value)
    }

    /// A page, sending `cookie` (`name=value`) when given.
    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        Answer::of(req.send().await.unwrap()).await
    }

    /// A form posted, sending `cookie` (`name=value`) when given.
    pub async fn post(&self, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Answer {
        let mut req = self.http.post(format!("{}{path}", self.base)).form(form);
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        Answer::of(req.send().await.unwrap()).await
    }

    /// The console's sign-in page: a visitor session's id and its form token.
    pub async fn console_visit(&self) -> (String, String) {
        let page = self.get("/console/sign-in", None).await;
        assert_eq!(page.status, StatusCode::OK);
        let set = page.cookie().expect("a session cookie");
        assert!(
            set.contains("HttpOnly")
                && set.contains("SameSite=Strict")
                && set.contains("Path=/console"),
            "{set}"
        );
        (session_of(&set, "amanah_console"), page.csrf())
    }

    /// Signs in to the console with `key`: the new session's id (never the visitor's).
    pub async fn console_sign_in(&self, key: &str) -> String {
        let (visitor, csrf) = self.console_visit().await;
        let done = self
            .post(
                "/console/sign-in",
                Some(&console(&visitor)),
                &[("csrf", &csrf), ("key", key)],
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        assert_eq!(done.location(), Some("/console"));
        let id = done.session("amanah_console");
        assert_ne!(id, visitor, "the session id changes at sign-in");
        id
    }
}
