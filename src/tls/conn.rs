//! One TLS connection seen from the wire: both directions' reassembled bytes in, each
//! direction's application data out, in order, as the peers sent it.
//!
//! Takes the bytes (and gaps) of each direction as reassembly delivers them, and the key log;
//! gives [`TlsEvent`]s: what the hellos say (version, suite, SNI, ALPN), plaintext, and why a
//! direction could not be decrypted. It leaves out where the key log comes from, and HTTP.
//!
//! | phase | TLS 1.3 (RFC 8446) | TLS 1.2 (RFC 5246) |
//! |---|---|---|
//! | hellos | in clear: client random, SNI, suite, version | the same |
//! | keys | handshake traffic secrets, then after each side's Finished its traffic secret 0; KeyUpdate moves on | the master secret's key block, used after each side's ChangeCipherSpec |
//! | ALPN | EncryptedExtensions, once decrypted | ServerHello |
//!
//! Records that come before their keys can be made (the other side's hello not read yet, or
//! the secret not in the key log yet) wait, at most [`MAX_WAITING`] bytes per direction, and
//! are opened when [`TlsConn::retry`] finds the keys. A record that does not authenticate is
//! never guessed at: the direction is lost, counted with its reason. After a capture gap the
//! next record is tried at the following sequence numbers ([`RESYNC_TRIES`]), since the lost
//! records were numbered too.

use std::collections::VecDeque;
use std::sync::Arc;

use super::crypto::{DirectionKeys, OpenError, Suite};
use super::keylog::{KeyLog, Tls13Secret};
use super::record::content_type::{ALERT, APPLICATION_DATA, CHANGE_CIPHER_SPEC, HANDSHAKE};
use super::record::handshake_type::{
    CLIENT_HELLO, ENCRYPTED_EXTENSIONS, END_OF_EARLY_DATA, FINISHED, KEY_UPDATE, SERVER_HELLO,
};
use super::record::{
    ClientHello, HandshakeReader, RecordReader, ServerHello, parse_client_hello,
    parse_encrypted_extensions, parse_server_hello, version,
};
use super::sessions::SessionCache;

/// Bytes of records one direction holds while its keys cannot be made yet.
pub const MAX_WAITING: usize = 256 * 1024;
/// Sequence numbers tried after a gap: records lost in it, at most.
pub const RESYNC_TRIES: u64 = 64;

/// Why a direction (or the connection) is not decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undecrypted {
    /// The key log has no secret for its client random.
    NoSecret,
    /// A suite this version does not decrypt (CBC, CCM, export...).
    UnsupportedSuite,
    /// Encrypted Client Hello: the secrets are keyed by a random not on the wire.
    Ech,
    /// Bytes that are not TLS records, or hellos that do not parse.
    NotTls,
    /// A record did not authenticate with the keys it should have.
    Authentication,
    /// A capture gap, and no record after it opened at the next sequence numbers.
    Gap,
    /// More waited for keys than [`MAX_WAITING`].
    TooMuchWaiting,
}

impl Undecrypted {
    pub fn name(self) -> &'static str {
        match self {
            Undecrypted::NoSecret => "no_secret",
            Undecrypted::UnsupportedSuite => "unsupported_suite",
            Undecrypted::Ech => "ech",
            Undecrypted::NotTls => "not_tls",
            Undecrypted::Authentication => "authentication",
            Undecrypted::Gap => "gap",
            Undecrypted::TooMuchWaiting => "too_much_waiting",
        }
    }
}

/// What a connection gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsEvent {
    /// Both hellos were read: the version (0x0304 for TLS 1.3), the suite, the SNI, and the
    /// ALPN protocol when the ServerHello says it (TLS 1.2; TLS 1.3 says it in
    /// [`TlsEvent::Alpn`]).
    Hello {
        version: u16,
        suite: u16,
        sni: Option<String>,
        alpn: Option<Vec<u8>>,
    },
    /// TLS 1.3: the protocol EncryptedExtensions chose.
    Alpn(Vec<u8>),
    /// Application data from one side, following what it sent before.
    Data { from_client: bool, bytes: Vec<u8> },
    /// A record of one side did not authenticate after earlier ones had (damaged in the
    /// capture, or forged): nothing of it is handed on, and it is treated as a gap of `len`
    /// bytes (the next record is tried at the following sequence numbers).
    Failed { from_client: bool, len: usize },
    /// Nothing more will be decrypted from one side.
    Lost { from_client: bool, why: Undecrypted },
}

