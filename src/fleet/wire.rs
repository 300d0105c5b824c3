//! What a shared record holds, and its bytes (postcard). A record is what an alert prints of
//! a key's first request and of its responses: hashes, lengths, addresses, method, host and the
//! (already redacted) path. Never the key itself (the record is filed under its hash), never a
//! credential (the scope is a hash), never a body.

use std::net::IpAddr;
use std::sync::Arc;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::http::{Conn, TxId};
use crate::reassembly::flow::Endpoint;
use crate::tracker::{Identity, Origin, ReqRec, RespRec};
use crate::ts::Timestamp;

/// Marks the id of a request seen by another instance: it never equals a local exchange's.
pub const REMOTE_FLOW_SERIAL: u64 = u64::MAX - 1;

#[derive(Serialize, Deserialize)]
struct FirstWire<'a> {
    observer: &'a str,
    file: Option<&'a str>,
    /// When the tracker took it as the key's first use (the end of the request).
    first_ts: i64,
    identity: [u8; 16],
    decoded: Option<[u8; 32]>,
    ts: i64,
    method: &'a str,
    path: &'a str,
    host: Option<&'a str>,
    body_len: u64,
    body_sha256: Option<[u8; 32]>,
    body_canon_sha256: Option<[u8; 32]>,
    client_ip: IpAddr,
    client_port: u16,
    server_ip: IpAddr,
    server_port: u16,
    flow_id: u64,
    community_id: &'a str,
    vlans: Vec<u16>,
}

#[derive(Serialize, Deserialize)]
struct RespWire<'a> {
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
        decoded,
        ts: rec.ts.0,
        method: &rec.method,
        path: &rec.path,
        host: rec.host.as_deref(),
        body_len: rec.body_len,
        body_sha256: rec.body_sha256,
        body_canon_sha256: rec.body_canon_sha256,
        client_ip: rec.conn.client.ip,
        client_port: rec.conn.client.port,
        server_ip: rec.conn.server.ip,
        server_port: rec.conn.server.port,
        flow_id: rec.conn.flow_id,
        community_id: &rec.conn.community_id,
        vlans: rec.vlans.as_slice().to_vec(),
    };
    postcard::to_stdvec(&w).unwrap_or_default()
}

/// A first request from its bytes; `None` when they are not a record (another version's, or
/// damaged): such a record is ignored, never trusted in part.
pub fn decode_first(bytes: &[u8]) -> Option<RemoteFirst> {
    let w: FirstWire<'_> = postcard::from_bytes(bytes).ok()?;
    let conn = Arc::new(Conn {
        client: Endpoint {
            ip: w.client_ip,
            port: w.client_port,
        },
        server: Endpoint {
            ip: w.server_ip,
            port: w.server_port,
        },
        flow_id: w.flow_id,
        community_id: w.community_id.into(),
        // No file of this run: the origin names the other instance's.
        file_index: usize::MAX,
    });
    let mut vlans = crate::decode::Vlans::default();
    for v in &w.vlans {
        vlans.push(*v);
    }
    let rec = ReqRec {
        id: TxId {
            flow_id: w.flow_id,
            flow_serial: REMOTE_FLOW_SERIAL,
            n: u64::try_from(w.ts).unwrap_or(0),
        },
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
        body_canon_sha256: w.body_canon_sha256,
        body_complete: true,
        body_missing: 0,
        vlans,
        origin: Some(Arc::new(Origin {
            observer: w.observer.into(),
            file: w.file.map(Into::into),
        })),
    };
    Some(RemoteFirst {
        rec,
        identity: Identity(w.identity),
        decoded: w.decoded,
        first_ts: Timestamp(w.first_ts),
    })
}

pub fn encode_response(r: &RespRec) -> Vec<u8> {
    let w = RespWire {
        ts: r.ts.0,
        status: r.status,
        interim: r.interim.to_vec(),
        body_len: r.body_len,
        body_sha256: r.body_sha256,
        body_complete: r.body_complete,
        body_missing: r.body_missing,
        resource_id: r.resource_id.as_deref(),
        replayed: r.replayed,
    };
    postcard::to_stdvec(&w).unwrap_or_default()
}

pub fn decode_response(bytes: &[u8]) -> Option<Arc<RespRec>> {
    let w: RespWire<'_> = postcard::from_bytes(bytes).ok()?;
    Some(Arc::new(RespRec {
        ts: Timestamp(w.ts),
        status: w.status,
        interim: w.interim.into_boxed_slice(),
        body_len: w.body_len,
        body_sha256: w.body_sha256,
        body_complete: w.body_complete,
        body_missing: w.body_missing,
        resource_id: w.resource_id.map(Into::into),
        replayed: w.replayed,
    }))
}
