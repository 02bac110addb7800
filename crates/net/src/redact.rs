//! Scrubbing secrets out of text a server sent back.
//!
//! An error body is the server's words, and a misbehaving server (or a
//! proxy in front of it) may echo the request: the `Authorization` header,
//! the signed JWT, a key. Everything a client takes from an answer into an
//! error message passes through [`scrub`] first, so that no log line,
//! `status` or CLI error can carry a secret (SPEC invariant 7).

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// `text` with every known secret and everything shaped like a credential
/// (a bearer token, a JWT, a Google access token, a PEM block) replaced.
/// `secrets` are the values this client sends; empty ones are ignored.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        // Short strings would match ordinary words; real tokens are long.
        if secret.len() >= 8 && out.contains(secret) {
            out = out.replace(secret, REDACTED);
        }
    }
    out = replace_pem_blocks(&out);
    out = replace_after(&out, "bearer ", is_token_char);
    out = replace_after(&out, "ya29.", is_token_char);
    out = replace_jwts(&out);
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/' | '=')
}

fn is_b64url(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_')
}

/// Replaces the run of `keep`-characters after each (ASCII case-insensitive)
/// `prefix`; the prefix itself stays, so the message still says what it was.
fn replace_after(text: &str, prefix: &str, keep: fn(char) -> bool) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(found) = lower[at..].find(prefix) {
        let start = at + found + prefix.len();
        let len: usize = text[start..]
            .chars()
            .take_while(|c| keep(*c))
            .map(char::len_utf8)
            .sum();
        out.push_str(&text[at..start]);
        if len > 0 {
            out.push_str(REDACTED);
        }
        at = start + len;
    }
    out.push_str(&text[at..]);
    out
}

/// A JWT is three base64url parts joined by dots, the first a JSON header,
/// so it starts with `eyJ` (`{"`).
fn replace_jwts(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(found) = text[at..].find("eyJ") {
        let start = at + found;
        let mut end = start;
        let mut dots = 0;
        for c in text[start..].chars() {
            if is_b64url(c) {
                end += c.len_utf8();
            } else if c == '.' && dots < 2 {
                dots += 1;
                end += 1;
            } else {
                break;
            }
        }
        out.push_str(&text[at..start]);
        if dots >= 1 && end - start > 20 {
            out.push_str(REDACTED);
        } else {
            out.push_str(&text[start..end]);
        }
        at = end.max(start + 3);
    }
    out.push_str(&text[at..]);
    out
}

/// `-----BEGIN ...-----` to the matching end line (or the end of the text).
fn replace_pem_blocks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(found) = text[at..].find("-----BEGIN") {
        let start = at + found;
        out.push_str(&text[at..start]);
        out.push_str(REDACTED);
        let end = match text[start..].find("-----END") {
            Some(e) => {
                let after_end = start + e + "-----END".len();
                match text[after_end..].find("-----") {
                    Some(close) => after_end + close + 5,
                    None => text.len(),
                }
            }
            None => text.len(),
        };
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_secrets_and_credential_shapes_are_removed() {
        let echo = "bad request; you sent Authorization: Bearer hl-secret-token-123 and a=ya29.a0AfB_byC-xyz.";
        let s = scrub(echo, &["hl-secret-token-123"]);
        assert!(!s.contains("hl-secret-token-123"), "{s}");
        assert!(!s.contains("a0AfB_byC"), "{s}");
        assert!(s.contains("Authorization: Bearer [REDACTED]"), "{s}");

        // an unknown bearer value, in any case
        let s = scrub("authorization: BEARER abc.def-ghi", &[]);
        assert_eq!(s, "authorization: BEARER [REDACTED]");

        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJzYUBwLmlhbSJ9.c2lnbmF0dXJl";
        let s = scrub(&format!("assertion={jwt}&grant"), &[]);
        assert_eq!(s, "assertion=[REDACTED]&grant");

        let pem = "key: -----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY----- end";
        assert_eq!(scrub(pem, &[]), "key: [REDACTED] end");
        let cut = "key: -----BEGIN PRIVATE KEY-----\nMIIEvQ";
        assert_eq!(scrub(cut, &[]), "key: [REDACTED]");
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for text in [
            "Rate Limit Exceeded",
            "eyJ alone is no token",
            "日本語のメッセージ: 面接が見つかりません",
        ] {
            assert_eq!(scrub(text, &["", "short"]), text);
        }
        assert_eq!(
            scrub("日本語のメッセージ", &["日本語のメッセージ"]),
            REDACTED
        );
    }
}