/// One direction's state.
#[derive(Default)]
struct Direction {
    records: RecordReader,
    /// Handshake messages in clear (hellos).
    plain_handshake: HandshakeReader,
    /// Handshake messages inside encrypted records.
    sealed_handshake: HandshakeReader,
    keys: Option<DirectionKeys>,
    /// TLS 1.3: the secret of the keys in use, for KeyUpdate.
    secret: Option<Vec<u8>>,
    /// TLS 1.2: its ChangeCipherSpec came, so what follows is encrypted.
    encrypted: bool,
    /// TLS 1.3: its Finished came, so what follows uses traffic secret 0.
    finished: bool,
    /// Records waiting for keys: (type, version, fragment), and their bytes.
    waiting: VecDeque<(u8, u16, Vec<u8>)>,
    waiting_bytes: usize,
    /// A gap came: the next record's sequence number is not known.
    after_gap: bool,
    /// Records opened: once some have, one that fails is damage, not a wrong key.
    opened: u64,
    lost: Option<Undecrypted>,
}

/// One TLS connection's decryption.
#[derive(Default)]
pub struct TlsConn {
    /// [client, server].
    dirs: [Direction; 2],
    client_hello: Option<ClientHello>,
    server_hello: Option<ServerHello>,
    suite: Option<Suite>,
    /// Keys made (or found impossible) for this connection's secrets.
    keyed: bool,
    /// Records of the client skipped before its Finished: TLS 1.3 early data with no key in
    /// the key log, or that the server refused.
    pub early_skipped: u64,
    /// TLS 1.3 0-RTT: the client's handshake keys, held while its records use the early
    /// traffic keys (until EndOfEarlyData, or a record that only these open).
    early_handshake_keys: Option<DirectionKeys>,
    /// Early data opened before EncryptedExtensions said whether the server took it (and the
    /// client's data after it, which must not overtake it): (early, bytes), and their bytes
    /// (within [`MAX_WAITING`]).
    early_plain: Vec<(bool, Vec<u8>)>,
    early_plain_bytes: usize,
    /// EncryptedExtensions' early_data: the server took the client's 0-RTT data.
    early_accepted: Option<bool>,
    /// The run's TLS 1.2 session cache, for resumptions the key log has no line for.
    sessions: Option<Arc<SessionCache>>,
    /// What the session cache said, asked once: an answer that cannot change while the
    /// connection waits.
    resumed_from: Option<Option<[u8; 32]>>,
}

impl std::fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConn")
            .field("suite", &self.suite.map(|s| s.id))
            .field("keyed", &self.keyed)
            .finish_non_exhaustive()
    }
}

fn index(from_client: bool) -> usize {
    usize::from(!from_client)
}

impl TlsConn {
    pub fn new() -> TlsConn {
        TlsConn::default()
    }

    /// A connection that asks `sessions` for the session it resumed when the key log has no
    /// secret for its own client random (TLS 1.2).
    pub fn with_sessions(sessions: Option<Arc<SessionCache>>) -> TlsConn {
        TlsConn {
            sessions,
            ..TlsConn::default()
        }
    }

    /// Whether bytes that open a direction look like a TLS handshake record.
    pub fn looks_like_tls(first: &[u8]) -> bool {
        matches!(
            first,
            [HANDSHAKE, 3, 0..=4, ..] | [HANDSHAKE] | [HANDSHAKE, 3]
        )
    }

    /// Whether a side is lost.
    pub fn lost(&self, from_client: bool) -> Option<Undecrypted> {
        self.dirs[index(from_client)].lost
    }

