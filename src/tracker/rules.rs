//! The alert kinds: what each is called, how severe it is, its fixed EVE signature id, and
//! the checks that decide them. Numbers reach these checks only through `TrackerConfig`.

use serde::Serialize;

use super::RespRec as Response;
use crate::http::KeyHeader;

/// Every alert kind of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    KeyConflict,
    KeyReencoded,
    KeyChurn,
    KeylessDuplicate,
    MissingKey,
    LateRetry,
    InvalidKey,
    ConflictAccepted,
    ConflictReplayed,
    ReplayMismatch,
    ReplayDrift,
    ConcurrentReuse,
}

/// Severity, as a word and as EVE's integer (1 critical .. 4 low).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }

    pub fn eve(self) -> u8 {
        match self {
            Severity::Critical => 1,
            Severity::High => 2,
            Severity::Medium => 3,
            Severity::Low => 4,
        }
    }
}

impl AlertKind {
    pub const ALL: [AlertKind; 12] = [
        AlertKind::KeyConflict,
        AlertKind::KeyReencoded,
        AlertKind::KeyChurn,
        AlertKind::KeylessDuplicate,
        AlertKind::MissingKey,
        AlertKind::LateRetry,
        AlertKind::InvalidKey,
        AlertKind::ConflictAccepted,
        AlertKind::ConflictReplayed,
        AlertKind::ReplayMismatch,
        AlertKind::ReplayDrift,
        AlertKind::ConcurrentReuse,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AlertKind::KeyConflict => "key_conflict",
            AlertKind::KeyReencoded => "key_reencoded",
            AlertKind::KeyChurn => "key_churn",
            AlertKind::KeylessDuplicate => "keyless_duplicate",
            AlertKind::MissingKey => "missing_key",
            AlertKind::LateRetry => "late_retry",
            AlertKind::InvalidKey => "invalid_key",
            AlertKind::ConflictAccepted => "conflict_accepted",
            AlertKind::ConflictReplayed => "conflict_replayed",
            AlertKind::ReplayMismatch => "replay_mismatch",
            AlertKind::ReplayDrift => "replay_drift",
            AlertKind::ConcurrentReuse => "concurrent_reuse",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            AlertKind::ConflictAccepted | AlertKind::ReplayMismatch => Severity::Critical,
            AlertKind::KeyConflict | AlertKind::KeyChurn | AlertKind::KeylessDuplicate => {
                Severity::High
            }
            AlertKind::LateRetry
            | AlertKind::InvalidKey
            | AlertKind::ConflictReplayed
            | AlertKind::ConcurrentReuse => Severity::Medium,
            AlertKind::KeyReencoded | AlertKind::MissingKey | AlertKind::ReplayDrift => {
                Severity::Low
            }
        }
    }

    /// Fixed per kind: dashboards key on it.
    pub fn signature_id(self) -> u32 {
        9_000_001
            + match self {
                AlertKind::KeyConflict => 0,
                AlertKind::KeyReencoded => 1,
                AlertKind::KeyChurn => 2,
                AlertKind::KeylessDuplicate => 3,
                AlertKind::MissingKey => 4,
                AlertKind::LateRetry => 5,
                AlertKind::InvalidKey => 6,
                AlertKind::ConflictAccepted => 7,
                AlertKind::ConflictReplayed => 8,
                AlertKind::ReplayMismatch => 9,
                AlertKind::ReplayDrift => 10,
                AlertKind::ConcurrentReuse => 11,
            }
    }

    pub fn message(self) -> &'static str {
        match self {
            AlertKind::KeyConflict => "Idempotency-Key reused with a different request body",
            AlertKind::KeyReencoded => {
                "Idempotency-Key reused with the same request encoded differently"
            }
            AlertKind::KeyChurn => {
                "Same request retried with a new Idempotency-Key while the first may still run"
            }
            AlertKind::KeylessDuplicate => "Identical request without Idempotency-Key repeated",
            AlertKind::MissingKey => {
                "Request without Idempotency-Key to an endpoint that takes one"
            }
            AlertKind::LateRetry => {
                "Idempotency-Key retried after the server's window: it will run again"
            }
            AlertKind::InvalidKey => "Invalid Idempotency-Key header",
            AlertKind::ConflictAccepted => {
                "Server accepted a conflicting reuse of an Idempotency-Key: it ran twice"
            }
            AlertKind::ConflictReplayed => {
                "Server replayed the stored result to a conflicting request: its payload was dropped"
            }
            AlertKind::ReplayMismatch => {
                "Retry with the same Idempotency-Key got a different result"
            }
            AlertKind::ReplayDrift => "Retry with the same Idempotency-Key got a different body",
            AlertKind::ConcurrentReuse => {
                "Idempotency-Key reused while a request with it is still in flight"
            }
        }
    }
}

