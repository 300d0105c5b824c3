//! Fleet mode: several idemwatch instances (one per gateway) judge keys through one shared key
//! store, so that a retry that lands on another gateway than its first attempt is still
//! compared with it.
//!
//! The tracker keeps its own tables and stays the judge; the shared store only answers "who
//! used this key first, and what did the server answer it". The pieces:
//! - [`Backend`]: one round trip of operations against a store. Two implementations: Redis
//!   (single node, TLS or Cluster; [`redis_store`]) and in-process ([`memory`], a `dashmap`,
//!   for one process and for tests).
//! - [`worker`]: a thread that owns the backend: batches operations into pipelined round trips,
//!   bounds what is queued, survives faults (reconnects with backoff, counts the outage).
//! - [`stage`]: in front of the tracker, holds a keyed request until the store says who holds
//!   its key (or a timeout passes), then hands it over in order. Capture never waits for it.
//! - [`record`]: what a record holds and its bytes, a versioned format of the fleet's own.

pub mod memory;
pub mod record;
pub mod redis_store;
pub mod stage;
pub mod worker;

use std::fmt;

use crate::tracker::{Identity, KeyId, Scope};

/// A record's name: `prefix`, `tag`, then the scope's hash and the other hash in hex (64
/// digits).
fn hex_name(prefix: &str, tag: &str, scope: &Scope, hash: &[u8; 16]) -> String {
    let mut s = String::with_capacity(prefix.len() + tag.len() + 64);
    s.push_str(prefix);
    s.push_str(tag);
    for b in scope.0.iter().chain(hash.iter()) {
        s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        s.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
    }
    s
}

/// Where a key is filed: its scope's and its own hashes (never the key, never a credential).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordKey {
    pub scope: Scope,
    pub key: KeyId,
}

impl RecordKey {
    /// The record's name under `prefix`: `PREFIXk:` and 64 hex digits.
    pub fn name(&self, prefix: &str) -> String {
        hex_name(prefix, "k:", &self.scope, self.key.bytes())
    }
}

/// Where an attempt at a request is filed: its scope's and its identity's hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttemptKey {
    pub scope: Scope,
    pub identity: Identity,
}

impl AttemptKey {
    /// `PREFIXt:` and 64 hex digits.
    pub fn name(&self, prefix: &str) -> String {
        hex_name(prefix, "t:", &self.scope, &self.identity.0)
    }
}

/// Where the recent keyless uses of a request are filed: its scope's and its identity's
/// hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeylessKey {
    pub scope: Scope,
    pub identity: Identity,
}

impl KeylessKey {
    /// `PREFIXd:` and 64 hex digits.
    pub fn name(&self, prefix: &str) -> String {
        hex_name(prefix, "d:", &self.scope, &self.identity.0)
    }
}

/// How many keyless uses of one request the store keeps (the latest by capture time): enough
/// for gateways whose uses cross on their way to the store, bounded against a flood of one
/// request.
pub const KEYLESS_KEPT: usize = 8;

/// A claim of a key's first use.
#[derive(Debug, Clone)]
pub struct Claim {
    /// Who claims: 64 bits of a hash of the instance and its exchange, in hex, unique in the
    /// fleet.
    pub claim_id: String,
    /// Capture time of the first use, in microseconds.
    pub first_us: i64,
    /// A holder older than this (µs) is replaced (the key's window passed).
    pub window_us: i64,
    /// How long the store keeps the record (wall clock).
    pub ttl_ms: u64,
    /// [`record::encode_first`].
    pub record: Vec<u8>,
}

/// How a key's first use stopped being in flight, as its claimer files it: when (the start of
/// its final response, or its exchange's end without one, in µs), and whether that was
/// observed (a response, or the server seen closing); an unobserved end never makes another
/// use concurrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndMark {
    pub at_us: i64,
    pub observed: bool,
}

impl EndMark {
    /// `"<µs>:<0|1>"`, as filed.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.at_us, u8::from(self.observed))
    }

    pub fn decode(b: &[u8]) -> Option<EndMark> {
        let s = std::str::from_utf8(b).ok()?;
        let (at, o) = s.split_once(':')?;
        Some(EndMark {
            at_us: at.parse().ok()?,
            observed: match o {
                "1" => true,
                "0" => false,
                _ => return None,
            },
        })
    }
}