    /// The next bytes of one side.
    pub fn on_data(
        &mut self,
        from_client: bool,
        bytes: &[u8],
        keys: &KeyLog,
        out: &mut Vec<TlsEvent>,
    ) {
        let d = index(from_client);
        if self.dirs[d].lost.is_some() {
            return;
        }
        // Each record is taken as the reader completes it, in place (no copy of its
        // fragment); the reader is out of `self` meanwhile.
        let mut reader = std::mem::take(&mut self.dirs[d].records);
        reader.push(bytes, |r| {
            if self.dirs[d].lost.is_none() {
                self.record(d, r.content_type, r.version, r.fragment, keys, out);
            }
        });
        let failed = reader.failed().is_some();
        self.dirs[d].records = reader;
        if failed {
            self.lose(d, Undecrypted::NotTls, out);
        }
    }

    /// Bytes of one side were lost in the capture.
    pub fn on_gap(&mut self, from_client: bool) {
        let dir = &mut self.dirs[index(from_client)];
        dir.records.gap();
        dir.plain_handshake.reset();
        dir.sealed_handshake.reset();
        dir.after_gap = true;
    }

    /// The key log may hold secrets it lacked: makes the keys if they can be made now, and
    /// opens what waited.
    pub fn retry(&mut self, keys: &KeyLog, out: &mut Vec<TlsEvent>) {
        if !self.keyed && self.server_hello.is_some() {
            self.make_keys(keys, out);
        }
        for d in 0..2 {
            self.drain_waiting(d, keys, out);
        }
    }

    fn lose(&mut self, d: usize, why: Undecrypted, out: &mut Vec<TlsEvent>) {
        let dir = &mut self.dirs[d];
        if dir.lost.is_none() {
            dir.lost = Some(why);
            dir.waiting.clear();
            dir.waiting_bytes = 0;
            out.push(TlsEvent::Lost {
                from_client: d == 0,
                why,
            });
        }
    }

    fn record(
        &mut self,
        d: usize,
        t: u8,
        v: u16,
        f: &[u8],
        keys: &KeyLog,
        out: &mut Vec<TlsEvent>,
    ) {
        // The client's records after its hello need the server's hello first (only a capture
        // fed out of order has them first); and what waits keeps its order.
        if !self.dirs[d].waiting.is_empty()
            || (d == 0 && self.client_hello.is_some() && self.server_hello.is_none())
        {
            self.wait(d, t, v, f, out);
            return;
        }
        let tls13 = self.suite.is_some_and(|s| s.tls13);
        let sealed = if tls13 {
            t == APPLICATION_DATA
        } else {
            self.dirs[d].encrypted && t != CHANGE_CIPHER_SPEC
        };
        if !sealed {
            match t {
                HANDSHAKE => self.plain_handshake(d, f, keys, out),
                // TLS 1.3's middlebox compatibility CCS is in clear and numbered by nobody.
                CHANGE_CIPHER_SPEC if !tls13 && self.server_hello.is_some() => {
                    self.dirs[d].encrypted = true;
                }
                _ => {}
            }
            return;
        }
        if self.dirs[d].keys.is_none() {
            self.wait(d, t, v, f, out);
            return;
        }
        self.open(d, t, v, f, out);
    }

    /// A record that cannot be taken yet waits, in order, within [`MAX_WAITING`].
    fn wait(&mut self, d: usize, t: u8, v: u16, f: &[u8], out: &mut Vec<TlsEvent>) {
        let dir = &mut self.dirs[d];
        dir.waiting_bytes += f.len();
        dir.waiting.push_back((t, v, f.to_vec()));
        if dir.waiting_bytes > MAX_WAITING {
            self.lose(d, Undecrypted::TooMuchWaiting, out);
        }
    }

    /// Takes again, in order, the records that waited (those that still cannot be taken wait
    /// again).
    fn drain_waiting(&mut self, d: usize, keys: &KeyLog, out: &mut Vec<TlsEvent>) {
        let waited = std::mem::take(&mut self.dirs[d].waiting);
        self.dirs[d].waiting_bytes = 0;
        for (t, v, f) in waited {
            if self.dirs[d].lost.is_some() {
                return;
            }
            self.record(d, t, v, &f, keys, out);
        }
    }

