//! TLS key logs (the NSS key-log format, RFC 9850; `SSLKEYLOGFILE`): lines in, secrets by
//! client random out.
//!
//! Takes the bytes of a key-log file (whole, or as a growing file is followed: in pieces that
//! may cut a line anywhere) or of a pcapng Decryption Secrets Block, and gives a bounded store
//! of TLS 1.2 master secrets and TLS 1.3 secrets keyed by the 32-byte client random, plus
//! counters and the number of every bad line. Leaves out following the file itself (reopening
//! on rotation), ECH (lines keyed by an inner ClientHello random cannot match the wire, RFC
//! 9850 section 3), the TLS 1.2 session caches, and any logging: callers log, never a line's
//! content, which may hold a secret.
//!
//! A key log is a credential. Secrets live in [`Secret`], whose `Debug` shows only a length
//! and whose bytes are wiped when dropped (`zeroize`); [`BadLine`] names a line by its number
//! and a reason, never by its text.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use zeroize::Zeroize;

/// Length of a ClientHello random, the key of every line.
pub const CLIENT_RANDOM_LEN: usize = 32;
/// Length of a TLS 1.2 master secret (RFC 5246 section 8.1).
pub const MASTER_SECRET_LEN: usize = 48;
/// Longest line kept (terminator excluded). A real line is at most 24 + 1 + 64 + 1 + 96 bytes;
/// a longer one is a bad line, skipped to its end without being buffered.
pub const MAX_LINE_BYTES: usize = 1024;

/// The longest secret held: 48 bytes (a TLS 1.2 master secret, or a TLS 1.3 secret of a
/// SHA-384 suite).
const MAX_SECRET_LEN: usize = 48;

/// A secret from a key log: 32 or 48 bytes. `Debug` shows its length only; dropped, its bytes
/// are overwritten with zeros. (A move can still leave a stale copy on the stack, which no
/// crate prevents without unsafe code; the store keeps each secret in one place after insertion.)
#[derive(PartialEq, Eq)]
pub struct Secret {
    bytes: [u8; MAX_SECRET_LEN],
    len: u8,
}

impl Secret {
    /// The secret's bytes (32 or 48).
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([REDACTED] {} bytes)", self.len)
    }
}

/// A TLS 1.2 master secret (`CLIENT_RANDOM` line): always 48 bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Tls12Master(Secret);

impl Tls12Master {
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// The TLS 1.3 secrets a key log carries (RFC 9850 section 2; RFC 8446 section 7.1). The
/// exporter secrets are not here: they decrypt nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tls13Secret {
    ClientEarly,
    ClientHandshake,
    ServerHandshake,
    ClientTraffic0,
    ServerTraffic0,
}

impl Tls13Secret {
    pub const ALL: [Tls13Secret; 5] = [
        Tls13Secret::ClientEarly,
        Tls13Secret::ClientHandshake,
        Tls13Secret::ServerHandshake,
        Tls13Secret::ClientTraffic0,
        Tls13Secret::ServerTraffic0,
    ];

    /// The key-log label of this secret.
    pub fn label(self) -> &'static str {
        match self {
            Tls13Secret::ClientEarly => "CLIENT_EARLY_TRAFFIC_SECRET",
            Tls13Secret::ClientHandshake => "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            Tls13Secret::ServerHandshake => "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            Tls13Secret::ClientTraffic0 => "CLIENT_TRAFFIC_SECRET_0",
            Tls13Secret::ServerTraffic0 => "SERVER_TRAFFIC_SECRET_0",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What one good line says.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyLine {
    /// Empty, or a `#` comment.
    Blank,
    /// A well-formed line whose label decrypts nothing (`EXPORTER_SECRET`,
    /// `EARLY_EXPORTER_SECRET`, and RFC 9850's `ECH_SECRET`/`ECH_CONFIG`).
    Ignored,
    /// `CLIENT_RANDOM`.
    Tls12 {
        client_random: [u8; CLIENT_RANDOM_LEN],
        master: Tls12Master,
    },
    /// One of the TLS 1.3 labels.
    Tls13 {
        client_random: [u8; CLIENT_RANDOM_LEN],
        kind: Tls13Secret,
        secret: Secret,
    },
}

/// Why a line was refused. Each name is a stable snake_case word for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BadLineReason {
    NotUtf8,
    TooLong,
    UnknownLabel,
    /// Not exactly three fields (label, client random, secret).
    FieldCount,
    BadHex,
    /// A client random not of 32 bytes, a master secret not of 48, a TLS 1.3 secret not of 32
    /// or 48.
    WrongLength,
}

impl BadLineReason {
    pub fn name(self) -> &'static str {
        match self {
            BadLineReason::NotUtf8 => "not_utf8",
            BadLineReason::TooLong => "too_long",
            BadLineReason::UnknownLabel => "unknown_label",
            BadLineReason::FieldCount => "field_count",
            BadLineReason::BadHex => "bad_hex",
            BadLineReason::WrongLength => "wrong_length",
        }
    }
}

