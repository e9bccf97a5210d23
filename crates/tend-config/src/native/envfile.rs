//! `env_file = ".env"`: variables in dotenv syntax, read relative to the
//! config file, per process and in `[daemon]` (for every process). A
//! process's own `env` wins over its `env_file`, which wins over the
//! daemon's.
//!
//! The syntax: `KEY=VALUE` lines; blank lines and `#` comments skipped; an
//! optional `export ` before the key; a value in single quotes is literal, in
//! double quotes understands `\n`, `\t`, `\"` and `\\`; an unquoted value is
//! trimmed and ends at ` #`.

use std::collections::BTreeMap;

use super::value::Item;
use crate::diag::Cx;

/// Reads the `env_file` value `v`: the variables, or `None` after an error
/// (at the key's value, naming the file and its line).
pub(super) fn read(cx: &mut Cx<'_>, v: &Item<'_>) -> Option<BTreeMap<String, String>> {
    let name = cx.expanded(v, "env_file")?;
    if name.is_empty() {
        cx.error(v.span(), "env_file is empty");
        return None;
    }
    let path = cx.dir.join(&name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            cx.error(
                v.span(),
                format!("env_file: cannot read {}: {e}", path.display()),
            );
            return None;
        }
    };
    match parse(&text) {
        Ok(vars) => Some(vars),
        Err((line, why)) => {
            cx.error(
                v.span(),
                format!("env_file {}:{line}: {why}", path.display()),
            );
            None
        }
    }
}

/// Parses dotenv text; an error is (line number, why).
pub(super) fn parse(text: &str) -> Result<BTreeMap<String, String>, (usize, String)> {
    let mut out = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            return Err((n, format!("expected KEY=VALUE, found {line:?}")));
        };
        let key = key.trim();
        let valid = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err((n, format!("{key:?} is not a variable name")));
        }
        out.insert(key.to_string(), value_of(value.trim()).map_err(|e| (n, e))?);
    }
    Ok(out)
}

fn value_of(v: &str) -> Result<String, String> {
    if let Some(rest) = v.strip_prefix('\'') {
        let Some(end) = rest.find('\'') else {
            return Err("unterminated single quote".into());
        };
        return Ok(rest[..end].to_string());
    }
    if let Some(rest) = v.strip_prefix('"') {
        let mut s = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Ok(s),
                '\\' => match chars.next() {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some(c @ ('"' | '\\' | '$')) => s.push(c),
                    Some(c) => {
                        s.push('\\');
                        s.push(c);
                    }
                    None => break,
                },
                c => s.push(c),
            }
        }
        return Err("unterminated double quote".into());
    }
    let v = match v.find(" #") {
        Some(i) => &v[..i],
        None => v,
    };
    if v.contains('\0') {
        return Err("a value contains a NUL byte".into());
    }
    Ok(v.trim_end().to_string())
}

/// Gives `spec` the variables of `vars` it does not set itself.
pub(super) fn under(env: &mut BTreeMap<String, String>, vars: &BTreeMap<String, String>) {
    for (k, v) in vars {
        env.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_dotenv_syntax() {
        let vars = parse(
            "# comment\n\nA=1\nexport B = two words \nC='lit $X # no'\nD=\"a\\nb \\\"q\\\"\"\nE=x # c\n",
        )
        .expect("parses");
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two words");
        assert_eq!(vars["C"], "lit $X # no");
        assert_eq!(vars["D"], "a\nb \"q\"");
        assert_eq!(vars["E"], "x");
    }

    #[test]
    fn names_the_bad_line() {
        assert_eq!(parse("A=1\nnope\n").unwrap_err().0, 2);
        assert_eq!(parse("1A=1\n").unwrap_err().0, 1);
        assert!(parse("A=\"open\n").unwrap_err().1.contains("unterminated"));
    }
}
