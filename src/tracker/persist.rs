//! Tracked keys saved to and loaded from the state directory, so that a restart forgets nothing.
//!
//! # What is saved
//!
//! The tracker's remembered keys (each key's first request, its identity and decoded-body
//! hash, when it was first seen, the first response and the stored result), the endpoints it
//! learned take keys, and the recent keyless requests (for `keyless_duplicate`), each with its
//! deadline in capture time. What is in flight (requests not yet answered, waiters, recent
//! responses, `key_churn` attempts) belongs to the running process and is not saved: after a
//! load it starts empty. Saved requests hold what alerts print and nothing more: addresses,
//! method, host, path (credential-like query values already redacted), the idempotency key,
//! body lengths and SHA-256 digests. Never an Authorization or Cookie value, never a body. The
//! file is created with mode 0600 all the same, since it holds idempotency key values. With
//! `--redact-keys` no key value is saved: keys are matched by the hash every entry holds
//! (`key_id`), and a request loaded from the file prints a null key hash in `original`.
//!
//! # Format (version 2)
//!
//! ```text
//! magic        16 bytes  "IDEMWATCH-STATE\n"
//! version      u32 LE    FORMAT_VERSION (2); 1 is still loaded
//! fingerprint  32 bytes  SHA-256 of the scope parts and the key header names
//! window       u64 LE    nanoseconds, TrackerConfig::window when saved
//! dup_window   u64 LE    nanoseconds, TrackerConfig::duplicate_window when saved
//! payload      postcard  connections, keys, endpoints, keyless requests
//! checksum     32 bytes  SHA-256 of every byte before it
//! ```
//!
//! Each saved request (a key's first, a keyless one) ends with its `protocol`, one byte
//! (0 HTTP/1.0, 1 HTTP/1.1, 2 HTTP/2), since version 2. A version 1 file is the same layout
//! without that byte: it is loaded, its requests read as HTTP/1.1 (all it was written for).
//! A version 2 file is set aside by a build that reads only version 1.
//!
//! # Loading
//!
//! A file that is not ours, of another format version, damaged (checksum, truncation,
//! decoding), or saved under another scope or other key header names is renamed to
//! `tracker.state.bad-<unix-seconds>` and reported as [`LoadOutcome::SetAside`]: never fatal,
//! never deleted. Nothing in a file can make loading panic; what it allocates stays in
//! proportion to the file's size (every length read is checked against the bytes left).
//!
//! A change of `window` or `duplicate_window` alone is accepted: the deadlines are set again
//! as the running tracker would have set them (a key is kept `2 * window` after its first use,
//! an endpoint `window` after it was last refreshed, a keyless request `duplicate_window`
//! after it ended). Whether a reuse is a retry or a `late_retry` is judged with the running
//! window anyway. A change of `max_keys` is accepted too: at most `max_keys` entries of each
//! table are loaded, the newest (latest deadline) kept.
//!
//! Loaded requests are of [`Origin::Loaded`], so that they can never be taken for an exchange
//! of the running process.

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foldhash::HashMap;
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};
use thin_vec::ThinVec;

use super::{
    Identity, KeyEntry, KeyId, Keyless, Origin, ReqRare, ReqRec, RespRare, RespRec, Scope, Target,
    Tracker,
};
use crate::http::{Conn, Protocol};
use crate::net::{Endpoint, Vlans};
use crate::ts::Timestamp;

/// The state file's name in the state directory.
pub const STATE_FILE: &str = "tracker.state";
/// Where a save is written before it replaces [`STATE_FILE`].
pub const TMP_FILE: &str = "tracker.state.tmp";
/// The first bytes of every state file.
pub const MAGIC: &[u8; 16] = b"IDEMWATCH-STATE\n";
/// Bump whenever the layout, or the meaning of a saved hash (key, scope, identity, canonical
/// body), changes: older files are then set aside rather than misread.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format this build still loads: format 1 is format 2 without `protocol`.
const OLDEST_VERSION: u32 = 1;

const HEADER_LEN: usize = 16 + 4 + 32 + 8 + 8;
const SUM_LEN: usize = 32;

/// What a save wrote.
#[derive(Debug)]
pub struct SaveReport {
    /// Keys saved.
    pub keys: usize,
    /// Size of the state file.
    pub bytes: u64,
    /// The state file.
    pub path: PathBuf,
}

/// What a load found.
#[derive(Debug)]
pub enum LoadOutcome {
    Loaded {
        /// Keys loaded.
        keys: usize,
        /// Learned endpoints loaded.
        endpoints: usize,
        /// Saved entries not loaded (keys, endpoints and keyless requests together): past
        /// `max_keys` (the oldest go), or already in the tracker (it wins).
        dropped: usize,
    },
    /// No state file: a first start.
    Missing,
    /// The file could not be used (corrupt, foreign, another format or configuration); it was
    /// renamed to `moved_to`.
    SetAside { reason: String, moved_to: PathBuf },
}

/// Why the state could not be saved, or a bad state file not even set aside.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "cannot create the state directory {}: {}; check --state-dir and that the daemon's user may create it",
        .path.display(), io_text(.cause)
    )]
    CreateDir { path: PathBuf, cause: io::Error },
    #[error(
        "cannot write {}: {}; check --state-dir is writable by the daemon's user and its disk is not full",
        .path.display(), io_text(.cause)
    )]
    Write { path: PathBuf, cause: io::Error },
    #[error(
        "cannot replace {} with {}: {}; check --state-dir is writable by the daemon's user",
        .to.display(), .from.display(), io_text(.cause)
    )]
    Replace {
        from: PathBuf,
        to: PathBuf,
        cause: io::Error,
    },
    #[error(
        "cannot sync the state directory {}: {}; the state file was replaced but may not survive a power loss; check the file system of --state-dir",
        .path.display(), io_text(.cause)
    )]
    SyncDir { path: PathBuf, cause: io::Error },
    #[error(
        "cannot read {}: {}; check it is readable by the daemon's user, or move it away to start without saved state",
        .path.display(), io_text(.cause)
    )]
    Read { path: PathBuf, cause: io::Error },
    #[error(
        "{} is unusable ({reason}) and cannot be set aside as {}: {}; move it away by hand, or make --state-dir writable by the daemon's user",
        .path.display(), .to.display(), io_text(.cause)
    )]
    SetAside {
        path: PathBuf,
        to: PathBuf,
        reason: String,
        cause: io::Error,
    },
}

/// An io error as a short lower-case phrase ("permission denied").
fn io_text(e: &io::Error) -> String {
    use io::ErrorKind as K;
    let s = match e.kind() {
        K::PermissionDenied => "permission denied",
        K::NotFound => "no such file or directory",
        K::StorageFull => "no space left on device",
        K::ReadOnlyFilesystem => "read-only file system",
        K::NotADirectory => "not a directory",
        K::IsADirectory => "is a directory",
        K::QuotaExceeded => "disk quota exceeded",
        K::AlreadyExists => "already exists",
        _ => return e.to_string(),
    };
    s.to_string()
}

// ---- The serialized form: plain types only, borrowed from the tracker on save and from the
// file's bytes on load.

#[derive(Serialize, Deserialize)]
struct ConnSaved<'a> {
    client_ip: IpAddr,
    client_port: u16,
    server_ip: IpAddr,
    server_port: u16,
    flow_id: u64,
    community_id: &'a str,
    file_index: u64,
}

/// A saved request's HTTP version (format 2 on).
#[derive(Serialize, Deserialize)]
enum ProtocolSaved {
    Http10,
    Http11,
    Http2,
}