/// A refused line: its number (from 1) in what one [`KeyLogReader`] read, and why. Displays
/// without the line's text, which may hold a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadLine {
    pub line: u64,
    pub reason: BadLineReason,
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason.name())
    }
}

/// Parses one line, its terminator (CR, LF or CRLF) already removed. Fields are separated by
/// spaces or tabs; hex is either case (RFC 9850 section 2).
pub fn parse_line(line: &[u8]) -> Result<KeyLine, BadLineReason> {
    if line.len() > MAX_LINE_BYTES {
        return Err(BadLineReason::TooLong);
    }
    let text = std::str::from_utf8(line).map_err(|_| BadLineReason::NotUtf8)?;
    let text = text.trim_matches(|c| c == ' ' || c == '\t');
    if text.is_empty() || text.starts_with('#') {
        return Ok(KeyLine::Blank);
    }
    let mut fields = text.split([' ', '\t']).filter(|f| !f.is_empty());
    let label = fields.next().unwrap_or_default();
    let kind = match label {
        "CLIENT_RANDOM" => None,
        "CLIENT_EARLY_TRAFFIC_SECRET" => Some(Tls13Secret::ClientEarly),
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => Some(Tls13Secret::ClientHandshake),
        "SERVER_HANDSHAKE_TRAFFIC_SECRET" => Some(Tls13Secret::ServerHandshake),
        "CLIENT_TRAFFIC_SECRET_0" => Some(Tls13Secret::ClientTraffic0),
        "SERVER_TRAFFIC_SECRET_0" => Some(Tls13Secret::ServerTraffic0),
        "EXPORTER_SECRET" | "EARLY_EXPORTER_SECRET" | "ECH_SECRET" | "ECH_CONFIG" => {
            return ignored(fields);
        }
        // TLS 1.2 RSA key exchange: the first 8 bytes of the encrypted pre-master secret and the
        // pre-master secret. OpenSSL writes it beside the CLIENT_RANDOM line, which decrypts.
        "RSA" => return ignored_rsa(fields),
        _ => return Err(BadLineReason::UnknownLabel),
    };
    let (Some(random_hex), Some(secret_hex), None) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(BadLineReason::FieldCount);
    };
    let client_random = client_random(random_hex)?;
    let secret = secret(secret_hex)?;
    match kind {
        None if secret.len() == MASTER_SECRET_LEN => Ok(KeyLine::Tls12 {
            client_random,
            master: Tls12Master(secret),
        }),
        None => Err(BadLineReason::WrongLength),
        Some(kind) => Ok(KeyLine::Tls13 {
            client_random,
            kind,
            secret,
        }),
    }
}

/// An ignored label still needs the line's shape, so that garbage after a known word is bad.
fn ignored<'a>(mut fields: impl Iterator<Item = &'a str>) -> Result<KeyLine, BadLineReason> {
    let (Some(random_hex), Some(value_hex), None) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(BadLineReason::FieldCount);
    };
    client_random(random_hex)?;
    if !value_hex.len().is_multiple_of(2) || !value_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BadLineReason::BadHex);
    }
    Ok(KeyLine::Ignored)
}

/// An `RSA` line: 8 bytes of encrypted pre-master secret, then the 48-byte pre-master secret.
fn ignored_rsa<'a>(mut fields: impl Iterator<Item = &'a str>) -> Result<KeyLine, BadLineReason> {
    let (Some(head_hex), Some(pms_hex), None) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(BadLineReason::FieldCount);
    };
    let mut head = [0u8; 8];
    let mut pms = [0u8; MASTER_SECRET_LEN];
    match (
        decode_hex(head_hex, &mut head)?,
        decode_hex(pms_hex, &mut pms)?,
    ) {
        (8, MASTER_SECRET_LEN) => {
            pms.zeroize();
            Ok(KeyLine::Ignored)
        }
        _ => {
            pms.zeroize();
            Err(BadLineReason::WrongLength)
        }
    }
}

fn client_random(hex: &str) -> Result<[u8; CLIENT_RANDOM_LEN], BadLineReason> {
    let mut out = [0u8; CLIENT_RANDOM_LEN];
    match decode_hex(hex, &mut out)? {
        CLIENT_RANDOM_LEN => Ok(out),
        _ => Err(BadLineReason::WrongLength),
    }
}

