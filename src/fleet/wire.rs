//! What a shared record holds, and its bytes (postcard). A record is what an alert prints of
//! a key's first request and of its responses: hashes, lengths, addresses, method, host and the
//! (already redacted) path. Never the key itself (the record is filed under its hash), never a
//! credential (the scope is a hash), never a body.

use std::net::IpAddr;
use std::sync::Arc;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::http::Conn;
use crate::net::{Endpoint, Vlans, community_id};
use crate::tracker::persist;
use crate::tracker::shared::SharedAttempt;
use crate::tracker::{Identity, KeyId, Observer, Origin, ReqRec, RespRec};
use crate::ts::Timestamp;

/// A digest that most often equals the body's own (an uncompressed body, an already canonical
/// one): kept once.
#[derive(Serialize, Deserialize)]
enum Digest {
    None,
    SameAsBody,
    Own([u8; 32]),
}

impl Digest {
    fn of(d: Option<[u8; 32]>, body: Option<[u8; 32]>) -> Digest {
        match d {
            None => Digest::None,
            Some(d) if Some(d) == body => Digest::SameAsBody,
            Some(d) => Digest::Own(d),
        }
    }

    fn get(&self, body: Option<[u8; 32]>) -> Option<[u8; 32]> {
        match self {
            Digest::None => None,
            Digest::SameAsBody => body,
            Digest::Own(d) => Some(*d),
        }
    }
}

/// A first request as stored: every field the `original` object prints, small (the Community
/// ID is computed again from the addresses; digests equal to the body's are kept once).
#[derive(Serialize, Deserialize)]
struct FirstWire<'a> {
    observer: &'a str,
    file: Option<&'a str>,
    /// When the tracker took it as the key's first use (the end of the request).
    first_ts: i64,
    identity: [u8; 16],
    decoded: Digest,
    ts: i64,
    method: &'a str,
    path: &'a str,
    host: Option<&'a str>,
    body_len: u64,
    body_sha256: Option<[u8; 32]>,
    body_canon_sha256: Digest,
    client_ip: IpAddr,
    client_port: u16,
    server_ip: IpAddr,
    server_port: u16,
    flow_id: u64,
    vlans: Vec<u16>,
}

/// A key's first request as another instance (or this one, earlier) filed it.
#[derive(Debug, Clone)]
pub struct RemoteFirst {
    pub rec: ReqRec,
    pub identity: Identity,
    pub decoded: Option<[u8; 32]>,
    pub first_ts: Timestamp,
}

/// The bytes of a first request, filed by `observer`.
pub fn encode_first(
    rec: &ReqRec,
    identity: Identity,
    decoded: Option<[u8; 32]>,
    first_ts: Timestamp,
    observer: &str,
    file: Option<&str>,
) -> Vec<u8> {
    let w = FirstWire {
        observer,
        file,
        first_ts: first_ts.0,
        identity: identity.0,
        decoded: Digest::of(decoded, rec.body_sha256),
        ts: rec.ts.0,
        method: &rec.method,
        path: &rec.path,
        host: rec.host.as_deref(),
        body_len: rec.body_len,
        body_sha256: rec.body_sha256,
        body_canon_sha256: Digest::of(rec.body_canon_sha256, rec.body_sha256),
        client_ip: rec.conn.client.ip,
        client_port: rec.conn.client.port,
        server_ip: rec.conn.server.ip,
        server_port: rec.conn.server.port,
        flow_id: rec.conn.flow_id,
        vlans: rec.vlans.as_slice().to_vec(),
    };
    postcard::to_stdvec(&w).unwrap_or_default()
}

/// A first request from its bytes; `None` when they are not a record (another version's, or
/// damaged): such a record is ignored, never trusted in part.
pub fn decode_first(bytes: &[u8]) -> Option<RemoteFirst> {
    let w: FirstWire<'_> = postcard::from_bytes(bytes).ok()?;
    let client = Endpoint {
        ip: w.client_ip,
        port: w.client_port,
    };
    let server = Endpoint {
        ip: w.server_ip,
        port: w.server_port,
    };
    let conn = Arc::new(Conn {
        client,
        server,
        flow_id: w.flow_id,
        community_id: community_id(client, server).into(),
        // No file of this run: the origin names the other instance's.
        file_index: usize::MAX,
    });
    let mut vlans = Vlans::default();
    for v in &w.vlans {
        vlans.push(*v);
    }
    let rec = ReqRec {
        origin: Origin::Remote(Arc::new(Observer {
            instance: w.observer.into(),
            file: w.file.map(Into::into),
        })),
        conn,
        ts: Timestamp(w.ts),
        method: CompactString::new(w.method),
        path: CompactString::new(w.path),
        host: w.host.map(CompactString::new),
        // The key is the one it is filed under: the reader fills it from its own request.
        key: None,
        all_keys: None,
        body_len: w.body_len,
        body_sha256: w.body_sha256,
        body_canon_sha256: w.body_canon_sha256.get(w.body_sha256),
        body_complete: true,
        body_missing: 0,
        vlans,
    };
    Some(RemoteFirst {
        rec,
        identity: Identity(w.identity),
        decoded: w.decoded.get(w.body_sha256),
        first_ts: Timestamp(w.first_ts),
    })
}

#[derive(Serialize, Deserialize)]
struct AttemptWire<'a> {
    key: [u8; 16],
    /// The key itself: `original.idempotency_key` of a `key_churn` is the first attempt's key,
    /// which the asking instance does not know. Kept for the churn window only, and never with
    /// `--redact-keys`.
    #[serde(borrow)]
    key_value: Option<&'a str>,
    end: i64,
    #[serde(borrow)]
    first: &'a [u8],
    #[serde(borrow)]
    response: Option<&'a [u8]>,
}

