//! Where a request came from: client IP (honouring `X-Forwarded-For` only from trusted proxies) and user agent.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

/// Client details every audit entry carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    pub ip: String,
    pub user_agent: String,
    /// `cli`, `web`, `grpc-python`, `grpc-other`, `curl` or `other`.
    pub user_agent_type: &'static str,
}

/// Proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpAddr>);

/// Every kind [`user_agent_type`] tells apart (and the audit filter accepts).
pub const USER_AGENT_TYPES: [&str; 6] = ["cli", "web", "curl", "grpc-python", "grpc-other", "other"];

/// Classifies a request's client from its headers: one of [`USER_AGENT_TYPES`].
pub fn user_agent_type(headers: &HeaderMap) -> &'static str {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    let user_agent = header("user-agent");
    let content_type = header("content-type");
    if user_agent.starts_with("hush-cli/") {
        "cli"
    } else if content_type.starts_with("application/grpc-web") || headers.contains_key("x-grpc-web") {
        "web"
    } else if user_agent.starts_with("curl/") {
        "curl"
    } else if user_agent.contains("grpc-python") {
        "grpc-python"
    } else if user_agent.contains("grpc") || user_agent.contains("tonic") || user_agent.contains("connect") {
        "grpc-other"
    } else {
        "other"
    }
}

impl RequestMeta {
    /// The request's details; `peer` is the TCP peer, if known.
    pub fn from_request(headers: &HeaderMap, peer: Option<SocketAddr>, trusted: &TrustedProxies) -> Self {
        let peer_ip = peer.map(|p| p.ip());
        let ip = match peer_ip {
            Some(peer) if trusted.0.contains(&peer) => Some(forwarded_client(headers, peer, trusted)),
            peer => peer,
        };
        let user_agent = headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
        Self {
            ip: ip.map(|ip| ip.to_string()).unwrap_or_default(),
            user_agent: super::caps::text(user_agent, super::caps::MAX_USER_AGENT_BYTES),
            user_agent_type: user_agent_type(headers),
        }
    }
}

/// The client behind a trusted proxy `peer`: the rightmost `X-Forwarded-For` entry that is not itself a trusted
/// proxy. Each proxy appends the address it received from, so entries left of the first untrusted one were
/// written by the client and prove nothing. An unparsable entry ends the walk at the last trusted hop.
fn forwarded_client(headers: &HeaderMap, peer: IpAddr, trusted: &TrustedProxies) -> IpAddr {
    let entries = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
    let mut client = peer;
    for entry in entries.collect::<Vec<_>>().into_iter().rev() {
        match entry.trim().parse::<IpAddr>() {
            Ok(hop) if trusted.0.contains(&hop) => client = hop,
            Ok(hop) => return hop,
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap())).collect()
    }

    #[test]
    fn classifies_clients() {
        assert_eq!(user_agent_type(&headers(&[("user-agent", "hush-cli/0.1.0 tonic/0.14")])), "cli");
        assert_eq!(user_agent_type(&headers(&[("content-type", "application/grpc-web+proto")])), "web");
        assert_eq!(user_agent_type(&headers(&[("user-agent", "curl/8.5.0")])), "curl");
        assert_eq!(user_agent_type(&headers(&[("user-agent", "grpc-python/1.66 grpc-c/43")])), "grpc-python");
        assert_eq!(user_agent_type(&headers(&[("user-agent", "grpc-go/1.60")])), "grpc-other");
        assert_eq!(user_agent_type(&headers(&[("user-agent", "Mozilla/5.0")])), "other");
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 10.0.0.1")]);
        let proxy: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let trusted = TrustedProxies(vec![proxy.ip()]);
        assert_eq!(RequestMeta::from_request(&h, Some(proxy), &trusted).ip, "203.0.113.9");
        assert_eq!(RequestMeta::from_request(&h, Some(proxy), &TrustedProxies::default()).ip, "10.0.0.1");
    }

    #[test]
    fn forwarded_for_takes_the_rightmost_untrusted_entry() {
        let proxy: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let trusted = TrustedProxies(vec![proxy.ip(), "10.0.0.2".parse().unwrap()]);
        let ip = |xff: &str| RequestMeta::from_request(&headers(&[("x-forwarded-for", xff)]), Some(proxy), &trusted).ip;
        // The client forged the leftmost entry; the proxy appended the real one.
        assert_eq!(ip("1.2.3.4, 203.0.113.9"), "203.0.113.9");
        assert_eq!(ip("1.2.3.4, 203.0.113.9, 10.0.0.2"), "203.0.113.9");
        assert_eq!(ip("10.0.0.2"), "10.0.0.2");
        assert_eq!(ip("203.0.113.9, not-an-ip"), "10.0.0.1");
        assert_eq!(ip("203.0.113.9, not-an-ip, 10.0.0.2"), "10.0.0.2");
    }
}
