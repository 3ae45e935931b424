//! The only place load may go: a loopback address. Names are not resolved, so nothing but this
//! machine can be targeted.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{anyhow, bail, Result};

/// Where to send load: a loopback socket address and the Host header for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
}

/// Accepts only `http://` URLs whose host is a loopback address or `localhost`; names are not
/// resolved, so nothing but this machine can be targeted.
pub fn loopback_target(url: &str) -> Result<Target> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("--url must be an http:// URL on a loopback address, e.g. http://127.0.0.1:8080");
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let path = &rest[authority.len()..];
    if !(path.is_empty() || path == "/") {
        bail!("--url must be the server's base URL, without a path");
    }
    if authority.contains('@') {
        bail!("--url must not contain credentials");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| anyhow!("--url has an unclosed IPv6 address"))?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port: u16 = match port {
        None => 80,
        Some(p) => p
            .parse()
            .map_err(|_| anyhow!("--url has an invalid port {p:?}"))?,
    };
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse().map_err(|_| {
            anyhow!("refusing to load-test {host:?}: amanah bench only targets loopback addresses (127.0.0.0/8, ::1, localhost)")
        })?
    };
    if !ip.is_loopback() {
        bail!("refusing to load-test {ip}: amanah bench only targets loopback addresses (127.0.0.0/8, ::1, localhost)");
    }
    Ok(Target {
        addr: SocketAddr::new(ip, port),
        host: authority.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn only_loopback_targets() {
        let t = loopback_target("http://127.0.0.1:8080").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.host, "127.0.0.1:8080");
        assert!(loopback_target("http://127.1.2.3:80/").is_ok());
        assert_eq!(
            loopback_target("http://[::1]:9000").unwrap().addr,
            "[::1]:9000".parse().unwrap()
        );
        assert_eq!(
            loopback_target("http://localhost:1").unwrap().addr,
            "127.0.0.1:1".parse().unwrap()
        );
        for bad in [
            "http://10.0.0.1:8080",
            "http://192.168.1.2",
            "http://[2001:db8::1]:80",
            "http://example.com:8080",
            "http://0.0.0.0:8080",
            "https://127.0.0.1:8443",
            "127.0.0.1:8080",
            "http://127.0.0.1:8080/v1",
            "http://user@127.0.0.1:8080",
            "http://127.0.0.1:port",
        ] {
            assert!(loopback_target(bad).is_err(), "{bad} must be refused");
        }
        let e = loopback_target("http://10.1.2.3:80")
            .unwrap_err()
            .to_string();
        assert!(e.contains("only targets loopback"), "{e}");
    }
}
