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
