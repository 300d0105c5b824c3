//! The records fleet mode files in the shared store, and their bytes. A record holds what an
//! alert prints of a key's first request and of its responses: hashes, lengths, addresses,
//! method, host and the (already redacted) path. Never the key itself (the record is filed
//! under its hash; only an attempt record may carry it, see below), never a credential (the
//! scope is a hash), never a body.
//!
//! These types are the fleet's own, converted explicitly from and to the tracker's
//! ([`ReqRec`], [`RespRec`]): the state file (`tracker::persist`) can change its layout
//! without changing a byte of what instances exchange, and the other way round.
//!
//! # Format (version 2)
//!
//! Every value below is one version byte, then postcard. A value of another version, damaged,
//! or with bytes after its end is refused whole (`None`), never trusted in part: an instance
//! judges that key on its own, and counts it (`store_bad_records`). Version 1 values are still
//! read: version 2 only added `protocol` at the end of FirstRecord, and a version 1 request
//! reads as HTTP/1.1, the only version that filed them.
//!
//! ```text
//! value     filed as                       postcard payload after the version byte
//! first     `q` of PREFIXk:<scope><key>    FirstRecord: observer, file, first_ts, identity,
//!                                          decoded (digest), ts, method, path, host, body_len,
//!                                          body_sha256, body_canon_sha256 (digest), client and
//!                                          server address and port, flow_id, vlans,
//!                                          protocol (0 HTTP/1.0, 1 HTTP/1.1, 2 HTTP/2)
//! response  `f` and `s` of the same hash   ResponseRecord: ts, status, interim statuses,
//!                                          body_len, body_sha256, body_complete, body_missing,
//!                                          resource_id, replayed
//! attempt   PREFIXa:<scope><identity>      AttemptRecord: key hash, key value (none with
//!                                          --redact-keys), end, FirstRecord, ResponseRecord?
//! ```
//!
//! A digest that most often equals the body's own (an uncompressed body, an already canonical
//! one) is kept once: `SameAsBody`. The Community ID is computed again from the addresses.
//! Bump [`VERSION`] whenever a payload's layout, or the meaning of a hash in it, changes.

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::http::{Conn, Protocol};
use crate::net::{Endpoint, Vlans, community_id};
use crate::tracker::shared::SharedAttempt;
use crate::tracker::{
    Identity, KeyId, Observer, Origin, ReqRare, ReqRec, RespRare, RespRec, Target,
};
use crate::ts::Timestamp;

/// The first byte of every value filed.
pub const VERSION: u8 = 2;
/// The one older version still read (FirstRecord without `protocol`).
const VERSION_1: u8 = 1;

/// `bytes` of `v`, behind the version byte.
fn seal<T: Serialize>(v: &T) -> Vec<u8> {
    // Encoding into a growing vector fails only when out of memory: an empty value then, which
    // every reader refuses.
    postcard::to_extend(v, vec![VERSION]).unwrap_or_default()
}

/// The payload behind the version byte, when it is of this version (or, when `older` is,
/// version 1, as `O`) and nothing follows it.
fn open<'a, T, O>(bytes: &'a [u8], older: impl FnOnce(O) -> T) -> Option<T>
where
    T: Deserialize<'a>,
    O: Deserialize<'a>,
{
    let (version, payload) = bytes.split_first()?;
    match *version {
        VERSION => whole(payload),
        VERSION_1 => whole(payload).map(older),
        _ => None,
    }
}

fn whole<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Option<T> {
    let (v, rest) = postcard::take_from_bytes(payload).ok()?;
    rest.is_empty().then_some(v)
}

/// A request's HTTP version as filed.
#[derive(Serialize, Deserialize, Clone, Copy)]
enum ProtocolRecord {
    Http10,
    Http11,
    Http2,
}

impl From<Protocol> for ProtocolRecord {
    fn from(p: Protocol) -> ProtocolRecord {
        match p {
            Protocol::Http10 => ProtocolRecord::Http10,
            Protocol::Http11 => ProtocolRecord::Http11,
            Protocol::Http2 => ProtocolRecord::Http2,
        }
    }
}

