//! Serde types of the output events. Field names are the contract (SPEC.md): change them only
//! compatibly (add, never rename or remove).

use std::net::IpAddr;

use serde::Serialize;

use crate::http::{Body, Conn, Request, Response, Transaction};
use crate::stats::Stats;
use crate::ts::Timestamp;

fn hex(d: &[u8; 32]) -> String {
    let mut s = String::with_capacity(64);
    for b in d {
        s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        s.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
    }
    s
}

/// A request object, as in alerts (`request`, `original`) and `http` events.
#[derive(Debug, Serialize)]
pub struct RequestObj<'a> {
    pub ts: Timestamp,
    pub flow_id: u64,
    pub community_id: &'a str,
    pub src_ip: IpAddr,
    pub src_port: u16,
    pub dest_ip: IpAddr,
    pub dest_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<&'a [u16]>,
    pub method: &'a str,
    pub host: Option<&'a str>,
    pub path: &'a str,
    /// "HTTP/1.0", "HTTP/1.1" or "HTTP/2" (EVE's `http.protocol`): after the path, as in a
    /// request line.
    pub protocol: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<Option<String>>,
    /// With `--redact-keys`: the key's SHA-256 instead of the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key_sha256: Option<Option<String>>,
    pub body_len: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_canon_sha256: Option<String>,
    pub body_complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_missing_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcap_filename: Option<&'a str>,
    /// Fleet mode: the instance that saw this request, when it was another one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observer: Option<&'a str>,
    /// Read through TLS: its version and the server name the client asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsObj<'a>>,
}

/// The `tls` object of a request or response read through TLS.
#[derive(Debug, Serialize)]
pub struct TlsObj<'a> {
    pub version: &'static str,
    pub sni: Option<&'a str>,
}

impl<'a> TlsObj<'a> {
    fn of(conn: &'a Conn) -> Option<TlsObj<'a>> {
        conn.tls.as_deref().map(|t| TlsObj {
            version: t.version,
            sni: t.sni.as_deref(),
        })
    }
}

/// A response object (`response`, `original_response`).
#[derive(Debug, Serialize)]
pub struct ResponseObj<'a> {
    pub ts: Timestamp,
    pub status: u16,
    #[serde(skip_serializing_if = "<[u16]>::is_empty")]
    pub interim_statuses: &'a [u16],
    pub body_len: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_sha256: Option<String>,
    pub body_complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_missing_bytes: Option<u64>,
    pub resource_id: Option<&'a str>,
    pub replayed: bool,
    /// Read through TLS (the connection of its request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsObj<'a>>,
}

fn missing(b: &Body) -> Option<u64> {
    (!b.complete).then_some(b.missing)
}

/// The SHA-256 of a key, in hex, for `--redact-keys`.
pub fn key_sha256(key: &str) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(key.as_bytes()).into())
}

/// The key fields of an object: the key itself, or its hash with `--redact-keys`.
pub fn key_fields(
    key: Option<String>,
    redact: bool,
) -> (Option<Option<String>>, Option<Option<String>>) {
    if redact {
        (None, Some(key.map(|k| key_sha256(&k))))
    } else {
        (Some(key), None)
    }
}

impl<'a> RequestObj<'a> {
    pub fn new(
        conn: &'a Conn,
        req: &'a Request,
        pcap_filename: Option<&'a str>,
        redact_keys: bool,
    ) -> Self {
        let (idempotency_key, idempotency_key_sha256) =
            key_fields(req.idempotency_key(), redact_keys);
        RequestObj {
            ts: req.ts,
            flow_id: conn.flow_id,
            community_id: &conn.community_id,
            src_ip: conn.client.ip,
            src_port: conn.client.port,
            dest_ip: conn.server.ip,
            dest_port: conn.server.port,
            vlan: (!req.vlans.is_empty()).then(|| req.vlans.as_slice()),
            method: &req.method,
            host: req.host.as_deref(),
            path: &req.path,
            protocol: req.protocol.as_str(),
            idempotency_key,
            idempotency_key_sha256,
            body_len: req.body.len,
            body_sha256: req.body.sha256.as_ref().map(hex),
            body_canon_sha256: req.body.canon_sha256.as_ref().map(hex),
            body_complete: req.body.complete,
            body_missing_bytes: missing(&req.body),
            pcap_filename,
            observer: None,
            tls: TlsObj::of(conn),
        }
    }
}

impl<'a> RequestObj<'a> {
    /// From the tracker's kept form of a request.
    pub fn from_kept(
        r: &'a crate::tracker::ReqRec,
        pcap_filename: Option<&'a str>,
        redact_keys: bool,
    ) -> Self {
        let (idempotency_key, idempotency_key_sha256) =
            key_fields(r.key.as_deref().map(str::to_string), redact_keys);
        RequestObj {
            ts: r.ts,
            flow_id: r.conn.flow_id,
            community_id: &r.conn.community_id,
            src_ip: r.conn.client.ip,
            src_port: r.conn.client.port,
            dest_ip: r.conn.server.ip,
            dest_port: r.conn.server.port,
            vlan: (!r.vlans().is_empty()).then(|| r.vlans().as_slice()),
            method: r.method(),
            host: r.host(),
            path: r.path(),
            protocol: r.protocol.as_str(),
            idempotency_key,
            idempotency_key_sha256,
            body_len: r.body_len,
            body_sha256: r.body_sha256.as_ref().map(hex),
            body_canon_sha256: r.body_canon_sha256.as_ref().map(hex),
            body_complete: r.body_complete,
            body_missing_bytes: (!r.body_complete).then_some(r.body_missing()),
            // A request another instance saw names its file there, and that instance.
            pcap_filename: match r.origin.observer() {
                Some(o) => o.file.as_deref(),
                None => pcap_filename,
            },
            observer: r.origin.observer().map(|o| &*o.instance),
            tls: TlsObj::of(&r.conn),
        }
    }
}

