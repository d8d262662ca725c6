//! Secret-path globs for policy and subscription conditions: `/`, `/api`, `/api/*`, `/api/**`, `/svc-*/keys`.
//!
//! Matching is per path segment: `*` matches any run of characters inside one segment, `**` (a whole
//! segment) matches zero or more segments. So `/api/**` matches `/api` and everything below it, `/api/*`
//! matches the direct children of `/api`, and `/` matches the root folder only. Globs and paths with `.` or
//! `..` segments are rejected before any matching, so no path can climb out of a glob.
//!
//! Globs come from any caller allowed to subscribe or edit roles, and are matched against every event, so
//! their size is bounded ([`MAX_GLOB_LEN`], [`MAX_GLOB_SEGMENTS`], [`MAX_DOUBLE_STARS`], [`MAX_SEGMENT_LEN`])
//! and matching never backtracks: a table over (glob segment, path segment) filled once, each cell a
//! single-backtrack-point wildcard match of two segments of at most 64 characters. The cost is
//! O(glob segments × path segments × 64²) in the worst case, whatever the pattern.

use std::fmt;

/// Longest glob, in bytes.
pub const MAX_GLOB_LEN: usize = 512;
/// Most segments in a glob (folders are at most 20 deep; the rest leaves room for `**`).
pub const MAX_GLOB_SEGMENTS: usize = 32;
/// Most `**` segments in a glob.
pub const MAX_DOUBLE_STARS: usize = 4;
/// Longest glob segment, as for folder names.
pub const MAX_SEGMENT_LEN: usize = 64;

/// Why a glob was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret path glob '{glob}' {reason}")]
pub struct GlobError {
    /// The glob (its first 64 characters when it is too long to echo).
    glob: String,
    reason: String,
}