impl From<ProtocolRecord> for Protocol {
    fn from(p: ProtocolRecord) -> Protocol {
        match p {
            ProtocolRecord::Http10 => Protocol::Http10,
            ProtocolRecord::Http11 => Protocol::Http11,
            ProtocolRecord::Http2 => Protocol::Http2,
        }
    }
}

/// A digest kept once when it equals the body's.
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

/// A first request as filed: every field the `original` object prints. `P` is its protocol:
/// [`ProtocolRecord`], or `()` in a version 1 value.
#[derive(Serialize, Deserialize)]
struct FirstRecord<'a, P = ProtocolRecord> {
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
    /// Version 2 on: last, so that version 1 is this layout without it.
    protocol: P,
}

/// A response as filed: every field the response objects print.
#[derive(Serialize, Deserialize)]
struct ResponseRecord<'a> {
    ts: i64,
    status: u16,
    interim: Vec<u16>,
    body_len: u64,
    body_sha256: Option<[u8; 32]>,
    body_complete: bool,
    body_missing: u64,
    resource_id: Option<&'a str>,
    replayed: bool,
}

/// An attempt at a request that ended badly.
#[derive(Serialize, Deserialize)]
struct AttemptRecord<'a, P = ProtocolRecord> {
    key: [u8; 16],
    /// The key itself: `original.idempotency_key` of a `key_churn` is the first attempt's key,
    /// which the asking instance does not know. Kept for the churn window only, and never with
    /// `--redact-keys`.
    key_value: Option<&'a str>,
    end: i64,
    #[serde(borrow)]
    first: FirstRecord<'a, P>,
    #[serde(borrow)]
    response: Option<ResponseRecord<'a>>,
}

/// A key's first request, to be filed by `observer`.
#[derive(Debug, Clone, Copy)]
pub struct First<'a> {
    pub rec: &'a ReqRec,
    pub identity: Identity,
    pub decoded: Option<[u8; 32]>,
    /// When the tracker took it as the key's first use.
    pub first_ts: Timestamp,
    /// The instance that saw it.
    pub observer: &'a str,
    /// Its capture file there, when it read files.
    pub file: Option<&'a str>,
}

/// A key's first request as another instance (or this one, earlier) filed it.
#[derive(Debug, Clone)]
pub struct RemoteFirst {
    pub rec: ReqRec,
    pub identity: Identity,
    pub decoded: Option<[u8; 32]>,
    pub first_ts: Timestamp,
}

fn first_record<'a>(f: &First<'a>) -> FirstRecord<'a> {
    let rec = f.rec;
    FirstRecord {
        observer: f.observer,
        file: f.file,
        first_ts: f.first_ts.0,
        identity: f.identity.0,
        decoded: Digest::of(f.decoded, rec.body_sha256),
        ts: rec.ts.0,
        method: rec.method(),
        path: rec.path(),
        host: rec.host(),
        body_len: rec.body_len,
        body_sha256: rec.body_sha256,
        body_canon_sha256: Digest::of(rec.body_canon_sha256, rec.body_sha256),
        client_ip: rec.conn.client.ip,
        client_port: rec.conn.client.port,
        server_ip: rec.conn.server.ip,
        server_port: rec.conn.server.port,
        flow_id: rec.conn.flow_id,
        vlans: rec.vlans().as_slice().to_vec(),
        protocol: rec.protocol.into(),
    }
}