fn secret(hex: &str) -> Result<Secret, BadLineReason> {
    let mut s = Secret {
        bytes: [0; MAX_SECRET_LEN],
        len: 0,
    };
    let n = decode_hex(hex, &mut s.bytes)?;
    if n != 32 && n != 48 {
        return Err(BadLineReason::WrongLength);
    }
    s.len = n as u8;
    Ok(s)
}

/// Decodes `hex` into the start of `out`; returns the byte count. Hex longer than `out` holds
/// is `WrongLength` once it is known to be hex.
fn decode_hex(hex: &str, out: &mut [u8]) -> Result<usize, BadLineReason> {
    let bytes = hex.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(2) {
        return Err(if bytes.iter().all(u8::is_ascii_hexdigit) {
            BadLineReason::WrongLength
        } else {
            BadLineReason::BadHex
        });
    }
    let mut too_long = false;
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let (Some(hi), Some(lo)) = (
            pair.first().copied().and_then(nibble),
            pair.get(1).copied().and_then(nibble),
        ) else {
            return Err(BadLineReason::BadHex);
        };
        match out.get_mut(i) {
            Some(slot) => *slot = (hi << 4) | lo,
            None => too_long = true,
        }
    }
    if too_long {
        return Err(BadLineReason::WrongLength);
    }
    Ok(bytes.len() / 2)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The counters of a key log (kept here rather than in `stats.rs` until the TLS stage is
/// wired in).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KeyLogCounts {
    /// Lines read, blank lines and comments included.
    pub lines: u64,
    /// Secrets stored (a line replacing an earlier one's secret counts again).
    pub secrets: u64,
    /// Lines refused (see [`BadLineReason`]); skipped, never fatal.
    pub bad_lines: u64,
    /// Well-formed lines whose label decrypts nothing (exporter and ECH secrets).
    pub ignored_labels: u64,
    /// Client randoms dropped, oldest first, to stay within the store's bound.
    pub evicted: u64,
}

/// The secrets of one client random.
#[derive(Debug, Default, PartialEq, Eq)]
struct Entry {
    tls12: Option<Tls12Master>,
    tls13: [Option<Secret>; 5],
}

/// Secrets by client random: a later line replaces an earlier one's secret of the same kind
/// (as Wireshark does). At most `max_randoms` client randoms are held; a new one past the
/// bound evicts the one first seen longest ago.
#[derive(Debug, PartialEq, Eq)]
pub struct KeyLog {
    max_randoms: usize,
    entries: HashMap<[u8; CLIENT_RANDOM_LEN], Entry>,
    /// Client randoms in the order first seen; the same set as `entries`' keys.
    order: VecDeque<[u8; CLIENT_RANDOM_LEN]>,
    counts: KeyLogCounts,
}

impl KeyLog {
    /// An empty store holding at most `max_randoms` client randoms (at least one).
    pub fn new(max_randoms: usize) -> KeyLog {
        KeyLog {
            max_randoms: max_randoms.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
            counts: KeyLogCounts::default(),
        }
    }

    /// The TLS 1.2 master secret logged for `client_random`.
    pub fn tls12_master(&self, client_random: &[u8; CLIENT_RANDOM_LEN]) -> Option<&Tls12Master> {
        self.entries.get(client_random)?.tls12.as_ref()
    }

    /// The TLS 1.3 secret of `kind` logged for `client_random`.
    pub fn tls13_secret(
        &self,
        client_random: &[u8; CLIENT_RANDOM_LEN],
        kind: Tls13Secret,
    ) -> Option<&Secret> {
        self.entries
            .get(client_random)?
            .tls13
            .get(kind.index())?
            .as_ref()
    }