/// What a saved request holds of its HTTP version: [`ProtocolSaved`] from format 2, `()` in
/// format 1 (no bytes in postcard), read as HTTP/1.1, the only version it was written for.
trait SavedProtocol {
    fn protocol(&self) -> Protocol;
}

impl SavedProtocol for () {
    fn protocol(&self) -> Protocol {
        Protocol::Http11
    }
}

impl SavedProtocol for ProtocolSaved {
    fn protocol(&self) -> Protocol {
        match self {
            ProtocolSaved::Http10 => Protocol::Http10,
            ProtocolSaved::Http11 => Protocol::Http11,
            ProtocolSaved::Http2 => Protocol::Http2,
        }
    }
}

impl From<Protocol> for ProtocolSaved {
    fn from(p: Protocol) -> ProtocolSaved {
        match p {
            Protocol::Http10 => ProtocolSaved::Http10,
            Protocol::Http11 => ProtocolSaved::Http11,
            Protocol::Http2 => ProtocolSaved::Http2,
        }
    }
}

/// A request as saved; `P` its protocol, by format version (see [`SavedProtocol`]).
#[derive(Serialize, Deserialize)]
struct ReqSaved<'a, P = ProtocolSaved> {
    /// Index into the payload's connections.
    conn: u64,
    flow_id: u64,
    n: u64,
    ts: i64,
    method: &'a str,
    path: &'a str,
    #[serde(borrow)]
    host: Option<&'a str>,
    #[serde(borrow)]
    key: Option<&'a str>,
    #[serde(borrow)]
    all_keys: Option<Vec<&'a str>>,
    body_len: u64,
    body_sha256: Option<[u8; 32]>,
    body_canon_sha256: Option<[u8; 32]>,
    body_complete: bool,
    body_missing: u64,
    vlans: Cow<'a, [u16]>,
    /// Format 2 on: last, so that format 1 is this layout without it.
    protocol: P,
}

/// A response as saved.
#[derive(Serialize, Deserialize)]
struct RespSaved<'a> {
    ts: i64,
    status: u16,
    interim: Cow<'a, [u16]>,
    body_len: u64,
    body_sha256: Option<[u8; 32]>,
    body_complete: bool,
    body_missing: u64,
    #[serde(borrow)]
    resource_id: Option<&'a str>,
    replayed: bool,
}

/// A key's stored result: most often its first response itself.
#[derive(Serialize, Deserialize)]
enum StoredSaved<'a> {
    None,
    SameAsFirst,
    #[serde(borrow)]
    Own(RespSaved<'a>),
}

#[derive(Serialize, Deserialize)]
struct KeySaved<'a, P = ProtocolSaved> {
    scope: [u8; 16],
    key_id: [u8; 16],
    deadline: i64,
    #[serde(borrow)]
    first: ReqSaved<'a, P>,
    identity: Option<[u8; 16]>,
    decoded: Option<[u8; 32]>,
    first_ts: i64,
    #[serde(borrow)]
    first_response: Option<RespSaved<'a>>,
    #[serde(borrow)]
    stored: StoredSaved<'a>,
}

#[derive(Serialize, Deserialize)]
struct EndpointSaved<'a> {
    name: &'a str,
    deadline: i64,
    value: i64,
}

#[derive(Serialize, Deserialize)]
struct KeylessSaved<'a, P = ProtocolSaved> {
    scope: [u8; 16],
    identity: [u8; 16],
    deadline: i64,
    #[serde(borrow)]
    rec: ReqSaved<'a, P>,
    #[serde(borrow)]
    response: Option<RespSaved<'a>>,
}

/// The payload as read back.
#[derive(Deserialize)]
struct Payload<'a, P> {
    #[serde(borrow)]
    conns: Vec<ConnSaved<'a>>,
    #[serde(borrow)]
    keys: Vec<KeySaved<'a, P>>,
    #[serde(borrow)]
    endpoints: Vec<EndpointSaved<'a>>,
    #[serde(borrow)]
    keyless: Vec<KeylessSaved<'a, P>>,
}

/// The payload as written: the same layout as [`Payload`], its entries made one at a time from
/// the tracker's tables rather than copied first.
#[derive(Serialize)]
struct PayloadOut<'a> {
    conns: Vec<ConnSaved<'a>>,
    keys: KeysOut<'a>,
    endpoints: Vec<EndpointSaved<'a>>,
    keyless: KeylessOut<'a>,
}

type KeyRow<'a> = (&'a (Scope, KeyId), &'a KeyEntry, Timestamp);
type KeylessRow<'a> = (&'a (Scope, Identity), &'a Keyless, Timestamp);

struct KeysOut<'a> {
    rows: Vec<KeyRow<'a>>,
    conns: &'a ConnIndex<'a>,
    redact_keys: bool,
}

struct KeylessOut<'a> {
    rows: Vec<KeylessRow<'a>>,
    conns: &'a ConnIndex<'a>,
    redact_keys: bool,
}

impl Serialize for KeysOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.rows.iter().map(|((scope, kid), e, deadline)| {
            let first_response = e.first_response.as_deref().map(resp_saved);
            let stored = match (&e.stored, &e.first_response) {
                (None, _) => StoredSaved::None,
                (Some(s), Some(f)) if Arc::ptr_eq(s, f) => StoredSaved::SameAsFirst,
                (Some(s), _) => StoredSaved::Own(resp_saved(s)),
            };
            KeySaved {
                scope: scope.0,
                key_id: kid.0,
                deadline: deadline.0,
                first: req_saved(&e.first, self.conns, self.redact_keys),
                identity: e.identity.map(|i| i.0),
                decoded: e.decoded(),
                first_ts: e.first_ts.0,
                first_response,
                stored,
            }
        }))
    }
}

impl Serialize for KeylessOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.rows
                .iter()
                .map(|((scope, ident), k, deadline)| KeylessSaved {
                    scope: scope.0,
                    identity: ident.0,
                    deadline: deadline.0,
                    rec: req_saved(&k.rec, self.conns, self.redact_keys),
                    response: k.response.as_deref().map(resp_saved),
                }),
        )
    }
}

/// Connections shared by saved requests, each saved once.
#[derive(Default)]
struct ConnIndex<'a> {
    /// By address: the tracker holds the `Arc`s for as long as this lives.
    ids: HashMap<*const Conn, u64>,
    list: Vec<&'a Conn>,
}

impl<'a> ConnIndex<'a> {
    fn add(&mut self, c: &'a Arc<Conn>) {
        let next = self.list.len() as u64;
        self.ids.entry(Arc::as_ptr(c)).or_insert_with(|| {
            self.list.push(c);
            next
        });
    }

    fn id(&self, c: &Arc<Conn>) -> u64 {
        // Every connection was added before the payload is written.
        self.ids.get(&Arc::as_ptr(c)).copied().unwrap_or(u64::MAX)
    }
}

