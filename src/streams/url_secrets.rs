//! The secret parts of a destination URL: its userinfo (`https://user:key@host`) and its query values
//! (`?api_key=…`). Responses show them as [`REDACTED`]; an update that sends a URL back with those parts
//! still redacted keeps the stored ones.

use percent_encoding::percent_decode_str;

use super::config::REDACTED;

fn is_redacted(part: &str) -> bool {
    percent_decode_str(part).decode_utf8_lossy() == REDACTED
}

/// The query's `&`-separated pieces as (key, value); a piece without `=` is all value.
fn pieces(query: &str) -> impl Iterator<Item = (Option<&str>, &str)> {
    query.split('&').map(|piece| match piece.split_once('=') {
        Some((key, value)) => (Some(key), value),
        None => (None, piece),
    })
}

fn join<'a>(pieces: impl Iterator<Item = (Option<&'a str>, String)>) -> String {
    pieces
        .map(|(key, value)| match key {
            Some(key) => format!("{key}={value}"),
            None => value,
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether `url` has anything to redact; a URL without secret parts is shown exactly as stored.
fn has_secret_parts(url: &url::Url) -> bool {
    !url.username().is_empty() || url.password().is_some() || url.query().is_some()
}

/// `url` with its userinfo and query values replaced by [`REDACTED`] (unchanged if it has none or is not a URL).
pub fn redact(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else { return url.to_owned() };
    if !has_secret_parts(&parsed) {
        return url.to_owned();
    }
    if !parsed.username().is_empty() {
        // Only URLs without a host refuse userinfo, and they had none to redact.
        let _ = parsed.set_username(REDACTED);
    }
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(REDACTED));
    }
    if let Some(query) = parsed.query().map(str::to_owned) {
        parsed.set_query(Some(&join(pieces(&query).map(|(key, _)| (key, REDACTED.to_owned())))));
    }
    parsed.into()
}

/// `sent` with each part still [`REDACTED`] taken from `stored`. Only for URLs that are the same once
/// redacted (the caller checks), so the parts line up one to one.
pub fn restore(sent: &str, stored: &str) -> String {
    let (Ok(mut out), Ok(old)) = (url::Url::parse(sent), url::Url::parse(stored)) else { return sent.to_owned() };
    if !has_secret_parts(&out) {
        return sent.to_owned();
    }
    if is_redacted(out.username()) {
        let _ = out.set_username(old.username());
    }
    if out.password().is_some_and(is_redacted) {
        let _ = out.set_password(old.password());
    }
    if let (Some(query), Some(old_query)) = (out.query().map(str::to_owned), old.query()) {
        let restored = pieces(&query)
            .zip(pieces(old_query))
            .map(|((key, value), (_, old_value))| (key, if is_redacted(value) { old_value } else { value }.to_owned()));
        out.set_query(Some(&join(restored)));
    }
    out.into()
}

/// Whether a part of `url` is still [`REDACTED`].
pub fn has_redacted(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else { return false };
    is_redacted(parsed.username())
        || parsed.password().is_some_and(is_redacted)
        || parsed.query().is_some_and(|q| pieces(q).any(|(_, value)| is_redacted(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORED: &str = "https://robot:pa%2Fss@logs.example:8443/in?api_key=k3y&team=ops&flag";

    #[test]
    fn userinfo_and_query_values_are_redacted() {
        let shown = redact(STORED);
        assert_eq!(
            shown,
            "https://%5BREDACTED%5D:%5BREDACTED%5D@logs.example:8443/in?api_key=[REDACTED]&team=[REDACTED]&[REDACTED]"
        );
        assert!(has_redacted(&shown) && !has_redacted(STORED));
        assert_eq!(redact("https://logs.example"), "https://logs.example", "nothing secret: shown as stored");
        assert_eq!(redact(&shown), shown, "redacting twice changes nothing");
    }

    #[test]
    fn redacted_parts_round_trip() {
        assert_eq!(restore(&redact(STORED), STORED), STORED);
        // Literal brackets, as a person would type them back, work too.
        let typed = "https://[REDACTED]:[REDACTED]@logs.example:8443/in?api_key=[REDACTED]&team=dev&[REDACTED]";
        assert_eq!(restore(typed, STORED), "https://robot:pa%2Fss@logs.example:8443/in?api_key=k3y&team=dev&flag");
    }
}
