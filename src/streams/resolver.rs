//! The one place destination addresses are decided. The HTTP client resolves names through [`Vetting`], so
//! the addresses that were checked are the addresses it connects to: a name cannot answer a public address
//! to the check and a loopback one to the connection (DNS rebinding).

use std::{
    fmt,
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use super::routable;

/// Longest wait for a destination name to resolve; a stuck resolver must not hold a create or a delivery.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// What a [`Lookup`] returns.
pub type LookupFuture = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;

/// Name resolution for audit stream destinations: the system resolver by default; tests inject their own
/// (`ServeConfig::streams_lookup`) to make a name answer what they need.
pub trait Lookup: Send + Sync + fmt::Debug {
    /// The addresses of `host`, a DNS name (never an IP literal).
    fn lookup(&self, host: String) -> LookupFuture;
}

/// The operating system's resolver.
#[derive(Debug)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: String) -> LookupFuture {
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.map(|a| a.ip()).collect()) })
    }
}

/// Why a destination may not be reached.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(
        "'{host}' is {address}, which is not a globally routable address; set HUSH_STREAMS_ALLOW_PRIVATE=true to allow private destinations"
    )]
    NotGlobal { host: String, address: IpAddr },
    #[error("cannot resolve '{host}': {error}")]
    Unresolved { host: String, error: io::Error },
}

/// Resolves destination names and refuses non-global addresses (unless private destinations are allowed).
#[derive(Clone, Debug)]
pub struct Vetting {
    lookup: Arc<dyn Lookup>,
    allow_private: bool,
}

impl Vetting {
    pub fn new(lookup: Arc<dyn Lookup>, allow_private: bool) -> Self {
        Self { lookup, allow_private }
    }

    fn vet(&self, host: &str, address: IpAddr) -> Result<IpAddr, Refused> {
        if self.allow_private || routable::is_global(address) {
            Ok(address)
        } else {
            Err(Refused::NotGlobal { host: host.to_owned(), address })
        }
    }

    /// Checks the host of a URL: an IP literal directly (the HTTP client does not resolve those), a name by
    /// resolving it; every address must pass. Returns the addresses.
    pub async fn vet_host(&self, host: url::Host<&str>) -> Result<Vec<IpAddr>, Refused> {
        match host {
            url::Host::Ipv4(v4) => Ok(vec![self.vet(&host.to_string(), v4.into())?]),
            url::Host::Ipv6(v6) => Ok(vec![self.vet(&host.to_string(), v6.into())?]),
            url::Host::Domain(name) => self.resolve_name(name).await,
        }
    }

    /// Checks an IP-literal host without any lookup; a name passes here and is vetted when it is resolved.
    pub fn vet_literal(&self, host: url::Host<&str>) -> Result<(), Refused> {
        match host {
            url::Host::Ipv4(v4) => self.vet(&host.to_string(), v4.into()).map(drop),
            url::Host::Ipv6(v6) => self.vet(&host.to_string(), v6.into()).map(drop),
            url::Host::Domain(_) => Ok(()),
        }
    }

    async fn resolve_name(&self, name: &str) -> Result<Vec<IpAddr>, Refused> {
        let unresolved = |error| Refused::Unresolved { host: name.to_owned(), error };
        let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, self.lookup.lookup(name.to_owned()));
        let timed_out = |_| io::Error::new(io::ErrorKind::TimedOut, format!("no answer within {LOOKUP_TIMEOUT:?}"));
        let addresses = lookup.await.map_err(timed_out).and_then(|found| found).map_err(unresolved)?;
        if addresses.is_empty() {
            return Err(unresolved(io::Error::new(io::ErrorKind::NotFound, "no address")));
        }
        // One bad address refuses the name: a destination that also points inside is not a destination.
        addresses.into_iter().map(|address| self.vet(name, address)).collect()
    }
}

impl reqwest::dns::Resolve for Vetting {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let vetting = self.clone();
        Box::pin(async move {
            let addresses = vetting.resolve_name(name.as_str()).await?;
            // The port is replaced by the one of the URL.
            let addrs: reqwest::dns::Addrs = Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}
