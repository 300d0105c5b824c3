//! Records read back from the shared store (fleet mode): any bytes are refused or decoded,
//! never a panic; what decodes encodes to bytes that decode to the same record again.

use idemwatch::fleet::EndMark;
use idemwatch::fleet::record::{
    First, decode_attempt, decode_first, decode_response, encode_attempt, encode_first,
    encode_response,
};

/// One input through the target: a panic, a failed assertion included, is a finding.
pub fn check(data: &[u8]) {
    // An end mark (`e` of a key's record): what decodes encodes to the same text's meaning.
    if let Some(m) = EndMark::decode(data) {
        assert_eq!(EndMark::decode(m.encode().as_bytes()), Some(m));
    }
    if let Some(f) = decode_first(data) {
        let origin = f.rec.origin.observer().cloned();
        let observer = origin
            .as_ref()
            .map(|o| o.instance.to_string())
            .unwrap_or_default();
        let file = origin
            .as_ref()
            .and_then(|o| o.file.as_deref().map(str::to_string));
        let again = encode_first(&First {
            rec: &f.rec,
            identity: f.identity,
            decoded: f.decoded,
            first_ts: f.first_ts,
            observer: &observer,
            file: file.as_deref(),
        });
        let g = decode_first(&again).expect("a re-encoded record decodes");
        assert_eq!(g.rec.ts, f.rec.ts);
        assert_eq!(g.rec.path(), f.rec.path());
        assert_eq!(g.rec.body_sha256, f.rec.body_sha256);
        assert_eq!(g.rec.body_canon_sha256, f.rec.body_canon_sha256);
        assert_eq!(g.decoded, f.decoded);
        assert_eq!(g.rec.conn.community_id, f.rec.conn.community_id);
    }
    if let Some(r) = decode_response(data) {
        let again = encode_response(&r);
        let s = decode_response(&again).expect("a re-encoded response decodes");
        assert_eq!(
            (s.status, s.body_len, &s.resource_id),
            (r.status, r.body_len, &r.resource_id)
        );
    }
    if let Some(a) = decode_attempt(data) {
        let observer = a
            .rec
            .origin
            .observer()
            .map(|o| o.instance.to_string())
            .unwrap_or_default();
        let again = encode_attempt(
            a.key,
            a.rec.key.as_deref(),
            a.end,
            &First {
                rec: &a.rec,
                identity: idemwatch::tracker::Identity([0; 16]),
                decoded: None,
                first_ts: a.end,
                observer: &observer,
                file: None,
            },
            a.response.as_deref(),
        );
        let b = decode_attempt(&again).expect("a re-encoded attempt decodes");
        assert_eq!((b.key, b.end, &b.rec.key), (a.key, a.end, &a.rec.key));
        assert_eq!((b.rec.ts, b.rec.path()), (a.rec.ts, a.rec.path()));
        assert_eq!(b.response.map(|r| r.status), a.response.map(|r| r.status));
    }
}
