//! `--tls-cert/--tls-key` serve HTTPS with rustls; plain HTTP is not answered on that port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use support::{crm_vault, serve};

#[tokio::test]
async fn serves_https_with_the_given_certificate() {
    let (dir, data) = crm_vault();

    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();

    let mut server = serve([
        "--data",
        data.to_str().unwrap(),
        "--metrics-listen",
        "off",
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ])
    .start();
    assert!(server.base().starts_with("https://"), "{}", server.base());
    let addr = server.addr().to_owned();
    let port = addr.rsplit(':').next().unwrap().to_owned();

    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", addr.parse().unwrap())
        .build()
        .unwrap();
    let health = client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await;
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await;
    server.kill();

    let health = health.unwrap();
    assert_eq!(health.status(), 200);
    // Under TLS, browsers are told to stay on HTTPS; the other security headers are there too.
    assert_eq!(
        health.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    assert_eq!(health.headers()["x-content-type-options"], "nosniff");
    assert_eq!(health.headers()["cache-control"], "no-store");
    assert!(
        plain.map(|r| !r.status().is_success()).unwrap_or(true),
        "plain HTTP must not be served"
    );
}
