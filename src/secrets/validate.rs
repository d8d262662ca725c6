//! Input rules for projects, environments, folder paths, keys and values. Every rule names the field it
//! checks so a caller learns exactly what to fix.

use super::SecretsError;

/// Longest allowed secret value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Longest allowed secret key.
pub const MAX_KEY_LEN: usize = 256;
/// Deepest allowed folder path, in segments.
pub const MAX_PATH_DEPTH: usize = 20;
/// Longest allowed folder path segment.
pub const MAX_SEGMENT_LEN: usize = 64;
/// Most secrets in one batch request.
pub const MAX_BATCH: usize = 1000;
/// Longest allowed comment.
pub const MAX_COMMENT_LEN: usize = 1024;
/// Longest allowed project, environment or identity name.
pub const MAX_NAME_LEN: usize = 64;

fn invalid(field: &str, reason: impl Into<String>) -> SecretsError {
    SecretsError::InvalidArgument { field: field.to_owned(), reason: reason.into() }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Normalises a folder path: empty means `/`; a trailing `/` is dropped. Rejects relative paths, empty
/// segments, `.`/`..`, characters outside `[A-Za-z0-9_.-]` and depth over [`MAX_PATH_DEPTH`].
pub fn folder_path(field: &str, raw: &str) -> Result<String, SecretsError> {
    if raw.is_empty() || raw == "/" {
        return Ok("/".to_owned());
    }
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(invalid(field, format!("'{raw}' must be absolute (start with '/')")));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.len() > MAX_PATH_DEPTH {
        return Err(invalid(field, format!("'{raw}' is deeper than {MAX_PATH_DEPTH} folders")));
    }
    for segment in &segments {
        if segment.is_empty() {
            return Err(invalid(field, format!("'{raw}' has an empty segment")));
        }
        if *segment == "." || *segment == ".." {
            return Err(invalid(field, format!("'{raw}' may not contain '.' or '..' segments")));
        }
        if segment.len() > MAX_SEGMENT_LEN || !segment.chars().all(is_name_char) {
            return Err(invalid(
                field,
                format!("segment '{segment}' of '{raw}' must be 1 to {MAX_SEGMENT_LEN} characters of [A-Za-z0-9_.-]"),
            ));
        }
    }
    Ok(format!("/{}", segments.join("/")))
}

/// Checks a secret key: `[A-Za-z0-9_.-]{1,256}`.
pub fn secret_key(field: &str, key: &str) -> Result<(), SecretsError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.chars().all(is_name_char) {
        return Err(invalid(field, format!("must be 1 to {MAX_KEY_LEN} characters of [A-Za-z0-9_.-]")));
    }
    Ok(())
}

/// Checks a secret value's size. The value itself is never echoed.
pub fn secret_value(field: &str, value: &str) -> Result<(), SecretsError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(invalid(field, format!("is {} bytes; the limit is {MAX_VALUE_BYTES}", value.len())));
    }
    Ok(())
}

/// Checks a comment's length.
pub fn comment(field: &str, comment: &str) -> Result<(), SecretsError> {
    if comment.chars().count() > MAX_COMMENT_LEN {
        return Err(invalid(field, format!("is longer than {MAX_COMMENT_LEN} characters")));
    }
    Ok(())
}

/// Checks an environment slug: `[a-z0-9-]{1,64}`.
pub fn environment_slug(field: &str, slug: &str) -> Result<(), SecretsError> {
    let ok = !slug.is_empty()
        && slug.len() <= MAX_NAME_LEN
        && slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        return Err(invalid(field, format!("'{slug}' must be 1 to {MAX_NAME_LEN} characters of [a-z0-9-]")));
    }
    Ok(())
}

/// Checks a display name: 1 to 64 characters, no control characters.
pub fn display_name(field: &str, name: &str) -> Result<(), SecretsError> {
    let len = name.trim().chars().count();
    if len == 0 || len > MAX_NAME_LEN || name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(invalid(field, format!("must be 1 to {MAX_NAME_LEN} printable characters")));
    }
    Ok(())
}

/// Characters that reorder the text around them when shown (a name could then read as another one).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Checks that an id is a UUID; anything else cannot name a stored row.
pub fn id(field: &str, id: &str) -> Result<(), SecretsError> {
    uuid::Uuid::parse_str(id).map(|_| ()).map_err(|_| invalid(field, format!("'{id}' is not a UUID")))
}

/// Checks a batch's size and that its keys are unique.
pub fn batch_keys<'a>(field: &str, keys: impl ExactSizeIterator<Item = &'a str>) -> Result<(), SecretsError> {
    let len = keys.len();
    if len == 0 || len > MAX_BATCH {
        return Err(invalid(field, format!("must hold 1 to {MAX_BATCH} secrets, got {len}")));
    }
    let mut seen = std::collections::HashSet::with_capacity(len);
    for (i, key) in keys.enumerate() {
        secret_key(&format!("{field}[{i}].key"), key)?;
        if !seen.insert(key) {
            return Err(invalid(&format!("{field}[{i}].key"), format!("'{key}' appears more than once")));
        }
    }
    Ok(())
}

/// True when `path` is `folder` itself or lies below it.
pub fn is_within(path: &str, folder: &str) -> bool {
    folder == "/" || path == folder || path.strip_prefix(folder).is_some_and(|rest| rest.starts_with('/'))
}

/// Every ancestor of a normalised path below the root, outermost first: `/a/b` → `["/a", "/a/b"]`.
pub fn ancestors(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        current.push('/');
        current.push_str(segment);
        out.push(current.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise_or_fail_naming_the_field() {
        assert_eq!(folder_path("p", "").unwrap(), "/");
        assert_eq!(folder_path("p", "/api/keys/").unwrap(), "/api/keys");
        for bad in ["relative", "/a/../b", "/a//b", "/./a", "/a b", "/ü"] {
            let err = folder_path("secret_path", bad).unwrap_err();
            assert!(err.to_string().starts_with("secret_path: "), "{bad}: {err}");
        }
        let deep = "/a".repeat(MAX_PATH_DEPTH);
        assert!(folder_path("p", &deep).is_ok());
        assert!(folder_path("p", &format!("{deep}/a")).is_err());
    }

    #[test]
    fn keys_values_and_batches() {
        assert!(secret_key("key", "DB_PASSWORD.v-2").is_ok());
        assert!(display_name("name", "payments ✓").is_ok());
        assert!(display_name("name", "a\u{202e}b").is_err(), "a right-to-left override would disguise a name");
        assert!(secret_key("key", "").is_err());
        assert!(secret_key("key", "has space").is_err());
        assert!(secret_key("key", &"k".repeat(257)).is_err());
        assert!(secret_value("value", &"x".repeat(MAX_VALUE_BYTES)).is_ok());
        assert!(secret_value("value", &"x".repeat(MAX_VALUE_BYTES + 1)).is_err());
        let err = batch_keys("secrets", ["A", "B", "A"].into_iter()).unwrap_err();
        assert!(err.to_string().contains("secrets[2].key"), "{err}");
    }

    #[test]
    fn containment_and_ancestors() {
        assert!(is_within("/api/keys", "/api"));
        assert!(!is_within("/apix", "/api"));
        assert!(is_within("/anything", "/"));
        assert_eq!(ancestors("/a/b"), vec!["/a".to_owned(), "/a/b".to_owned()]);
        assert!(ancestors("/").is_empty());
    }
}
