//! How two path globs relate as sets of paths, for the no-escalation rule: whether one covers the other, and
//! whether they can match a common path.
//!
//! Both answers are conservative in the safe direction: `covers` may say "no" for a pair that does cover
//! (e.g. `/svc-*` over `/svc-a*`), and `disjoint` may say "no" for a pair that shares no path; neither ever
//! claims a relation that does not hold. Globs are bounded (32 segments, 64-byte segments), so the table
//! below has at most 33 × 33 cells.

use super::glob::{PathGlob, match_wildcard};

/// Whether `outer` matches every path `inner` matches.
pub fn covers(outer: &PathGlob, inner: &PathGlob) -> bool {
    let a: Vec<&str> = outer.segments().collect();
    let b: Vec<&str> = inner.segments().collect();
    // cover[i][j]: a[i..] covers b[j..]; filled from the ends backwards.
    let mut cover = vec![vec![false; b.len() + 1]; a.len() + 1];
    cover[a.len()][b.len()] = true;
    for i in (0..a.len()).rev() {
        for j in (0..=b.len()).rev() {
            cover[i][j] = if a[i] == "**" {
                // `**` produces nothing here, or absorbs whatever b's next segment produces (a `**` included).
                cover[i + 1][j] || (j < b.len() && cover[i][j + 1])
            } else {
                // One segment of `a` can stand for one segment of `b`, never for a `**` of `b`.
                j < b.len() && b[j] != "**" && segment_covers(a[i], b[j]) && cover[i + 1][j + 1]
            };
        }
    }
    cover[0][0]
}

/// Whether the one-segment pattern `outer` matches every segment `inner` matches.
fn segment_covers(outer: &str, inner: &str) -> bool {
    if inner.contains('*') { outer == inner || outer.bytes().all(|c| c == b'*') } else { match_wildcard(outer, inner) }
}

/// Whether no path can match both globs. `meet[i][j]` says whether some path matches both `a[i..]` and
/// `b[j..]`: a `**` may produce nothing, or one more segment of whatever the other side produces next; two
/// one-segment patterns must be able to match one common segment. Wildcard segments are compared by their
/// literal prefix and suffix only, so two of them may be said to meet when they cannot (`a*b` and `*c`);
/// never the other way round.
pub fn disjoint(a: &PathGlob, b: &PathGlob) -> bool {
    let a: Vec<&str> = a.segments().collect();
    let b: Vec<&str> = b.segments().collect();
    let mut meet = vec![vec![false; b.len() + 1]; a.len() + 1];
    for i in (0..=a.len()).rev() {
        for j in (0..=b.len()).rev() {
            let (x, y) = (a.get(i).copied(), b.get(j).copied());
            meet[i][j] = match (x, y) {
                (None, None) => true,
                (Some("**"), _) if meet[i + 1][j] => true,
                (_, Some("**")) if meet[i][j + 1] => true,
                // Both sides produce one more segment.
                (Some("**"), Some("**")) => false, // nothing new: covered by the cases above
                (Some("**"), Some(_)) => meet[i][j + 1],
                (Some(_), Some("**")) => meet[i + 1][j],
                (Some(x), Some(y)) => segments_may_meet(x, y) && meet[i + 1][j + 1],
                (None, Some(_)) | (Some(_), None) => false,
            };
        }
    }
    !meet[0][0]
}

/// Whether some segment could match both one-segment patterns.
fn segments_may_meet(x: &str, y: &str) -> bool {
    if !x.contains('*') {
        return match_wildcard(y, x);
    }
    if !y.contains('*') {
        return match_wildcard(x, y);
    }
    let prefix = |p: &str| p[..p.find('*').unwrap_or(p.len())].to_owned();
    let suffix = |p: &str| p[p.rfind('*').map_or(0, |i| i + 1)..].to_owned();
    let (px, py, sx, sy) = (prefix(x), prefix(y), suffix(x), suffix(y));
    (px.starts_with(&py) || py.starts_with(&px)) && (sx.ends_with(&sy) || sy.ends_with(&sx))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn g(glob: &str) -> PathGlob {
        PathGlob::parse(glob).unwrap()
    }

    #[test]
    fn cover_table() {
        let cases = [
            ("/**", "/", true),
            ("/**", "/a/**/b", true),
            ("/api/**", "/api", true),
            ("/api/**", "/api/keys/**", true),
            ("/api/**", "/**", false),
            ("/api/*", "/api/**", false),
            ("/api/*", "/api/x", true),
            ("/api/*", "/api/x-*", true),
            ("/svc-*", "/svc-a", true),
            ("/svc-*", "/svc-a*", false),
            ("/a/**/z", "/a/b/c/z", true),
            ("/a/**/z", "/a/b/c", false),
            ("/a/**", "/a/**/**", true),
            ("/", "/", true),
            ("/", "/a", false),
            ("/a", "/", false),
        ];
        for (outer, inner, expected) in cases {
            assert_eq!(covers(&g(outer), &g(inner)), expected, "{outer} covers {inner}");
        }
    }

    #[test]
    fn disjoint_table() {
        let cases = [
            ("/api/**", "/keys/**", true),
            ("/api/**", "/api/keys/**", false),
            ("/api/*", "/api/x/y", true),
            ("/svc-*/keys", "/web/keys", true),
            ("/svc-*/keys", "/svc-a/**", false),
            ("/**", "/anything", false),
            ("/a/*", "/*/b", false),
            ("/api/**", "/", true),
            ("/", "/api/**", true),
            ("/", "/**", false),
            ("/**/x", "/", true),
            ("/api/*", "/api/x/y/**", true),
            ("/svc-*/keys", "/t*/keys", true),
            ("/svc-*/keys", "/s*/keys", false),
            ("/a*b", "/*c", true),
            ("/**/b/**", "/a/**", false),
        ];
        for (a, b, expected) in cases {
            assert_eq!(disjoint(&g(a), &g(b)), expected, "{a} disjoint from {b}");
        }
    }

    fn glob_strategy() -> impl Strategy<Value = PathGlob> {
        let segment = prop_oneof![Just("a"), Just("b"), Just("*"), Just("**"), Just("a*"), Just("*b")];
        proptest::collection::vec(segment, 0..5)
            .prop_filter_map("at most 4 '**'", |segments| PathGlob::parse(&format!("/{}", segments.join("/"))).ok())
    }

    fn path_strategy() -> impl Strategy<Value = String> {
        let segment = prop_oneof![Just("a"), Just("b"), Just("ab"), Just("ba"), Just("c")];
        proptest::collection::vec(segment, 0..6).prop_map(|segments| format!("/{}", segments.join("/")))
    }

    proptest! {
        /// The relations never claim what the matcher contradicts.
        #[test]
        fn relations_agree_with_matching(a in glob_strategy(), b in glob_strategy(), path in path_strategy()) {
            if covers(&a, &b) && b.matches(&path) {
                prop_assert!(a.matches(&path), "{a} covers {b} but not {path}");
            }
            if disjoint(&a, &b) {
                prop_assert!(!(a.matches(&path) && b.matches(&path)), "{a} and {b} both match {path}");
            }
        }
    }
}