    /// The connection ended: a side still waiting for its secrets never got them.
    pub fn finish(&mut self, out: &mut Vec<TlsEvent>) {
        for d in 0..2 {
            let dir = &self.dirs[d];
            if dir.lost.is_none()
                && (dir.keys.is_none() || !dir.waiting.is_empty())
                && (self.waits_for_secrets() || !dir.waiting.is_empty())
            {
                self.lose(d, Undecrypted::NoSecret, out);
            }
        }
    }

    /// Opens one sealed record with the direction's keys (after a gap, at the next sequence
    /// numbers) and takes what it holds.
    fn open(&mut self, d: usize, t: u8, v: u16, f: &[u8], out: &mut Vec<TlsEvent>) {
        let dir = &mut self.dirs[d];
        let Some(keys) = dir.keys.as_mut() else {
            return;
        };
        let tries = if dir.after_gap { RESYNC_TRIES } else { 1 };
        let mut opened = None;
        let mut malformed = false;
        for k in 0..tries {
            let seq = keys.seq.wrapping_add(k);
            match keys.open_at(seq, t, v, f) {
                Ok(p) => {
                    keys.seq = seq.wrapping_add(1);
                    opened = Some(p);
                    break;
                }
                Err(OpenError::Malformed) => {
                    malformed = true;
                    break;
                }
                Err(OpenError::Authentication) => {}
            }
        }
        let was_gap = dir.after_gap;
        dir.after_gap = false;
        let tls13 = self.suite.is_some_and(|s| s.tls13);
        let Some((inner, plain)) = opened else {
            // A record the early keys do not open is the client's first under its handshake
            // keys: the server refused the early data (so no EndOfEarlyData came).
            if d == 0 && !malformed && !was_gap && self.early_handshake_keys.is_some() {
                self.dirs[0].keys = self.early_handshake_keys.take();
                self.early_done(false, out);
                self.open(d, t, v, f, out);
                return;
            }
            // TLS 1.3 early data the key log gave no key for fails with the handshake keys
            // until the client's Finished: skipped, not a loss.
            if tls13 && d == 0 && !self.dirs[0].finished && !malformed && !was_gap {
                self.early_skipped += 1;
                return;
            }
            if !was_gap && self.dirs[d].opened > 0 {
                // The keys were right for the records before: this one was damaged. Never
                // guessed at; the next is tried as after a gap, and if it fails too the side
                // is lost.
                self.dirs[d].after_gap = true;
                out.push(TlsEvent::Failed {
                    from_client: d == 0,
                    len: f.len(),
                });
                return;
            }
            let why = if was_gap {
                Undecrypted::Gap
            } else {
                Undecrypted::Authentication
            };
            self.lose(d, why, out);
            return;
        };
        self.dirs[d].opened += 1;
        match inner {
            APPLICATION_DATA if d == 0 && self.early_handshake_keys.is_some() => {
                self.early_data(true, plain, out);
            }
            // The client's data after its early data waits behind it.
            APPLICATION_DATA if d == 0 && !self.early_plain.is_empty() => {
                self.early_data(false, plain, out);
            }
            APPLICATION_DATA => out.push(TlsEvent::Data {
                from_client: d == 0,
                bytes: plain,
            }),
            HANDSHAKE => self.sealed_handshake(d, &plain, out),
            ALERT | CHANGE_CIPHER_SPEC => {}
            _ => {}
        }
    }

    fn plain_handshake(&mut self, d: usize, f: &[u8], keys: &KeyLog, out: &mut Vec<TlsEvent>) {
        let mut msgs: Vec<(u8, Vec<u8>)> = Vec::new();
        self.dirs[d]
            .plain_handshake
            .push(f, |m| msgs.push((m.msg_type, m.body.to_vec())));
        for (kind, body) in msgs {
            match (d, kind) {
                (0, CLIENT_HELLO) => match parse_client_hello(&body) {
                    Ok(h) => self.client_hello = Some(h),
                    Err(_) => self.lose(0, Undecrypted::NotTls, out),
                },
                (1, SERVER_HELLO) => match parse_server_hello(&body) {
                    // The client sends a second ClientHello: wait for the real ServerHello.
                    Ok(h) if h.hello_retry_request => {}
                    Ok(h) => {
                        self.server_hello = Some(h);
                        self.make_keys(keys, out);
                        self.drain_waiting(0, keys, out);
                        self.drain_waiting(1, keys, out);
                    }
                    Err(_) => self.lose(1, Undecrypted::NotTls, out),
                },
                _ => {}
            }
        }
    }