/// Later uses registered on a key's record at most, while its first use is in flight: the
/// rest are not judged across gateways (a flood of reuses of one key).
pub const USES_KEPT: usize = 64;

/// One operation on the shared store.
#[derive(Debug, Clone)]
pub enum Op {
    /// Claims a key for a first use (or, without a claim, only reads who holds it). Answered.
    Claim {
        ticket: u64,
        rk: RecordKey,
        claim: Option<Claim>,
    },
    /// Files what the server answered: the first request's response (only its claimer may
    /// write it) and the key's stored result (the first writer wins). With `end` (the first
    /// use's exchange ended; only its claimer files it), it is answered with the later uses
    /// that other instances registered while it was in flight ([`RawReply::Settled`]), each
    /// handed to exactly one instance: registered before the end, they are this one's to
    /// judge; after it, the registering instance judges them itself.
    Settle {
        ticket: u64,
        rk: RecordKey,
        claim_id: String,
        first_response: Option<Vec<u8>>,
        /// `Some(None)`: the stored result is the first response itself.
        stored: Option<Option<Vec<u8>>>,
        end: Option<EndMark>,
    },
    /// The claimer's first use was not processed by the server (an HTTP/2 stream refused, or
    /// above a GOAWAY's last stream id; RFC 9113 section 8.7): its record is deleted, so that
    /// the key's next use on any instance is its first. The later uses registered on it go
    /// with it: nothing ran alongside them. Not answered.
    Release { rk: RecordKey, claim_id: String },
    /// An endpoint learned (took a key header) until `deadline_us`. Not answered.
    Endpoint { name: String, deadline_us: i64 },
    /// Reads every learned endpoint (and forgets those past `now_us`). Answered.
    SyncEndpoints { now_us: i64 },
    /// Answered once everything queued before it was sent (never reaches a backend).
    Barrier { ticket: u64 },
    /// Files a keyed attempt at a request as in flight (the request's last attempt), unless
    /// another instance's attempt at it is in flight. Not answered.
    AttemptStarted {
        ak: AttemptKey,
        claim_id: String,
        key: KeyId,
        /// [`record::encode_attempt`], without a response.
        record: Vec<u8>,
        ttl_ms: u64,
    },
    /// The attempt filed by `claim_id` ended, badly (`bad`: unanswered, aborted, 5xx, 409) or
    /// well; it is kept `ttl_ms` ([`record::encode_attempt`]) for `key_churn`. Answered with the attempts at the same request under other keys that other
    /// instances registered while it was in flight ([`RawReply::Settled`]), each handed to
    /// exactly one instance.
    AttemptEnded {
        ticket: u64,
        ak: AttemptKey,
        claim_id: String,
        bad: bool,
        record: Vec<u8>,
        ttl_ms: u64,
    },
    /// Reads the attempt filed for a request: one that ended comes back. One in flight by
    /// another instance under another key registers `waiter` (this request's attempt record)
    /// with it, to be judged by that attempt's instance when it ends. Otherwise this request
    /// becomes the attempt in flight, kept `ttl_ms` (its [`Op::AttemptStarted`] in the same
    /// round trip). Answered.
    AttemptLookup {
        ticket: u64,
        ak: AttemptKey,
        claim_id: String,
        key: KeyId,
        waiter: Vec<u8>,
        ttl_ms: u64,
    },
    /// Reads the latest keyless use of a request filed before `at_us` and at most `window_us`
    /// before it (by capture time, whatever order the uses reached the store in). Answered.
    KeylessLookup {
        ticket: u64,
        dk: KeylessKey,
        at_us: i64,
        window_us: i64,
    },
    /// Files a keyless use of a watched request ([`record::encode_first`]) at its capture
    /// time; the store keeps the latest [`KEYLESS_KEPT`] for `ttl_ms`. Not answered.
    KeylessUse {
        dk: KeylessKey,
        at_us: i64,
        ttl_ms: u64,
        record: Vec<u8>,
    },
    /// Reads one learned endpoint's deadline, if any. Answered.
    EndpointLookup { ticket: u64, name: String },
}