/// With `redact_keys` the key values are left out: the file must not hold what the output may
/// not show.
fn req_saved<'a>(r: &'a ReqRec, conns: &ConnIndex<'_>, redact_keys: bool) -> ReqSaved<'a> {
    let (flow_id, n) = match &r.origin {
        Origin::Local(id) => (id.flow_id, id.n),
        Origin::Loaded { flow_id, n } => (*flow_id, *n),
        // Seen elsewhere: its flow id there, and its capture time for a rank.
        Origin::Remote(_) => (r.conn.flow_id, u64::try_from(r.ts.0).unwrap_or(0)),
    };
    ReqSaved {
        conn: conns.id(&r.conn),
        flow_id,
        n,
        ts: r.ts.0,
        method: r.method(),
        path: r.path(),
        host: r.host(),
        key: r.key.as_deref().filter(|_| !redact_keys),
        all_keys: r
            .all_keys()
            .filter(|_| !redact_keys)
            .map(|v| v.iter().map(String::as_str).collect()),
        body_len: r.body_len,
        body_sha256: r.body_sha256,
        body_canon_sha256: r.body_canon_sha256,
        body_complete: r.body_complete,
        body_missing: r.body_missing(),
        vlans: Cow::Borrowed(r.vlans().as_slice()),
        protocol: r.protocol.into(),
    }
}

fn resp_saved(r: &RespRec) -> RespSaved<'_> {
    RespSaved {
        ts: r.ts.0,
        status: r.status,
        interim: Cow::Borrowed(r.interim()),
        body_len: r.body_len,
        body_sha256: r.body_sha256,
        body_complete: r.body_complete,
        body_missing: r.body_missing(),
        resource_id: r.resource_id.as_deref(),
        replayed: r.replayed,
    }
}

/// What the saved hashes mean: the scope parts keys are compared within, and the header names
/// keys are read from. State saved under others is set aside.
fn fingerprint(t: &Tracker) -> [u8; 32] {
    let s = t.cfg.scope;
    let mut h = Sha256::new();
    h.update(b"idemwatch scope\0");
    h.update([
        u8::from(s.host),
        u8::from(s.credential),
        u8::from(s.account),
    ]);
    h.update(b"key headers\0");
    for name in t.key_headers() {
        h.update(name.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}

fn window_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A writer that hashes and counts what goes through it, and keeps the io error that postcard
/// would otherwise flatten.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
    error: Option<io::Error>,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.inner.write(buf) {
            Ok(n) => {
                self.hasher.update(buf.get(..n).unwrap_or(buf));
                self.bytes += n as u64;
                Ok(n)
            }
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                if e.kind() != io::ErrorKind::Interrupted {
                    self.error = Some(e);
                }
                Err(copy)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Saves the tracker's keys, learned endpoints and keyless requests to `dir/tracker.state`,
/// atomically: written to `dir/tracker.state.tmp`, synced, renamed over the old file, and the
/// directory synced. Creates `dir` if needed. The old file stays whole if anything fails.
pub fn save(tracker: &Tracker, dir: &Path) -> Result<SaveReport, StateError> {
    fs::create_dir_all(dir).map_err(|cause| StateError::CreateDir {
        path: dir.to_path_buf(),
        cause,
    })?;
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(TMP_FILE);

    let mut conns = ConnIndex::default();
    let mut keys: Vec<KeyRow<'_>> = tracker.keys.iter().collect();
    keys.sort_unstable_by_key(|(_, e, d)| (*d, e.first_ts));
    let mut keyless: Vec<KeylessRow<'_>> = tracker.keyless.iter().collect();
    keyless.sort_unstable_by_key(|(_, _, d)| *d);
    for (_, e, _) in &keys {
        conns.add(&e.first.conn);
    }
    for (_, k, _) in &keyless {
        conns.add(&k.rec.conn);
    }
    let mut endpoints: Vec<EndpointSaved<'_>> = tracker
        .endpoints
        .iter()
        .map(|(name, value, d)| EndpointSaved {
            name,
            deadline: d.0,
            value: value.0,
        })
        .collect();
    endpoints.sort_unstable_by_key(|e| e.deadline);
    let conn_list = conns
        .list
        .iter()
        .map(|c| ConnSaved {
            client_ip: c.client.ip,
            client_port: c.client.port,
            server_ip: c.server.ip,
            server_port: c.server.port,
            flow_id: c.flow_id,
            community_id: &c.community_id,
            file_index: c.file_index as u64,
        })
        .collect();
    let n_keys = keys.len();
    let payload = PayloadOut {
        conns: conn_list,
        keys: KeysOut {
            rows: keys,
            conns: &conns,
            redact_keys: tracker.cfg.redact_keys,
        },
        endpoints,
        keyless: KeylessOut {
            rows: keyless,
            conns: &conns,
            redact_keys: tracker.cfg.redact_keys,
        },
    };

    let written = write_file(&tmp, tracker, &payload).and_then(|bytes| {
        fs::rename(&tmp, &path)
            .map(|()| bytes)
            .map_err(|cause| StateError::Replace {
                from: tmp.clone(),
                to: path.clone(),
                cause,
            })
    });
    let bytes = match written {
        Ok(b) => b,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    sync_dir(dir).map_err(|cause| StateError::SyncDir {
        path: dir.to_path_buf(),
        cause,
    })?;
    Ok(SaveReport {
        keys: n_keys,
        bytes,
        path,
    })
}

/// Writes header, payload and checksum to `tmp` and syncs it; returns its size.
fn write_file(tmp: &Path, tracker: &Tracker, payload: &PayloadOut<'_>) -> Result<u64, StateError> {
    let werr = |cause| StateError::Write {
        path: tmp.to_path_buf(),
        cause,
    };
    // A leftover may have other permissions; the new file gets ours.
    match fs::remove_file(tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(werr(e)),
        _ => {}
    }
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let file = opts.open(tmp).map_err(werr)?;
    let mut w = BufWriter::with_capacity(
        1 << 20,
        Hashing {
            inner: file,
            hasher: Sha256::new(),
            bytes: 0,
            error: None,
        },
    );
    let cfg = tracker.config();
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&fingerprint(tracker));
    header.extend_from_slice(&window_nanos(cfg.window).to_le_bytes());
    header.extend_from_slice(&window_nanos(cfg.duplicate_window).to_le_bytes());
    w.write_all(&header).map_err(werr)?;
    if let Err(e) = postcard::to_io(payload, &mut w) {
        let cause = w
            .get_mut()
            .error
            .take()
            .unwrap_or_else(|| io::Error::other(format!("encoding the state: {e}")));
        return Err(werr(cause));
    }
    let mut h = w
        .into_inner()
        .map_err(|e| werr(io::Error::new(e.error().kind(), e.error().to_string())))?;
    let sum: [u8; 32] = std::mem::take(&mut h.hasher).finalize().into();
    let mut file = h.inner;
    file.write_all(&sum).map_err(werr)?;
    file.sync_all().map_err(werr)?;
    Ok(h.bytes + SUM_LEN as u64)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Loads `dir/tracker.state` into `tracker` (normally fresh, built with the running
/// configuration, with [`Tracker::with_key_headers`] so that a change of key header names is
/// noticed), with the saved deadlines. A missing file is a first start; a bad one is set
/// aside (see the module doc). Errors only when the file cannot be read, or a bad file cannot
/// be renamed.
pub fn load(tracker: &mut Tracker, dir: &Path) -> Result<LoadOutcome, StateError> {
    let path = dir.join(STATE_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LoadOutcome::Missing),
        Err(cause) => return Err(StateError::Read { path, cause }),
    };
    match decode(&bytes, tracker) {
        Ok(state) => Ok(apply(tracker, state)),
        Err(reason) => set_aside(&path, dir, reason),
    }
}

/// Renames a bad state file to `tracker.state.bad-<unix-seconds>` (with `-N` if taken).
fn set_aside(path: &Path, dir: &Path, reason: String) -> Result<LoadOutcome, StateError> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let base = format!("{STATE_FILE}.bad-{secs}");
    let mut to = dir.join(&base);
    let mut n = 1u32;
    while fs::symlink_metadata(&to).is_ok() && n < 10_000 {
        to = dir.join(format!("{base}-{n}"));
        n += 1;
    }
    if let Err(cause) = fs::rename(path, &to) {
        return Err(StateError::SetAside {
            path: path.to_path_buf(),
            to,
            reason,
            cause,
        });
    }
    // The file is out of the way either way; a lost rename only brings it back next start.
    let _ = sync_dir(dir);
    Ok(LoadOutcome::SetAside {
        reason,
        moved_to: to,
    })
}

/// A state file checked and turned into the tracker's types, not yet merged.
struct Decoded {
    keys: Vec<((Scope, KeyId), KeyEntry, Timestamp)>,
    endpoints: Vec<(String, Timestamp, Timestamp)>,
    keyless: Vec<((Scope, Identity), Keyless, Timestamp)>,
    /// Saved entries left out past `max_keys`.
    dropped: usize,
}

fn truncated(len: usize) -> String {
    format!("corrupt: truncated ({len} bytes)")
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    let a: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(a))
}

/// Checks a state file and builds the entries to load; the reason it cannot be used, if not.
fn decode(bytes: &[u8], tracker: &Tracker) -> Result<Decoded, String> {
    let len = bytes.len();
    if len == 0 {
        return Err("corrupt: empty file".into());
    }
    match bytes.get(..MAGIC.len()) {
        Some(m) if m == MAGIC => {}
        None if MAGIC.starts_with(bytes) => return Err(truncated(len)),
        _ => return Err("not an idemwatch state file".into()),
    }
    let version = bytes
        .get(16..20)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| truncated(len))?;
    if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(format!(
            "format version {version}, this build reads {OLDEST_VERSION} to {FORMAT_VERSION}"
        ));
    }
    if len < HEADER_LEN + SUM_LEN {
        return Err(truncated(len));
    }
    let (body, sum) = bytes.split_at(len - SUM_LEN);
    let actual: [u8; 32] = Sha256::digest(body).into();
    if actual != sum {
        return Err("corrupt: checksum mismatch (truncated or damaged)".into());
    }
    if body.get(20..52) != Some(&fingerprint(tracker)[..]) {
        return Err("saved with another scope or key headers; keys compared under the old scope would be wrong".into());
    }
    let saved_window = le_u64(body, 52).ok_or_else(|| truncated(len))?;
    let saved_dup = le_u64(body, 60).ok_or_else(|| truncated(len))?;
    let payload_bytes = body.get(HEADER_LEN..).ok_or_else(|| truncated(len))?;
    if version == OLDEST_VERSION {
        let payload = payload_of::<()>(payload_bytes)?;
        convert(payload, tracker, saved_window, saved_dup)
    } else {
        let payload = payload_of::<ProtocolSaved>(payload_bytes)?;
        convert(payload, tracker, saved_window, saved_dup)
    }
}

