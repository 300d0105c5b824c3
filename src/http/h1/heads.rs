//! Message heads of HTTP/1.1, read in place: where a start line may begin, where a head ends,
//! the head itself (httparse), and the header lines the session needs (framing, keys,
//! credential, forwarding), collected from httparse's borrowed headers.
//!
//! Takes head bytes and parsed header lines; gives plain values. It keeps no state and leaves
//! out the state machine (`session.rs`) and body framing (`body.rs`).

use super::session::Role;
use crate::http::transaction::{KeyHeader, Protocol};

const METHODS: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"PUT",
    b"PATCH",
    b"DELETE",
    b"HEAD",
    b"OPTIONS",
    b"CONNECT",
    b"TRACE",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"REPORT",
    b"SEARCH",
    b"PURGE",
    b"QUERY",
    b"LINK",
    b"UNLINK",
    b"MERGE",
];

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Plausible {
    Request,
    Response,
    /// Too few bytes to tell.
    Maybe,
    No,
}

/// Whether `b` starts like a request line or a status line.
pub(super) fn plausible_start(b: &[u8], role: Role) -> Plausible {
    let mut maybe = false;
    if role != Role::Responses {
        for m in METHODS {
            let n = m.len();
            if b.len() <= n + 1 {
                if m.starts_with(b.get(..b.len().min(n)).unwrap_or(&[]))
                    && (b.len() <= n || b.get(n) == Some(&b' '))
                {
                    maybe = true;
                }
                continue;
            }
            if b.get(..n) == Some(*m) && b.get(n) == Some(&b' ') {
                let next = b.get(n + 1).copied().unwrap_or(0);
                if next == b'/' || next == b'*' || next.is_ascii_alphanumeric() {
                    return Plausible::Request;
                }
            }
        }
    }
    if role != Role::Requests {
        const P: &[u8] = b"HTTP/1.";
        if b.len() < P.len() + 2 {
            if P.starts_with(b.get(..b.len().min(P.len())).unwrap_or(&[])) {
                maybe = true;
            }
        } else if b.get(..P.len()) == Some(P)
            && b.get(P.len()).is_some_and(u8::is_ascii_digit)
            && b.get(P.len() + 1) == Some(&b' ')
        {
            return Plausible::Response;
        }
    }
    if maybe {
        Plausible::Maybe
    } else {
        Plausible::No
    }
}

/// A head read whole: its start line's parts and its header lines, borrowed.
pub(super) enum Head<'h, 'b> {
    Request {
        method: &'b str,
        target: &'b str,
        /// From the request line's version (httparse reads only 1.0 and 1.1).
        protocol: Protocol,
        headers: &'h [httparse::Header<'b>],
    },
    Response {
        status: u16,
        headers: &'h [httparse::Header<'b>],
    },
}

/// Why a head could not be read.
pub(super) enum BadHead {
    /// More header lines than `headers` holds (`--max-headers`).
    TooManyHeaders,
    Invalid,
}