/// A record as a backend returns it, still in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub claim_id: String,
    pub record: Vec<u8>,
    pub first_response: Option<Vec<u8>>,
    /// `Some(None)`: same as the first response.
    pub stored: Option<Option<Vec<u8>>>,
    /// When the first use stopped being in flight, if its claimer filed it.
    pub end: Option<EndMark>,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawClaim {
    /// The key is ours (claimed), or nobody's (read only).
    Free,
    /// Another first use holds the key within its window. A claim with a record, while the
    /// holder is in flight (no end filed), is registered as a later use of the key
    /// ([`Op::Settle`]).
    Held(RawRecord),
    /// Ours now; the holder whose window had passed is returned (a late retry is judged on it).
    Replaced(RawRecord),
}

/// A backend's answer to one operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RawReply {
    Claim(RawClaim),
    Endpoints(Vec<(String, i64)>),
    /// The attempt filed for a request, ended: whether badly, and its record in bytes.
    Attempt(Option<(bool, Vec<u8>)>),
    /// The latest earlier keyless use of a request, in bytes.
    Keyless(Option<Vec<u8>>),
    /// An endpoint's deadline (µs), if it was learned.
    Endpoint(Option<i64>),
    /// The later uses registered while a first use (or an attempt) was in flight: their
    /// records, in bytes.
    Settled(Vec<Vec<u8>>),
    /// Operations that are not answered.
    #[default]
    Done,
}

/// Why a round trip failed.
#[derive(Debug, Clone)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A shared key store: one round trip for a batch of operations, in order, one reply each.
pub trait Backend: Send {
    /// Opens (or reopens) the connection.
    fn connect(&mut self) -> Result<(), StoreError>;
    /// Runs `ops` in one round trip. An error means nothing can be assumed of any of them.
    fn run(&mut self, ops: &[Op]) -> Result<Vec<RawReply>, StoreError>;
    /// What to name in logs (no password).
    fn describe(&self) -> String;
}

/// `--store`: where the shared key store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// In-process (`memory`): shared by the trackers of one process only.
    Memory,
    /// `redis://` or `rediss://` URL of one node.
    Redis(String),
    /// Several URLs, comma-separated: seed nodes of a Redis Cluster.
    Cluster(Vec<String>),
}

impl StoreSpec {
    pub fn parse(s: &str) -> Result<StoreSpec, String> {
        let s = s.trim();
        if s == "memory" {
            return Ok(StoreSpec::Memory);
        }
        let urls: Vec<String> = s
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect();
        for u in &urls {
            if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
                return Err(format!(
                    "'{}' is not a store; write memory, redis://HOST:PORT/DB, \
                     rediss://HOST:PORT/DB (TLS) or several redis:// URLs, comma-separated, \
                     for the seed nodes of a Redis Cluster",
                    redact_passwords(u)
                ));
            }
            if redis::parse_redis_url(u).is_none() {
                return Err(format!(
                    "'{}' is not a Redis URL; write redis://HOST:PORT/DB",
                    redact_passwords(u)
                ));
            }
        }
        match urls.len() {
            0 => Err("empty store; write memory or redis://HOST:PORT/DB".into()),
            1 => Ok(StoreSpec::Redis(
                urls.into_iter().next().unwrap_or_default(),
            )),
            _ => Ok(StoreSpec::Cluster(urls)),
        }
    }
}

/// Settings of the shared store (`--store*` options).
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    pub spec: StoreSpec,
    /// Names every record and list of this fleet in the store.
    pub prefix: String,
    /// This instance's name in records (alerts print it as `observer`).
    pub instance: String,
    /// A round trip (and a connection attempt) longer than this fails.
    pub timeout: std::time::Duration,
    /// How long a request waits for the store before it is judged without it.
    pub wait: std::time::Duration,
    /// Operations queued for the store at most; past it they are skipped and counted.
    pub max_inflight: usize,
    /// Operations in one round trip at most.
    pub max_batch: usize,
    /// How often learned endpoints are read back.
    pub sync_interval: std::time::Duration,
    /// TLS (`rediss://`): the CA to trust instead of the system's, and a client certificate.
    pub tls: StoreTls,
}

/// Certificates for a store reached over TLS (PEM files).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreTls {
    pub ca: Option<std::path::PathBuf>,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

