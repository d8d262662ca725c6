//! Size caps on everything that reaches the audit log, applied in one place when a row is built, so no caller
//! (authenticated or not) can make one entry large. What is cut ends in `…`; metadata that lost anything carries
//! `"truncated": true`.

use serde_json::{Map, Value};

/// User agent header.
pub const MAX_USER_AGENT_BYTES: usize = 512;
/// Actor names.
pub const MAX_NAME_BYTES: usize = 256;
/// Ids (actor, org, project) and client IP addresses.
pub const MAX_ID_BYTES: usize = 128;
/// Each string in the metadata (object keys included).
pub const MAX_METADATA_STRING_BYTES: usize = 1024;
/// Items of each metadata array or object.
pub const MAX_METADATA_ITEMS: usize = 64;
/// Nesting depth of the metadata.
pub const MAX_METADATA_DEPTH: usize = 8;
/// The whole metadata, serialized.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;
/// A whole entry: the caps above plus fixed-size columns (uuid, timestamps, short type names) fit in it.
pub const MAX_ENTRY_BYTES: usize = 16 * 1024;

const _: () = assert!(
    MAX_METADATA_BYTES + MAX_USER_AGENT_BYTES + MAX_NAME_BYTES + 4 * MAX_ID_BYTES + 1024 <= MAX_ENTRY_BYTES,
    "the per-field caps must add up to less than the entry cap"
);

const ELLIPSIS: &str = "…";

/// `text` cut to at most `max` bytes on a character boundary, ending in `…` when cut.
pub fn text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub(ELLIPSIS.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ELLIPSIS}", &text[..end])
}

/// `metadata` within the metadata caps.
pub fn metadata(metadata: Value) -> Value {
    const FLAG: &str = r#","truncated":true"#;
    let mut cut = Cut { budget: MAX_METADATA_BYTES - FLAG.len(), truncated: false };
    let mut capped = cut.value(metadata, 1);
    if cut.truncated {
        match &mut capped {
            Value::Object(map) => {
                map.insert("truncated".into(), Value::Bool(true));
            }
            _ => capped = serde_json::json!({ "truncated": true }),
        }
    }
    // The walk stops once the budget is spent, which can overshoot by one escaped string (`\u0001` takes six
    // bytes): the result is checked, and dropped whole in that rare case.
    if capped.to_string().len() > MAX_METADATA_BYTES {
        capped = serde_json::json!({ "truncated": true });
    }
    capped
}

/// A walk over metadata spending a byte budget.
struct Cut {
    budget: usize,
    truncated: bool,
}

impl Cut {
    fn string(&mut self, s: &str) -> String {
        // Two quotes and a separator around it.
        let capped = text(s, MAX_METADATA_STRING_BYTES.min(self.budget.saturating_sub(3)));
        self.truncated |= capped.len() != s.len();
        self.spend(&Value::String(capped.clone()));
        capped
    }

    /// Spends the serialized size of `value`, plus one byte for the comma or colon after it.
    fn spend(&mut self, value: &Value) {
        self.budget = self.budget.saturating_sub(value.to_string().len() + 1);
    }

    fn value(&mut self, value: Value, depth: usize) -> Value {
        match value {
            Value::String(s) => Value::String(self.string(&s)),
            Value::Array(_) | Value::Object(_) if depth > MAX_METADATA_DEPTH => {
                self.truncated = true;
                Value::String(ELLIPSIS.into())
            }
            Value::Array(items) => {
                self.budget = self.budget.saturating_sub(2);
                let total = items.len();
                let mut kept = Vec::new();
                for item in items.into_iter().take(MAX_METADATA_ITEMS) {
                    if self.budget == 0 {
                        break;
                    }
                    kept.push(self.value(item, depth + 1));
                }
                self.truncated |= kept.len() != total;
                Value::Array(kept)
            }
            Value::Object(map) => {
                self.budget = self.budget.saturating_sub(2);
                let total = map.len();
                let mut kept = Map::new();
                for (key, item) in map.into_iter().take(MAX_METADATA_ITEMS) {
                    if self.budget == 0 {
                        break;
                    }
                    let key = self.string(&key);
                    let item = self.value(item, depth + 1);
                    kept.insert(key, item);
                }
                self.truncated |= kept.len() != total;
                Value::Object(kept)
            }
            scalar => {
                self.spend(&scalar);
                scalar
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn text_is_cut_on_a_character_boundary() {
        assert_eq!(text("short", 10), "short");
        let cut = text(&"é".repeat(100), 10);
        assert!(cut.len() <= 10 && cut.ends_with(ELLIPSIS), "{cut}");
    }

    #[test]
    fn small_metadata_is_untouched() {
        let small = json!({ "environment": "prod", "secretKeys": ["A", "B"], "count": 2, "nested": { "x": null } });
        assert_eq!(metadata(small.clone()), small);
    }

    #[test]
    fn every_cap_applies_and_is_flagged() {
        let mut deep = json!("leaf");
        for _ in 0..20 {
            deep = json!({ "d": deep });
        }
        let capped = metadata(json!({
            "long": "x".repeat(100_000),
            "many": (0..1000).collect::<Vec<_>>(),
            "deep": deep,
        }));
        assert_eq!(capped["truncated"], true);
        assert!(capped["long"].as_str().unwrap().len() <= MAX_METADATA_STRING_BYTES);
        assert_eq!(capped["many"].as_array().unwrap().len(), MAX_METADATA_ITEMS);
        assert!(capped.to_string().contains(ELLIPSIS));
        assert!(capped.to_string().len() <= MAX_METADATA_BYTES);
    }

    #[test]
    fn the_total_is_capped_however_wide_and_deep() {
        let wide = |leaf: Value| json!((0..64).map(|i| (format!("k{i}"), leaf.clone())).collect::<Map<_, _>>());
        let huge = metadata(wide(wide(wide(json!("y".repeat(2000))))));
        assert!(huge.to_string().len() <= MAX_METADATA_BYTES);
        assert!(huge["k0"]["k0"]["k0"].as_str().is_some_and(|s| s.len() > 1000), "keeps what fits: {huge}");
        let escapes = json!((0..64).map(|_| "\u{1}".repeat(1024)).collect::<Vec<_>>());
        assert!(metadata(escapes).to_string().len() <= MAX_METADATA_BYTES);
    }
}
