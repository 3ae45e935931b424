//! TLS for the PostgreSQL connections, chosen by the connection URL with libpq's meanings:
//!
//! - `sslmode=disable`: plain TCP.
//! - `sslmode=prefer` (the default): TLS when the server offers it, else plain TCP.
//! - `sslmode=require`: TLS or no connection; the certificate is not verified, so this protects
//!   against passive eavesdropping only.
//! - `sslmode=verify-ca`: TLS with the server's certificate chain verified against the CA
//!   certificates of `sslrootcert=PATH` (a PEM file), or the system's roots when absent.
//! - `sslmode=verify-full`: as `verify-ca`, and the certificate must name the host connected to.
//!
//! As in libpq, a `sslrootcert` file given with `prefer` or `require` makes them verify the
//! chain too, `sslrootcert=system` names the system's roots (and needs `verify-full`), and
//! PostgreSQL never speaks TLS on a Unix socket, so a URL whose hosts are all sockets connects
//! without it.
//!
//! tokio-postgres reads neither `verify-ca`/`verify-full` nor `sslrootcert`: those parameters
//! are taken out of the URL here and the rest is handed to its `Config`. No message quotes the
//! URL or its password.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::{Host, SslMode as WireMode};
use tokio_postgres::Config;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{StoreError, StoreResult};

/// The URL's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> StoreResult<SslMode> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(invalid(
                    "sslmode=allow (plain TCP first, TLS if refused) is not supported: use \
                     disable, prefer, require, verify-ca or verify-full",
                ))
            }
            other => {
                // The value is quoted only when it looks like a mode, never a stray secret.
                let shown = if other.len() <= 16
                    && other
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    format!("sslmode={other}")
                } else {
                    "this sslmode".to_owned()
                };
                return Err(invalid(&format!(
                    "{shown} is not known: use disable, prefer, require, verify-ca or verify-full"
                )));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the trusted CA certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Roots {
    /// `sslrootcert=PATH`: the PEM certificates of that file.
    File(PathBuf),
    /// `sslrootcert=system`, or no `sslrootcert` with `verify-ca`/`verify-full`.
    System,
}

/// A parsed connection URL: tokio-postgres's settings and the TLS ones it does not read.
#[derive(Clone, Debug)]
pub(crate) struct Parsed {
    pub config: Config,
    pub mode: SslMode,
    /// The CA certificates given by the URL, if any.
    roots: Option<Roots>,
}

fn invalid(why: &str) -> StoreError {
    StoreError::Backend(format!("invalid PostgreSQL connection URL: {why}"))
}

/// The parameters read here rather than by tokio-postgres, as they appear in the URL.
#[derive(Default)]
struct TlsParams {
    mode: Option<String>,
    root_cert: Option<String>,
}