impl StoreTls {
    /// The certificates read, or `None` to use the system's trust store and no client
    /// certificate.
    pub fn load(&self) -> Result<Option<redis::TlsCertificates>, String> {
        let read = |p: &std::path::Path, what: &str| {
            std::fs::read(p)
                .map_err(|e| format!("cannot read {what} {}: {e}; give a PEM file", p.display()))
        };
        let root_cert = self
            .ca
            .as_deref()
            .map(|p| read(p, "--store-ca"))
            .transpose()?;
        let client_tls = match (&self.cert, &self.key) {
            (Some(c), Some(k)) => Some(redis::ClientTlsConfig {
                client_cert: read(c, "--store-cert")?,
                client_key: read(k, "--store-key")?,
            }),
            (None, None) => None,
            _ => return Err("--store-cert and --store-key go together".into()),
        };
        Ok(
            (root_cert.is_some() || client_tls.is_some()).then_some(redis::TlsCertificates {
                client_tls,
                root_cert,
            }),
        )
    }
}

impl StoreConfig {
    pub fn new(spec: StoreSpec) -> StoreConfig {
        StoreConfig {
            spec,
            prefix: "idemwatch:".into(),
            instance: default_instance(),
            timeout: std::time::Duration::from_millis(200),
            wait: std::time::Duration::from_millis(500),
            max_inflight: 8192,
            max_batch: 256,
            sync_interval: std::time::Duration::from_secs(5),
            tls: StoreTls::default(),
        }
    }

    /// The backend these settings name.
    pub fn backend(&self) -> Result<Box<dyn Backend>, String> {
        match &self.spec {
            StoreSpec::Memory => Ok(Box::new(memory::MemoryBackend::new(
                memory::MemoryStore::default(),
                &self.prefix,
            ))),
            StoreSpec::Redis(url) => Ok(Box::new(redis_store::RedisBackend::single(
                url,
                &self.prefix,
                self.timeout,
                self.tls.load()?,
            )?)),
            StoreSpec::Cluster(urls) => Ok(Box::new(redis_store::RedisBackend::cluster(
                urls,
                &self.prefix,
                self.timeout,
                self.tls.load()?,
            )?)),
        }
    }
}

/// `text` with the password of every `redis://` or `rediss://` URL in it replaced by
/// `REDACTED` (`redis://user:secret@host` -> `redis://user:REDACTED@host`).
pub fn redact_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("redis") {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let scheme = if tail.starts_with("rediss://") {
            "rediss://"
        } else if tail.starts_with("redis://") {
            "redis://"
        } else {
            out.push_str("redis");
            rest = &tail[5..];
            continue;
        };
        out.push_str(scheme);
        let after = &tail[scheme.len()..];
        // The authority ends at the first '/', quote, comma or blank; a '@' inside it ends the
        // user information, whose part after ':' is the password.
        let end = after
            .find(|c: char| c == '/' || c == '"' || c == '\'' || c == ',' || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..=colon]);
                        out.push_str("REDACTED");
                    }
                    None => out.push_str("REDACTED"),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The host's name, else `idemwatch`.
pub fn default_instance() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "idemwatch".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_store_urls_are_never_shown() {
        assert_eq!(
            redact_passwords("store = \"redis://:s3cret@10.0.0.2:6379/0\""),
            "store = \"redis://:REDACTED@10.0.0.2:6379/0\""
        );
        assert_eq!(
            redact_passwords("rediss://app:p@ss:w@h:1/0,redis://h2:2"),
            "rediss://app:REDACTED@h:1/0,redis://h2:2"
        );
        assert_eq!(
            redact_passwords("redis://tok@h/0 redisx"),
            "redis://REDACTED@h/0 redisx"
        );
        let e = StoreSpec::parse("redis://:s3cret@")
            .err()
            .unwrap_or_default();
        assert!(!e.contains("s3cret"), "{e}");
        assert!(StoreSpec::parse("http://h").is_err());
        assert_eq!(StoreSpec::parse("memory"), Ok(StoreSpec::Memory));
        assert!(matches!(
            StoreSpec::parse("redis://a:1,redis://b:2"),
            Ok(StoreSpec::Cluster(v)) if v.len() == 2
        ));
    }
}
