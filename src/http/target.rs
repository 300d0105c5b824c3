//! The request-target: credential-like query values redacted for output, and an identity hash
//! with query parameters sorted (SPEC, request identity).

use sha2::{Digest, Sha256};

/// The target as sent, with the values of the named query parameters (compared
/// case-insensitively, after percent-decoding the name) replaced by `REDACTED`.
pub fn redact(target: &str, params: &[String]) -> String {
    let Some((path, query)) = target.split_once('?') else {
        return target.to_string();
    };
    let mut out = String::with_capacity(target.len());
    out.push_str(path);
    out.push('?');
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        let (name, value) = match pair.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (pair, None),
        };
        let decoded: String = form_urlencoded::parse(name.as_bytes())
            .map(|(k, _)| k.into_owned())
            .next()
            .unwrap_or_default();
        let secret = params.iter().any(|p| p.eq_ignore_ascii_case(&decoded));
        out.push_str(name);
        if let Some(v) = value {
            out.push('=');
            out.push_str(if secret && !v.is_empty() {
                "REDACTED"
            } else {
                v
            });
        }
    }
    out
}

/// SHA-256 of the path and the query parameters sorted by name then value, so that
/// `?a=1&b=2` and `?b=2&a=1` are the same target.
pub fn identity(target: &[u8]) -> [u8; 32] {
    let (path, query) = match memchr::memchr(b'?', target) {
        Some(i) => (
            target.get(..i).unwrap_or(&[]),
            target.get(i + 1..).unwrap_or(&[]),
        ),
        None => (target, &[][..]),
    };
    let mut pairs: Vec<&[u8]> = query
        .split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .collect();
    pairs.sort_unstable();
    let mut h = Sha256::new();
    h.update(path);
    for p in pairs {
        h.update(b"\x00");
        h.update(p);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Vec<String> {
        vec!["api_key".into(), "token".into()]
    }

    #[test]
    fn credential_values_are_redacted_and_the_rest_kept_as_sent() {
        assert_eq!(
            redact("/v1/x?api_key=SECRET&a=%20b&Token=t", &params()),
            "/v1/x?api_key=REDACTED&a=%20b&Token=REDACTED"
        );
        assert_eq!(
            redact("/v1/x?api%5Fkey=S", &params()),
            "/v1/x?api%5Fkey=REDACTED"
        );
        assert_eq!(redact("/plain", &params()), "/plain");
        assert_eq!(redact("/q?flag&api_key=", &params()), "/q?flag&api_key=");
    }

    #[test]
    fn query_order_does_not_change_identity() {
        assert_eq!(identity(b"/p?a=1&b=2"), identity(b"/p?b=2&a=1"));
        assert_ne!(identity(b"/p?a=1"), identity(b"/p?a=2"));
        assert_ne!(identity(b"/p"), identity(b"/q"));
    }
}
