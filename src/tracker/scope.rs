//! Scopes and request identities: what keys are compared within, and what "the same request"
//! means. Only hashes are kept: never a credential.

use sha2::{Digest, Sha256};

use crate::http::Request;

/// Which parts make the scope of a key (Stripe scopes keys per account).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeParts {
    pub host: bool,
    pub credential: bool,
    pub account: bool,
}

impl Default for ScopeParts {
    fn default() -> Self {
        ScopeParts {
            host: true,
            credential: true,
            account: true,
        }
    }
}

impl ScopeParts {
    /// Parses a comma list of `host`, `credential`, `account` (or `none`).
    pub fn parse(s: &str) -> Result<ScopeParts, String> {
        let mut p = ScopeParts {
            host: false,
            credential: false,
            account: false,
        };
        for part in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            match part {
                "host" => p.host = true,
                "credential" => p.credential = true,
                "account" => p.account = true,
                "none" => {}
                other => {
                    return Err(format!(
                        "unknown scope part '{other}'; use a comma list of host, credential, account (or none)"
                    ));
                }
            }
        }
        Ok(p)
    }
}

/// A key's scope: a hash of the host, the credential's identity and the connected account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(pub [u8; 16]);

impl Scope {
    pub fn of(req: &Request, parts: ScopeParts) -> Scope {
        let mut h = Sha256::new();
        if parts.host {
            h.update(b"h");
            if let Some(host) = &req.host {
                h.update(host.trim().to_ascii_lowercase().as_bytes());
            }
        }
        h.update([0]);
        if parts.credential {
            h.update(b"c");
            if let Some(c) = &req.credential {
                h.update(c);
            }
        }
        h.update([0]);
        if parts.account {
            // Stripe-Context wins over Stripe-Account; both name the same account the same way.
            h.update(b"a");
            if let Some(a) = req.stripe_context.as_ref().or(req.stripe_account.as_ref()) {
                h.update(a.trim().as_bytes());
            }
        }
        let d = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(d.get(..16).unwrap_or(&[0; 16]));
        Scope(out)
    }

    /// The short form written in alerts.
    pub fn short(&self) -> String {
        self.0.iter().take(4).map(|b| format!("{b:02x}")).collect()
    }
}

/// "The same request": method, target with sorted query, canonical body; held as 128 bits of
/// their SHA-256 (tables hold one per tracked request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity(pub [u8; 16]);

impl Identity {
    /// `None` when the body is incomplete: such a request is never compared.
    pub fn of(req: &Request) -> Option<Identity> {
        let canon = req.body.canon_sha256?;
        if !req.body.complete {
            return None;
        }
        let mut h = Sha256::new();
        h.update(method_target(req));
        h.update(canon);
        let d = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(d.get(..16).unwrap_or(&[0; 16]));
        Some(Identity(out))
    }
}

/// Hash of the method and the target (query sorted).
pub fn method_target(req: &Request) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(req.method.as_bytes());
    h.update([0]);
    h.update(req.target_identity);
    h.finalize().into()
}

/// An endpoint: host, method and path template.
pub fn endpoint(req: &Request) -> String {
    let path = req.path.split('?').next().unwrap_or("");
    format!(
        "{} {} {}",
        req.host.as_deref().unwrap_or("").to_ascii_lowercase(),
        req.method,
        path_template(path)
    )
}

/// Folds id segments of a path: all digits; UUIDs; hex of 16 or more; and `word_rest` where
/// rest has 8 or more characters with a digit or an upper-case letter (`cus_NffrFeUfNV2Hib`,
/// but not `payment_intents`).
pub fn path_template(path: &str) -> String {
    path.split('/')
        .map(|seg| if is_id_segment(seg) { "{id}" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

fn is_id_segment(seg: &str) -> bool {
    if seg.is_empty() {
        return false;
    }
    if seg.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    if is_uuid(seg) {
        return true;
    }
    if seg.len() >= 16 && seg.bytes().all(|b| b.is_ascii_hexdigit()) {
        return true;
    }
    if let Some((word, rest)) = seg.split_once('_') {
        return !word.is_empty()
            && word.bytes().all(|b| b.is_ascii_alphabetic())
            && rest.len() >= 8
            && rest.bytes().all(|b| b.is_ascii_alphanumeric())
            && rest
                .bytes()
                .any(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
    }
    false
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_segments_fold_and_words_do_not() {
        assert_eq!(
            path_template("/v1/customers/cus_NffrFeUfNV2Hib"),
            "/v1/customers/{id}"
        );
        assert_eq!(path_template("/v1/payment_intents"), "/v1/payment_intents");
        assert_eq!(
            path_template("/v1/orders/12345/items"),
            "/v1/orders/{id}/items"
        );
        assert_eq!(
            path_template("/x/8f14e45f-ceea-467f-a0e6-1c2a3b4d5e6f"),
            "/x/{id}"
        );
        assert_eq!(path_template("/x/0123456789abcdef"), "/x/{id}");
        assert_eq!(path_template("/x/deadbeef"), "/x/deadbeef");
        assert_eq!(path_template("/x/api_keys_list"), "/x/api_keys_list");
    }

    #[test]
    fn scope_parts_parse_and_refuse_unknown_words() {
        assert!(!ScopeParts::parse("host,account").unwrap().credential);
        assert!(ScopeParts::parse("host,tenant").is_err());
    }
}
