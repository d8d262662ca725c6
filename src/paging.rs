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
}