impl TlsParams {
    /// Takes `key = value` if it is a TLS parameter; `Ok(false)` leaves it to tokio-postgres.
    fn take(&mut self, key: &str, value: String) -> StoreResult<bool> {
        match key {
            "sslmode" => self.mode = Some(value),
            "sslrootcert" => self.root_cert = Some(value),
            "sslcert" | "sslkey" | "sslpassword" | "sslcertmode" => {
                return Err(invalid(&format!(
                    "{key} is not supported: the store does not present client certificates"
                )))
            }
            "sslcrl" | "sslcrldir" => {
                return Err(invalid(&format!(
                    "{key} is not supported: the store does not read certificate revocation lists"
                )))
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Parses a `postgres://` URL or a `key=value` connection string.
pub(crate) fn parse(url: &str) -> StoreResult<Parsed> {
    let mut params = TlsParams::default();
    let rest = match url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    {
        Some(after) => strip_url(url, after, &mut params)?,
        None => strip_key_values(url, &mut params)?,
    };
    let mut config = rest
        .parse::<Config>()
        .map_err(|_| StoreError::Backend("invalid PostgreSQL connection URL".into()))?;
    let mode = match &params.mode {
        Some(m) => SslMode::parse(m)?,
        None => SslMode::Prefer,
    };
    let roots = match params.root_cert.as_deref() {
        None => None,
        Some("") => {
            return Err(invalid(
                "sslrootcert is empty: give the path of a PEM file of CA certificates",
            ))
        }
        Some("system") => {
            if mode != SslMode::VerifyFull && mode != SslMode::Disable {
                return Err(invalid(&format!(
                    "sslrootcert=system needs sslmode=verify-full, not {}",
                    mode.as_str()
                )));
            }
            Some(Roots::System)
        }
        Some(path) => Some(Roots::File(PathBuf::from(path))),
    };
    // A server that never answers must not hold a caller forever (the URL's
    // `connect_timeout` wins when given).
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    let sockets_only = config.get_hostaddrs().is_empty()
        && !config.get_hosts().is_empty()
        && config
            .get_hosts()
            .iter()
            .all(|h| !matches!(h, Host::Tcp(_)));
    config.ssl_mode(match mode {
        SslMode::Disable => WireMode::Disable,
        _ if sockets_only => WireMode::Disable,
        SslMode::Prefer => WireMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireMode::Require,
    });
    Ok(Parsed {
        config,
        mode,
        roots,
    })
}

/// The URL form: tokio-postgres takes the credentials up to the first `@` and the parameters
/// after the next `?`, `&`-separated and percent-encoded; the TLS ones are removed.
fn strip_url(url: &str, after: &str, params: &mut TlsParams) -> StoreResult<String> {
    let prefix = &url[..url.len() - after.len()];
    let (credentials, location) = match after.find('@') {
        Some(at) => after.split_at(at + 1),
        None => ("", after),
    };
    let Some((path, query)) = location.split_once('?') else {
        return Ok(url.to_owned());
    };
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let taken = match pair.split_once('=') {
            Some((key, value)) => {
                let key = decode(key)?;
                params.take(&key, decode(value)?)?
            }
            None => false,
        };
        if !taken {
            kept.push(pair);
        }
    }
    let mut out = format!("{prefix}{credentials}{path}");
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    Ok(out)
}

fn decode(s: &str) -> StoreResult<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| invalid("a parameter is not UTF-8 once percent-decoded"))
}

/// The `key=value` form (values bare with `\` escapes, or single-quoted), read the way
/// tokio-postgres reads it; the TLS parameters are removed and the others kept verbatim. A
/// string it cannot read is handed on whole, for tokio-postgres to refuse.
fn strip_key_values(s: &str, params: &mut TlsParams) -> StoreResult<String> {
    let mut kept: Vec<&str> = Vec::new();
    let mut chars = s.char_indices().peekable();
    let skip_ws = |chars: &mut std::iter::Peekable<std::str::CharIndices>| {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_ws(&mut chars);
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut key_end = start;
        while let Some((i, c)) = chars.next_if(|(_, c)| !c.is_whitespace() && *c != '=') {
            key_end = i + c.len_utf8();
        }
        let key = &s[start..key_end];
        skip_ws(&mut chars);
        if key.is_empty() || chars.next_if(|(_, c)| *c == '=').is_none() {
            return Ok(s.to_owned());
        }
        skip_ws(&mut chars);
        let mut value = String::new();
        let mut end = s.len();
        if chars.next_if(|(_, c)| *c == '\'').is_some() {
            let mut closed = false;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\'' => {
                        end = i + 1;
                        closed = true;
                        break;
                    }
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    c => value.push(c),
                }
            }
            if !closed {
                return Ok(s.to_owned());
            }
        } else {
            while let Some((i, c)) = chars.next() {
                if c.is_whitespace() {
                    end = i;
                    break;
                }
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    c => value.push(c),
                }
            }
            if value.is_empty() {
                return Ok(s.to_owned());
            }
        }
        if !params.take(key, value)? {
            kept.push(&s[start..end]);
        }
    }
    Ok(kept.join(" "))
}

/// How connections are made: the parsed URL and its TLS client configuration, built once (the
/// CA file is read when the store opens).
#[derive(Clone)]
pub(crate) struct Target {
    pub config: Config,
    pub mode: SslMode,
    /// `None` when no connection can use TLS.
    pub tls: Option<MakeRustlsConnect>,
}

