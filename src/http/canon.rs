//! The canonical form of a request body, so that "the same request" survives re-encoding:
//! JSON per RFC 8785 (JCS), form-urlencoded decoded and sorted by name, other types as decoded
//! bytes. Bodies over the bound fall back to the decoded bytes (SPEC, request identity).

use sha2::{Digest, Sha256};

/// SHA-256 of the canonical form of `decoded` (the whole decoded body) for `content_type`.
pub fn canonical_sha256(content_type: Option<&str>, decoded: &[u8]) -> [u8; 32] {
    let ct = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let looks_json = ct == "application/json"
        || ct.ends_with("+json")
        || (ct.is_empty() && decoded.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'));
    if looks_json {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(decoded)
            && let Ok(c) = serde_json_canonicalizer::to_vec(&v)
        {
            return Sha256::digest(&c).into();
        }
    } else if ct == "application/x-www-form-urlencoded" {
        let mut pairs: Vec<(String, String)> = form_urlencoded::parse(decoded)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        // Stable: repeated names keep their order (Stripe's arrays: items[0], items[1], ...).
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let s = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        return Sha256::digest(s.as_bytes()).into();
    }
    Sha256::digest(decoded).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_key_order_and_spacing_do_not_matter() {
        let a = canonical_sha256(Some("application/json"), br#"{"b":1,"a":[1,2]}"#);
        let b = canonical_sha256(
            Some("application/json; charset=utf-8"),
            b"{ \"a\": [1, 2],\n \"b\": 1.0 }",
        );
        assert_eq!(a, b);
        let c = canonical_sha256(Some("application/json"), br#"{"b":2,"a":[1,2]}"#);
        assert_ne!(a, c);
    }

    #[test]
    fn form_parameter_order_does_not_matter_but_values_do() {
        let ct = Some("application/x-www-form-urlencoded");
        assert_eq!(
            canonical_sha256(ct, b"amount=100&currency=usd"),
            canonical_sha256(ct, b"currency=usd&amount=1%30%30")
        );
        assert_ne!(
            canonical_sha256(ct, b"amount=100&currency=usd"),
            canonical_sha256(ct, b"amount=200&currency=usd")
        );
    }

    #[test]
    fn other_types_hash_the_bytes() {
        assert_eq!(
            canonical_sha256(Some("text/plain"), b"x"),
            <[u8; 32]>::from(Sha256::digest(b"x"))
        );
    }
}
