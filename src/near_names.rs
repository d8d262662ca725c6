//! "Did you mean …?": the names near a mistyped one (the CLI's name lookups, the audit filter's event types).

/// Most near matches returned.
const MAX_SUGGESTIONS: usize = 5;
/// Longest name compared: the distance costs length × length, and nothing longer is a typo of a short name.
const MAX_COMPARED_LEN: usize = 128;

/// The candidates within two edits of `given`, or containing it, or contained in it (case-insensitive),
/// nearest first, at most [`MAX_SUGGESTIONS`].
pub fn near_matches<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    if given.chars().count() > MAX_COMPARED_LEN {
        return Vec::new();
    }
    let wanted = given.to_lowercase();
    let mut near: Vec<(usize, &str)> = candidates
        .into_iter()
        .filter(|name| name.chars().count() <= MAX_COMPARED_LEN)
        .map(|name| (distance(&wanted, &name.to_lowercase()), name))
        .filter(|(d, name)| *d <= 2 || name.to_lowercase().contains(&wanted) || wanted.contains(&name.to_lowercase()))
        .collect();
    near.sort();
    near.dedup_by(|a, b| a.1 == b.1);
    near.into_iter().take(MAX_SUGGESTIONS).map(|(_, name)| name).collect()
}

/// Levenshtein distance of two short names (by characters).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substituted = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_names_nearest_first() {
        assert_eq!(distance("kitten", "sitting"), 3);
        let names = ["payments", "billing", "pay"];
        assert_eq!(near_matches("paymnts", names), ["payments", "pay"], "two edits, then containment");
        assert_eq!(near_matches("PAY", names), ["pay", "payments"]);
        assert!(near_matches("zzzzzz", names).is_empty());
        assert!(near_matches(&"x".repeat(100_000), names).is_empty(), "a huge name is not compared");
    }
}
