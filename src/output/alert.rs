//! Alerts as the contract writes them (SPEC.md, "The alert contract"), with the Suricata
//! EVE-shaped `alert` object so dashboards built for EVE take the stream as is.

use serde::Serialize;

use super::event::{RequestObj, ResponseObj, key_fields};
use crate::tracker::{Alert, AlertKind};
use crate::ts::Timestamp;

/// The EVE `alert` object.
#[derive(Debug, Serialize)]
pub struct EveAlert {
    pub signature_id: u32,
    pub signature: &'static str,
    pub category: &'static str,
    pub severity: u8,
}

/// One `"event_type":"alert"` line.
#[derive(Debug, Serialize)]
pub struct AlertEvent<'a> {
    pub timestamp: Timestamp,
    pub event_type: &'static str,
    pub kind: AlertKind,
    pub severity: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_sha256: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all_keys: Option<Vec<String>>,
    pub scope: String,
    pub message: &'static str,
    pub alert: EveAlert,
    pub request: RequestObj<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original: Option<RequestObj<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseObj<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_response: Option<ResponseObj<'a>>,
}

impl<'a> AlertEvent<'a> {
    /// `names` gives each input file's name for `pcap_filename`.
    pub fn new(a: &'a Alert, names: &'a [String], redact_keys: bool) -> AlertEvent<'a> {
        let name = |i: usize| names.get(i).map(String::as_str);
        let (key, key_sha256) = key_fields(a.key.clone(), redact_keys);
        let all_keys = a.all_keys.as_ref().map(|ks| {
            if redact_keys {
                ks.iter().map(|k| super::event::key_sha256(k)).collect()
            } else {
                ks.clone()
            }
        });
        AlertEvent {
            timestamp: a.ts,
            event_type: "alert",
            kind: a.kind,
            severity: a.kind.severity().name(),
            key,
            key_sha256,
            all_keys,
            scope: a.scope.short(),
            message: a.kind.message(),
            alert: EveAlert {
                signature_id: a.kind.signature_id(),
                signature: a.kind.message(),
                category: "idempotency",
                severity: a.kind.severity().eve(),
            },
            request: RequestObj::from_kept(
                &a.request,
                name(a.request.conn.file_index),
                redact_keys,
            ),
            original: a
                .original
                .as_ref()
                .map(|o| RequestObj::from_kept(o, name(o.conn.file_index), redact_keys)),
            response: a
                .response
                .as_deref()
                .map(|r| ResponseObj::from_kept(r, Some(&a.request))),
            original_response: a
                .original_response
                .as_deref()
                .map(|r| ResponseObj::from_kept(r, a.original.as_deref())),
        }
    }
}
