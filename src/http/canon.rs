//! The canonical form of a request body, so that "the same request" survives re-encoding:
//! JSON per RFC 8785 (JCS), form-urlencoded decoded and sorted by name, other types as decoded
//! bytes. Bodies over the bound fall back to the decoded bytes (SPEC, request identity).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use sha2::{Digest, Sha256};

/// SHA-256 of the canonical form of `decoded` (the whole decoded body) for `content_type`.
/// `decoded_sha256` is the hash of `decoded` itself when the caller has it: a body whose
/// canonical form is its own bytes (already canonical JSON, or a type kept as bytes) is then
/// not hashed a second time.
pub fn canonical_sha256(
    content_type: Option<&str>,
    decoded: &[u8],
    decoded_sha256: Option<[u8; 32]>,
) -> [u8; 32] {
    let as_is = || decoded_sha256.unwrap_or_else(|| Sha256::digest(decoded).into());
    let ct = content_type
        .and_then(|c| c.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    let is = |name: &str| ct.eq_ignore_ascii_case(name);
    // Bytes, not a str slice: the header may hold any UTF-8 (a slice inside a character panics).
    let json_suffix = ct
        .as_bytes()
        .get(ct.len().saturating_sub(5)..)
        .is_some_and(|tail| ct.len() >= 5 && tail.eq_ignore_ascii_case(b"+json"));
    let looks_json = is("application/json")
        || json_suffix
        || (ct.is_empty() && decoded.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'));
    if looks_json {
        if let Ok(v) = serde_json::from_slice::<Node>(decoded) {
            let mut out = Vec::with_capacity(decoded.len());
            if v.write_jcs(&mut out).is_ok() {
                if out == decoded {
                    return as_is();
                }
                return Sha256::digest(&out).into();
            }
        }
    } else if is("application/x-www-form-urlencoded") {
        let mut pairs: Vec<(Cow<str>, Cow<str>)> = form_urlencoded::parse(decoded).collect();
        // Stable: repeated names keep their order (Stripe's arrays: items[0], items[1], ...).
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let s = form_urlencoded::Serializer::new(String::with_capacity(decoded.len()))
            .extend_pairs(pairs)
            .finish();
        if s.as_bytes() == decoded {
            return as_is();
        }
        return Sha256::digest(s.as_bytes()).into();
    }
    as_is()
}

/// A parsed JSON value that borrows its strings from the body where it can (most bodies have
/// no escapes), so canonicalising allocates a few vectors instead of a string per member.
#[derive(Debug)]
enum Node<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'a, str>),
    Arr(Vec<Node<'a>>),
    Obj(Vec<(Cow<'a, str>, Node<'a>)>),
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

/// A member name, borrowed when it had no escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Node::Null)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Node::Bool(b))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Self::Value, E> {
        Ok(Node::U64(u))
    }
    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Self::Value, E> {
        Ok(Node::I64(i))
    }
    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Self::Value, E> {
        Ok(Node::F64(f))
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Node::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Node::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(Node::Str(Cow::Owned(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut v = Vec::with_capacity(a.size_hint().unwrap_or(0).min(64));
        while let Some(x) = a.next_element()? {
            v.push(x);
        }
        Ok(Node::Arr(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut v = Vec::with_capacity(a.size_hint().unwrap_or(0).min(64));
        while let Some((Name(k), x)) = a.next_entry()? {
            v.push((k, x));
        }
        Ok(Node::Obj(v))
    }
}

/// Writes a string as RFC 8785 does (ECMAScript's JSON.stringify, as serde_json escapes).
fn write_str(s: &str, out: &mut Vec<u8>) -> serde_json::Result<()> {
    // A fold without early exit, which the compiler vectorises: most strings need no escape.
    let special = s.bytes().fold(false, |acc, b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if special {
        serde_json::to_writer(&mut *out, s)
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    }
}

/// ES6 number serialisation: integers exactly while a double holds them exactly, everything
/// else through the double (RFC 8785 section 3.2.2.3).
fn write_f64(f: f64, out: &mut Vec<u8>) -> serde_json::Result<()> {
    if !f.is_finite() {
        return Err(serde::ser::Error::custom("number not representable"));
    }
    let mut buf = ryu_js::Buffer::new();
    out.extend_from_slice(buf.format_finite(f).as_bytes());
    Ok(())
}

const EXACT: u64 = 1 << 53;

impl Node<'_> {
    /// Writes the value in RFC 8785 form. Duplicate member names keep the last value, as
    /// serde_json's own map does (JCS itself rejects them; a body with them is still compared).
    fn write_jcs(self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match self {
            Node::Null => out.extend_from_slice(b"null"),
            Node::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
            Node::U64(u) if u <= EXACT => {
                out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes())
            }
            Node::U64(u) => write_f64(u as f64, out)?,
            Node::I64(i) if i.unsigned_abs() <= EXACT => {
                out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes())
            }
            Node::I64(i) => write_f64(i as f64, out)?,
            Node::F64(f) => write_f64(f, out)?,
            Node::Str(s) => write_str(&s, out)?,
            Node::Arr(a) => {
                out.push(b'[');
                for (i, x) in a.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    x.write_jcs(out)?;
                }
                out.push(b']');
            }
            Node::Obj(mut m) => {
                // Members sorted by their UTF-16 code units; for ASCII names that is byte
                // order. Stable, so that the last of equal names can be kept.
                if m.iter().all(|(k, _)| k.is_ascii()) {
                    m.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                } else {
                    m.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
                }
                out.push(b'{');
                let mut first = true;
                let mut it = m.into_iter().peekable();
                while let Some((k, x)) = it.next() {
                    if it.peek().is_some_and(|(n, _)| *n == k) {
                        continue;
                    }
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    write_str(&k, out)?;
                    out.push(b':');
                    x.write_jcs(out)?;
                }
                out.push(b'}');
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn canon(ct: Option<&str>, body: &[u8]) -> [u8; 32] {
        canonical_sha256(ct, body, None)
    }

    #[test]
    fn content_type_ending_inside_a_multibyte_character_is_not_a_panic() {
        // Found by fuzzing: "+json" was checked on a str slice that could cut a character.
        for ct in ["application/jsoné", "é", "x/éééé", "a/vnd+JSON", "ü+json"] {
            let as_sent: [u8; 32] = Sha256::digest(b"{ }").into();
            let h = canon(Some(ct), b"{ }");
            assert_eq!(
                h == as_sent,
                !ct.to_ascii_lowercase().ends_with("+json"),
                "{ct}"
            );
        }
    }

    fn jcs(text: &[u8]) -> String {
        let v: Node = serde_json::from_slice(text).unwrap();
        let mut out = Vec::new();
        v.write_jcs(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "\\PC{0,8}".prop_map(Value::String),
            "[a-z\\u{0}-\\u{1f}\"\\\\\u{e9}\u{20ac}\u{1f600}\u{fb33}]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                proptest::collection::vec(
                    ("[a-zA-Z_\u{e9}\u{20ac}\u{1f600}\u{fb33}]{0,5}", inner),
                    0..6
                )
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// The fast writer and the reference crate agree on every value.
        #[test]
        fn fast_jcs_matches_the_reference_crate(v in json()) {
            // Through text, so that our parser is checked as well as our writer.
            let ours = jcs(&serde_json::to_vec_pretty(&v).unwrap());
            let theirs = serde_json_canonicalizer::to_vec(&v).unwrap();
            prop_assert_eq!(ours, String::from_utf8_lossy(&theirs));
        }
    }

    #[test]
    fn escapes_duplicates_and_numbers_are_canonicalised() {
        assert_eq!(
            jcs(br#"{"b":"\u0041\n\u001f\"","a":1,"a":2.50,"c":[1e2,-0,1E21]}"#.as_slice())
                .as_str(),
            r#"{"a":2.5,"b":"A\n\u001f\"","c":[100,0,1e+21]}"#
        );
    }

    #[test]
    fn a_canonical_body_is_hashed_once_with_the_callers_digest() {
        let body = br#"{"a":1,"b":"x"}"#;
        let given = [7u8; 32];
        assert_eq!(
            canonical_sha256(Some("application/json"), body, Some(given)),
            given
        );
        let other = br#"{"b":"x","a":1}"#;
        assert_eq!(
            canonical_sha256(Some("application/json"), other, Some(given)),
            <[u8; 32]>::from(Sha256::digest(body))
        );
        assert_eq!(
            canonical_sha256(Some("image/png"), b"\x89", Some(given)),
            given
        );
    }

    #[test]
    fn json_key_order_and_spacing_do_not_matter() {
        let a = canon(Some("application/json"), br#"{"b":1,"a":[1,2]}"#);
        let b = canon(
            Some("application/json; charset=utf-8"),
            b"{ \"a\": [1, 2],\n \"b\": 1.0 }",
        );
        assert_eq!(a, b);
        let c = canon(Some("application/json"), br#"{"b":2,"a":[1,2]}"#);
        assert_ne!(a, c);
    }

    #[test]
    fn form_parameter_order_does_not_matter_but_values_do() {
        let ct = Some("application/x-www-form-urlencoded");
        assert_eq!(
            canon(ct, b"amount=100&currency=usd"),
            canon(ct, b"currency=usd&amount=1%30%30")
        );
        assert_ne!(
            canon(ct, b"amount=100&currency=usd"),
            canon(ct, b"amount=200&currency=usd")
        );
    }

    #[test]
    fn other_types_hash_the_bytes() {
        assert_eq!(
            canon(Some("text/plain"), b"x"),
            <[u8; 32]>::from(Sha256::digest(b"x"))
        );
    }
}