/// Why a key header is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyProblem {
    Empty,
    TooLong,
    BadCharacters,
    SeveralHeaders,
}

/// `invalid_key`: empty, too long, characters outside its form, or several key lines.
pub fn key_problem(keys: &[KeyHeader], max_len: usize) -> Option<KeyProblem> {
    let first = keys.first()?;
    if keys.len() > 1 {
        return Some(KeyProblem::SeveralHeaders);
    }
    let raw = first.value.trim();
    let key = first.key();
    if key.is_empty() {
        return Some(KeyProblem::Empty);
    }
    if key.len() > max_len {
        return Some(KeyProblem::TooLong);
    }
    let quoted = raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"');
    let ok = if quoted {
        // RFC 8941 sf-string: printable ASCII.
        key.bytes().all(|b| (0x20..=0x7e).contains(&b))
    } else {
        // Bare (Stripe): visible ASCII, no spaces or controls.
        key.bytes().all(|b| (0x21..=0x7e).contains(&b))
    };
    (!ok).then_some(KeyProblem::BadCharacters)
}

/// Whether a response can become a key's stored result.
pub fn storable(resp: &Response, store_errors: bool) -> bool {
    let s = resp.status;
    if s < 200 || matches!(s, 401 | 403 | 408 | 409 | 425 | 429) {
        return false;
    }
    s < 500 || store_errors
}

/// Responses that say "try again", not "here is the result": never compared with the stored
/// result.
pub fn transient(resp: &Response) -> bool {
    matches!(resp.status, 408 | 409 | 425 | 429) || resp.status >= 500
}

/// What a retry's response says against the stored result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayVerdict {
    Same,
    /// Another resource, or a 2xx turned into an error.
    Mismatch,
    /// Same resource and status class, another body.
    Drift,
}

/// `replay_mismatch` and `replay_drift`.
pub fn judge_replay(stored: &Response, retry: &Response) -> ReplayVerdict {
    let class = |s: u16| s / 100;
    if class(stored.status) == 2 && class(retry.status) >= 4 {
        return ReplayVerdict::Mismatch;
    }
    if let (Some(a), Some(b)) = (&stored.resource_id, &retry.resource_id)
        && a != b
    {
        return ReplayVerdict::Mismatch;
    }
    if class(stored.status) != class(retry.status) {
        // E.g. a stored 400 then a 200: Stripe stores no result for a request that failed
        // validation, so the retry legitimately ran. Only the cases above are mismatches.
        return ReplayVerdict::Same;
    }
    match (stored.body_sha256, retry.body_sha256) {
        (Some(a), Some(b)) if a != b => ReplayVerdict::Drift,
        _ => ReplayVerdict::Same,
    }
}

/// For a conflicting request answered 2xx: `true` when the server gave back the stored
/// result (conflict_replayed), `false` when it produced another (conflict_accepted).
pub fn conflict_got_stored_result(stored: &Response, answer: &Response) -> bool {
    if answer.replayed {
        return true;
    }
    match (&stored.resource_id, &answer.resource_id) {
        (Some(a), Some(b)) => a == b,
        _ => matches!((stored.body_sha256, answer.body_sha256), (Some(a), Some(b)) if a == b),
    }
}