impl<'a> ResponseObj<'a> {
    /// From the tracker's kept form of a response, on the connection of `request`.
    pub fn from_kept(
        r: &'a crate::tracker::RespRec,
        request: Option<&'a crate::tracker::ReqRec>,
    ) -> Self {
        ResponseObj {
            ts: r.ts,
            status: r.status,
            interim_statuses: r.interim(),
            body_len: r.body_len,
            body_sha256: r.body_sha256.as_ref().map(hex),
            body_complete: r.body_complete,
            body_missing_bytes: (!r.body_complete).then_some(r.body_missing()),
            resource_id: r.resource_id.as_deref(),
            replayed: r.replayed,
            tls: request.and_then(|q| TlsObj::of(&q.conn)),
        }
    }

    pub fn new(resp: &'a Response, conn: &'a Conn) -> Self {
        ResponseObj {
            ts: resp.ts,
            status: resp.status,
            interim_statuses: &resp.interim,
            body_len: resp.body.len,
            body_sha256: resp.body.sha256.as_ref().map(hex),
            body_complete: resp.body.complete,
            body_missing_bytes: missing(&resp.body),
            resource_id: resp.resource_id.as_deref(),
            replayed: resp.replayed,
            tls: TlsObj::of(conn),
        }
    }
}

/// `"event_type":"http"`: one per transaction with `--log-requests`.
#[derive(Debug, Serialize)]
pub struct HttpEvent<'a> {
    pub timestamp: Timestamp,
    pub event_type: &'static str,
    pub flow_id: u64,
    pub community_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key_sha256: Option<Option<String>>,
    pub request: Option<RequestObj<'a>>,
    pub response: Option<ResponseObj<'a>>,
}

impl<'a> HttpEvent<'a> {
    pub fn new(tx: &'a Transaction, pcap_filename: Option<&'a str>, redact_keys: bool) -> Self {
        let request = tx
            .request
            .as_ref()
            .map(|r| RequestObj::new(&tx.conn, r, pcap_filename, redact_keys));
        let (idempotency_key, idempotency_key_sha256) = key_fields(
            tx.request.as_ref().and_then(Request::idempotency_key),
            redact_keys,
        );
        let response = tx.response.as_ref().map(|r| ResponseObj::new(r, &tx.conn));
        // The event's time: when the exchange completed.
        let timestamp = tx
            .response
            .as_ref()
            .map(|r| r.ts_end)
            .or(tx.request.as_ref().map(|r| r.ts_end))
            .unwrap_or_default();
        HttpEvent {
            timestamp,
            event_type: "http",
            flow_id: tx.conn.flow_id,
            community_id: &tx.conn.community_id,
            idempotency_key,
            idempotency_key_sha256,
            request,
            response,
        }
    }
}

/// `"event_type":"stats"`: counters.
#[derive(Debug, Serialize)]
pub struct StatsEvent<'a> {
    pub timestamp: Timestamp,
    pub event_type: &'static str,
    pub stats: &'a Stats,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::http::{Protocol, TxId};
    use crate::net::Endpoint;
    use crate::tracker::ReqRec;

    fn conn() -> Conn {
        let ep = |port| Endpoint {
            ip: IpAddr::from([10, 0, 0, 1]),
            port,
        };
        Conn {
            client: ep(40000),
            server: ep(80),
            flow_id: 7,
            community_id: Arc::from("1:x"),
            file_index: 0,
            tls: None,
        }
    }

    fn request(protocol: Protocol) -> Request {
        Request {
            method: "POST".into(),
            path: "/v1/charges".into(),
            protocol,
            ..Request::default()
        }
    }

    #[test]
    fn a_request_object_writes_its_protocol_after_its_path() {
        let c = Arc::new(conn());
        let id = TxId {
            flow_id: 7,
            flow_serial: 0,
            n: 0,
        };
        for (p, text) in [
            (Protocol::Http10, "HTTP/1.0"),
            (Protocol::Http11, "HTTP/1.1"),
            (Protocol::Http2, "HTTP/2"),
        ] {
            let req = request(p);
            let want =
                format!(r#""path":"/v1/charges","protocol":"{text}","idempotency_key":null"#);
            let seen =
                serde_json::to_string(&RequestObj::new(&c, &req, None, false)).unwrap_or_default();
            assert!(seen.contains(&want), "{seen}");
            let kept = ReqRec::new(id, &c, &req);
            let seen = serde_json::to_string(&RequestObj::from_kept(&kept, None, false))
                .unwrap_or_default();
            assert!(seen.contains(&want), "{seen}");
        }
    }
}