/// Parses a whole head (through its empty line) as a request or a response, its header lines
/// into `headers`. Tolerant as servers are of extra spaces and of invalid header lines, which
/// are skipped (responses: also obsolete line folding).
pub(super) fn parse_head<'h, 'b>(
    head: &'b [u8],
    is_request: bool,
    headers: &'h mut [httparse::Header<'b>],
) -> Result<Head<'h, 'b>, BadHead> {
    let bad = |e: httparse::Error| match e {
        httparse::Error::TooManyHeaders => BadHead::TooManyHeaders,
        _ => BadHead::Invalid,
    };
    if is_request {
        let mut req = httparse::Request::new(headers);
        let parsed = httparse::ParserConfig::default()
            .allow_multiple_spaces_in_request_line_delimiters(true)
            .ignore_invalid_headers_in_requests(true)
            .parse_request(&mut req, head)
            .map_err(bad)?;
        if parsed.is_partial() {
            return Err(BadHead::Invalid);
        }
        Ok(Head::Request {
            method: req.method.unwrap_or(""),
            target: req.path.unwrap_or(""),
            protocol: match req.version {
                Some(0) => Protocol::Http10,
                _ => Protocol::Http11,
            },
            headers: req.headers,
        })
    } else {
        let mut resp = httparse::Response::new(headers);
        let parsed = httparse::ParserConfig::default()
            .allow_spaces_after_header_name_in_responses(true)
            .allow_obsolete_multiline_headers_in_responses(true)
            .allow_multiple_spaces_in_response_status_delimiters(true)
            .ignore_invalid_headers_in_responses(true)
            .parse_response(&mut resp, head)
            .map_err(bad)?;
        if parsed.is_partial() {
            return Err(BadHead::Invalid);
        }
        Ok(Head::Response {
            status: resp.code.unwrap_or(0),
            headers: resp.headers,
        })
    }
}

/// End of a head (after the empty line), searching from `from`.
pub(super) fn find_head_end(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(rel) = memchr::memchr(b'\n', data.get(i..)?) {
        let nl = i + rel;
        match data.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if data.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => {}
        }
        i = nl + 1;
    }
    None
}

/// Header lines of interest, collected while parsing a head.
#[derive(Default)]
pub(crate) struct Heads {
    pub(crate) host: Option<String>,
    pub(crate) content_length: Vec<String>,
    pub(crate) transfer_encoding: Vec<String>,
    pub(crate) content_encoding: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) keys: Vec<KeyHeader>,
    pub(crate) authorization: Option<Vec<u8>>,
    pub(crate) stripe_account: Option<String>,
    pub(crate) stripe_context: Option<String>,
    pub(crate) location: Option<String>,
    pub(crate) replayed: bool,
    /// `X-Forwarded-For`, `X-Real-IP` and `Forwarded` values, in that order of trust.
    pub(crate) forwarded: Vec<(u8, String)>,
    /// `X-Request-Start` (the first), as a gateway sets it.
    pub(crate) request_start: Option<String>,
    /// `Upgrade` offers `h2c` (RFC 7540 section 3.2).
    pub(crate) upgrade_h2c: bool,
    /// `HTTP2-Settings`, as sent (base64url).
    pub(crate) http2_settings: Option<String>,
}

/// A field value as text. A byte that is not UTF-8 is written U+FFFD followed by its two hex
/// digits (0xFF: `�FF`), not U+FFFD alone: two keys (or hosts) that differ only in such bytes
/// stay two keys, as they are for a server comparing bytes, and the text is still not ASCII,
/// so such a key is still an invalid one.
fn field_text(value: &[u8]) -> std::borrow::Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(value) {
        return s.into();
    }
    let mut out = String::with_capacity(value.len() + 8);
    for chunk in value.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\u{FFFD}{b:02X}"));
        }
    }
    out.into()
}

