//! Page sizes of List RPCs, the same everywhere.

/// Page size when the request gives none.
pub const DEFAULT_PAGE_SIZE: u64 = 100;
/// Largest page a caller may ask for; larger requests get this many.
pub const MAX_PAGE_SIZE: u64 = 1000;

/// The page size in effect for a request's `page_size` (0 = default); negative sizes are an error.
pub fn page_size(requested: i32) -> Result<u64, &'static str> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE),
        1.. => Ok((requested as u64).min(MAX_PAGE_SIZE)),
        _ => Err("must not be negative"),
    }
}

/// The id a page starts after, from a request's `page_token` of a list ordered by UUID ids: `None` for the
/// first page; an error unless it is an id, as every next-page token of such a list is.
pub fn id_after(page_token: &str) -> Result<Option<&str>, &'static str> {
    match page_token {
        "" => Ok(None),
        token if uuid::Uuid::parse_str(token).is_ok() => Ok(Some(token)),
        _ => Err("is not a token from a previous page"),
    }
}

/// One page out of `rows`, read with a limit of `size + 1`: the first `size` of them, and the token of the next
/// page (`token` of the last one kept) when the extra row says that more follow.
pub fn split_page<T>(mut rows: Vec<T>, size: u64, token: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
    let keep = usize::try_from(size).unwrap_or(usize::MAX);
    let more = rows.len() > keep;
    rows.truncate(keep);
    let next = if more { rows.last().map(token) } else { None };
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(page_size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(7), Ok(7));
        assert_eq!(page_size(5000), Ok(MAX_PAGE_SIZE));
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn id_tokens() {
        assert_eq!(id_after(""), Ok(None));
        let id = "0190d5a8-7c2e-7000-8000-000000000001";
        assert_eq!(id_after(id), Ok(Some(id)));
        assert!(id_after("garbage").is_err());
    }

    #[test]
    fn pages() {
        let token = |n: &u32| n.to_string();
        assert_eq!(split_page(vec![1, 2, 3], 2, token), (vec![1, 2], Some("2".to_owned())));
        assert_eq!(split_page(vec![1, 2], 2, token), (vec![1, 2], None));
        assert_eq!(split_page(Vec::new(), 2, token), (Vec::new(), None));
    }
}