/// The payload, with its requests' protocol as `P`, when nothing follows it.
fn payload_of<'a, P: Deserialize<'a>>(bytes: &'a [u8]) -> Result<Payload<'a, P>, String> {
    let (payload, rest): (Payload<'a, P>, _) =
        postcard::take_from_bytes(bytes).map_err(|e| format!("corrupt: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("corrupt: {} bytes after the payload", rest.len()));
    }
    Ok(payload)
}

/// For the `state_file` fuzz target (and the replay of its seeds in the test suite, hence not
/// behind `cfg(fuzzing)`): `tail` (the saved windows, then the payload) sealed as a state file
/// of `tracker` (magic, version, fingerprint, checksum), so that the fuzzer's bytes reach the
/// decoder behind the checksum; then decoded and loaded as [`load`] does. Whether it was loaded.
pub fn fuzz_load(tracker: &mut Tracker, tail: &[u8]) -> bool {
    let mut b = Vec::with_capacity(HEADER_LEN + tail.len() + SUM_LEN);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    b.extend_from_slice(&fingerprint(tracker));
    b.extend_from_slice(tail);
    let sum: [u8; 32] = Sha256::digest(&b).into();
    b.extend_from_slice(&sum);
    match decode(&b, tracker) {
        Ok(state) => {
            apply(tracker, state);
            true
        }
        Err(_) => false,
    }
}

/// `d` moved by the change from `old` to `new` nanoseconds, `times` over.
fn shifted(d: i64, old: u64, new: u64, times: i128) -> Timestamp {
    let v = i128::from(d) + times * (i128::from(new) - i128::from(old));
    Timestamp(i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX }))
}

fn convert<P: SavedProtocol>(
    p: Payload<'_, P>,
    tracker: &Tracker,
    saved_window: u64,
    saved_dup: u64,
) -> Result<Decoded, String> {
    let cfg = tracker.config();
    let window = window_nanos(cfg.window);
    let dup = window_nanos(cfg.duplicate_window);
    let conns: Vec<Arc<Conn>> = p
        .conns
        .iter()
        .map(|c| {
            Arc::new(Conn {
                client: Endpoint {
                    ip: c.client_ip,
                    port: c.client_port,
                },
                server: Endpoint {
                    ip: c.server_ip,
                    port: c.server_port,
                },
                flow_id: c.flow_id,
                community_id: Arc::from(c.community_id),
                file_index: usize::try_from(c.file_index).unwrap_or(usize::MAX),
                // Not saved: a loaded request prints no `tls`.
                tls: None,
            })
        })
        .collect();
    let mut dropped = 0;

    let mut saved_keys = p.keys;
    saved_keys.sort_by_key(|k| (k.deadline, k.first_ts));
    let skip = saved_keys.len().saturating_sub(tracker.keys.cap());
    dropped += skip;
    let mut keys = Vec::with_capacity(saved_keys.len() - skip);
    for k in saved_keys.into_iter().skip(skip) {
        let first_response = k.first_response.map(resp_rec);
        let stored = match k.stored {
            StoredSaved::None => None,
            StoredSaved::SameAsFirst => Some(
                first_response
                    .clone()
                    .ok_or("corrupt: a stored result refers to a missing first response")?,
            ),
            StoredSaved::Own(r) => Some(resp_rec(r)),
        };
        let first = Arc::new(req_rec(k.first, &conns)?);
        let entry = KeyEntry {
            decoded: super::Decoded::of(k.decoded, first.body_sha256),
            first,
            identity: k.identity.map(Identity),
            first_ts: Timestamp(k.first_ts),
            first_response,
            stored,
            in_flight: ThinVec::new(),
            conflicts_waiting: ThinVec::new(),
        };
        let deadline = if saved_window == window {
            Timestamp(k.deadline)
        } else {
            shifted(k.deadline, saved_window, window, 2)
        };
        keys.push(((Scope(k.scope), KeyId(k.key_id)), entry, deadline));
    }

    let mut saved_eps = p.endpoints;
    saved_eps.sort_by_key(|e| e.deadline);
    let skip = saved_eps.len().saturating_sub(tracker.endpoints.cap());
    dropped += skip;
    let endpoints = saved_eps
        .into_iter()
        .skip(skip)
        .map(|e| {
            let (d, v) = if saved_window == window {
                (Timestamp(e.deadline), Timestamp(e.value))
            } else {
                (
                    shifted(e.deadline, saved_window, window, 1),
                    shifted(e.value, saved_window, window, 1),
                )
            };
            (e.name.to_string(), v, d)
        })
        .collect();

    let mut saved_kl = p.keyless;
    saved_kl.sort_by_key(|k| k.deadline);
    let skip = saved_kl.len().saturating_sub(tracker.keyless.cap());
    dropped += skip;
    let mut keyless = Vec::with_capacity(saved_kl.len() - skip);
    for k in saved_kl.into_iter().skip(skip) {
        let rec = Arc::new(req_rec(k.rec, &conns)?);
        let deadline = if saved_dup == dup {
            Timestamp(k.deadline)
        } else {
            shifted(k.deadline, saved_dup, dup, 1)
        };
        keyless.push((
            (Scope(k.scope), Identity(k.identity)),
            Keyless {
                rec,
                response: k.response.map(resp_rec),
            },
            deadline,
        ));
    }
    Ok(Decoded {
        keys,
        endpoints,
        keyless,
        dropped,
    })
}

fn req_rec<P: SavedProtocol>(r: ReqSaved<'_, P>, conns: &[Arc<Conn>]) -> Result<ReqRec, String> {
    let conn = usize::try_from(r.conn)
        .ok()
        .and_then(|i| conns.get(i))
        .ok_or("corrupt: a request refers to a missing connection")?
        .clone();
    let mut vlans = Vlans::default();
    for v in r.vlans.iter() {
        vlans.push(*v);
    }
    Ok(ReqRec {
        origin: Origin::Loaded {
            flow_id: r.flow_id,
            n: r.n,
        },
        conn,
        ts: Timestamp(r.ts),
        target: Target::intern(r.method, r.host, r.path),
        key: r.key.map(Into::into),
        body_len: r.body_len,
        body_sha256: r.body_sha256,
        body_canon_sha256: r.body_canon_sha256,
        body_complete: r.body_complete,
        protocol: r.protocol.protocol(),
        rare: ReqRare::of(
            r.all_keys
                .map(|v| v.into_iter().map(str::to_string).collect()),
            r.body_missing,
            vlans,
        ),
    })
}

fn resp_rec(r: RespSaved<'_>) -> Arc<RespRec> {
    Arc::new(RespRec {
        ts: Timestamp(r.ts),
        status: r.status,
        rare: RespRare::of(&r.interim, r.body_missing),
        body_len: r.body_len,
        body_sha256: r.body_sha256,
        body_complete: r.body_complete,
        resource_id: r.resource_id.map(Into::into),
        replayed: r.replayed,
    })
}

/// Merges decoded entries, oldest first, into room left under each table's cap; entries the
/// tracker already holds are kept as they are.
fn apply(t: &mut Tracker, d: Decoded) -> LoadOutcome {
    let (keys, dropped_keys) = merge(&mut t.keys, d.keys);
    let (endpoints, dropped_endpoints) = merge(&mut t.endpoints, d.endpoints);
    let (_, dropped_keyless) = merge(&mut t.keyless, d.keyless);
    LoadOutcome::Loaded {
        keys,
        endpoints,
        dropped: d.dropped + dropped_keys + dropped_endpoints + dropped_keyless,
    }
}

/// Inserts the newest `entries` that fit under `map`'s cap; (loaded, dropped).
fn merge<K: std::hash::Hash + Eq + Clone, V>(
    map: &mut super::store::ExpiringMap<K, V>,
    entries: Vec<(K, V, Timestamp)>,
) -> (usize, usize) {
    let room = map.cap().saturating_sub(map.len());
    let skip = entries.len().saturating_sub(room);
    let (mut loaded, mut dropped) = (0, skip);
    for (k, v, deadline) in entries.into_iter().skip(skip) {
        if map.contains_key(&k) {
            dropped += 1;
        } else {
            map.insert(k, v, deadline);
            loaded += 1;
        }
    }
    (loaded, dropped)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::http::canon::canonical_sha256;
    use crate::http::{Body, HttpEvent, KeyHeader, Request, Response, Transaction, TxId, target};
    use crate::stats::Stats;
    use crate::tracker::{Alert, AlertKind, ScopeParts, TrackerConfig};

    const SEC: i64 = 1_000_000_000;

    fn sha(b: &[u8]) -> [u8; 32] {
        Sha256::digest(b).into()
    }

    /// A tracker fed with hand-built exchanges (as in `tracker::tests`).
    struct Sim {
        t: Tracker,
        stats: Stats,
        alerts: Vec<Alert>,
        next: u64,
        conn: Arc<Conn>,
        /// The protocol of the requests `exchange` makes.
        protocol: Protocol,
    }

    impl Sim {
        fn with(cfg: TrackerConfig) -> Sim {
            Sim::of(Tracker::new(cfg))
        }

        fn of(t: Tracker) -> Sim {
            let ep = |p| Endpoint {
                ip: "10.0.0.1".parse().unwrap(),
                port: p,
            };
            Sim {
                t,
                stats: Stats::default(),
                alerts: Vec::new(),
                next: 0,
                conn: Arc::new(Conn {
                    client: ep(40000),
                    server: ep(443),
                    flow_id: 1,
                    community_id: Arc::from("1:x"),
                    file_index: 0,
                    tls: None,
                }),
                protocol: Protocol::Http11,
            }
        }

        fn request(path: &str, key: Option<&str>, body: &str, at: i64) -> Request {
            let b = body.as_bytes();
            Request {
                ts: Timestamp(at),
                ts_end: Timestamp(at),
                method: "POST".into(),
                path: path.into(),
                target_identity: target::identity(path.as_bytes()),
                host: Some("api.example.com".into()),
                keys: key
                    .map(|k| {
                        vec![KeyHeader {
                            name: "idempotency-key".into(),
                            value: k.into(),
                        }]
                    })
                    .unwrap_or_default(),
                credential: Some(sha(b"Bearer sk_test_a")),
                stripe_account: None,
                stripe_context: None,
                content_type: Some("application/json".into()),
                content_encoding: None,
                body: Body {
                    len: b.len() as u64,
                    sha256: Some(sha(b)),
                    decoded_sha256: Some(sha(b)),
                    canon_sha256: Some(canonical_sha256(Some("application/json"), b, None)),
                    complete: true,
                    missing: 0,
                },
                vlans: Vlans::default(),
                stream_start: 0,
                peer_ack_at_start: None,
                answered_at_start: 0,
                lost_before: false,
                protocol: Default::default(),
            }
        }

        /// A request at `at` seconds answered `resp` 0.1 s later.
        fn exchange(&mut self, path: &str, key: Option<&str>, body: &str, resp: Response, at: f64) {
            let id = TxId {
                flow_id: 1,
                flow_serial: 0,
                n: self.next,
            };
            self.next += 1;
            let t0 = (at * SEC as f64) as i64;
            let mut req = Sim::request(path, key, body, t0);
            req.protocol = self.protocol;
            let ev = HttpEvent::Request {
                id,
                conn: self.conn.clone(),
                request: Box::new(req.clone()),
            };
            self.t
                .on_event(&ev, Timestamp(t0), &mut self.stats, &mut self.alerts);
            let t1 = Timestamp(t0 + SEC / 10);
            let ev = HttpEvent::Transaction(Box::new(Transaction {
                id,
                conn: self.conn.clone(),
                request: Some(req),
                response: Some(resp),
                ts_done: t1,
                server_seen: true,
                response_lost: false,
                not_processed: false,
            }));
            self.t.on_event(&ev, t1, &mut self.stats, &mut self.alerts);
        }

        fn kinds(&self) -> Vec<AlertKind> {
            self.alerts.iter().map(|a| a.kind).collect()
        }
    }

    fn ok(id: &str) -> Response {
        let body = format!("{{\"id\":\"{id}\"}}");
        Response {
            ts: Timestamp(0),
            ts_end: Timestamp(0),
            status: 200,
            interim: vec![],
            body: Body {
                len: body.len() as u64,
                sha256: Some(sha(body.as_bytes())),
                decoded_sha256: Some(sha(body.as_bytes())),
                canon_sha256: None,
                complete: true,
                missing: 0,
            },
            resource_id: Some(id.into()),
            replayed: false,
        }
    }

    /// Files in `dir`, sorted.
    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn loaded(o: LoadOutcome) -> (usize, usize, usize) {
        match o {
            LoadOutcome::Loaded {
                keys,
                endpoints,
                dropped,
            } => (keys, endpoints, dropped),
            other => panic!("expected Loaded, got {other:?}"),
        }
    }

    /// A state directory holding one charge under key k1, answered ch_1.
    fn saved_one(cfg: TrackerConfig) -> (tempfile::TempDir, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sim::with(cfg);
        s.exchange(
            "/v1/charges",
            Some("k1"),
            r#"{"amount":100}"#,
            ok("ch_1"),
            0.0,
        );
        let r = save(&s.t, dir.path()).unwrap();
        assert_eq!(r.keys, 1);
        assert_eq!(r.path, dir.path().join(STATE_FILE));
        let bytes = fs::read(&r.path).unwrap();
        assert_eq!(r.bytes, bytes.len() as u64);
        (dir, bytes)
    }

    #[test]
    fn a_key_reused_across_a_restart_is_still_a_conflict_and_a_retry_is_quiet() {
        let (dir, _) = saved_one(TrackerConfig::default());
        let mut s = Sim::with(TrackerConfig::default());
        assert_eq!(loaded(load(&mut s.t, dir.path()).unwrap()), (1, 1, 0));
        assert_eq!(s.t.tracked_keys(), 1);

        s.exchange(
            "/v1/charges",
            Some("k1"),
            r#"{"amount":100}"#,
            ok("ch_1"),
            60.0,
        );
        assert_eq!(s.kinds(), vec![]);
        assert_eq!(s.stats.tracker_retries, 1);

        s.exchange(
            "/v1/charges",
            Some("k1"),
            r#"{"amount":999}"#,
            ok("ch_1"),
            61.0,
        );
        assert_eq!(s.kinds()[0], AlertKind::KeyConflict);
        let a = &s.alerts[0];
        let orig = a.original.as_ref().unwrap();
        assert_eq!(orig.path(), "/v1/charges");
        assert_eq!(orig.body_sha256, Some(sha(br#"{"amount":100}"#)));
        assert_eq!(orig.key.as_deref(), Some("k1"));
        assert_eq!(orig.ts, Timestamp(0));
        assert_eq!(orig.conn.community_id.as_ref(), "1:x");
        assert!(
            matches!(orig.origin, Origin::Loaded { flow_id: 1, .. }),
            "{:?}",
            orig.origin
        );
        let orig_resp = a.original_response.as_ref().unwrap();
        assert_eq!(orig_resp.resource_id.as_deref(), Some("ch_1"));
    }

    #[test]
    fn each_saved_request_keeps_its_protocol() {
        for p in [Protocol::Http10, Protocol::Http11, Protocol::Http2] {
            let dir = tempfile::tempdir().unwrap();
            let mut s = Sim::with(TrackerConfig::default());
            s.protocol = p;
            s.exchange("/v1/charges", Some("k1"), "{}", ok("ch_1"), 0.0);
            s.exchange("/v1/charges", None, r#"{"a":1}"#, ok("ch_9"), 1.0);
            save(&s.t, dir.path()).unwrap();
            let mut s = Sim::with(TrackerConfig::default());
            load(&mut s.t, dir.path()).unwrap();
            s.exchange("/v1/charges", Some("k1"), "{\"x\":1}", ok("ch_2"), 60.0);
            assert_eq!(s.kinds()[..1], [AlertKind::KeyConflict]);
            let orig = s.alerts[0].original.as_ref().unwrap();
            assert_eq!(orig.protocol, p);
            let kept = s.t.keyless.iter().map(|(_, k, _)| k.rec.protocol);
            assert_eq!(kept.collect::<Vec<_>>(), vec![p], "the keyless request too");
        }
    }

    /// The payload of a one-key state saved by the previous version (format 1, before
    /// `protocol`), as its `write_fuzz_seed` wrote it: still loaded, its request HTTP/1.1.
    #[test]
    fn a_format_1_file_loads_and_its_requests_read_as_http_1_1() {
        let tail = include_bytes!("testdata/state-v1-saved-one.tail");
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sim::with(TrackerConfig::default());
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&fingerprint(&s.t));
        b.extend_from_slice(tail);
        let sum = sha(&b);
        b.extend_from_slice(&sum);
        fs::write(dir.path().join(STATE_FILE), &b).unwrap();
        assert_eq!(loaded(load(&mut s.t, dir.path()).unwrap()), (1, 1, 0));
        s.protocol = Protocol::Http10;
        s.exchange(
            "/v1/charges",
            Some("k1"),
            r#"{"amount":999}"#,
            ok("ch_1"),
            61.0,
        );
        assert_eq!(s.kinds()[..1], [AlertKind::KeyConflict]);
        let a = &s.alerts[0];
        let orig = a.original.as_ref().unwrap();
        assert_eq!(orig.path(), "/v1/charges");
        assert_eq!(orig.body_sha256, Some(sha(br#"{"amount":100}"#)));
        assert_eq!(orig.protocol, Protocol::Http11);
        assert_eq!(a.request.protocol, Protocol::Http10);
        // The same bytes labelled format 2 are not misread: they lack the protocol.
        b[16..20].copy_from_slice(&2u32.to_le_bytes());
        let n = b.len() - SUM_LEN;
        let sum = sha(&b[..n]);
        b[n..].copy_from_slice(&sum);
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), &b).unwrap();
        let mut s = Sim::with(TrackerConfig::default());
        assert!(matches!(
            load(&mut s.t, dir.path()).unwrap(),
            LoadOutcome::SetAside { .. }
        ));
    }

    #[test]
    fn with_redact_keys_no_key_value_is_saved_and_reuse_is_still_judged() {
        let cfg = TrackerConfig {
            redact_keys: true,
            ..TrackerConfig::default()
        };
        let (_, plain) = saved_one(TrackerConfig::default());
        assert!(plain.windows(2).any(|w| w == b"k1"), "saved without it");
        let (dir, bytes) = saved_one(cfg.clone());
        assert!(
            !bytes.windows(2).any(|w| w == b"k1"),
            "the key value is in the state file"
        );
        let mut s = Sim::with(cfg);
        assert_eq!(loaded(load(&mut s.t, dir.path()).unwrap()), (1, 1, 0));
        s.exchange(
            "/v1/charges",
            Some("k1"),
            r#"{"amount":999}"#,
            ok("ch_1"),
            61.0,
        );
        assert_eq!(s.kinds()[0], AlertKind::KeyConflict);
        let a = &s.alerts[0];
        assert_eq!(a.key.as_deref(), Some("k1"));
        assert_eq!(a.original.as_ref().unwrap().key, None);
    }

    #[test]
    fn the_stored_response_survives_a_restart() {
        let (dir, _) = saved_one(TrackerConfig::default());
        let mut s = Sim::with(TrackerConfig::default());
        loaded(load(&mut s.t, dir.path()).unwrap());
        s.exchange(
            "/v1/charges",
            Some("k1"),
            r#"{"amount":100}"#,
            ok("ch_2"),
            60.0,
        );
        assert_eq!(s.kinds(), vec![AlertKind::ReplayMismatch]);
        let stored = s.alerts[0].original_response.as_ref().unwrap();
        assert_eq!(stored.resource_id.as_deref(), Some("ch_1"));
        assert_eq!(stored.status, 200);
    }

    #[test]
    fn late_retry_endpoints_and_keyless_requests_survive_a_restart() {
        let cfg = TrackerConfig {
            window: Duration::from_secs(10),
            ..TrackerConfig::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sim::with(cfg.clone());
        s.exchange("/v1/charges", Some("k1"), "{}", ok("ch_1"), 0.0);
        s.exchange("/v1/charges", None, r#"{"a":1}"#, ok("ch_2"), 1.0);
        assert_eq!(s.kinds(), vec![AlertKind::MissingKey]);
        save(&s.t, dir.path()).unwrap();

        let mut s = Sim::with(cfg);
        assert_eq!(loaded(load(&mut s.t, dir.path()).unwrap()), (1, 1, 0));
        // The keyless request again: the endpoint is known to take keys, and it is a duplicate.
        s.exchange("/v1/charges", None, r#"{"a":1}"#, ok("ch_3"), 5.0);
        assert_eq!(
            s.kinds(),
            vec![AlertKind::MissingKey, AlertKind::KeylessDuplicate]
        );
        assert_eq!(
            s.alerts[1]
                .original_response
                .as_ref()
                .unwrap()
                .resource_id
                .as_deref(),
            Some("ch_2")
        );
        s.exchange("/v1/charges", Some("k1"), "{}", ok("ch_1"), 15.0);
        assert_eq!(s.kinds()[2..], [AlertKind::LateRetry]);
    }

    #[test]
    fn shared_connections_and_stored_results_are_saved_once_and_shared_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sim::with(TrackerConfig::default());
        for i in 0..20 {
            s.exchange(
                "/v1/charges",
                Some(&format!("k{i}")),
                "{}",
                ok("c"),
                f64::from(i),
            );
        }
        save(&s.t, dir.path()).unwrap();
        let mut t = Tracker::new(TrackerConfig::default());
        assert_eq!(loaded(load(&mut t, dir.path()).unwrap()), (20, 1, 0));
        let entries: Vec<_> = t.keys.iter().map(|(_, e, _)| e).collect();
        assert!(
            entries
                .iter()
                .all(|e| Arc::ptr_eq(&e.first.conn, &entries[0].first.conn))
        );
        assert!(entries.iter().all(|e| Arc::ptr_eq(
            e.stored.as_ref().unwrap(),
            e.first_response.as_ref().unwrap()
        )));
        assert!(entries.iter().all(|e| e.in_flight.is_empty()));
    }

    #[test]
    fn no_file_is_a_first_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Tracker::new(TrackerConfig::default());
        assert!(matches!(
            load(&mut t, &dir.path().join("nowhere")).unwrap(),
            LoadOutcome::Missing
        ));
    }

    /// Writes `bytes` as the state file, loads it, and checks it was set aside whole.
    fn assert_set_aside(bytes: &[u8], cfg: TrackerConfig, want: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        fs::write(&path, bytes).unwrap();
        let mut t = Tracker::new(cfg);
        match load(&mut t, dir.path()).unwrap() {
            LoadOutcome::SetAside { reason, moved_to } => {
                assert!(reason.contains(want), "{reason:?} lacks {want:?}");
                assert!(!path.exists());
                assert_eq!(fs::read(&moved_to).unwrap(), bytes, "kept as it was");
                let name = moved_to.file_name().unwrap().to_string_lossy().into_owned();
                assert!(name.starts_with("tracker.state.bad-"), "{name}");
                assert_eq!(moved_to.parent(), Some(dir.path()));
            }
            other => panic!("expected SetAside, got {other:?}"),
        }
        assert_eq!(t.tracked_keys(), 0);
    }

    #[test]
    fn bad_files_are_set_aside_with_the_reason() {
        let (_dir, good) = saved_one(TrackerConfig::default());
        let cfg = TrackerConfig::default;

        let mut flipped = good.clone();
        flipped[HEADER_LEN + 3] ^= 0x40;
        assert_set_aside(&flipped, cfg(), "corrupt: checksum");
        let mut flipped_sum = good.clone();
        *flipped_sum.last_mut().unwrap() ^= 1;
        assert_set_aside(&flipped_sum, cfg(), "corrupt: checksum");
        assert_set_aside(&good[..good.len() - 1], cfg(), "corrupt");
        assert_set_aside(&good[..good.len() / 2], cfg(), "corrupt");
        assert_set_aside(&good[..30], cfg(), "corrupt: truncated");
        assert_set_aside(&good[..8], cfg(), "corrupt: truncated");
        assert_set_aside(b"", cfg(), "corrupt: empty file");
        assert_set_aside(
            b"{\"keys\": []}\n garbage that is long enough to pass for a header........",
            cfg(),
            "not an idemwatch state file",
        );
        let mut magic = good.clone();
        magic[0] = b'X';
        assert_set_aside(&magic, cfg(), "not an idemwatch state file");
        let mut v3 = good.clone();
        v3[16..20].copy_from_slice(&3u32.to_le_bytes());
        assert_set_aside(&v3, cfg(), "format version 3, this build reads 1 to 2");
        let mut v0 = good.clone();
        v0[16..20].copy_from_slice(&0u32.to_le_bytes());
        assert_set_aside(&v0, cfg(), "format version 0, this build reads 1 to 2");

        // A valid checksum over a damaged payload: the decoder itself refuses it.
        let mut damaged = good[..good.len() - SUM_LEN].to_vec();
        damaged.truncate(damaged.len() - 5);
        let sum = sha(&damaged);
        damaged.extend_from_slice(&sum);
        assert_set_aside(&damaged, cfg(), "corrupt: ");
    }

    #[test]
    fn state_saved_under_another_scope_or_key_headers_is_set_aside() {
        let (_dir, good) = saved_one(TrackerConfig::default());
        let other_scope = TrackerConfig {
            scope: ScopeParts::parse("host").unwrap(),
            ..TrackerConfig::default()
        };
        assert_set_aside(&good, other_scope, "another scope or key headers");

        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), &good).unwrap();
        let mut t = Tracker::with_key_headers(TrackerConfig::default(), &["x-request-key"]);
        assert!(matches!(
            load(&mut t, dir.path()).unwrap(),
            LoadOutcome::SetAside { .. }
        ));
        // The same names in another order and case are the same configuration.
        fs::write(dir.path().join(STATE_FILE), &good).unwrap();
        let mut t = Tracker::with_key_headers(
            TrackerConfig::default(),
            &["X-Idempotency-Key", "Idempotency-Key"],
        );
        assert_eq!(loaded(load(&mut t, dir.path()).unwrap()).0, 1);
    }

    #[test]
    fn a_window_change_is_accepted_and_deadlines_follow_it() {
        let (dir, _) = saved_one(TrackerConfig::default());
        let cfg = TrackerConfig {
            window: Duration::from_secs(100),
            ..TrackerConfig::default()
        };
        let mut t = Tracker::new(cfg);
        assert_eq!(loaded(load(&mut t, dir.path()).unwrap()).0, 1);
        let (_, e, d) = t.keys.iter().next().unwrap();
        // First seen at its request's end (0 s): kept two new windows from then.
        assert_eq!(d, e.first_ts.add_nanos(200 * SEC as u64));
        let (_, v, d) = t.endpoints.iter().next().unwrap();
        assert_eq!((*v, d), (Timestamp(100 * SEC), Timestamp(100 * SEC)));
    }

    #[test]
    fn a_bad_file_never_overwrites_an_earlier_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Tracker::new(TrackerConfig::default());
        for _ in 0..3 {
            fs::write(dir.path().join(STATE_FILE), b"junk").unwrap();
            assert!(matches!(
                load(&mut t, dir.path()).unwrap(),
                LoadOutcome::SetAside { .. }
            ));
        }
        let f = files(dir.path());
        assert_eq!(f.len(), 3, "{f:?}");
        assert!(f.iter().all(|n| n.starts_with("tracker.state.bad-")));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// No byte pattern makes load panic, with or without a matching checksum.
        #[test]
        fn mutated_files_never_panic(
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
            fix_sum in any::<bool>(),
        ) {
            let (_dir, good) = SAVED.with(|g| g.clone());
            let mut b = good[..good.len() - SUM_LEN].to_vec();
            for (i, v) in &edits {
                let i = i.index(b.len());
                b[i] = *v;
            }
            if truncate {
                b.truncate(cut.index(b.len()));
            }
            if fix_sum {
                let s = sha(&b);
                b.extend_from_slice(&s);
            } else {
                b.extend_from_slice(&good[good.len() - SUM_LEN..]);
            }
            let mut t = Tracker::new(TrackerConfig::default());
            let d = tempfile::tempdir().unwrap();
            fs::write(d.path().join(STATE_FILE), &b).unwrap();
            let out = load(&mut t, d.path()).unwrap();
            prop_assert!(!matches!(out, LoadOutcome::Missing));
            // Decoding alone too, on the payload with its header and no file in the way.
            let _ = decode(&b, &t);
        }
    }

    #[test]
    fn every_single_byte_change_under_a_valid_checksum_is_refused_or_loaded_without_panic() {
        let (_dir, good) = SAVED.with(|g| g.clone());
        let body = &good[..good.len() - SUM_LEN];
        let mut loaded_any = 0;
        for i in 0..body.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut b = body.to_vec();
                b[i] ^= x;
                let s = sha(&b);
                b.extend_from_slice(&s);
                let mut t = Tracker::new(TrackerConfig::default());
                if let Ok(d) = decode(&b, &t) {
                    apply(&mut t, d);
                    loaded_any += 1;
                }
            }
        }
        // Hashes, times and lengths can change without the payload failing to decode.
        assert!(loaded_any > 0);
    }

    thread_local! {
        /// A valid file with several keys, endpoints and keyless requests.
        static SAVED: (Arc<tempfile::TempDir>, Vec<u8>) = {
            let dir = tempfile::tempdir().unwrap();
            let mut s = Sim::with(TrackerConfig::default());
            for i in 0..6 {
                let body = format!(r#"{{"amount":{i}}}"#);
                s.exchange("/v1/charges", Some(&format!("k{i}")), &body, ok("ch"), f64::from(i));
                s.exchange("/v1/refunds", None, &body, ok("re"), f64::from(i) + 0.5);
            }
            save(&s.t, dir.path()).unwrap();
            let bytes = fs::read(dir.path().join(STATE_FILE)).unwrap();
            (Arc::new(dir), bytes)
        };
    }

    #[test]
    fn save_is_atomic_and_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sim::with(TrackerConfig::default());
        s.exchange("/v1/charges", Some("k1"), "{}", ok("ch_1"), 0.0);
        let first = save(&s.t, dir.path()).unwrap();
        assert_eq!(files(dir.path()), vec![STATE_FILE.to_string()]);
        // A leftover of a save cut short is replaced, never read.
        fs::write(dir.path().join(TMP_FILE), b"partial").unwrap();
        s.exchange("/v1/charges", Some("k2"), "{}", ok("ch_2"), 1.0);
        let second = save(&s.t, dir.path()).unwrap();
        assert_eq!(files(dir.path()), vec![STATE_FILE.to_string()]);
        assert_eq!(second.keys, 2);
        assert!(second.bytes > first.bytes);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&second.path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let mut t = Tracker::new(TrackerConfig::default());
        assert_eq!(loaded(load(&mut t, dir.path()).unwrap()).0, 2);
    }

    #[test]
    fn save_errors_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        fs::write(&file, b"").unwrap();
        let t = Tracker::new(TrackerConfig::default());
        let e = save(&t, &file.join("state")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("--state-dir"), "{msg}");
        assert!(msg.contains("a-file/state"), "{msg}");
    }

    #[test]
    fn past_max_keys_the_newest_are_loaded_and_the_rest_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sim::with(TrackerConfig::default());
        for i in 0..50 {
            s.exchange(
                "/v1/charges",
                Some(&format!("k{i}")),
                "{}",
                ok("c"),
                f64::from(i),
            );
        }
        save(&s.t, dir.path()).unwrap();
        let small = TrackerConfig {
            max_keys: 10,
            ..TrackerConfig::default()
        };
        let mut s = Sim::with(small);
        let (keys, endpoints, dropped) = loaded(load(&mut s.t, dir.path()).unwrap());
        assert_eq!((keys, endpoints, dropped), (10, 1, 40));
        assert_eq!(s.t.tracked_keys(), 10);
        // The newest are kept: k49 conflicts, k0 is a new key.
        s.exchange("/v1/charges", Some("k49"), r#"{"x":1}"#, ok("d"), 100.0);
        assert_eq!(s.kinds()[..1], [AlertKind::KeyConflict]);
        let n = s.alerts.len();
        s.exchange("/v1/charges", Some("k0"), r#"{"x":1}"#, ok("d"), 101.0);
        assert_eq!(s.alerts.len(), n, "{:?}", s.kinds());
    }

    /// Writes the seed of the `state_file` fuzz target: a saved state without its magic,
    /// version, fingerprint and checksum, which the target adds back.
    /// `cargo test --lib persist::tests::write_fuzz_seed -- --ignored`
    #[test]
    #[ignore]
    fn write_fuzz_seed() {
        let (_dir, bytes) = saved_one(TrackerConfig::default());
        let tail = &bytes[16 + 4 + 32..bytes.len() - SUM_LEN];
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/state_file");
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join("saved-one"), tail).unwrap();
    }

    /// Size and speed for 100k keys: `cargo test --release --lib persist::tests::measure --
    /// --ignored --nocapture`.
    #[test]
    #[ignore]
    fn measure_100k_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sim::with(TrackerConfig::default());
        for i in 0..100_000u32 {
            let body = format!(r#"{{"amount":{i},"currency":"usd","customer":"cus_{i:08}"}}"#);
            s.exchange(
                &format!("/v1/customers/cus_{i:014}/charges"),
                Some(&format!("7f0c5e1a-8b2d-4c3e-9f4a-{i:012}")),
                &body,
                ok(&format!("ch_3Nabcdefghijk{i:08}")),
                f64::from(i) * 0.01,
            );
        }
        assert_eq!(s.t.tracked_keys(), 100_000);
        let t0 = Instant::now();
        let r = save(&s.t, dir.path()).unwrap();
        let save_time = t0.elapsed();
        let mut t = Tracker::new(TrackerConfig::default());
        let t0 = Instant::now();
        let out = load(&mut t, dir.path()).unwrap();
        let load_time = t0.elapsed();
        eprintln!(
            "100k keys: {} bytes ({} per key), save {:?}, load {:?}, {:?}",
            r.bytes,
            r.bytes / 100_000,
            save_time,
            load_time,
            out
        );
        assert_eq!(t.tracked_keys(), 100_000);
    }
}
