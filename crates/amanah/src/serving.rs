//! `serve` and `demo`'s server: the API listener (plain or TLS), the metrics listener, policy
//! reloads and checkpoints while serving.

use std::net::SocketAddr;
use std::sync::Arc;

use amanah_vault::{act, Deployment, Vault};
use anyhow::{anyhow, bail, Context, Result};

use amanah_objects::Objects;

use crate::cli::{operator, DataArgs, MetricsListen, NetArgs};

pub(crate) fn print_demo(
    listen: &SocketAddr,
    admin: &str,
    other: Option<(&str, &str)>,
    vault: &Vault,
    outbox: &std::path::Path,
) {
    let active = vault.policy();
    let purposes = &active.policy.purposes;
    let purpose = purposes
        .keys()
        .find(|p| p.as_str() == "admission")
        .or_else(|| purposes.keys().next())
        .cloned()
        .unwrap_or_default();
    let base = format!("http://{listen}");
    println!(
        "Amanah demo: policy {:?}, listening on {base}",
        active.policy.version
    );
    println!();
    println!("export ADMIN={admin}");
    if let Some((role, key)) = other {
        println!("export OFFICER={key}   # role {role}");
    }
    println!();
    println!("# create a subject (fields must belong to the purpose; values are validated and normalized)");
    println!("curl -s -X POST '{base}/v1/subjects?purpose={purpose}' -H \"Authorization: Bearer $ADMIN\" \\");
    println!("  -H 'content-type: application/json' \\");
    println!("  -d '{{\"fields\": {{\"full_name\": \"Siti Rahma\", \"email\": \"Siti@Example.ID\", \"nik\": \"3174096512990007\"}}}}'");
    println!("# read it back as admin, then as the officer (NIK masked, specific data hidden)");
    println!(
        "curl -s '{base}/v1/subjects/ID?purpose={purpose}' -H \"Authorization: Bearer $ADMIN\""
    );
    if other.is_some() {
        println!("curl -s '{base}/v1/subjects/ID?purpose={purpose}' -H \"Authorization: Bearer $OFFICER\"");
    }
    println!("# search by blind index; the value is normalized first");
    println!("curl -s '{base}/v1/subjects?purpose={purpose}&email=siti@example.id' -H \"Authorization: Bearer $ADMIN\"");
    let document = purposes.get(&purpose).and_then(|p| {
        p.categories
            .iter()
            .find(|c| active.policy.category(c).is_some_and(|c| c.is_document()))
    });
    if let Some(category) = document {
        println!("# upload a document (its type sniffed, encrypted as it streams), list, download");
        println!("curl -s -X PUT '{base}/v1/subjects/ID/documents/{category}?purpose={purpose}' -H \"Authorization: Bearer $ADMIN\" \\");
        println!("  -H 'content-type: application/pdf' --data-binary @file.pdf");
        println!("curl -s '{base}/v1/subjects/ID/documents?purpose={purpose}' -H \"Authorization: Bearer $ADMIN\"");
        println!("curl -s '{base}/v1/subjects/ID/documents/DOCUMENT_ID?purpose={purpose}' -H \"Authorization: Bearer $ADMIN\" -o copy.pdf");
    }
    println!("# the audit trail and its verification");
    println!("curl -s '{base}/v1/audit?subject=ID' -H \"Authorization: Bearer $ADMIN\"");
    println!("curl -s '{base}/v1/audit/verify' -H \"Authorization: Bearer $ADMIN\"");
    println!("curl -s '{base}/openapi.json'");
    println!();
    println!("# the privacy portal: a person signs in with a code sent to their e-mail or phone;");
    println!("# the demo writes each code's message to an outbox directory instead of sending it");
    println!("open {base}/portal   # codes: ls -t {}", outbox.display());
    println!(
        "# the officers' console: sign in with a key holder's API key (the DPO's, the admin's)"
    );
    println!("open {base}/console  # the demo's outbox is shown there too");
    println!();
}

/// The object store of the documents: `--documents`, or the directory `documents` beside the
/// data (beside the key file when the data is in PostgreSQL).
pub(crate) fn documents(spec: Option<&str>, data: &DataArgs) -> Result<Objects> {
    let beside = match &data.data {
        Some(dir) => dir.clone(),
        None => data
            .key_path()?
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default(),
    };
    let objects =
        Objects::open(spec, &beside.join("documents")).map_err(|e| anyhow!("--documents: {e}"))?;
    tracing::info!(documents = %objects.describe(), "documents' objects");
    Ok(objects)
}