/// A version 1 first request as a version 2 one.
fn first_v1(w: FirstRecord<'_, ()>) -> FirstRecord<'_> {
    FirstRecord {
        observer: w.observer,
        file: w.file,
        first_ts: w.first_ts,
        identity: w.identity,
        decoded: w.decoded,
        ts: w.ts,
        method: w.method,
        path: w.path,
        host: w.host,
        body_len: w.body_len,
        body_sha256: w.body_sha256,
        body_canon_sha256: w.body_canon_sha256,
        client_ip: w.client_ip,
        client_port: w.client_port,
        server_ip: w.server_ip,
        server_port: w.server_port,
        flow_id: w.flow_id,
        vlans: w.vlans,
        // Version 1 held nothing here (`()`, no bytes in postcard): every request filed then
        // was read as HTTP/1.1.
        protocol: ProtocolRecord::Http11,
    }
}

fn attempt_v1(w: AttemptRecord<'_, ()>) -> AttemptRecord<'_> {
    AttemptRecord {
        key: w.key,
        key_value: w.key_value,
        end: w.end,
        first: first_v1(w.first),
        response: w.response,
    }
}

fn remote_first(w: FirstRecord<'_>) -> RemoteFirst {
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
        tls: None,
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
        target: Target::intern(w.method, w.host, w.path),
        // The key is the one it is filed under: the reader fills it from its own request.
        key: None,
        body_len: w.body_len,
        body_sha256: w.body_sha256,
        body_canon_sha256: w.body_canon_sha256.get(w.body_sha256),
        body_complete: true,
        protocol: w.protocol.into(),
        rare: ReqRare::of(None, 0, vlans),
    };
    RemoteFirst {
        rec,
        identity: Identity(w.identity),
        decoded: w.decoded.get(w.body_sha256),
        first_ts: Timestamp(w.first_ts),
    }
}

fn response_record(r: &RespRec) -> ResponseRecord<'_> {
    ResponseRecord {
        ts: r.ts.0,
        status: r.status,
        interim: r.interim().to_vec(),
        body_len: r.body_len,
        body_sha256: r.body_sha256,
        body_complete: r.body_complete,
        body_missing: r.body_missing(),
        resource_id: r.resource_id.as_deref(),
        replayed: r.replayed,
    }
}

fn resp_rec(w: ResponseRecord<'_>) -> Arc<RespRec> {
    Arc::new(RespRec {
        ts: Timestamp(w.ts),
        status: w.status,
        rare: RespRare::of(&w.interim, w.body_missing),
        body_len: w.body_len,
        body_sha256: w.body_sha256,
        body_complete: w.body_complete,
        resource_id: w.resource_id.map(Into::into),
        replayed: w.replayed,
    })
}

/// The bytes of a first request.
pub fn encode_first(f: &First<'_>) -> Vec<u8> {
    seal(&first_record(f))
}

/// A first request from its bytes; `None` when they are not a record of this version.
pub fn decode_first(bytes: &[u8]) -> Option<RemoteFirst> {
    open(bytes, first_v1).map(remote_first)
}

/// The bytes of an attempt that ended badly: the hash of its key (and the key, unless
/// redacted), when it ended, the request and its response if any.
pub fn encode_attempt(
    key: KeyId,
    key_value: Option<&str>,
    end: Timestamp,
    first: &First<'_>,
    response: Option<&RespRec>,
) -> Vec<u8> {
    seal(&AttemptRecord {
        key: *key.bytes(),
        key_value,
        end: end.0,
        first: first_record(first),
        response: response.map(response_record),
    })
}

/// An attempt from its bytes; `None` when they are not one of this version.
pub fn decode_attempt(bytes: &[u8]) -> Option<SharedAttempt> {
    let w: AttemptRecord<'_> = open(bytes, attempt_v1)?;
    let mut rec = remote_first(w.first).rec;
    rec.key = w.key_value.map(Into::into);
    Some(SharedAttempt {
        key: KeyId::from_bytes(w.key),
        rec,
        end: Timestamp(w.end),
        response: w.response.map(resp_rec),
        // The record does not say: the store's state does (see the attempt lookup).
        bad: true,
    })
}

/// The bytes of a response.
pub fn encode_response(r: &RespRec) -> Vec<u8> {
    seal(&response_record(r))
}