    /// Client randoms held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn counts(&self) -> KeyLogCounts {
        self.counts
    }

    /// Feeds a whole text (a file read at once, a Decryption Secrets Block), its last line
    /// with or without a terminator. Returns the bad lines, numbered from 1 in `text`.
    pub fn add_text(&mut self, text: &[u8]) -> Vec<BadLine> {
        let mut reader = KeyLogReader::new();
        let mut bad = reader.feed(text, self);
        bad.extend(reader.finish(self));
        bad
    }

    /// Reads the key-log file at `path` into the store (`read --tls-keylog FILE`). The
    /// result carries the bad lines and, on unix, a warning when other users may read the file.
    pub fn add_file(&mut self, path: &Path) -> Result<FileLoad, KeyLogFileError> {
        let err = |source| KeyLogFileError {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(err)?;
        let meta = file.metadata().map_err(err)?;
        if meta.is_dir() {
            return Err(err(io::Error::other("is a directory")));
        }
        let warning = exposure_warning(path, &meta);
        let mut reader = KeyLogReader::new();
        let mut bad_lines = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    buf.zeroize();
                    return Err(err(e));
                }
            };
            bad_lines.extend(reader.feed(buf.get(..n).unwrap_or(&[]), self));
        }
        bad_lines.extend(reader.finish(self));
        buf.zeroize();
        Ok(FileLoad { bad_lines, warning })
    }

    /// Counts and stores one line (terminator removed) numbered `number`.
    fn add_line(&mut self, line: &[u8], number: u64) -> Result<(), BadLine> {
        self.counts.lines += 1;
        let parsed = parse_line(line).map_err(|reason| {
            self.counts.bad_lines += 1;
            BadLine {
                line: number,
                reason,
            }
        })?;
        match parsed {
            KeyLine::Blank => {}
            KeyLine::Ignored => self.counts.ignored_labels += 1,
            KeyLine::Tls12 {
                client_random,
                master,
            } => self.entry(client_random).tls12 = Some(master),
            KeyLine::Tls13 {
                client_random,
                kind,
                secret,
            } => {
                if let Some(slot) = self.entry(client_random).tls13.get_mut(kind.index()) {
                    *slot = Some(secret);
                }
            }
        }
        Ok(())
    }

    /// The entry of `client_random`, made (evicting the oldest past the bound) when new;
    /// counts the secret about to be stored in it.
    fn entry(&mut self, client_random: [u8; CLIENT_RANDOM_LEN]) -> &mut Entry {
        self.counts.secrets += 1;
        if !self.entries.contains_key(&client_random) {
            while self.entries.len() >= self.max_randoms {
                let Some(oldest) = self.order.pop_front() else {
                    break;
                };
                self.entries.remove(&oldest);
                self.counts.evicted += 1;
            }
            self.order.push_back(client_random);
        }
        self.entries.entry(client_random).or_default()
    }
}

/// What [`KeyLog::add_file`] found besides secrets.
#[derive(Debug, Default)]
pub struct FileLoad {
    pub bad_lines: Vec<BadLine>,
    /// Set when other users may read the file, naming it; for the caller to log.
    pub warning: Option<String>,
}