pub(super) fn collect_heads(headers: &[httparse::Header<'_>], key_names: &[String]) -> Heads {
    let mut h = Heads::default();
    for hd in headers {
        h.add(hd.name, hd.value, key_names);
    }
    h
}

impl Heads {
    /// Takes one header field (HTTP/1.1 line or HTTP/2 field; `name` in any case) if it is of
    /// interest.
    pub(crate) fn add(&mut self, name: &str, raw: &[u8], key_names: &[String]) {
        let h = self;
        let value = || field_text(raw).trim().to_string();
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            h.forwarded.push((0, value()));
        } else if name.eq_ignore_ascii_case("x-real-ip") {
            h.forwarded.push((1, value()));
        } else if name.eq_ignore_ascii_case("forwarded") {
            h.forwarded.push((2, value()));
        } else if name.eq_ignore_ascii_case("x-request-start") {
            if h.request_start.is_none() {
                h.request_start = Some(value());
            }
        } else if name.eq_ignore_ascii_case("host") {
            if h.host.is_none() {
                h.host = Some(field_text(raw).into_owned());
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            h.content_length.push(value());
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            h.transfer_encoding.push(value());
        } else if name.eq_ignore_ascii_case("content-encoding") {
            h.content_encoding = Some(value());
        } else if name.eq_ignore_ascii_case("content-type") {
            h.content_type = Some(value());
        } else if name.eq_ignore_ascii_case("authorization") {
            h.authorization = Some(raw.to_vec());
        } else if name.eq_ignore_ascii_case("stripe-account") {
            h.stripe_account = Some(value());
        } else if name.eq_ignore_ascii_case("stripe-context") {
            h.stripe_context = Some(value());
        } else if name.eq_ignore_ascii_case("location") {
            h.location = Some(value());
        } else if name.eq_ignore_ascii_case("upgrade") {
            h.upgrade_h2c |= field_text(raw)
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("h2c"));
        } else if name.eq_ignore_ascii_case("http2-settings") {
            h.http2_settings = Some(value());
        } else if name.eq_ignore_ascii_case("idempotent-replayed") {
            h.replayed = raw.trim_ascii().eq_ignore_ascii_case(b"true");
        } else if key_names.iter().any(|k| name.eq_ignore_ascii_case(k)) {
            h.keys.push(KeyHeader {
                name: name.to_ascii_lowercase(),
                value: field_text(raw).into_owned(),
            });
        }
    }
}

