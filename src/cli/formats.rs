//! Printing secrets for other programs: dotenv, shell, JSON and YAML. Every format round-trips any value
//! byte for byte (newlines, quotes, `$`, `=`, `#`, unicode, leading dashes).

use anyhow::bail;

/// A format of `hush export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `KEY=value` lines; values quoted when they need it (single quotes, or double quotes with `\\`, `\"`,
    /// `\n`, `\r`, `\t` escapes); no interpolation.
    Dotenv,
    /// `export KEY='value'` lines for `eval` in POSIX shells.
    Shell,
    /// One JSON object, keys in listing order.
    Json,
    /// `KEY: "value"` lines (YAML double-quoted scalars).
    Yaml,
}

/// Whether `key` can be an environment (and shell) variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_variable_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Refuses keys that are not variable names, naming them all (for formats and programs that need names).
pub fn require_variable_names<'a>(keys: impl IntoIterator<Item = &'a str>) -> anyhow::Result<()> {
    let bad: Vec<&str> = keys.into_iter().filter(|k| !is_variable_name(k)).collect();
    if !bad.is_empty() {
        bail!("not valid variable names (letters, digits and _, not starting with a digit): {}", bad.join(", "));
    }
    Ok(())
}

/// `value` as a dotenv value: bare when plain, else single-quoted, else double-quoted with escapes.
pub fn dotenv_value(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-.,/:@+%".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        return value.to_owned();
    }
    if !value.contains(['\'', '\n', '\r']) {
        return format!("'{value}'");
    }
    let mut quoted = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// `value` single-quoted for a POSIX shell (a `'` becomes `'\''`).
pub fn shell_value(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// The whole document of `secrets` (key, value) in `format`.
pub fn render(format: Format, secrets: &[(String, String)]) -> anyhow::Result<String> {
    let mut out = String::new();
    match format {
        Format::Dotenv => {
            for (key, value) in secrets {
                out.push_str(&format!("{key}={}\n", dotenv_value(value)));
            }
        }
        Format::Shell => {
            require_variable_names(secrets.iter().map(|(k, _)| k.as_str()))?;
            for (key, value) in secrets {
                out.push_str(&format!("export {key}={}\n", shell_value(value)));
            }
        }
        Format::Json => {
            let object: serde_json::Map<String, serde_json::Value> =
                secrets.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
            out = serde_json::to_string_pretty(&object)? + "\n";
        }
        Format::Yaml => {
            // A JSON string is a valid YAML double-quoted scalar (same escapes), whatever it holds.
            for (key, value) in secrets {
                out.push_str(&format!("{}: {}\n", serde_json::to_string(key)?, serde_json::to_string(value)?));
            }
        }
    }
    Ok(out)
}

/// Reads a dotenv document: `KEY=value` lines (an `export ` prefix allowed), `#` comments and blank lines;
/// values bare (up to a ` #` comment), single-quoted (taken as they are) or double-quoted (with `\\`, `\"`,
/// `\n`, `\r`, `\t` escapes); quoted values may span lines. No interpolation. A key given twice is refused.
pub fn parse_dotenv(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    // Editors on Windows start UTF-8 files with a byte order mark; it is not part of the first key.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut secrets: Vec<(String, String)> = Vec::new();
    // Keys seen so far: a duplicate check that stays linear however long the file is.
    let mut seen = std::collections::HashSet::new();
    let mut rest = text;
    let mut line = 1;
    loop {
        // Skip blank lines and comments.
        let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        line += rest[..rest.len() - trimmed.len()].matches('\n').count();
        rest = trimmed;
        if rest.is_empty() {
            return Ok(secrets);
        }
        if rest.starts_with('#') {
            rest = rest.find('\n').map_or("", |end| &rest[end..]);
            continue;
        }
        let statement = rest.strip_prefix("export ").unwrap_or(rest);
        let Some(equals) = statement.find('=').filter(|&at| !statement[..at].contains('\n')) else {
            bail!("line {line}: expected KEY=value");
        };
        let key = statement[..equals].trim().to_owned();
        if key.is_empty() {
            bail!("line {line}: the key is empty");
        }
        let (value, after) = dotenv_value_at(statement[equals + 1..].trim_start_matches([' ', '\t']))
            .map_err(|reason| anyhow::anyhow!("line {line} ({key}): {reason}"))?;
        if !seen.insert(key.clone()) {
            bail!("line {line}: {key} is given more than once");
        }
        line += rest[..rest.len() - after.len()].matches('\n').count();
        secrets.push((key, value));
        rest = after;
    }
}

/// One dotenv value at the start of `text`, and what follows its line.
fn dotenv_value_at(text: &str) -> Result<(String, &str), String> {
    let rest_of_line = |after: &str| -> Result<usize, String> {
        let end = after.find('\n').unwrap_or(after.len());
        let trailing = after[..end].trim();
        if trailing.is_empty() || trailing.starts_with('#') { Ok(end) } else { Err(format!("unexpected '{trailing}'")) }
    };
    if let Some(quoted) = text.strip_prefix('\'') {
        let close = quoted.find('\'').ok_or("the single quote is never closed")?;
        let after = &quoted[close + 1..];
        let end = rest_of_line(after)?;
        return Ok((quoted[..close].to_owned(), &after[end..]));
    }
    if let Some(quoted) = text.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((at, c)) = chars.next() {
            match c {
                '"' => {
                    let after = &quoted[at + 1..];
                    let end = rest_of_line(after)?;
                    return Ok((value, &after[end..]));
                }
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('n') => value.push('\n'),
                    Some('r') => value.push('\r'),
                    Some('t') => value.push('\t'),
                    Some(other @ ('\\' | '"' | '$')) => value.push(other),
                    Some(other) => {
                        value.push('\\');
                        value.push(other);
                    }
                    None => break,
                },
                c => value.push(c),
            }
        }
        return Err("the double quote is never closed".into());
    }
    let end = text.find('\n').unwrap_or(text.len());
    let line = text[..end].trim_end_matches('\r');
    let value = line.find(" #").map_or(line, |comment| &line[..comment]).trim_end();
    Ok((value.to_owned(), &text[end..]))
}

