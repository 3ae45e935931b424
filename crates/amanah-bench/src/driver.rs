//! Sending the load: one HTTP/1.1 keep-alive connection per task, each running the workload
//! as fast as the server answers or paced to its share of `--rate`, with a latency histogram
//! per connection; and the setup requests that create subjects or find their ids.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::BodyExt;
use hyper::client::conn::http1;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::report::histogram;
use crate::workload::{Body, Op, Plan, Rng, Workload};

type Sender = http1::SendRequest<Body>;

async fn connect(addr: SocketAddr) -> Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends one request (reconnecting if the connection was closed); the body if the status is
/// the expected one.
async fn send(
    sender: &mut Option<Sender>,
    addr: SocketAddr,
    req: Request<Body>,
    expect: StatusCode,
) -> std::result::Result<Bytes, String> {
    if sender.as_ref().is_none_or(|s| s.is_closed()) {
        *sender = Some(connect(addr).await.map_err(|e| e.to_string())?);
    }
    let Some(s) = sender.as_mut() else {
        return Err("no connection".into());
    };
    let outcome = async {
        s.ready().await?;
        let resp = s.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok::<_, hyper::Error>((status, body))
    }
    .await;
    match outcome {
        Ok((status, body)) if status == expect => Ok(body),
        Ok((status, _)) => Err(format!("HTTP {status}")),
        Err(e) => {
            *sender = None;
            Err(format!("transport: {e}"))
        }
    }
}

/// A lookup must find its subject: an empty result is a wrong key, not a success.
fn found(op: Op, body: &[u8]) -> std::result::Result<(), String> {
    if op == Op::Lookup && body.starts_with(br#"{"subjects":[]"#) {
        return Err("lookup found no subject".into());
    }
    Ok(())
}

/// What one connection measured.
pub struct Tally {
    pub hist: Histogram<u64>,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// When a connection sends: as soon as the previous answer is in, or every `interval`.
#[derive(Clone, Copy)]
pub struct Window {
    /// Requests that start before this are warm-up, not counted.
    pub measure_from: Instant,
    /// No request starts at or after this; answers after it are not counted.
    pub until: Instant,
    pub interval: Option<Duration>,
}

/// Runs `workload` on one connection for the window.
pub async fn connection(
    plan: Arc<Plan>,
    workload: Workload,
    index: u64,
    window: Window,
) -> Result<Tally> {
    let mut rng = Rng::from_clock(index);
    let mut tally = Tally {
        hist: histogram()?,
        ok: 0,
        errors: 0,
        first_error: None,
    };
    let mut sender = None;
    // Paced connections start at staggered offsets so the offered load is even.
    let mut scheduled = Instant::now()
        + window.interval.map_or(Duration::ZERO, |i| {
            i.mul_f64((rng.below(1_000) as f64) / 1_000.0)
        });
    loop {
        let start = match window.interval {
            Some(i) => {
                tokio::time::sleep_until(scheduled.into()).await;
                let at = scheduled;
                scheduled += i;
                at
            }
            None => Instant::now(),
        };
        if start >= window.until {
            break;
        }
        let op = workload.next_op(&mut rng);
        let Some((req, expect)) = plan.request(op, &mut rng)? else {
            break;
        };
        let result = send(&mut sender, plan.target.addr, req, expect)
            .await
            .and_then(|body| found(op, &body));
        let end = Instant::now();
        if start < window.measure_from || end > window.until {
            continue;
        }
        match result {
            Ok(_) => {
                tally.ok += 1;
                // Latency counts from the scheduled time: a stalled server is not hidden.
                tally
                    .hist
                    .saturating_record((end - start).as_micros().max(1) as u64);
            }
            Err(e) => {
                tally.errors += 1;
                if tally.first_error.is_none() {
                    tally.first_error = Some(e);
                }
            }
        }
    }
    Ok(tally)
}

/// How setup finds a subject's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// Create subjects `0..count` over HTTP (`--url`): the id is in the 201's body.
    Create,
    /// Search each of subjects `0..count` by e-mail (already imported): the id is the only
    /// match's.
    Find,
}

/// Creates or finds subjects `0..count` over `connections` connections; their ids, in order.
pub async fn setup_ids(
    plan: &Arc<Plan>,
    setup: Setup,
    count: u64,
    connections: usize,
) -> Result<Vec<String>> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        let plan = plan.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut sender = None;
            let mut out = Vec::new();
            loop {
                let m = next.fetch_add(1, Ordering::Relaxed);
                if m >= count {
                    break;
                }
                let (req, expect) = match setup {
                    Setup::Create => (plan.create_request(m)?, StatusCode::CREATED),
                    Setup::Find => (plan.lookup_request(m)?, StatusCode::OK),
                };
                let body = send(&mut sender, plan.target.addr, req, expect)
                    .await
                    .map_err(|e| anyhow!("setting up subject {m}: {e}"))?;
                let v: Value = serde_json::from_slice(&body)?;
                let id = match setup {
                    Setup::Create => &v["id"],
                    Setup::Find => &v["subjects"][0]["id"],
                };
                let id = id
                    .as_str()
                    .ok_or_else(|| anyhow!("no id for subject {m} in the server's answer"))?;
                out.push((m, id.to_owned()));
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut all = Vec::with_capacity(count as usize);
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_by_key(|(m, _)| *m);
    Ok(all.into_iter().map(|(_, id)| id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookup_that_finds_nobody_is_an_error() {
        assert_eq!(
            found(Op::Lookup, br#"{"subjects":[]}"#),
            Err("lookup found no subject".into())
        );
        assert_eq!(found(Op::Lookup, br#"{"subjects":[{"id":"x"}]}"#), Ok(()));
        assert_eq!(found(Op::Get, br#"{"subjects":[]}"#), Ok(()));
    }
}
