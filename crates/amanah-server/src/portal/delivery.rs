//! How a one-time code reaches the person: by e-mail over SMTP (`lettre`), through a webhook
//! (a JSON POST to a WhatsApp/SMS gateway), or, in the demo, into an outbox directory the
//! operator reads. Sends run on a task of their own, off the request path, so a sign-in answers
//! alike whether a code went out or not; a failed send is logged without the address or code.

use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use super::state::Lang;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpSecurity {
    /// STARTTLS, required (the default; port 587).
    #[default]
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// Plain text: only for a relay on loopback (tests, a local MTA).
    None,
}

impl SmtpSecurity {
    pub fn parse(s: &str) -> Option<SmtpSecurity> {
        match s {
            "starttls" => Some(SmtpSecurity::StartTls),
            "tls" => Some(SmtpSecurity::Tls),
            "none" => Some(SmtpSecurity::None),
            _ => None,
        }
    }
}

/// An SMTP relay.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub from: String,
    pub username: Option<String>,
    pub password: Option<Zeroizing<String>>,
    pub security: SmtpSecurity,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .finish_non_exhaustive()
    }
}

/// Where codes go; each kind of address goes to the first configured way that carries it.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    /// E-mail addresses.
    pub smtp: Option<SmtpSettings>,
    /// Phone numbers (and e-mail addresses when no SMTP relay is set): a POST of
    /// `{"channel", "to", "code", "text", "lang"}` as JSON.
    pub webhook: Option<String>,
    /// The demo's outbox: each message a file (mode 0600) in this directory.
    pub outbox: Option<PathBuf>,
}

impl Delivery {
    /// Whether any way of sending is configured.
    pub fn any(&self) -> bool {
        self.smtp.is_some() || self.webhook.is_some() || self.outbox.is_some()
    }
}

/// One code to send.
pub struct Outgoing {
    pub email: bool,
    pub to: String,
    pub code: Zeroizing<String>,
    pub lang: Lang,
    pub organization: String,
}

impl Outgoing {
    fn subject(&self) -> String {
        match self.lang {
            Lang::Id => format!("Kode masuk {}", self.organization),
            Lang::En => format!("{} sign-in code", self.organization),
        }
    }

    /// The message, in lines short enough to travel as 7-bit text.
    fn text(&self) -> String {
        match self.lang {
            Lang::Id => format!(
                "Kode masuk portal privasi {}:\n\n    {}\n\nKode berlaku 10 menit dan hanya sekali pakai.\n\
                 Jika Anda tidak memintanya, abaikan pesan ini.\n",
                self.organization, *self.code
            ),
            Lang::En => format!(
                "Your sign-in code for the privacy portal of {}:\n\n    {}\n\nThe code is valid for 10 minutes \
                 and works once.\nIf you did not ask for it, ignore this message.\n",
                self.organization, *self.code
            ),
        }
    }
}

/// Codes being sent at once, at most.
const CONCURRENT_SENDS: usize = 16;

/// The sending task's handle.
#[derive(Clone)]
pub struct Sender {
    queue: mpsc::Sender<Outgoing>,
}

impl Sender {
    /// Starts the task that sends. Beyond 1024 codes waiting, new ones are dropped (logged).
    pub fn start(delivery: Delivery) -> Sender {
        let (queue, mut rx) = mpsc::channel::<Outgoing>(1024);
        tokio::spawn(async move {
            let worker = std::sync::Arc::new(Worker::new(delivery));
            // Several sends at once: one slow gateway or relay (each send may take up to its
            // timeout) must not hold every later code back past its validity.
            let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENT_SENDS));
            while let Some(message) = rx.recv().await {
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    break;
                };
                let worker = worker.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let kind = if message.email { "email" } else { "phone" };
                    match worker.send(&message).await {
                        Ok(way) => tracing::info!(kind, way, "portal sign-in code sent"),
                        Err(e) => tracing::warn!(kind, error = %e, "portal sign-in code not sent"),
                    }
                });
            }
        });
        Sender { queue }
    }

    pub fn send(&self, message: Outgoing) {
        if self.queue.try_send(message).is_err() {
            tracing::warn!("portal sign-in code dropped: too many waiting to be sent");
        }
    }
}

