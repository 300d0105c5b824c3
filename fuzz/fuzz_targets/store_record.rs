//! Records read back from the shared store (fleet mode): any bytes are refused or decoded,
//! never a panic; what decodes encodes to bytes that decode to the same request again.
#![no_main]

use idemwatch::fleet::wire::{decode_first, decode_response, encode_first, encode_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(f) = decode_first(data) {
        let origin = f.rec.origin.observer().cloned();
        let observer = origin.as_ref().map(|o| o.instance.to_string()).unwrap_or_default();
        let file = origin.as_ref().and_then(|o| o.file.as_deref().map(str::to_string));
        let again = encode_first(&f.rec, f.identity, f.decoded, f.first_ts, &observer, file.as_deref());
        let g = decode_first(&again).expect("a re-encoded record decodes");
        assert_eq!(g.rec.ts, f.rec.ts);
        assert_eq!(g.rec.path, f.rec.path);
        assert_eq!(g.rec.body_sha256, f.rec.body_sha256);
        assert_eq!(g.rec.body_canon_sha256, f.rec.body_canon_sha256);
        assert_eq!(g.decoded, f.decoded);
        assert_eq!(g.rec.conn.community_id, f.rec.conn.community_id);
    }
    if let Some(r) = decode_response(data) {
        let again = encode_response(&r);
        let s = decode_response(&again).expect("a re-encoded response decodes");
        assert_eq!((s.status, s.body_len, &s.resource_id), (r.status, r.body_len, &r.resource_id));
    }
});