/// An attempt that ended badly: the hash of its key, when it ended, the request (as
/// [`encode_first`]) and its response if any.
pub fn encode_attempt(
    key: KeyId,
    key_value: Option<&str>,
    end: Timestamp,
    first: &[u8],
    response: Option<&RespRec>,
) -> Vec<u8> {
    let response = response.map(encode_response);
    let w = AttemptWire {
        key: *key.bytes(),
        key_value,
        end: end.0,
        first,
        response: response.as_deref(),
    };
    postcard::to_stdvec(&w).unwrap_or_default()
}

/// An attempt from its bytes; `None` when they are not one.
pub fn decode_attempt(bytes: &[u8]) -> Option<SharedAttempt> {
    let w: AttemptWire<'_> = postcard::from_bytes(bytes).ok()?;
    let first = decode_first(w.first)?;
    let response = match w.response {
        Some(r) => Some(decode_response(r)?),
        None => None,
    };
    let mut rec = first.rec;
    rec.key = w.key_value.map(Into::into);
    Some(SharedAttempt {
        key: KeyId::from_bytes(w.key),
        rec,
        end: Timestamp(w.end),
        response,
    })
}

/// A response's bytes: as the state file saves it.
pub fn encode_response(r: &RespRec) -> Vec<u8> {
    postcard::to_stdvec(&persist::resp_saved(r)).unwrap_or_default()
}

pub fn decode_response(bytes: &[u8]) -> Option<Arc<RespRec>> {
    postcard::from_bytes(bytes).ok().map(persist::resp_rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::TxId;

    fn rec(canon: Option<[u8; 32]>) -> ReqRec {
        let client = Endpoint {
            ip: "10.0.0.5".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            port: 51544,
        };
        let server = Endpoint {
            ip: "10.0.0.9".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            port: 80,
        };
        let mut vlans = Vlans::default();
        vlans.push(100);
        ReqRec {
            origin: Origin::Local(TxId {
                flow_id: 42,
                flow_serial: 3,
                n: 1,
            }),
            conn: Arc::new(Conn {
                client,
                server,
                flow_id: 42,
                community_id: community_id(client, server).into(),
                file_index: 0,
            }),
            ts: Timestamp(1_795_852_800_000_000_123),
            method: "POST".into(),
            path: "/v1/charges?api_key=REDACTED".into(),
            host: Some("api.example.com".into()),
            key: Some("k1".into()),
            all_keys: None,
            body_len: 31,
            body_sha256: Some([1; 32]),
            body_canon_sha256: canon,
            body_complete: true,
            body_missing: 0,
            vlans,
        }
    }

    #[test]
    fn a_first_request_comes_back_as_it_was_filed_without_its_key() {
        for canon in [Some([1; 32]), Some([2; 32]), None] {
            let r = rec(canon);
            let bytes = encode_first(
                &r,
                Identity([9; 16]),
                Some([3; 32]),
                Timestamp(77),
                "gw1",
                Some("a.pcap"),
            );
            let back = decode_first(&bytes).expect("decodes");
            let b = &back.rec;
            assert_eq!(b.key, None, "no key value is filed");
            assert_eq!(
                (b.ts, &b.method, &b.path, &b.host),
                (r.ts, &r.method, &r.path, &r.host)
            );
            assert_eq!(
                (b.body_len, b.body_sha256, b.body_canon_sha256),
                (31, Some([1; 32]), canon)
            );
            assert_eq!(b.conn.community_id, r.conn.community_id);
            assert_eq!(
                (b.conn.client, b.conn.server, b.conn.flow_id),
                (r.conn.client, r.conn.server, 42)
            );
            assert_eq!(b.vlans.as_slice(), &[100]);
            assert_eq!(
                b.origin.observer(),
                Some(&Observer {
                    instance: "gw1".into(),
                    file: Some("a.pcap".into())
                })
            );
            assert_eq!(
                (back.identity, back.decoded, back.first_ts),
                (Identity([9; 16]), Some([3; 32]), Timestamp(77))
            );
            assert!(
                b.origin.local().is_none(),
                "never taken for an exchange here"
            );
        }
    }

    /// Seeds of the `store_record` fuzz target: `cargo test --lib
    /// fleet::wire::tests::write_fuzz_seed -- --ignored`.
    #[test]
    #[ignore]
    fn write_fuzz_seed() -> std::io::Result<()> {
        let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/store_record");
        std::fs::create_dir_all(&out)?;
        let first = encode_first(
            &rec(Some([2; 32])),
            Identity([9; 16]),
            None,
            Timestamp(77),
            "gw1",
            Some("a.pcap"),
        );
        std::fs::write(out.join("first"), first)?;
        let resp = RespRec {
            ts: Timestamp(5),
            status: 200,
            interim: vec![100].into_boxed_slice(),
            body_len: 47,
            body_sha256: Some([4; 32]),
            body_complete: true,
            body_missing: 0,
            resource_id: Some("ch_1".into()),
            replayed: false,
        };
        std::fs::write(out.join("response"), encode_response(&resp))
    }

    #[test]
    fn damaged_records_are_refused_whole() {
        let bytes = encode_first(
            &rec(None),
            Identity([9; 16]),
            None,
            Timestamp(1),
            "gw1",
            None,
        );
        for cut in 0..bytes.len() {
            let _ = decode_first(&bytes[..cut]);
        }
        assert!(decode_first(&[]).is_none());
        assert!(decode_response(&[0xff; 3]).is_none());
    }
}
