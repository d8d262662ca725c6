//! How client commands print, chosen once with `--output` (or `HUSH_OUTPUT`):
//! - `text` (the default): the lines each command documents, tab-separated, for scripts and pipes;
//! - `table`: the same columns aligned under a header, for people;
//! - `json`: protobuf's JSON mapping (lowerCamelCase names, RFC 3339 times, every field present), printed by
//!   prost-reflect from the message the server sent, one object per line for listings.

use std::sync::{LazyLock, OnceLock};

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

use crate::pb;

/// An output style.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    #[default]
    Text,
    Table,
    Json,
}

static CHOSEN: OnceLock<Output> = OnceLock::new();

static POOL: LazyLock<DescriptorPool> =
    LazyLock::new(|| DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET).expect("build.rs wrote a valid descriptor set"));

/// Sets the style for this run (the first call wins).
pub fn choose(output: Output) {
    let _ = CHOSEN.set(output);
}

/// The style of this run.
pub fn chosen() -> Output {
    CHOSEN.get().copied().unwrap_or_default()
}

/// Writes results to stdout. A reader that went away (`hush … | head`) ends the command quietly with exit 0,
/// as it ends `cat`: what it wanted was read. (A panic, as `print!` gives, would be noise.)
pub fn write(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_fmt(text).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("hush: writing the output: {error}");
            std::process::exit(1);
        }
    }
}

/// A protobuf time as RFC 3339 in UTC (`Z`) to `precision`, or empty when unset or out of range.
pub fn time(ts: Option<prost_types::Timestamp>, precision: chrono::SecondsFormat) -> String {
    ts.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
        .map(|t| t.to_rfc3339_opts(precision, true))
        .unwrap_or_default()
}

/// Reads `input` to its end, but no more than `limit` bytes (and one to tell): a larger input is an error
/// naming `what`, however large it is.
pub fn read_capped(input: impl std::io::Read, limit: usize, what: &str) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    use std::io::Read;
    let mut bytes = Vec::new();
    input.take(limit as u64 + 1).read_to_end(&mut bytes).with_context(|| format!("reading {what}"))?;
    anyhow::ensure!(bytes.len() <= limit, "{what} is larger than {limit} bytes");
    Ok(bytes)
}

/// `n thing` or `n things`.
pub fn count(n: impl Into<i64>, thing: &str) -> String {
    let n = n.into();
    if n == 1 { format!("1 {thing}") } else { format!("{n} {thing}s") }
}

/// `message` in protobuf's JSON mapping.
pub fn proto_json<M: prost::Message + prost::Name>(message: &M) -> serde_json::Value {
    let descriptor = POOL.get_message_by_name(&M::full_name()).expect("every hush message is in the descriptor set");
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .expect("a message decodes with its own descriptor");
    let options = SerializeOptions::new().skip_default_fields(false);
    dynamic.serialize_with_options(serde_json::value::Serializer, &options).expect("JSON values always serialize")
}

/// A message from its protobuf JSON (either field name form), unknown fields refused.
pub fn from_proto_json<M: prost::Message + prost::Name + Default>(value: serde_json::Value) -> anyhow::Result<M> {
    let descriptor = POOL.get_message_by_name(&M::full_name()).expect("every hush message is in the descriptor set");
    let dynamic = DynamicMessage::deserialize(descriptor, value)?;
    Ok(dynamic.transcode_to::<M>()?)
}

/// Prints one message: its JSON with `--output json`, else `text` (computed only then).
pub fn single<M: prost::Message + prost::Name>(message: &M, text: impl FnOnce() -> String) {
    match chosen() {
        Output::Json => outln!("{}", proto_json(message)),
        Output::Text | Output::Table => outln!("{}", text()),
    }
}

/// A listing printed as it comes: JSON lines and text lines at once, a table (whose widths need every row)
/// at the end.
pub struct Listing {
    header: &'static [&'static str],
    rows: Vec<Vec<String>>,
}

impl Listing {
    /// A listing whose table has these column titles.
    pub fn new(header: &'static [&'static str]) -> Self {
        Self { header, rows: Vec::new() }
    }

    /// One item: `message` for JSON, `columns` (as many as the header) for text and table.
    pub fn item<M: prost::Message + prost::Name>(&mut self, message: &M, columns: Vec<String>) {
        match chosen() {
            Output::Json => outln!("{}", proto_json(message)),
            Output::Text => outln!("{}", columns.join("\t")),
            Output::Table => self.rows.push(columns),
        }
    }

    /// Prints the table, when that is the style.
    pub fn finish(self) {
        if chosen() == Output::Table {
            outln!("{}", table(self.header, &self.rows).trim_end_matches('\n'));
        }
    }
}

/// Columns padded to their widest cell (in characters), separated by two spaces; no trailing spaces.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            out.push_str(cell);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(width - cell.chars().count() + 2));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_json_is_camel_case_with_every_field() {
        let project = pb::Project {
            id: "p".into(),
            org_id: "o".into(),
            name: String::new(),
            create_time: Some(prost_types::Timestamp { seconds: 0, nanos: 0 }),
        };
        let json = proto_json(&project);
        assert_eq!(
            json,
            serde_json::json!({"id": "p", "orgId": "o", "name": "", "createTime": "1970-01-01T00:00:00Z"})
        );
    }

    #[test]
    fn tables_align_on_the_widest_cell() {
        let rows = vec![vec!["ünï".to_owned(), "x".to_owned()], vec!["a".to_owned(), "yy".to_owned()]];
        assert_eq!(table(&["NAME", "ID"], &rows), "NAME  ID\nünï   x\na     yy\n");
    }
}
