//! The HTTP client of every audit stream request (deliveries, test events, Azure logins). It reaches only
//! addresses [`Vetting`] passed: names through the pinned resolver, IP literals checked before sending.

use std::{error::Error, sync::Arc};

use super::resolver::Vetting;

/// Sends audit stream requests to vetted addresses only.
#[derive(Clone, Debug)]
pub struct Outbound {
    http: reqwest::Client,
    vetting: Vetting,
}

impl Outbound {
    pub fn new(vetting: Vetting) -> Self {
        let http = reqwest::Client::builder()
            // Redirects could lead a destination to an internal address after the check.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would connect for us, to addresses the resolver never saw.
            .no_proxy()
            .dns_resolver(Arc::new(vetting.clone()))
            .build()
            .expect("the HTTP client builds with static settings");
        Self { http, vetting }
    }

    /// A POST to `url`, or why it may not be sent. Errors never contain the URL (it may carry credentials).
    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        let host = parsed.host().ok_or("the URL has no host")?;
        self.vetting.vet_literal(host).map_err(|refused| format!("refused: {refused}"))?;
        Ok(self.http.post(parsed))
    }
}

/// A request failure as one line: every cause, outermost first, the URL left out. Causes come from the
/// connection (and the resolver), never from a destination's answer.
pub fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        cause = inner.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::resolver::SystemLookup;

    #[test]
    fn ip_literals_are_vetted_before_sending() {
        let strict = Outbound::new(Vetting::new(Arc::new(SystemLookup), false));
        for url in ["http://127.0.0.1:9/", "http://[::1]:9/", "http://[::ffff:10.0.0.1]/", "http://2130706433/"] {
            let refused = strict.post(url).unwrap_err();
            assert!(refused.starts_with("refused: "), "{url}: {refused}");
        }
        assert!(strict.post("http://[2606:4700:4700::1111]:9/").is_ok());
        let open = Outbound::new(Vetting::new(Arc::new(SystemLookup), true));
        assert!(open.post("http://127.0.0.1:9/").is_ok());
    }
}
