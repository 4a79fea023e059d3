//! The `fetch` tool: HTTP GET of a public URL, off unless `tools.fetch.enabled`. The SSRF guard
//! refuses loopback, private, link-local and other non-public addresses (unless the host is in
//! `tools.fetch.allow_hosts`), checked on the address the name resolves to (and then connected
//! to, so a second lookup cannot point elsewhere) and again on every redirect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use gateway_config::Fetch;
use reqwest::Url;
use serde_json::{json, Value};

pub async fn get(url: &str, config: &Fetch) -> Result<Value, String> {
    let timeout = Duration::from_millis(config.timeout_ms.get());
    tokio::time::timeout(timeout, follow(url, config))
        .await
        .map_err(|_| format!("fetch {url}: no complete answer within {} ms", timeout.as_millis()))?
}

async fn follow(url: &str, config: &Fetch) -> Result<Value, String> {
    let mut url = Url::parse(url)
        .map_err(|e| format!("fetch: {} is not a URL: {e}", gateway_proto::quote::short(url)))?;
    let mut redirects = 0;
    loop {
        let (host, addr) = guard(&url, &config.allow_hosts, "tools.fetch.allow_hosts", "fetch").await?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(&host, addr)
            .user_agent(concat!("gatewayd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("fetch: cannot build a client: {e}"))?;
        let mut response =
            client.get(url.clone()).send().await.map_err(|e| {
                format!("fetch {url}: {}", crate::runtime::providers::upstream::error_chain(&e))
            })?;
        let status = response.status();
        if status.is_redirection() {
            let location = response.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok());
            let Some(location) = location else {
                return Err(format!("fetch {url}: {status} without a Location"));
            };
            if redirects >= config.max_redirects.get() {
                return Err(format!(
                    "fetch {url}: more than {} redirects (tools.fetch.max_redirects)",
                    config.max_redirects.get()
                ));
            }
            url = url.join(location).map_err(|e| format!("fetch {url}: bad redirect {location:?}: {e}"))?;
            redirects += 1;
            continue;
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let max = config.max_bytes.get() as usize;
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("fetch {url}: {}", crate::runtime::providers::upstream::error_chain(&e)))?
        {
            let room = max - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        return Ok(json!({
            "url": url.as_str(),
            "status": status.as_u16(),
            "contentType": content_type,
            "body": String::from_utf8_lossy(&body),
            "truncated": truncated,
        }));
    }
}

/// The host and the address to connect to, if the URL may be reached: http(s), no
/// credentials, and every address it resolves to public unless the host is in `allow_hosts`
/// (the key named `allow_key`). `what` starts the errors (`fetch`, `cron delivery`).
pub async fn guard(
    url: &Url,
    allow_hosts: &[String],
    allow_key: &str,
    what: &str,
) -> Result<(String, SocketAddr), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{what} {url}: only http and https URLs"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{what} {url}: URLs with credentials are refused"));
    }
    let host = url.host_str().ok_or_else(|| format!("{what} {url}: no host"))?.to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let allowed = allow_hosts.iter().any(|h| h.eq_ignore_ascii_case(bare));
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| format!("{what} {url}: cannot resolve {bare}: {e}"))?
            .collect(),
    };
    let first = *addrs.first().ok_or_else(|| format!("{what} {url}: {bare} resolves to no address"))?;
    if !allowed {
        // Every address must be public: a name with one private address could be made to use it.
        if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
            return Err(format!(
                "{what} {url}: refused: {bare} resolves to {} (loopback, private, link-local or otherwise not public); \
                 add the host to {allow_key} to allow it",
                bad.ip()
            ));
        }
    }
    Ok((bare.to_owned(), first))
}

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0];
            if nat64 {
                return is_public_v4(Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                ));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || v6 == Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1)
                || s[0..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (b & 0xc0) == 64) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b & 0xfe) == 18) // benchmarking
        || a >= 240) // reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["1.1.1.1", "93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    async fn check(url: &Url, allow: &[&str]) -> Result<(String, std::net::SocketAddr), String> {
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        guard(url, &allow, "tools.fetch.allow_hosts", "fetch").await
    }

    #[tokio::test]
    async fn loopback_names_and_literals_are_refused_unless_allowed() {
        for url in ["http://127.0.0.1:9/", "http://localhost:9/", "http://[::1]:9/", "http://0x7f000001/"] {
            let err = check(&Url::parse(url).unwrap(), &[]).await.unwrap_err();
            assert!(err.contains("refused") && err.contains("allow_hosts"), "{url}: {err}");
        }
        let err = check(&Url::parse("file:///etc/passwd").unwrap(), &[]).await.unwrap_err();
        assert!(err.contains("only http"), "{err}");
        let err = check(&Url::parse("http://u:p@1.1.1.1/").unwrap(), &[]).await.unwrap_err();
        assert!(err.contains("credentials"), "{err}");
        let ok = check(&Url::parse("http://127.0.0.1:9/").unwrap(), &["127.0.0.1"]).await.unwrap();
        assert_eq!(ok.1, "127.0.0.1:9".parse().unwrap());
    }
}