/// Transfer codings in order, `identity` dropped (RFC 7230 removed it; some stacks still send
/// "chunked, identity").
pub(super) fn transfer_codings(te: &[String]) -> Vec<String> {
    te.iter()
        .flat_map(|v| v.split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect()
}

/// The Content-Length, when all values agree (RFC 9112 section 6.3: "5, 5" is 5; different
/// values make the length unknowable).
pub(super) fn content_length(values: &[String]) -> Result<Option<u64>, ()> {
    let mut found: Option<u64> = None;
    for v in values.iter().flat_map(|v| v.split(',')) {
        let v = v.trim();
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        let n: u64 = v.parse().map_err(|_| ())?;
        if found.is_some_and(|f| f != n) {
            return Err(());
        }
        found = Some(n);
    }
    Ok(found)
}

/// A stable identity for the credential, never the credential itself: Bearer and Basic hash
/// the whole credential; AWS SigV4 hashes the access key id only (the signature changes with
/// every request).
pub(crate) fn credential_identity(auth: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let text = String::from_utf8_lossy(auth);
    let t = text.trim();
    let mut h = Sha256::new();
    if let Some(rest) = t.strip_prefix("AWS4-HMAC-SHA256") {
        let akid = rest
            .split([',', ' '])
            .find_map(|p| p.trim().strip_prefix("Credential="))
            .and_then(|c| c.split('/').next())
            .unwrap_or("");
        h.update(b"sigv4\x00");
        h.update(akid.as_bytes());
    } else {
        let (scheme, cred) = t.split_once(' ').unwrap_or((t, ""));
        h.update(scheme.to_ascii_lowercase().as_bytes());
        h.update(b"\x00");
        h.update(cred.trim().as_bytes());
    }
    h.finalize().into()
}

/// Top-level `id` of a JSON object body.
pub(crate) fn json_id(body: &[u8]) -> Option<String> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    // Only `id` is built; every other member is skipped without allocating.
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(serde_json::Number),
        Other(serde::de::IgnoredAny),
    }
    #[derive(serde::Deserialize)]
    struct Top {
        id: Option<Id>,
    }
    match serde_json::from_slice::<Top>(body).ok()?.id? {
        Id::Text(s) => Some(s),
        Id::Number(n) => Some(n.to_string()),
        Id::Other(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_content_lengths_are_one_and_different_ones_unknowable() {
        assert_eq!(content_length(&["5, 5".into(), "5".into()]), Ok(Some(5)));
        assert_eq!(content_length(&[]), Ok(None));
        assert_eq!(content_length(&["5".into(), "6".into()]), Err(()));
        assert_eq!(content_length(&["+5".into()]), Err(()));
        assert_eq!(content_length(&["99999999999999999999999".into()]), Err(()));
    }

    #[test]
    fn identity_is_dropped_from_transfer_codings() {
        assert_eq!(
            transfer_codings(&["gzip, Identity".into(), "chunked".into()]),
            vec!["gzip".to_string(), "chunked".to_string()]
        );
    }

    #[test]
    fn start_lines_are_told_from_their_first_bytes() {
        assert_eq!(
            plausible_start(b"POST /a HTTP/1.1", Role::Unknown),
            Plausible::Request
        );
        assert_eq!(
            plausible_start(b"HTTP/1.1 200 OK", Role::Unknown),
            Plausible::Response
        );
        assert_eq!(plausible_start(b"PO", Role::Unknown), Plausible::Maybe);
        assert_eq!(
            plausible_start(b"HTTP/1.1 200 OK", Role::Requests),
            Plausible::No
        );
        assert_eq!(
            plausible_start(b"POSTAL code", Role::Unknown),
            Plausible::No
        );
    }

    #[test]
    fn a_head_ends_after_its_empty_line_with_or_without_carriage_returns() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nbody", 0), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\nbody", 0), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0), None);
    }

    #[test]
    fn sigv4_credentials_are_identified_by_their_access_key_only() {
        let a =
            b"AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, Signature=aa";
        let b =
            b"AWS4-HMAC-SHA256 Credential=AKID/20240102/us-east-1/s3/aws4_request, Signature=bb";
        assert_eq!(credential_identity(a), credential_identity(b));
        assert_ne!(
            credential_identity(b"Bearer one"),
            credential_identity(b"Bearer two")
        );
        assert_eq!(
            credential_identity(b"bearer one"),
            credential_identity(b"Bearer one")
        );
    }

    #[test]
    fn only_a_top_level_id_of_a_json_object_is_taken() {
        assert_eq!(
            json_id(br#" {"x":{"id":"in"},"id":"ch_1"}"#),
            Some("ch_1".into())
        );
        assert_eq!(json_id(br#"{"id":42}"#), Some("42".into()));
        assert_eq!(json_id(br#"{"id":{"a":1}}"#), None);
        assert_eq!(json_id(br#"[{"id":"x"}]"#), None);
    }

    #[test]
    fn too_many_header_lines_are_told_apart_from_a_bad_head() {
        let mut few = [httparse::EMPTY_HEADER; 1];
        let head = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n";
        assert!(matches!(
            parse_head(head, true, &mut few),
            Err(BadHead::TooManyHeaders)
        ));
        let mut enough = [httparse::EMPTY_HEADER; 4];
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nA: 1\r\n", true, &mut enough),
            Err(BadHead::Invalid)
        ));
        match parse_head(head, true, &mut enough) {
            Ok(Head::Request {
                method,
                target,
                headers,
                ..
            }) => assert_eq!((method, target, headers.len()), ("GET", "/", 2)),
            _ => panic!("a request head"),
        }
    }

    #[test]
    fn the_request_lines_version_is_its_protocol() {
        let mut h = [httparse::EMPTY_HEADER; 4];
        for (head, want) in [
            (
                &b"POST /v1 HTTP/1.0\r\nHost: a\r\n\r\n"[..],
                Protocol::Http10,
            ),
            (
                &b"POST /v1 HTTP/1.1\r\nHost: a\r\n\r\n"[..],
                Protocol::Http11,
            ),
        ] {
            match parse_head(head, true, &mut h) {
                Ok(Head::Request { protocol, .. }) => assert_eq!(protocol, want),
                _ => panic!("a request head"),
            }
        }
    }
}