impl Target {
    pub fn new(parsed: Parsed) -> StoreResult<Target> {
        let Parsed {
            config,
            mode,
            roots,
        } = parsed;
        let tls = if config.get_ssl_mode() == WireMode::Disable {
            None
        } else {
            Some(MakeRustlsConnect::new(client_config(mode, roots)?))
        };
        Ok(Target { config, mode, tls })
    }
}

/// The rustls client configuration of a TLS mode. The crypto provider is named here: the
/// workspace installs none process-wide.
fn client_config(mode: SslMode, roots: Option<Roots>) -> StoreResult<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let roots = match (mode, roots) {
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => Some(load_roots(mode, &Roots::System)?),
        (_, Some(r)) => Some(load_roots(mode, &r)?),
        (_, None) => None,
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Backend(format!("postgres TLS configuration: {e}")))?;
    let mut config = match (mode, roots) {
        (SslMode::VerifyFull, Some(roots)) => builder.with_root_certificates(roots),
        (_, roots) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(LaxVerifier {
                roots: roots.map(Arc::new),
                algorithms,
            })),
    }
    .with_no_client_auth();
    // What libpq sends since PostgreSQL 17, needed by servers that take TLS without the
    // SSLRequest round trip (`sslnegotiation=direct`); older servers ignore it.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(config)
}

fn load_roots(mode: SslMode, roots: &Roots) -> StoreResult<RootCertStore> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            for (n, cert) in read_pem_certificates(path)?.into_iter().enumerate() {
                store.add(cert).map_err(|e| {
                    StoreError::Backend(format!(
                        "sslrootcert={}: certificate {} is not a usable CA certificate: {e}",
                        path.display(),
                        n + 1
                    ))
                })?;
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(StoreError::Backend(format!(
                    "sslmode={} found no system CA certificates: give sslrootcert=PATH",
                    mode.as_str()
                )));
            }
        }
    }
    Ok(store)
}

