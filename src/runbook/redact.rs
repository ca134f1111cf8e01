//! Redaction of things that look like credentials in action output (logs, events) before it is
//! stored or shown: bearer tokens, `password=…`-style pairs, credentials in URLs, private keys,
//! AWS access key ids.

/// Key names whose values are hidden (matched case-insensitively anywhere in a key, so
/// `DB_PASSWORD`, `SECRET_KEY_BASE` and `x-api-key` count).
const SECRET_KEYS: [&str; 12] = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "access_key",
    "private_key",
    "authorization",
    "credential",
];

fn secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|k| key.contains(k))
}

const REDACTED: &str = "[redacted]";

/// `text` with credentials replaced by `[redacted]`.
pub fn redact(text: &str) -> String {
    let without_keys = private_keys(text);
    without_keys
        .split('\n')
        .map(redact_line)
        .collect::<Vec<_>>()
        .join("\n")
}

fn private_keys(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let header_end = rest[start..]
            .find("-----\n")
            .or_else(|| rest[start + 11..].find("-----").map(|i| i + 11));
        let is_private = rest[start..]
            .lines()
            .next()
            .is_some_and(|l| l.contains("PRIVATE KEY"));
        out.push_str(&rest[..start]);
        if !is_private || header_end.is_none() {
            out.push_str("-----BEGIN ");
            rest = &rest[start + 11..];
            continue;
        }
        match rest[start..].find("-----END ") {
            Some(end) => {
                let after_end = &rest[start + end + 9..];
                let close = after_end
                    .find("-----")
                    .map(|i| i + 5)
                    .unwrap_or(after_end.len());
                out.push_str("[redacted private key]");
                rest = &after_end[close..];
            }
            None => {
                out.push_str("[redacted private key]");
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '+' | '/' | '=' | '-')
}

fn redact_line(line: &str) -> String {
    let mut line = authorization_header(line);
    line = bearer(&line);
    line = key_values(&line);
    line = flags(&line);
    line = url_credentials(&line);
    line = known_tokens(&line);
    aws_keys(&line)
}

/// `Authorization: Basic dXNlcjpwYXNz` (any scheme): everything after the header name.
fn authorization_header(line: &str) -> String {
    let lower = line.to_ascii_lowercase();
    match lower.find("authorization") {
        Some(at) => {
            let after = at + "authorization".len();
            let rest = line[after..].trim_start_matches(['"', '\'']).trim_start();
            if let Some(value) = rest.strip_prefix(':').or_else(|| rest.strip_prefix('=')) {
                let start = line.len() - value.len();
                let value = value.trim_start();
                if !value.is_empty() {
                    let start = start + (line[start..].len() - value.len());
                    return format!("{}{REDACTED}", &line[..start]);
                }
            }
            line.to_string()
        }
        None => line.to_string(),
    }
}

/// `--password hunter2`, `-p`-style flags named like a secret, followed by a value.
fn flags(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    let mut hide_next = false;
    for word in words {
        if hide_next && !word.is_empty() && !word.starts_with('-') {
            out.push(REDACTED.to_string());
            hide_next = false;
            continue;
        }
        hide_next = word.starts_with('-')
            && !word.contains('=')
            && secret_key(word.trim_start_matches('-'));
        out.push(word.to_string());
    }
    out.join(" ")
}

/// Tokens recognisable by their shape: Slack (`xoxb-…`), GitHub (`ghp_…`, `github_pat_…`),
/// JSON Web Tokens (`eyJ….eyJ….…`).
fn known_tokens(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let slack = word.len() > 10
            && word.starts_with("xox")
            && word[3..].starts_with(['a', 'b', 'p', 'r', 's', 'e'])
            && word[4..].starts_with('-');
        let github = ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"]
            .iter()
            .any(|p| word.starts_with(p) && word.len() > p.len() + 10);
        let jwt = word.starts_with("eyJ") && word.matches('.').count() >= 2 && word.len() > 20;
        if slack || github || jwt {
            out.push_str(REDACTED);
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in line.chars() {
        if is_token_char(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// `Bearer abc.def` → `Bearer [redacted]` (any case).
fn bearer(line: &str) -> String {
    let lower = line.to_ascii_lowercase();
    let mut out = String::with_capacity(line.len());
    let mut last = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find("bearer") {
        let after = search + found + "bearer".len();
        let spaces = line[after..].len() - line[after..].trim_start().len();
        if spaces == 0 {
            search = after;
            continue;
        }
        let start = after + spaces;
        let end = start
            + line[start..]
                .char_indices()
                .find(|(_, c)| !is_token_char(*c))
                .map(|(i, _)| i)
                .unwrap_or(line.len() - start);
        if end > start {
            out.push_str(&line[last..start]);
            out.push_str(REDACTED);
            last = end;
        }
        search = end.max(start);
    }
    out.push_str(&line[last..]);
    out
}

/// `password=x`, `"api_key": "x"`, `DB_PASSWORD: x` → the value redacted.
fn key_values(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut i = 0;
    let mut copied = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if c == '=' || c == ':' {
            // The key: identifier characters before the separator (skipping a closing quote).
            let before = line[..at].trim_end().trim_end_matches(['"', '\'']);
            let key_start = before
                .char_indices()
                .rev()
                .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
                .map(|(i, c)| i + c.len_utf8())
                .unwrap_or(0);
            let key = before[key_start..].to_ascii_lowercase();
            if !key.is_empty() && secret_key(&key) {
                // The value: after optional spaces and an opening quote, up to a delimiter.
                let mut j = at + c.len_utf8();
                let rest = &line[j..];
                let skipped = rest.len() - rest.trim_start().len();
                j += skipped;
                let quote = line[j..].chars().next().filter(|q| *q == '"' || *q == '\'');
                if let Some(q) = quote {
                    j += q.len_utf8();
                }
                let value_len = line[j..]
                    .char_indices()
                    .find(|(_, ch)| match quote {
                        Some(q) => *ch == q,
                        None => {
                            ch.is_whitespace()
                                || matches!(ch, ',' | '&' | ';' | '"' | '\'' | '}' | ')')
                        }
                    })
                    .map(|(k, _)| k)
                    .unwrap_or(line.len() - j);
                // Not a URL scheme (`http://`) nor an empty value.
                if value_len > 0 && !line[j..].starts_with("//") {
                    out.push_str(&line[copied..j]);
                    out.push_str(REDACTED);
                    copied = j + value_len;
                    while i < chars.len() && chars[i].0 < copied {
                        i += 1;
                    }
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(&line[copied..]);
    out
}

/// `postgres://user:pass@host` → `postgres://user:[redacted]@host`.
fn url_credentials(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(scheme) = rest.find("://") {
        let after = scheme + 3;
        let authority_end = rest[after..]
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .map(|i| after + i)
            .unwrap_or(rest.len());
        let authority = &rest[after..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&rest[..after + colon + 1]);
                out.push_str(REDACTED);
                out.push_str(&rest[after + at..authority_end]);
            }
            _ => out.push_str(&rest[..authority_end]),
        }
        rest = &rest[authority_end..];
    }
    out.push_str(rest);
    out
}

/// AWS access key ids: `AKIA` or `ASIA` and 16 upper-case letters or digits.
fn aws_keys(line: &str) -> String {
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    let mut copied = 0;
    while i + 20 <= bytes.len() {
        let candidate = &line.get(i..i + 20);
        let is_key = candidate.is_some_and(|c| {
            (c.starts_with("AKIA") || c.starts_with("ASIA"))
                && c[4..]
                    .chars()
                    .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit())
        }) && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
            && bytes.get(i + 20).is_none_or(|b| !b.is_ascii_alphanumeric());
        if is_key {
            out.push_str(&line[copied..i]);
            out.push_str(REDACTED);
            i += 20;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&line[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted() {
        for (input, must_not, must) in [
            (
                "Authorization: Bearer eyJhbGciOi.abc-def_ghi",
                "eyJhbGciOi",
                "[redacted]",
            ),
            (
                "connecting with password=hunter2 now",
                "hunter2",
                "password=[redacted] now",
            ),
            (
                "DB_PASSWORD: 's3cr3t value'",
                "s3cr3t",
                "DB_PASSWORD: '[redacted]'",
            ),
            (
                "{\"api_key\": \"k-123\", \"x\": 1}",
                "k-123",
                "\"api_key\": \"[redacted]\"",
            ),
            (
                "url=postgres://app:hunter2@db:5432/x",
                "hunter2",
                "postgres://app:[redacted]@db",
            ),
            (
                "key AKIAIOSFODNN7EXAMPLE used",
                "AKIAIOSFODNN7EXAMPLE",
                "key [redacted] used",
            ),
            ("token=abc&next=1", "abc", "token=[redacted]&next=1"),
        ] {
            let out = redact(input);
            assert!(!out.contains(must_not), "{input} -> {out}");
            assert!(out.contains(must), "{input} -> {out}");
        }
        let key = "before\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----\nafter";
        let out = redact(key);
        assert_eq!(out, "before\n[redacted private key]\nafter");
        // Ordinary text is untouched.
        for (input, must_not) in [
            ("password = hunter2", "hunter2"),
            ("\"password\" : \"x-secret\"", "x-secret"),
            ("run --password hunter2 now", "hunter2"),
            ("SECRET_KEY_BASE=abcdef123", "abcdef123"),
            ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
            ("token xoxb-123456789012-abcdefghij", "xoxb-123456789012"),
            ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abc"),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
                "eyJhbGci",
            ),
            ("Bearer\tabc.def.ghi", "abc.def"),
        ] {
            let out = redact(input);
            assert!(!out.contains(must_not), "{input} -> {out}");
        }
        let plain = "GET /health 200 in 12ms; url=http://api/health; passes: 3";
        assert_eq!(redact(plain), plain);
        assert_eq!(
            redact("ünïcödé password=π and more"),
            "ünïcödé password=[redacted] and more"
        );
    }
}