    fn sealed_handshake(&mut self, d: usize, plain: &[u8], out: &mut Vec<TlsEvent>) {
        let Some(suite) = self.suite else {
            return;
        };
        let mut msgs: Vec<(u8, Vec<u8>)> = Vec::new();
        self.dirs[d]
            .sealed_handshake
            .push(plain, |m| msgs.push((m.msg_type, m.body.to_vec())));
        if !suite.tls13 {
            return;
        }
        for (kind, body) in msgs {
            match kind {
                ENCRYPTED_EXTENSIONS if d == 1 => {
                    if let Ok(ee) = parse_encrypted_extensions(&body) {
                        if let Some(a) = ee.alpn {
                            out.push(TlsEvent::Alpn(a));
                        }
                        self.early_done(ee.early_data, out);
                    }
                }
                // The client's early data ends: its handshake keys from the next record.
                END_OF_EARLY_DATA if d == 0 && self.early_handshake_keys.is_some() => {
                    self.dirs[0].keys = self.early_handshake_keys.take();
                    self.dirs[0].sealed_handshake.reset();
                }
                FINISHED if !self.dirs[d].finished => {
                    // From now on this side uses its traffic secret 0, numbered from 0.
                    self.dirs[d].finished = true;
                    let pending = self.dirs[d].secret.take();
                    if let Some(s) = pending {
                        self.dirs[d].keys = DirectionKeys::tls13(suite, &s);
                        self.dirs[d].secret = Some(s);
                    }
                    self.dirs[d].sealed_handshake.reset();
                }
                KEY_UPDATE if self.dirs[d].finished => {
                    let next = self.dirs[d]
                        .secret
                        .as_ref()
                        .and_then(|s| DirectionKeys::tls13_next_secret(suite, s));
                    if let Some(n) = next {
                        self.dirs[d].keys = DirectionKeys::tls13(suite, &n);
                        self.dirs[d].secret = Some(n);
                    }
                }
                _ => {}
            }
        }
    }

    /// Both hellos are known: the suite, and the keys if the key log has the secrets. Without
    /// them the records wait ([`TlsConn::retry`]).
    fn make_keys(&mut self, keys: &KeyLog, out: &mut Vec<TlsEvent>) {
        let (Some(ch), Some(sh)) = (&self.client_hello, &self.server_hello) else {
            return;
        };
        if self.suite.is_none() {
            out.push(TlsEvent::Hello {
                version: sh.version,
                suite: sh.cipher_suite,
                sni: ch.server_name.clone(),
                alpn: sh.alpn.clone(),
            });
        }
        let Some(suite) =
            Suite::of(sh.cipher_suite).filter(|s| s.tls13 == (sh.version == version::TLS13))
        else {
            self.keyed = true;
            self.lose(0, Undecrypted::UnsupportedSuite, out);
            self.lose(1, Undecrypted::UnsupportedSuite, out);
            return;
        };
        self.suite = Some(suite);
        let random = ch.random;
        let ech = ch.encrypted_client_hello;
        if suite.tls13 {
            let secret = |k| keys.tls13_secret(&random, k).map(|s| s.as_bytes().to_vec());
            let (Some(ch_hs), Some(sh_hs), Some(c0), Some(s0)) = (
                secret(Tls13Secret::ClientHandshake),
                secret(Tls13Secret::ServerHandshake),
                secret(Tls13Secret::ClientTraffic0),
                secret(Tls13Secret::ServerTraffic0),
            ) else {
                if ech {
                    self.keyed = true;
                    self.lose(0, Undecrypted::Ech, out);
                    self.lose(1, Undecrypted::Ech, out);
                }
                return;
            };
            // Handshake keys now; each side's traffic secret once its Finished is read. With
            // 0-RTT offered on an accepted PSK and its secret logged, the client's records
            // start under the early traffic keys (RFC 8446 section 7.1).
            let early = (ch.early_data && sh.pre_shared_key)
                .then(|| secret(Tls13Secret::ClientEarly))
                .flatten()
                .and_then(|e| DirectionKeys::tls13(suite, &e));
            if let Some(e) = early {
                self.early_handshake_keys = DirectionKeys::tls13(suite, &ch_hs);
                self.dirs[0].keys = Some(e);
            } else {
                self.dirs[0].keys = DirectionKeys::tls13(suite, &ch_hs);
            }
            self.dirs[0].secret = Some(c0);
            self.dirs[1].keys = DirectionKeys::tls13(suite, &sh_hs);
            self.dirs[1].secret = Some(s0);
        } else {
            let server_random = sh.random;
            // A resumed session's master secret is logged under the client random of its full
            // handshake when the writer logs only those.
            let master = match keys.tls12_master(&random) {
                Some(m) => Some(m),
                None => self.resumed_master(&random, keys),
            };
            let Some(master) = master else {
                return;
            };
            let Some((c, s)) =
                DirectionKeys::tls12(suite, master.as_bytes(), &random, &server_random)
            else {
                return;
            };
            self.dirs[0].keys = Some(c);
            self.dirs[1].keys = Some(s);
        }
        self.keyed = true;
        if self.dirs.iter().any(|d| d.keys.is_none()) {
            self.lose(0, Undecrypted::NoSecret, out);
            self.lose(1, Undecrypted::NoSecret, out);
        }
    }