struct Worker {
    delivery: Delivery,
    smtp: Option<(AsyncSmtpTransport<Tokio1Executor>, Mailbox)>,
    http: Option<
        Client<
            hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
            Full<bytes::Bytes>,
        >,
    >,
}

impl Worker {
    fn new(delivery: Delivery) -> Worker {
        let smtp = delivery.smtp.as_ref().and_then(|s| match smtp_transport(s) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(error = %e, "the SMTP relay is misconfigured: e-mail codes cannot be sent");
                None
            }
        });
        let http = delivery.webhook.as_ref().and_then(|_| {
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
                .map_err(|e| tracing::error!(error = %e, "no TLS roots for the webhook"))
                .ok()?
                .https_or_http()
                .enable_http1()
                .build();
            Some(Client::builder(TokioExecutor::new()).build(connector))
        });
        Worker {
            delivery,
            smtp,
            http,
        }
    }

    async fn send(&self, m: &Outgoing) -> Result<&'static str, String> {
        if m.email {
            if let Some((transport, from)) = &self.smtp {
                let to: Mailbox =
                    m.to.parse()
                        .map_err(|_| "the address is not a mailbox".to_owned())?;
                let email = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(m.subject())
                    .header(lettre::message::header::ContentType::TEXT_PLAIN)
                    .body(m.text())
                    .map_err(|e| format!("message: {e}"))?;
                transport
                    .send(email)
                    .await
                    .map_err(|e| format!("SMTP: {}", smtp_error(&e)))?;
                return Ok("smtp");
            }
        }
        if let (Some(url), Some(client)) = (&self.delivery.webhook, &self.http) {
            let body = serde_json::json!({
                "channel": if m.email { "email" } else { "phone" },
                "to": m.to,
                "code": *m.code,
                "text": m.text(),
                "lang": m.lang.code(),
            });
            let request = hyper::Request::post(url.as_str())
                .header("content-type", "application/json")
                .body(Full::new(bytes::Bytes::from(body.to_string())))
                .map_err(|_| "the webhook URL is not valid".to_owned())?;
            let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
                .await
                .map_err(|_| "the webhook did not answer within 10 s".to_owned())?
                .map_err(|e| format!("webhook: {e}"))?;
            let status = response.status();
            let _ = response.into_body().collect().await;
            if !status.is_success() {
                return Err(format!("the webhook answered {status}"));
            }
            return Ok("webhook");
        }
        if let Some(dir) = &self.delivery.outbox {
            write_outbox(dir, m).map_err(|e| format!("outbox: {e}"))?;
            return Ok("outbox");
        }
        Err("no way to send to this kind of address is configured".into())
    }
}

/// What SMTP said, without the addresses lettre may quote.
fn smtp_error(e: &lettre::transport::smtp::Error) -> String {
    if e.is_permanent() {
        "permanent failure".into()
    } else if e.is_transient() {
        "transient failure".into()
    } else if e.is_timeout() {
        "timeout".into()
    } else if e.is_tls() {
        "TLS failure".into()
    } else {
        "connection failure".into()
    }
}

fn smtp_transport(
    s: &SmtpSettings,
) -> Result<(AsyncSmtpTransport<Tokio1Executor>, Mailbox), String> {
    let from: Mailbox = s.from.parse().map_err(|_| {
        "--smtp-from is not a mailbox (e.g. \"Amanah <privacy@example.id>\")".to_owned()
    })?;
    let mut builder = match s.security {
        SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)
            .map_err(|e| format!("STARTTLS: {e}"))?,
        SmtpSecurity::Tls => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host).map_err(|e| format!("TLS: {e}"))?
        }
        SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host),
    }
    .port(s.port)
    .timeout(Some(Duration::from_secs(10)));
    if let (Some(user), Some(password)) = (&s.username, &s.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.to_string()));
    }
    Ok((builder.build(), from))
}

fn write_outbox(dir: &std::path::Path, m: &Outgoing) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let name = format!(
        "{}-{}.txt",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or_default(),
        amanah_crypto::otp::random_token()
            .map(|t| t[..8].to_owned())
            .unwrap_or_default()
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join(name))?;
    write!(
        file,
        "To: {}\nSubject: {}\n\n{}",
        m.to,
        m.subject(),
        m.text()
    )?;
    file.sync_all()
}