/// The kind of a JSON value, for errors: the value itself may be a secret and is never shown.
fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A JSON object's members in document order, a key given twice refused (serde_json's map keeps the last).
struct Members(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut seen = std::collections::HashSet::new();
                let mut members = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                    if !seen.insert(key.clone()) {
                        return Err(serde::de::Error::custom(format!("{key} is given more than once")));
                    }
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// Reads a JSON object of string values, in document order; a key given twice is refused.
pub fn parse_json(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Members(members) =
        serde_json::from_str(text).map_err(|e| anyhow::anyhow!("not a JSON object of strings: {e}"))?;
    members
        .into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(value) => Ok((key, value)),
            other => bail!("{key}: the value is {}, not a string", json_kind(&other)),
        })
        .collect()
}

/// Reads a YAML mapping of string values (quote a value that YAML would read as a number, a boolean or null:
/// `PORT: "8080"`), in document order.
pub fn parse_yaml(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    use serde_yaml_ng::Value;
    let mapping: serde_yaml_ng::Mapping =
        serde_yaml_ng::from_str(text).map_err(|e| anyhow::anyhow!("not a YAML mapping of strings: {e}"))?;
    mapping
        .into_iter()
        .map(|(key, value)| {
            let Value::String(key) = key else { bail!("a key is not a string: quote keys that YAML reads otherwise") };
            match value {
                Value::String(value) => Ok((key, value)),
                Value::Number(_) => bail!("{key}: the value is a number; quote it to keep it exactly as written"),
                Value::Bool(_) => bail!("{key}: the value is a boolean; quote it if it is text"),
                Value::Null => bail!("{key}: the value is null; write \"\" for an empty value"),
                _ => bail!("{key}: the value is not a string"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_quotes_only_what_needs_it() {
        assert_eq!(dotenv_value("abc-1.2"), "abc-1.2");
        assert_eq!(dotenv_value(""), "''");
        assert_eq!(dotenv_value("a b#c $HOME=1"), "'a b#c $HOME=1'");
        assert_eq!(dotenv_value("it's\nmulti"), r#""it's\nmulti""#);
        assert_eq!(dotenv_value("say \"hi\"\\\r\t'"), r#""say \"hi\"\\\r\t'""#);
    }

    #[test]
    fn shell_values_survive_any_quote() {
        assert_eq!(shell_value("it's"), r"'it'\''s'");
        assert_eq!(shell_value("--flag"), "'--flag'");
        let rendered = render(Format::Shell, &[("A".into(), "x".into())]).unwrap();
        assert_eq!(rendered, "export A='x'\n");
        let refused = render(Format::Shell, &[("a.b".into(), "x".into()), ("9x".into(), "y".into())]).unwrap_err();
        assert!(refused.to_string().contains("a.b, 9x"), "{refused}");
    }

    #[test]
    fn dotenv_round_trips_and_reads_what_people_write() {
        let values = ["plain", "", "a b#c $HOME=1", "it's\nmulti\r\n", "say \"hi\"\\ \t'", "--x", "ünï ✓"];
        let secrets: Vec<(String, String)> =
            values.iter().enumerate().map(|(i, v)| (format!("K{i}"), (*v).to_owned())).collect();
        assert_eq!(parse_dotenv(&render(Format::Dotenv, &secrets).unwrap()).unwrap(), secrets);
        let written = "# comment\n\nexport A=1 # trailing\nB = 'x # y'\nC=\"two\nlines\"\r\nD=\n";
        let parsed = parse_dotenv(written).unwrap();
        let expected = [("A", "1"), ("B", "x # y"), ("C", "two\nlines"), ("D", "")];
        assert_eq!(parsed, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));
        for (bad, said) in
            [("A=1\nA=2", "line 2: A is given more than once"), ("A='x", "never closed"), ("junk", "line 1")]
        {
            let error = parse_dotenv(bad).unwrap_err().to_string();
            assert!(error.contains(said), "{bad:?}: {error}");
        }
        let secret = parse_json(r#"{"DB": {"password": "hunter2"}}"#).unwrap_err().to_string();
        assert!(secret.contains("DB: the value is an object") && !secret.contains("hunter2"), "{secret}");
        let twice = parse_json(r#"{"A": "1", "A": "2"}"#).unwrap_err().to_string();
        assert!(twice.contains("A is given more than once"), "{twice}");
        assert_eq!(
            parse_json("\u{feff}{\"B\": \"x\", \"A\": \"y\"}").unwrap(),
            [("B".into(), "x".into()), ("A".into(), "y".into())]
        );
        assert_eq!(
            parse_dotenv("\u{feff}A=1").unwrap(),
            [("A".to_owned(), "1".to_owned())],
            "a BOM is not part of the key"
        );
    }

    #[test]
    fn yaml_round_trips_and_refuses_what_it_would_change() {
        let values = ["plain", "", "a: b # c", "it's\nmulti\r\n", "say \"hi\"\\ \t'", "--x", "ünï ✓", "0123", "yes"];
        let secrets: Vec<(String, String)> =
            values.iter().enumerate().map(|(i, v)| (format!("K{i}"), (*v).to_owned())).collect();
        assert_eq!(parse_yaml(&render(Format::Yaml, &secrets).unwrap()).unwrap(), secrets);
        let written = "B: plain\nA: |\n  two\n  lines\n";
        let expected = [("B", "plain"), ("A", "two\nlines\n")].map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(parse_yaml(written).unwrap(), expected, "document order, block scalars");
        for (bad, said) in [
            ("PORT: 1.50", "quote it to keep it exactly as written"),
            ("ON: true", "boolean"),
            ("E:", "null"),
            ("A: 1\nA: 2", "duplicate"),
            ("- a", "not a YAML mapping"),
            ("L: [1]", "not a string"),
        ] {
            let error = parse_yaml(bad).unwrap_err().to_string();
            assert!(error.contains(said), "{bad:?}: {error}");
        }
        // Aliases that expand exponentially ("billion laughs") are refused quickly, not expanded.
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for level in b'b'..=b'j' {
            let previous = (level - 1) as char;
            let refs = vec![format!("*{previous}"); 10].join(", ");
            bomb.push_str(&format!("{}: &{} [{refs}]\n", level as char, level as char));
        }
        let started = std::time::Instant::now();
        assert!(parse_yaml(&bomb).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[test]
    fn json_and_yaml_escape_everything() {
        let secrets = [("K".to_owned(), "line\n\"q\" \u{1} é".to_owned())];
        let json: serde_json::Value = serde_json::from_str(&render(Format::Json, &secrets).unwrap()).unwrap();
        assert_eq!(json["K"], secrets[0].1.as_str());
        assert_eq!(render(Format::Yaml, &secrets).unwrap(), "\"K\": \"line\\n\\\"q\\\" \\u0001 é\"\n");
        assert!(
            is_variable_name("_A1") && !is_variable_name("1A") && !is_variable_name("a-b") && !is_variable_name("")
        );
    }
}