fn read_pem_certificates(path: &Path) -> StoreResult<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path).map_err(|e| {
        StoreError::Backend(format!(
            "cannot read the CA certificates of sslrootcert={}: {e}",
            path.display()
        ))
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            StoreError::Backend(format!(
                "sslrootcert={} is not a PEM file of certificates: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(StoreError::Backend(format!(
            "sslrootcert={} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The verifier of the modes that do not check the host name: `verify-ca` (and `prefer` or
/// `require` given a CA file) checks the chain up to the roots; `prefer` and `require` without
/// one accept any certificate, as libpq does, so they only keep passive eavesdroppers out.
///
/// Even then the handshake signatures are checked: they prove the server holds the private key
/// of the certificate it sent. Without that, anyone on the path could replay a server's
/// certificate without its key, and SCRAM channel binding (tls-server-end-point, which
/// tokio-postgres uses when the server offers it) would bind the login to a certificate the
/// peer does not own; with it, a relay must show its own certificate, which changes the binding,
/// and the server refuses the login.
#[derive(Debug)]
struct LaxVerifier {
    roots: Option<Arc<RootCertStore>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for LaxVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "s3cret-pw";

    fn err(url: &str) -> String {
        let e = parse(url).err().unwrap().to_string();
        assert!(!e.contains(PW), "{e}");
        e
    }

    #[test]
    fn tls_parameters_are_taken_out_of_the_url_and_the_rest_kept() {
        let p = parse(&format!(
            "postgres://amanah:{PW}@db.example:5433/vault?sslmode=verify-full&\
             application_name=amanah&sslrootcert=%2Fetc%2Fca%20dir%2Fca.pem"
        ))
        .unwrap();
        assert_eq!(p.mode, SslMode::VerifyFull);
        assert_eq!(p.roots, Some(Roots::File("/etc/ca dir/ca.pem".into())));
        assert_eq!(p.config.get_ssl_mode(), WireMode::Require);
        assert_eq!(p.config.get_application_name(), Some("amanah"));
        assert_eq!(p.config.get_password(), Some(PW.as_bytes()));
        assert_eq!(p.config.get_dbname(), Some("vault"));

        let p = parse("postgres://amanah@h/vault").unwrap();
        assert_eq!((p.mode, p.roots), (SslMode::Prefer, None));
        assert_eq!(p.config.get_ssl_mode(), WireMode::Prefer);

        for (mode, wire) in [
            ("disable", WireMode::Disable),
            ("prefer", WireMode::Prefer),
            ("require", WireMode::Require),
            ("verify-ca", WireMode::Require),
        ] {
            let p = parse(&format!("postgresql://amanah@h/vault?sslmode={mode}")).unwrap();
            assert_eq!(p.mode.as_str(), mode);
            assert_eq!(p.config.get_ssl_mode(), wire);
        }
    }

    #[test]
    fn a_password_holding_url_characters_stays_a_password() {
        // tokio-postgres ends the credentials at the first `@`: a `?` before it is not a query.
        let p = parse("postgres://amanah:pa?sslmode=x@h/vault?sslmode=require").unwrap();
        assert_eq!(p.mode, SslMode::Require);
        assert_eq!(p.config.get_password(), Some("pa?sslmode=x".as_bytes()));
    }

    #[test]
    fn key_value_strings_are_read_too() {
        let p = parse(&format!(
            "host=db.example password='{PW} \\' x' sslmode = verify-ca \
             sslrootcert='/etc/my ca.pem' dbname=vault"
        ))
        .unwrap();
        assert_eq!(p.mode, SslMode::VerifyCa);
        assert_eq!(p.roots, Some(Roots::File("/etc/my ca.pem".into())));
        assert_eq!(
            p.config.get_password(),
            Some(format!("{PW} ' x").as_bytes())
        );
        assert_eq!(p.config.get_dbname(), Some("vault"));
        assert_eq!(p.config.get_ssl_mode(), WireMode::Require);
    }

    #[test]
    fn unix_sockets_never_use_tls() {
        for url in [
            "host=/var/run/postgresql dbname=vault sslmode=require",
            "postgres:///vault?host=/run/postgresql&sslmode=verify-full",
        ] {
            let p = parse(url).unwrap();
            assert_eq!(p.config.get_ssl_mode(), WireMode::Disable, "{url}");
            let t = Target::new(p).unwrap();
            assert!(t.tls.is_none(), "{url}");
        }
    }

    #[test]
    fn unknown_modes_and_unsupported_parameters_are_named_without_the_password() {
        let base = format!("postgres://amanah:{PW}@h:5432/vault");
        assert!(err(&format!("{base}?sslmode=verify_full")).contains("sslmode=verify_full"));
        assert!(err(&format!("{base}?sslmode=allow")).contains("sslmode=allow"));
        let e = err(&format!("{base}?sslmode={PW}%20{PW}"));
        assert!(e.contains("this sslmode is not known"), "{e}");
        assert!(err(&format!("{base}?sslcert=/c.pem")).contains("sslcert is not supported"));
        assert!(err(&format!("{base}?sslcrl=/c.pem")).contains("sslcrl is not supported"));
        assert!(err(&format!("{base}?sslrootcert=")).contains("sslrootcert is empty"));
        assert!(err(&format!("{base}?sslmode=require&sslrootcert=system"))
            .contains("sslrootcert=system needs sslmode=verify-full"));
        assert!(err(&format!("password={PW} sslmode=bogus")).contains("sslmode=bogus"));
        assert!(err(&format!("{base}?port=x")).contains("invalid PostgreSQL connection URL"));
    }

    #[test]
    fn an_unreadable_or_empty_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let url = format!(
            "postgres://amanah:{PW}@h/vault?sslmode=verify-full&sslrootcert={}",
            missing.display()
        );
        let e = Target::new(parse(&url).unwrap()).err().unwrap().to_string();
        assert!(
            e.contains(&format!(
                "cannot read the CA certificates of sslrootcert={}: ",
                missing.display()
            )),
            "{e}"
        );
        assert!(!e.contains(PW));

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let url = format!(
            "postgres://amanah@h/vault?sslmode=require&sslrootcert={}",
            empty.display()
        );
        let e = Target::new(parse(&url).unwrap()).err().unwrap().to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
    }
}