/// A response from its bytes; `None` when they are not one of this version.
pub fn decode_response(bytes: &[u8]) -> Option<Arc<RespRec>> {
    // Its layout is the same in version 1.
    open(bytes, |r: ResponseRecord<'_>| r).map(resp_rec)
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
                tls: None,
            }),
            ts: Timestamp(1_795_852_800_000_000_123),
            target: Target::intern(
                "POST",
                Some("api.example.com"),
                "/v1/charges?api_key=REDACTED",
            ),
            key: Some("k1".into()),
            body_len: 31,
            body_sha256: Some([1; 32]),
            body_canon_sha256: canon,
            body_complete: true,
            protocol: Protocol::Http2,
            rare: ReqRare::of(None, 0, vlans),
        }
    }

    fn first(r: &ReqRec, decoded: Option<[u8; 32]>, file: Option<&'static str>) -> Vec<u8> {
        encode_first(&First {
            rec: r,
            identity: Identity([9; 16]),
            decoded,
            first_ts: Timestamp(77),
            observer: "gw1",
            file,
        })
    }

    fn response() -> RespRec {
        RespRec {
            ts: Timestamp(5),
            status: 503,
            rare: RespRare::of(&[100], 3),
            body_len: 47,
            body_sha256: Some([4; 32]),
            body_complete: false,
            resource_id: Some("ch_1".into()),
            replayed: true,
        }
    }

    fn attempt(r: &ReqRec, key_value: Option<&str>, resp: Option<&RespRec>) -> Vec<u8> {
        let f = First {
            rec: r,
            identity: Identity([9; 16]),
            decoded: None,
            first_ts: Timestamp(90),
            observer: "gw2",
            file: None,
        };
        encode_attempt(KeyId::of("k1"), key_value, Timestamp(90), &f, resp)
    }

    #[test]
    fn a_first_request_comes_back_as_it_was_filed_without_its_key() {
        for canon in [Some([1; 32]), Some([2; 32]), None] {
            let r = rec(canon);
            let bytes = first(&r, Some([3; 32]), Some("a.pcap"));
            let back = decode_first(&bytes).expect("decodes");
            let b = &back.rec;
            assert_eq!(b.key, None, "no key value is filed");
            assert_eq!(
                (b.ts, b.method(), b.path(), b.host()),
                (r.ts, r.method(), r.path(), r.host())
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
            assert_eq!(b.vlans().as_slice(), &[100]);
            assert_eq!(b.protocol, Protocol::Http2);
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

    #[test]
    fn a_response_comes_back_as_it_was_filed() {
        let r = response();
        let back = decode_response(&encode_response(&r)).expect("decodes");
        assert_eq!(
            (back.ts, back.status, back.interim(), back.body_len),
            (r.ts, r.status, r.interim(), r.body_len)
        );
        assert_eq!(
            (back.body_sha256, back.body_complete, back.body_missing()),
            (r.body_sha256, r.body_complete, r.body_missing())
        );
        assert_eq!(
            (&back.resource_id, back.replayed),
            (&r.resource_id, r.replayed)
        );
    }

    #[test]
    fn an_attempt_comes_back_with_its_key_only_when_filed_with_it() {
        let r = rec(None);
        let resp = response();
        let a = decode_attempt(&attempt(&r, Some("k1"), Some(&resp))).expect("decodes");
        assert_eq!((a.key, a.end), (KeyId::of("k1"), Timestamp(90)));
        assert_eq!(a.rec.key.as_deref(), Some("k1"));
        assert_eq!(a.rec.path(), r.path());
        assert_eq!(a.rec.protocol, Protocol::Http2);
        assert_eq!(a.rec.origin.observer().map(|o| &*o.instance), Some("gw2"));
        assert_eq!(a.response.map(|x| x.status), Some(503));
        let a = decode_attempt(&attempt(&r, None, None)).expect("decodes");
        assert_eq!((a.rec.key, a.response.is_none()), (None, true));
    }

    #[test]
    fn every_value_starts_with_the_version_and_another_version_is_refused() {
        let r = rec(None);
        let values = [
            first(&r, None, None),
            encode_response(&response()),
            attempt(&r, Some("k1"), None),
        ];
        for v in &values {
            assert_eq!(v.first(), Some(&VERSION));
            let mut other = v.clone();
            other[0] = VERSION.wrapping_add(1);
            assert!(decode_first(&other).is_none());
            assert!(decode_response(&other).is_none());
            assert!(decode_attempt(&other).is_none());
            // Bytes after the value: not one of ours, refused whole.
            let mut longer = v.clone();
            longer.push(0);
            assert!(decode_first(&longer).is_none());
            assert!(decode_response(&longer).is_none());
            assert!(decode_attempt(&longer).is_none());
        }
        assert!(decode_first(&values[0]).is_some());
        assert!(decode_response(&values[1]).is_some());
        assert!(decode_attempt(&values[2]).is_some());
    }

    #[test]
    fn each_protocol_is_filed_and_read_back() {
        for p in [Protocol::Http10, Protocol::Http11, Protocol::Http2] {
            let mut r = rec(None);
            r.protocol = p;
            let back = decode_first(&first(&r, None, None)).expect("decodes");
            assert_eq!(back.rec.protocol, p);
            let a = decode_attempt(&attempt(&r, None, None)).expect("decodes");
            assert_eq!(a.rec.protocol, p);
        }
    }

    /// Values filed by the previous version (version 1, before `protocol`), as its
    /// `write_fuzz_seed` wrote them: still read, their request as HTTP/1.1.
    #[test]
    fn a_version_1_value_reads_as_http_1_1() {
        let f = include_bytes!("../../fuzz/seeds/store_record/first-v1");
        let a = include_bytes!("../../fuzz/seeds/store_record/attempt-v1");
        let resp = include_bytes!("../../fuzz/seeds/store_record/response-v1");
        assert_eq!((f[0], a[0], resp[0]), (1, 1, 1));
        let back = decode_first(f).expect("a version 1 first request is read");
        assert_eq!(back.rec.protocol, Protocol::Http11);
        assert_eq!(
            (back.rec.path(), back.rec.body_len),
            ("/v1/charges?api_key=REDACTED", 31)
        );
        let at = decode_attempt(a).expect("a version 1 attempt is read");
        assert_eq!(at.rec.protocol, Protocol::Http11);
        assert_eq!(
            (at.rec.key.as_deref(), at.response.map(|r| r.status)),
            (Some("k1"), Some(503))
        );
        assert_eq!(decode_response(resp).map(|r| r.status), Some(503));
        // A version 1 value is not a version 2 one: relabelled, it is refused whole.
        let mut relabelled = f.to_vec();
        relabelled[0] = VERSION;
        assert!(decode_first(&relabelled).is_none());
    }

    /// Seeds of the `store_record` fuzz target: `cargo test --lib
    /// fleet::record::tests::write_fuzz_seed -- --ignored`.
    #[test]
    #[ignore]
    fn write_fuzz_seed() -> std::io::Result<()> {
        let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/store_record");
        std::fs::create_dir_all(&out)?;
        let r = rec(Some([2; 32]));
        std::fs::write(out.join("first"), first(&r, None, Some("a.pcap")))?;
        std::fs::write(out.join("response"), encode_response(&response()))?;
        std::fs::write(
            out.join("attempt"),
            attempt(&r, Some("k1"), Some(&response())),
        )
    }

    #[test]
    fn damaged_records_are_refused_whole() {
        let r = rec(None);
        let (f, resp) = (first(&r, None, None), encode_response(&response()));
        let a = attempt(&r, Some("k1"), Some(&response()));
        // A postcard value is self-delimiting: no shorter prefix is a whole value of its type.
        for cut in 0..f.len() {
            assert!(decode_first(&f[..cut]).is_none(), "{cut}");
        }
        for cut in 0..resp.len() {
            assert!(decode_response(&resp[..cut]).is_none(), "{cut}");
        }
        for cut in 0..a.len() {
            assert!(decode_attempt(&a[..cut]).is_none(), "{cut}");
        }
        assert!(decode_first(&[]).is_none());
        assert!(decode_response(&[0xff; 3]).is_none());
    }
}