/// A key-log file that could not be read: which, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot read the TLS key log: {source}", path.display())]
pub struct KeyLogFileError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// A warning naming `path` when users other than this process's may read it (unix; elsewhere
/// none): others may, or a group this process is not in. A group of ours is how a daemon is
/// given an application's key log (docs/TLS.md), so that is no warning.
pub fn exposure_warning(path: &Path, meta: &std::fs::Metadata) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mode = meta.permissions().mode() & 0o777;
        let mut ours: Vec<u32> = nix::unistd::getgroups()
            .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_default();
        ours.push(nix::unistd::getegid().as_raw());
        exposed(mode, meta.gid(), &ours).then(|| {
            format!(
                "{}: the TLS key log is readable by other users (mode {mode:03o}); it holds \
                 session secrets: chmod 600 it, or 640 with a group of idemwatch's own",
                path.display()
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = (path, meta);
        None
    }
}

/// Whether a file of `mode` and group `gid` is readable by users outside `our_groups`.
fn exposed(mode: u32, gid: u32, our_groups: &[u32]) -> bool {
    mode & 0o004 != 0 || (mode & 0o040 != 0 && !our_groups.contains(&gid))
}

/// Splits bytes that arrive in pieces (a growing file followed as the application appends)
/// into lines for a [`KeyLog`]. A partial last line waits for its end; one past
/// [`MAX_LINE_BYTES`] is dropped as it comes and reported as bad once its end arrives.
#[derive(Debug, Default)]
pub struct KeyLogReader {
    /// The partial line; wiped when done with, as it may hold a secret.
    partial: Vec<u8>,
    /// The partial line grew past the bound: its bytes are being skipped.
    too_long: bool,
    /// The last byte fed was a CR: an LF right after it ends nothing more.
    after_cr: bool,
    /// Lines ended so far.
    lines: u64,
}

impl KeyLogReader {
    pub fn new() -> KeyLogReader {
        KeyLogReader::default()
    }

    /// Feeds the next bytes; stores what every completed line says. Returns the bad lines.
    pub fn feed(&mut self, mut bytes: &[u8], log: &mut KeyLog) -> Vec<BadLine> {
        let mut bad = Vec::new();
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(end) = memchr::memchr2(b'\n', b'\r', bytes) {
            let (line, rest) = bytes.split_at(end);
            let terminator = rest.first().copied();
            let mut rest = rest.get(1..).unwrap_or(&[]);
            if terminator == Some(b'\r') {
                match rest.first() {
                    Some(b'\n') => rest = rest.get(1..).unwrap_or(&[]),
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            self.push(line);
            bad.extend(self.end_line(log));
            bytes = rest;
        }
        self.push(bytes);
        bad
    }

    /// Ends the input: a last line without a terminator counts. For a whole file; a followed
    /// file keeps its partial line for the next append instead.
    pub fn finish(&mut self, log: &mut KeyLog) -> Option<BadLine> {
        if self.partial.is_empty() && !self.too_long {
            return None;
        }
        self.end_line(log)
    }

    /// Forgets any partial line and starts numbering again (the followed file was truncated
    /// or replaced).
    pub fn reset(&mut self) {
        self.partial.zeroize();
        *self = KeyLogReader::default();
    }

    /// Lines ended so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.too_long {
            return;
        }
        if self.partial.len().saturating_add(bytes.len()) > MAX_LINE_BYTES {
            self.partial.zeroize();
            self.partial.clear();
            self.too_long = true;
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self, log: &mut KeyLog) -> Option<BadLine> {
        self.lines += 1;
        let result = if self.too_long {
            log.counts.lines += 1;
            log.counts.bad_lines += 1;
            Err(BadLine {
                line: self.lines,
                reason: BadLineReason::TooLong,
            })
        } else {
            log.add_line(&self.partial, self.lines)
        };
        self.partial.zeroize();
        self.partial.clear();
        self.too_long = false;
        result.err()
    }
}

impl Drop for KeyLogReader {
    fn drop(&mut self) {
        self.partial.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R1: &str = "0101010101010101010101010101010101010101010101010101010101010101";
    const R2: &str = "a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2";
    /// 48 bytes, distinctive so a leak would show.
    const S48: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e\
                       5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";
    const S32: &str = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3";

    fn random(hex: &str) -> [u8; 32] {
        client_random(hex).unwrap()
    }

    fn load(text: &str) -> (KeyLog, Vec<BadLine>) {
        let mut log = KeyLog::new(100);
        let bad = log.add_text(text.as_bytes());
        (log, bad)
    }

    fn bad(line: u64, reason: BadLineReason) -> BadLine {
        BadLine { line, reason }
    }

    #[test]
    fn client_random_line_gives_a_tls12_master() {
        let (log, bad) = load(&format!("CLIENT_RANDOM {R1} {S48}\n"));
        assert!(bad.is_empty());
        assert_eq!(
            log.tls12_master(&random(R1)).unwrap().as_bytes(),
            &[0x5e; 48]
        );
        assert!(
            log.tls13_secret(&random(R1), Tls13Secret::ClientTraffic0)
                .is_none()
        );
        assert!(log.tls12_master(&random(R2)).is_none());
    }

    #[test]
    fn every_tls13_label_fills_its_own_slot() {
        for kind in Tls13Secret::ALL {
            let (log, bad) = load(&format!("{} {R1} {S32}\n", kind.label()));
            assert!(bad.is_empty(), "{kind:?}");
            for other in Tls13Secret::ALL {
                let got = log.tls13_secret(&random(R1), other).map(Secret::as_bytes);
                assert_eq!(got, (other == kind).then_some(&[0xc3; 32][..]), "{kind:?}");
            }
            assert!(log.tls12_master(&random(R1)).is_none());
        }
    }

    #[test]
    fn tls13_secret_may_be_48_bytes_but_not_40() {
        let (log, bad) = load(&format!(
            "SERVER_TRAFFIC_SECRET_0 {R1} {S48}\nCLIENT_TRAFFIC_SECRET_0 {R1} {}\n",
            &S48[..80]
        ));
        let s = log.tls13_secret(&random(R1), Tls13Secret::ServerTraffic0);
        assert_eq!(s.map(Secret::len), Some(48));
        assert_eq!(bad, [self::bad(2, BadLineReason::WrongLength)]);
    }

    #[test]
    fn exporter_secrets_are_counted_as_ignored_not_bad() {
        let (log, bad) = load(&format!(
            "EXPORTER_SECRET {R1} {S32}\nEARLY_EXPORTER_SECRET {R1} {S48}\nEXPORTER_SECRET {R1} zz\n"
        ));
        assert_eq!(bad, [self::bad(3, BadLineReason::BadHex)]);
        assert!(log.is_empty());
        let c = log.counts();
        assert_eq!(
            (c.lines, c.ignored_labels, c.secrets, c.bad_lines),
            (3, 2, 0, 1)
        );
    }

    #[test]
    fn comments_and_empty_lines_are_skipped_but_numbered() {
        let (log, bad) = load(&format!(
            "# SSL/TLS secrets log file\n\n   \nCLIENT_RANDOM {R1} {S48}\nnonsense\n"
        ));
        assert_eq!(bad, [self::bad(5, BadLineReason::UnknownLabel)]);
        assert_eq!(log.len(), 1);
        let c = log.counts();
        assert_eq!((c.lines, c.secrets, c.bad_lines), (5, 1, 1));
    }

    #[test]
    fn lf_crlf_and_cr_endings_number_lines_alike() {
        for eol in ["\n", "\r\n", "\r"] {
            let text = [
                format!("CLIENT_RANDOM {R1} {S48}"),
                String::new(),
                "junk".to_string(),
                format!("CLIENT_RANDOM {R2} {S48}"),
            ]
            .join(eol);
            let (log, bad) = load(&text);
            assert_eq!(bad, [self::bad(3, BadLineReason::UnknownLabel)], "{eol:?}");
            assert_eq!(log.len(), 2, "{eol:?}");
            assert_eq!(log.counts().lines, 4, "{eol:?}");
        }
    }

    #[test]
    fn hex_is_accepted_in_either_case() {
        let upper = format!(
            "CLIENT_RANDOM {} {}\n",
            R2.to_uppercase(),
            S48.to_uppercase()
        );
        let (log, bad) = load(&upper);
        assert!(bad.is_empty());
        assert_eq!(
            log.tls12_master(&random(R2)).unwrap().as_bytes(),
            &[0x5e; 48]
        );
        let mixed = format!("CLIENT_RANDOM {} {S48}\n", "aA".repeat(32));
        assert!(load(&mixed).1.is_empty());
    }

    #[test]
    fn malformed_lines_are_bad_with_their_numbers_and_reasons() {
        use BadLineReason::*;
        let lines = [
            (format!("CLIENT_RANDOM {R1} {S32}"), WrongLength), // master must be 48
            (format!("CLIENT_RANDOM {} {S48}", &R1[..62]), WrongLength),
            (format!("CLIENT_RANDOM {R1}00 {S48}"), WrongLength),
            (format!("CLIENT_RANDOM {R1} {}", &S48[..95]), WrongLength), // odd length
            (format!("CLIENT_RANDOM {R1} {}g", &S48[..95]), BadHex),
            (
                format!("CLIENT_RANDOM {} {S48}", R1.replace('1', "x")),
                BadHex,
            ),
            (format!("CLIENT_RANDOM {R1} {S48} extra"), FieldCount),
            (format!("CLIENT_RANDOM {R1}"), FieldCount),
            ("CLIENT_RANDOM".to_string(), FieldCount),
            (format!("client_random {R1} {S48}"), UnknownLabel),
            (format!("CLIENT_TRAFFIC_SECRET_1 {R1} {S32}"), UnknownLabel),
            (format!("RSA {R1} {S48}"), WrongLength),
            (
                format!("CLIENT_TRAFFIC_SECRET_0 {R1} {}", &S32[..60]),
                WrongLength,
            ),
        ];
        let text: String = lines.iter().map(|(l, _)| format!("{l}\n")).collect();
        let (log, got) = load(&text);
        let want: Vec<BadLine> = lines
            .iter()
            .enumerate()
            .map(|(i, (_, r))| bad(i as u64 + 1, *r))
            .collect();
        assert_eq!(got, want);
        assert!(log.is_empty());
        assert_eq!(log.counts().bad_lines, lines.len() as u64);
    }

    #[test]
    fn bytes_that_are_not_utf8_make_a_bad_line_and_the_next_still_parses() {
        let mut text = b"CLIENT_RANDOM \xff\xfe\n".to_vec();
        text.extend(format!("CLIENT_RANDOM {R1} {S48}\n").bytes());
        let mut log = KeyLog::new(10);
        assert_eq!(log.add_text(&text), [bad(1, BadLineReason::NotUtf8)]);
        assert!(log.tls12_master(&random(R1)).is_some());
    }

    #[test]
    fn a_later_line_replaces_the_secret_of_the_same_kind_only() {
        let other = "7f".repeat(48);
        let (log, _) = load(&format!(
            "CLIENT_RANDOM {R1} {S48}\nCLIENT_HANDSHAKE_TRAFFIC_SECRET {R1} {S32}\n\
             CLIENT_RANDOM {R1} {other}\n"
        ));
        assert_eq!(
            log.tls12_master(&random(R1)).unwrap().as_bytes(),
            &[0x7f; 48]
        );
        let hs = log.tls13_secret(&random(R1), Tls13Secret::ClientHandshake);
        assert_eq!(hs.map(Secret::as_bytes), Some(&[0xc3; 32][..]));
        assert_eq!((log.len(), log.counts().secrets), (1, 3));
    }

    #[test]
    fn past_the_bound_the_first_seen_random_is_evicted() {
        let r = |i: u8| format!("{i:02x}").repeat(32);
        let mut log = KeyLog::new(2);
        let mut text = String::new();
        for i in 1..=3 {
            text += &format!("CLIENT_RANDOM {} {S48}\n", r(i));
        }
        // A new secret for random 2 does not make it young again, nor evict anything.
        text += &format!("SERVER_TRAFFIC_SECRET_0 {} {S32}\n", r(2));
        assert!(log.add_text(text.as_bytes()).is_empty());
        assert_eq!(log.len(), 2);
        assert_eq!(log.counts().evicted, 1);
        assert!(log.tls12_master(&random(&r(1))).is_none());
        assert!(log.tls12_master(&random(&r(2))).is_some());
        assert!(log.tls12_master(&random(&r(3))).is_some());
        log.add_text(format!("CLIENT_RANDOM {} {S48}\n", r(4)).as_bytes());
        assert!(log.tls12_master(&random(&r(2))).is_none());
        assert_eq!(log.counts().evicted, 2);
    }

    #[test]
    fn a_bound_of_zero_still_keeps_the_last_random() {
        let mut log = KeyLog::new(0);
        log.add_text(format!("CLIENT_RANDOM {R1} {S48}\nCLIENT_RANDOM {R2} {S48}\n").as_bytes());
        assert_eq!((log.len(), log.counts().evicted), (1, 1));
        assert!(log.tls12_master(&random(R2)).is_some());
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let (log, _) = load(&format!(
            "CLIENT_RANDOM {R1} {S48}\nCLIENT_TRAFFIC_SECRET_0 {R1} {S32}\n"
        ));
        let master = log.tls12_master(&random(R1)).unwrap();
        assert_eq!(
            format!("{master:?}"),
            "Tls12Master(Secret([REDACTED] 48 bytes))"
        );
        let all = format!("{log:?} {log:#?}");
        for leak in ["5e5e", "c3c3", "94, 94", "195, 195", "0x5e", "0xc3"] {
            assert!(!all.contains(leak), "{leak} in {all}");
        }
        assert!(all.contains("[REDACTED] 32 bytes"));
        let parsed = parse_line(format!("CLIENT_RANDOM {R1} {S48}").as_bytes());
        assert!(!format!("{parsed:?}").contains("94, 94"));
    }

    #[test]
    fn a_partial_line_waits_for_its_end() {
        let mut log = KeyLog::new(10);
        let mut reader = KeyLogReader::new();
        let line = format!("CLIENT_RANDOM {R1} {S48}\r\n");
        let (a, b) = line.as_bytes().split_at(50);
        assert!(reader.feed(a, &mut log).is_empty());
        assert!(log.is_empty());
        assert!(reader.feed(b, &mut log).is_empty());
        assert!(log.tls12_master(&random(R1)).is_some());
        assert_eq!(reader.lines(), 1);
        // Without finish, an unterminated line is still waiting.
        reader.feed(format!("CLIENT_RANDOM {R2} {S48}").as_bytes(), &mut log);
        assert!(log.tls12_master(&random(R2)).is_none());
        assert!(reader.finish(&mut log).is_none());
        assert!(log.tls12_master(&random(R2)).is_some());
    }

    #[test]
    fn a_crlf_split_between_feeds_ends_one_line_not_two() {
        let mut log = KeyLog::new(10);
        let mut reader = KeyLogReader::new();
        reader.feed(format!("CLIENT_RANDOM {R1} {S48}\r").as_bytes(), &mut log);
        reader.feed(b"", &mut log);
        reader.feed(b"\nbad\n", &mut log);
        assert_eq!(reader.lines(), 2);
        assert_eq!(log.counts().lines, 2);
    }

    #[test]
    fn an_overlong_line_is_one_bad_line_and_the_next_parses() {
        let mut log = KeyLog::new(10);
        let mut reader = KeyLogReader::new();
        let long = vec![b'A'; MAX_LINE_BYTES + 1];
        let mut bad = Vec::new();
        for piece in long.chunks(100) {
            bad.extend(reader.feed(piece, &mut log));
        }
        assert!(
            reader.partial.is_empty(),
            "an overlong line is not buffered"
        );
        bad.extend(reader.feed(format!("\nCLIENT_RANDOM {R1} {S48}\n").as_bytes(), &mut log));
        assert_eq!(bad, [self::bad(1, BadLineReason::TooLong)]);
        assert!(log.tls12_master(&random(R1)).is_some());
        // The longest line allowed is not too long (padded with spaces, which are trimmed).
        let mut edge = format!("CLIENT_RANDOM {R2} {S48}").into_bytes();
        edge.resize(MAX_LINE_BYTES, b' ');
        assert!(log.add_text(&edge).is_empty());
        assert!(log.tls12_master(&random(R2)).is_some());
    }

    #[test]
    fn an_unreadable_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.keys");
        let err = KeyLog::new(10).add_file(&path).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("missing.keys") && text.contains("cannot read"),
            "{text}"
        );
        assert!(KeyLog::new(10).add_file(dir.path()).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_can_read_gives_a_warning_and_a_private_one_none() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sslkeys.log");
        std::fs::write(&path, format!("CLIENT_RANDOM {R1} {S48}\nbad")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut log = KeyLog::new(10);
        let load = log.add_file(&path).unwrap();
        let warning = load.warning.unwrap();
        assert!(
            warning.contains("sslkeys.log") && warning.contains("644"),
            "{warning}"
        );
        assert_eq!(load.bad_lines, [bad(2, BadLineReason::UnknownLabel)]);
        assert!(log.tls12_master(&random(R1)).is_some());
        for mode in [0o600, 0o400, 0o622] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(log.add_file(&path).unwrap().warning.is_none(), "{mode:o}");
        }
    }

    #[test]
    fn an_rsa_pre_master_line_is_read_and_ignored_a_malformed_one_is_bad() {
        let pms = "03".repeat(48);
        let good = format!("RSA 6ab179064790a1b6 {pms}");
        assert_eq!(parse_line(good.as_bytes()), Ok(KeyLine::Ignored));
        let short = format!("RSA 6ab179064790a1 {pms}");
        assert_eq!(
            parse_line(short.as_bytes()),
            Err(BadLineReason::WrongLength)
        );
        let three = format!("RSA 6ab179064790a1b6 {pms} x");
        assert_eq!(parse_line(three.as_bytes()), Err(BadLineReason::FieldCount));
        let not_hex = format!("RSA 6ab179064790a1bz {pms}");
        assert_eq!(parse_line(not_hex.as_bytes()), Err(BadLineReason::BadHex));
    }

    #[test]
    fn group_read_is_exposure_only_for_a_group_not_ours() {
        assert!(exposed(0o644, 7, &[7]), "others can read");
        assert!(exposed(0o604, 7, &[7]));
        assert!(exposed(0o640, 8, &[7, 9]), "a group we are not in");
        assert!(!exposed(0o640, 7, &[9, 7]), "our own group");
        assert!(!exposed(0o600, 8, &[]));
        assert!(!exposed(0o620, 8, &[]), "write only is no reading");
    }

    mod split {
        use super::super::*;
        use proptest::prelude::*;

        /// Lines good and bad, with every ending.
        fn text() -> impl Strategy<Value = Vec<u8>> {
            let line = prop_oneof![
                Just(b"CLIENT_RANDOM ".to_vec()),
                Just(b"SERVER_TRAFFIC_SECRET_0 ".to_vec()),
                Just(b"EXPORTER_SECRET ".to_vec()),
                Just(b"# comment".to_vec()),
                Just(vec![b'Z'; MAX_LINE_BYTES + 3]),
                proptest::collection::vec(any::<u8>(), 0..8),
                (0u8..4, 0u8..2).prop_map(|(r, s)| {
                    let secret = if s == 0 {
                        "ab".repeat(48)
                    } else {
                        "CD".repeat(32)
                    };
                    format!("CLIENT_RANDOM {} {secret}", format!("{r:02x}").repeat(32)).into_bytes()
                }),
                (0u8..4).prop_map(|r| {
                    format!(
                        "CLIENT_TRAFFIC_SECRET_0 {} {}",
                        format!("{r:02X}").repeat(32),
                        "1f".repeat(32)
                    )
                    .into_bytes()
                }),
            ];
            let eol = prop_oneof![Just(&b"\n"[..]), Just(&b"\r\n"[..]), Just(&b"\r"[..])];
            proptest::collection::vec((line, eol), 0..12).prop_map(|lines| {
                let mut out = Vec::new();
                for (l, e) in lines {
                    out.extend(l);
                    out.extend_from_slice(e);
                }
                out
            })
        }

        proptest! {
            #[test]
            fn feeding_in_pieces_gives_the_same_store_as_feeding_whole(
                text in text(),
                cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
            ) {
                let mut whole = KeyLog::new(3);
                let bad_whole = whole.add_text(&text);
                let mut points: Vec<usize> = cuts.iter().map(|c| c.index(text.len() + 1)).collect();
                points.sort_unstable();
                let mut pieces = KeyLog::new(3);
                let mut reader = KeyLogReader::new();
                let mut bad_pieces = Vec::new();
                let mut at = 0;
                for p in points {
                    bad_pieces.extend(reader.feed(&text[at..p], &mut pieces));
                    at = p;
                }
                bad_pieces.extend(reader.feed(&text[at..], &mut pieces));
                bad_pieces.extend(reader.finish(&mut pieces));
                prop_assert_eq!(bad_whole, bad_pieces);
                prop_assert_eq!(whole, pieces);
            }
        }
    }
}
