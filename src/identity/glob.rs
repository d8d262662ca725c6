//! Secret-path globs for policy and subscription conditions: `/`, `/api`, `/api/*`, `/api/**`, `/svc-*/keys`.
//!
//! Matching is per path segment: `*` matches any run of characters inside one segment, `**` (a whole
//! segment) matches zero or more segments. So `/api/**` matches `/api` and everything below it, `/api/*`
//! matches the direct children of `/api`, and `/` matches the root folder only. Globs and paths with `.` or
//! `..` segments are rejected before any matching, so no path can climb out of a glob.

use std::fmt;

/// Why a glob was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret path glob '{glob}' {reason}")]
pub struct GlobError {
    glob: String,
    reason: &'static str,
}

/// A validated secret-path glob.
#[derive(Clone, PartialEq, Eq)]
pub struct PathGlob {
    text: String,
    segments: Vec<String>,
}

impl fmt::Debug for PathGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PathGlob({})", self.text)
    }
}

impl fmt::Display for PathGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn segment_ok(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '*'))
}

impl PathGlob {
    /// Parses an absolute glob; a trailing `/` is ignored.
    pub fn parse(glob: &str) -> Result<Self, GlobError> {
        let error = |reason| GlobError { glob: glob.to_owned(), reason };
        let Some(rest) = glob.strip_prefix('/') else {
            return Err(error("must start with '/'"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let segments: Vec<String> =
            if rest.is_empty() { Vec::new() } else { rest.split('/').map(str::to_owned).collect() };
        for segment in &segments {
            if !segment_ok(segment) {
                return Err(error("has an empty, '.', '..' or invalid segment (allowed: [A-Za-z0-9_.-] and '*')"));
            }
            if segment.contains("**") && segment != "**" {
                return Err(error("uses '**' inside a segment; '**' must be a whole segment"));
            }
        }
        let text = format!("/{}", segments.join("/"));
        Ok(Self { text, segments })
    }

    /// The glob as written (normalised).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a normalised folder path matches. Paths with `.`/`..` or empty segments never match.
    pub fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else { return false };
        let parts: Vec<&str> = if rest.is_empty() { Vec::new() } else { rest.split('/').collect() };
        if parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..") {
            return false;
        }
        let pattern: Vec<&str> = self.segments.iter().map(String::as_str).collect();
        match_segments(&pattern, &parts)
    }
}

fn match_segments(pattern: &[&str], parts: &[&str]) -> bool {
    match pattern.split_first() {
        None => parts.is_empty(),
        Some((&"**", rest)) => (0..=parts.len()).any(|skip| match_segments(rest, &parts[skip..])),
        Some((first, rest)) => {
            parts.split_first().is_some_and(|(part, tail)| match_wildcard(first, part) && match_segments(rest, tail))
        }
    }
}

/// `*` matches any run of characters within one segment.
fn match_wildcard(pattern: &str, text: &str) -> bool {
    let Some((head, tail)) = pattern.split_once('*') else { return pattern == text };
    let Some(mut rest) = text.strip_prefix(head) else { return false };
    if tail.is_empty() {
        return true;
    }
    loop {
        if match_wildcard(tail, rest) {
            return true;
        }
        let mut chars = rest.chars();
        if chars.next().is_none() {
            return false;
        }
        rest = chars.as_str();
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn m(glob: &str, path: &str) -> bool {
        PathGlob::parse(glob).unwrap().matches(path)
    }

    #[test]
    fn table() {
        let cases = [
            ("/", "/", true),
            ("/", "/api", false),
            ("/**", "/", true),
            ("/**", "/a/b/c", true),
            ("/api", "/api", true),
            ("/api", "/api/x", false),
            ("/api/*", "/api/x", true),
            ("/api/*", "/api", false),
            ("/api/*", "/api/x/y", false),
            ("/api/**", "/api", true),
            ("/api/**", "/api/x/y", true),
            ("/api/**", "/apix", false),
            ("/api/**", "/web/api", false),
            ("/svc-*/keys", "/svc-a/keys", true),
            ("/svc-*/keys", "/svc/keys", false),
            ("/a/**/z", "/a/z", true),
            ("/a/**/z", "/a/b/c/z", true),
            ("/a/**/z", "/a/b/c", false),
            ("/api/**", "/api/../etc", false),
        ];
        for (glob, path, expected) in cases {
            assert_eq!(m(glob, path), expected, "{glob} ~ {path}");
        }
    }

    #[test]
    fn rejects_bad_globs() {
        for bad in ["api", "/api/../x", "/./a", "/a//b", "/a/b**", "/a b"] {
            assert!(PathGlob::parse(bad).is_err(), "{bad}");
        }
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![Just("api".to_owned()), Just("web".to_owned()), Just("..".to_owned()), "[a-c]{1,2}"]
    }

    fn glob_segment() -> impl Strategy<Value = String> {
        prop_oneof![segment(), Just("*".to_owned()), Just("**".to_owned()), Just("a*".to_owned())]
    }

    /// The literal prefix of a glob: the segments before its first wildcard.
    fn literal_prefix(glob: &PathGlob) -> Vec<String> {
        glob.segments.iter().take_while(|s| !s.contains('*')).cloned().collect()
    }

    proptest! {
        /// A glob never matches a path outside its literal prefix, and `..` tricks never match.
        #[test]
        fn never_matches_outside_its_prefix(
            glob_parts in proptest::collection::vec(glob_segment(), 0..5),
            path_parts in proptest::collection::vec(segment(), 0..6),
        ) {
            let glob_text = format!("/{}", glob_parts.join("/"));
            let path = format!("/{}", path_parts.join("/"));
            match PathGlob::parse(&glob_text) {
                Err(_) => prop_assert!(glob_parts.iter().any(|s| s == "..")),
                Ok(glob) => {
                    if glob.matches(&path) {
                        prop_assert!(!path_parts.iter().any(|s| s == ".."), "{} matched {}", glob, path);
                        let prefix = literal_prefix(&glob);
                        prop_assert!(path_parts.len() >= prefix.len());
                        prop_assert_eq!(&path_parts[..prefix.len()], &prefix[..]);
                        // Without '**' the depth is fixed by the glob.
                        if !glob.segments.iter().any(|s| s == "**") {
                            prop_assert_eq!(path_parts.len(), glob.segments.len());
                        }
                    }
                }
            }
        }
    }
}