/// Serves until interrupted; `checkpoints`: where `--checkpoint-dir` writes (the console shows
/// the latest).
pub(crate) async fn serve(
    deployment: Arc<Deployment>,
    net: NetArgs,
    checkpoints: Option<std::path::PathBuf>,
) -> Result<()> {
    let vault = deployment.own().clone();
    if !net.listen.ip().is_loopback() && net.tls_cert.is_none() && !net.insecure_http {
        bail!(
            "refusing to serve plain HTTP on non-loopback address {}: give --tls-cert and --tls-key, or --insecure-http if TLS ends in front of Amanah",
            net.listen
        );
    }
    let tls = net.tls_cert.is_some();
    let limits = net.limits();
    let portal_config = net.portal.config(tls)?;
    let console = amanah_server::console::Console::start(amanah_server::console::ConsoleConfig {
        secure_cookies: portal_config.secure_cookies,
        outbox: portal_config.delivery.outbox.clone(),
        checkpoints,
        retention_every: (net.retention_interval > 0)
            .then(|| std::time::Duration::from_secs(net.retention_interval)),
    });
    let portal = amanah_server::portal::Portal::start(portal_config)?;
    let app = amanah_server::router_with(
        amanah_server::AppState::hosting(deployment.clone())
            .with_portal(portal)
            .with_console(console),
        &amanah_server::Options { limits, tls },
    );
    // Metrics on their own listener; gauges refreshed and the recorder drained periodically,
    // scraped or not.
    let mut metrics_line = None;
    if let MetricsListen::On(addr) = net.metrics_listen {
        let handle = amanah_server::prometheus()
            .ok_or_else(|| anyhow!("cannot install the metrics recorder"))?;
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on {addr} for metrics (--metrics-listen ADDR, or off)")
        })?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            tracing::warn!(listen = %addr, "metrics are served without a key over plain HTTP on a non-loopback address: restrict access to it");
        }
        metrics_line = Some(format!("metrics on http://{addr}/metrics"));
        amanah_server::spawn_upkeep(
            vault.clone(),
            handle.clone(),
            std::time::Duration::from_secs(5),
        );
        let metrics = amanah_server::metrics_router(handle);
        let header_read_timeout = limits.header_read_timeout;
        tokio::spawn(amanah_server::limits::serve(
            listener,
            metrics,
            header_read_timeout,
            std::future::pending(),
        ));
    }
    // Pick up policies applied by `amanah policy apply` while serving.
    let reloader = vault.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            tick.tick().await;
            if let Err(e) = reloader.reload_policy().await {
                tracing::error!(error = %e, "policy reload failed");
            }
        }
    });
    // Stores of organizations deleted while no server ran (or whose removal failed) go now.
    let purger = deployment.clone();
    tokio::spawn(async move {
        if let Err(e) = purger.purge().await {
            tracing::error!(error = %e, "removing deleted organizations' stores failed");
        }
    });
    // Organizations deleted elsewhere leave this process's memory, idle ones close.
    let keeper = deployment.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
        loop {
            tick.tick().await;
            if let Err(e) = keeper.upkeep(std::time::Duration::from_secs(600)).await {
                tracing::error!(error = %e, "closing idle organizations failed");
            }
        }
    });
    if net.retention_interval > 0 {
        let sweeper = deployment.clone();
        let every = std::time::Duration::from_secs(net.retention_interval);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                // Every organization's retention: the deployment's own first (at start, before
                // anything else is asked of it), then each active tenant's.
                sweep(sweeper.own()).await;
                match sweeper.hosted_vaults().await {
                    Ok(vaults) => {
                        for vault in vaults {
                            sweep(&vault).await;
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "retention sweep failed"),
                }
            }
        });
    }
    match (net.tls_cert, net.tls_key) {
        (Some(cert), Some(key)) => {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .with_context(|| {
                    format!(
                        "cannot load TLS certificate {} / key {}",
                        cert.display(),
                        key.display()
                    )
                })?;
            let listener = std::net::TcpListener::bind(net.listen)
                .with_context(|| format!("cannot listen on {}", net.listen))?;
            listener.set_nonblocking(true)?;
            let addr = listener.local_addr()?;
            tracing::info!(listen = %addr, "serving HTTPS");
            println!("listening on https://{addr}");
            if let Some(line) = &metrics_line {
                println!("{line}");
            }
            let mut server = axum_server::from_tcp_rustls(listener, config);
            server
                .http_builder()
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            server
                .serve(app.into_make_service_with_connect_info::<SocketAddr>())
                .await
                .map_err(|e| anyhow!("server error: {e}"))?;
        }
        _ => {
            let listener = tokio::net::TcpListener::bind(net.listen)
                .await
                .with_context(|| format!("cannot listen on {}", net.listen))?;
            // Registered before the address is announced: an interrupt from then on stops the
            // server gracefully, never by the default action.
            let mut interrupt =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
            let addr = listener.local_addr()?;
            tracing::info!(listen = %addr, "serving HTTP");
            println!("listening on http://{addr}");
            if let Some(line) = &metrics_line {
                println!("{line}");
            }
            amanah_server::limits::serve(listener, app, limits.header_read_timeout, async move {
                interrupt.recv().await;
            })
            .await;
        }
    }
    Ok(())
}

async fn sweep(vault: &Vault) {
    // Objects of documents erased since the last sweep (and of uploads never finished).
    match vault.sweep_document_objects().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "documents' objects deleted"),
        Err(e) => tracing::error!(error = %e, "deleting documents' objects failed"),
    }
    let swept = match operator::<act::RetentionSweep>(vault).await {
        Ok(permit) => vault.retention_sweep(&permit, false, |_| {}).await,
        Err(e) => Err(e),
    };
    match swept {
        Ok(r) => tracing::info!(
            examined = r.examined,
            acted = r.items.len(),
            "retention sweep"
        ),
        Err(e) => tracing::error!(error = %e, "retention sweep failed"),
    }
}