    /// TLS 1.2: the master secret of the session this connection resumed, logged under the
    /// client random of its full handshake (for writers that log only full handshakes).
    fn resumed_master<'k>(
        &mut self,
        random: &[u8; 32],
        keys: &'k KeyLog,
    ) -> Option<&'k super::keylog::Tls12Master> {
        let cache = self.sessions.as_ref()?;
        let origin = *self
            .resumed_from
            .get_or_insert_with(|| cache.resumed_from(random));
        let master = keys.tls12_master(&origin?)?;
        cache.count_resumed();
        Some(master)
    }

    /// The client's early data, opened: handed on once the server is known to have taken it.
    fn early_data(&mut self, early: bool, plain: Vec<u8>, out: &mut Vec<TlsEvent>) {
        match self.early_accepted {
            Some(accepted) if accepted || !early => out.push(TlsEvent::Data {
                from_client: true,
                bytes: plain,
            }),
            Some(_) => self.early_skipped += 1,
            None => {
                self.early_plain_bytes += plain.len();
                self.early_plain.push((early, plain));
                if self.early_plain_bytes > MAX_WAITING {
                    self.lose(0, Undecrypted::TooMuchWaiting, out);
                }
            }
        }
    }

    /// Whether the server took the early data is known. Refused early data is not handed on:
    /// the client sends it again after the handshake if it still wants to (RFC 8446 section
    /// 4.2.10), and handing on both would make one request look like two.
    fn early_done(&mut self, accepted: bool, out: &mut Vec<TlsEvent>) {
        if self.early_accepted.is_some() {
            return;
        }
        self.early_accepted = Some(accepted);
        let held = std::mem::take(&mut self.early_plain);
        self.early_plain_bytes = 0;
        if self.dirs[0].lost.is_some() {
            return;
        }
        for (early, bytes) in held {
            if early && !accepted {
                self.early_skipped += 1;
                continue;
            }
            out.push(TlsEvent::Data {
                from_client: true,
                bytes,
            });
        }
    }

    /// Whether the connection waits for secrets the key log lacks (its hellos were read).
    pub fn waits_for_secrets(&self) -> bool {
        self.server_hello.is_some() && !self.keyed
    }

    /// Whether both sides have their keys and neither is lost: a connection that carried no
    /// application data (idle, or closed after its handshake) is still decrypted.
    pub fn keyed_both(&self) -> bool {
        self.dirs
            .iter()
            .all(|d| d.keys.is_some() && d.lost.is_none())
    }

    /// Whether records of either side wait to be opened.
    pub fn has_waiting(&self) -> bool {
        self.dirs.iter().any(|d| !d.waiting.is_empty())
    }
}

#[cfg(test)]
mod tests;