/// A validated secret-path glob.
#[derive(Clone, PartialEq, Eq, Hash)]
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
        let error = |reason: String| GlobError { glob: glob.chars().take(64).collect(), reason };
        if glob.len() > MAX_GLOB_LEN {
            return Err(error(format!("is {} bytes long; at most {MAX_GLOB_LEN} are allowed", glob.len())));
        }
        let Some(rest) = glob.strip_prefix('/') else {
            return Err(error("must start with '/'".into()));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let segments: Vec<String> =
            if rest.is_empty() { Vec::new() } else { rest.split('/').map(str::to_owned).collect() };
        if segments.len() > MAX_GLOB_SEGMENTS {
            return Err(error(format!("has {} segments; at most {MAX_GLOB_SEGMENTS} are allowed", segments.len())));
        }
        let double_stars = segments.iter().filter(|s| *s == "**").count();
        if double_stars > MAX_DOUBLE_STARS {
            return Err(error(format!("has {double_stars} '**' segments; at most {MAX_DOUBLE_STARS} are allowed")));
        }
        for segment in &segments {
            if !segment_ok(segment) {
                return Err(error(
                    "has an empty, '.', '..' or invalid segment (allowed: [A-Za-z0-9_.-] and '*')".into(),
                ));
            }
            if segment.len() > MAX_SEGMENT_LEN {
                return Err(error(format!("has a segment longer than {MAX_SEGMENT_LEN} characters")));
            }
            if segment.contains("**") && segment != "**" {
                return Err(error("uses '**' inside a segment; '**' must be a whole segment".into()));
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

    /// The glob's segments, `*` and `**` included.
    pub(crate) fn segments(&self) -> impl ExactSizeIterator<Item = &str> {
        self.segments.iter().map(String::as_str)
    }
}

/// Matches glob segments against path segments without backtracking: `reach[j]` is whether the glob's
/// segments so far can produce exactly the first `j` path segments. Each glob segment updates the row once,
/// so the cost is O(pattern × parts) segment comparisons.
fn match_segments(pattern: &[&str], parts: &[&str]) -> bool {
    let mut reach = vec![false; parts.len() + 1];
    reach[0] = true;
    for segment in pattern {
        if *segment == "**" {
            // Zero or more segments: everything at or after the first reachable position is reachable.
            if let Some(first) = reach.iter().position(|r| *r) {
                reach[first..].fill(true);
            }
        } else {
            // One segment: shift right by one where the segment matches; iterate backwards to use old values.
            for j in (1..=parts.len()).rev() {
                reach[j] = reach[j - 1] && match_wildcard(segment, parts[j - 1]);
            }
            reach[0] = false;
        }
        if !reach.iter().any(|r| *r) {
            return false;
        }
    }
    reach[parts.len()]
}

/// `*` matches any run of characters within one segment. Greedy with a single backtrack point (the last
/// `*`): O(pattern × text) at worst, never exponential.
pub(crate) fn match_wildcard(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star_pi, star_ti)) = star {
            // Let the last `*` swallow one more character and retry from just after it.
            pi = star_pi + 1;
            ti = star_ti + 1;
            star = Some((star_pi, star_ti + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
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
    fn wildcards_inside_a_segment() {
        for (pattern, text, expected) in [
            ("*", "", true),
            ("a*", "abc", true),
            ("*c", "abc", true),
            ("a*c", "ac", true),
            ("a*b*c", "axbyc", true),
            ("a*b*c", "axbyb", false),
            ("**", "x", true),
            ("abc", "abd", false),
            ("a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
        ] {
            assert_eq!(match_wildcard(pattern, text), expected, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn size_limits_are_refused_with_the_reason() {
        let too_long = format!("/{}", "a/".repeat(300));
        assert!(PathGlob::parse(&too_long).unwrap_err().to_string().contains("at most 512"));
        let too_many_segments = format!("/{}", ["a"; 33].join("/"));
        assert!(PathGlob::parse(&too_many_segments).unwrap_err().to_string().contains("at most 32 are allowed"));
        let too_many_double_stars = "/**/a/**/b/**/c/**/d/**";
        assert!(PathGlob::parse(too_many_double_stars).unwrap_err().to_string().contains("'**'"));
        let long_segment = format!("/{}", "a".repeat(65));
        assert!(PathGlob::parse(&long_segment).is_err());
        // The reported attack: 4 000 `**` segments. The error echoes only the start of it.
        let attack = format!("{}/zz", "/**".repeat(4000));
        let error = PathGlob::parse(&attack).unwrap_err().to_string();
        assert!(error.len() < 200, "{error}");
        // At the limits, still accepted.
        let at_limit = format!("/{}/**/**/**/**", ["*a*"; 28].join("/"));
        assert!(PathGlob::parse(&at_limit).is_ok());
    }

    /// The worst glob the limits allow, against the deepest path a folder can have, costs well under a
    /// millisecond (this runs unoptimised; the limit is for release builds serving events).
    #[test]
    fn worst_case_matching_is_fast() {
        // A `*` then a long literal run re-scans the text at every position: the wildcard matcher's worst.
        // Segments at the length limit, with every `**` allowed: the costliest glob the limits let through.
        let segment = format!("*{}b", "a".repeat(MAX_SEGMENT_LEN - 2));
        let worst = format!("/**/{segment}/**/{segment}/**/{segment}/**/{segment}");
        let glob = PathGlob::parse(&worst).unwrap();
        let path = format!("/{}", vec!["a".repeat(64); 20].join("/"));
        let started = std::time::Instant::now();
        for _ in 0..100 {
            assert!(!glob.matches(&path));
        }
        let per_match = started.elapsed() / 100;
        // The bar is 1 ms per event; a debug build measures about 20 µs here.
        assert!(per_match < std::time::Duration::from_millis(1), "{per_match:?} per match");
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

    /// The straightforward backtracking matcher the table replaced: exponential at worst, but obviously
    /// right, so it serves as the reference for small inputs.
    fn reference_match(pattern: &[&str], parts: &[&str]) -> bool {
        match pattern.split_first() {
            None => parts.is_empty(),
            Some((&"**", rest)) => (0..=parts.len()).any(|skip| reference_match(rest, &parts[skip..])),
            Some((first, rest)) => parts
                .split_first()
                .is_some_and(|(part, tail)| reference_wildcard(first, part) && reference_match(rest, tail)),
        }
    }

    fn reference_wildcard(pattern: &str, text: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == text,
            Some((head, tail)) => text
                .strip_prefix(head)
                .is_some_and(|rest| (0..=rest.len()).any(|i| reference_wildcard(tail, &rest[i..]))),
        }
    }

    proptest! {
        /// The table matcher agrees with the backtracking reference.
        #[test]
        fn agrees_with_the_reference(
            glob_parts in proptest::collection::vec(prop_oneof![glob_segment(), Just("*b*".to_owned()), Just("b*c".to_owned())], 0..6),
            path_parts in proptest::collection::vec(prop_oneof![segment(), Just("bc".to_owned()), Just("abcb".to_owned())], 0..6),
        ) {
            let pattern: Vec<&str> = glob_parts.iter().map(String::as_str).collect();
            let parts: Vec<&str> = path_parts.iter().map(String::as_str).collect();
            prop_assert_eq!(match_segments(&pattern, &parts), reference_match(&pattern, &parts));
            for (p, t) in pattern.iter().zip(&parts) {
                prop_assert_eq!(match_wildcard(p, t), reference_wildcard(p, t), "{} ~ {}", p, t);
            }
        }

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
